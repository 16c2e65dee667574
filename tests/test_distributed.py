"""ERF runs shared by processes with torchrun: two gloo ranks on this machine measure the same images as one
process and write one set of files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import rfkit
from rfkit.pipeline.distributed import SINGLE, World, all_reduce_sums, current_world, my_share, shard

NET = (
    "import torch\nimport torch.nn as nn\n\n\n"
    "def build():\n"
    "    torch.manual_seed(3)\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))\n"
)


def test_shards_cover_the_stream_once_in_order():
    stream = [torch.arange(5.0).view(5, 1), torch.arange(5.0, 7.0).view(2, 1)]
    seen = []
    for rank in range(3):
        batches = list(shard(stream, World(rank=rank, size=3), 2))
        assert all(b.shape[0] <= 2 for b in batches)
        seen += [v for b in batches for v in b.flatten().tolist()]
    assert sorted(seen) == list(range(7))
    assert [b.flatten().tolist() for b in shard(stream, World(rank=0, size=3), 2)] == [[0.0, 3.0], [6.0]]
    assert my_share(list("abcde"), World(rank=0, size=2)) == ["a", "c", "e"]


def test_one_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert current_world() == SINGLE and not SINGLE.distributed and SINGLE.writes
    sums = {"a": np.ones((2, 2))}
    assert all_reduce_sums(sums, 3, ["a"], (2, 2), SINGLE) == (sums, (3,))


def test_an_incomplete_environment_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(rfkit.RFKitError, match="start the run with torchrun") as e:
        current_world()
    assert "\n" not in str(e.value)


def test_two_gloo_ranks_measure_the_images_of_one_process(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(NET)
    args = ["-l", "2", "--images", "noise", "-n", "7", "--input-size", "16", "--device", "cpu", "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "erf", "net.py:build", *args, "--threads", "1", "-o", "out", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    one = rfkit.erf("net.py:build", layers=["2"], images="noise", num_images=7, input_size=16, device="cpu",
                    batch_size=2, distributed=False)  # fmt: skip
    both = np.load(tmp_path / "out" / "maps" / "2.npy")
    # the same images in other batches: equal up to float32 rounding of the per-batch maps
    np.testing.assert_allclose(both, one.maps["2"], rtol=1e-6, atol=1e-9 * np.abs(both).max())
    assert np.count_nonzero(both) > 0
    run_header = json.loads((tmp_path / "out" / "metrics.json").read_text())["run"]
    assert run_header["world_size"] == 2 and run_header["images_per_rank"] == [4, 3]
    assert run_header["num_images"] == 7 and one.images_per_rank == (7,)
    assert "error" not in run.stderr.lower()


def test_a_batch_gives_each_rank_its_own_models(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    (tmp_path / "wide.py").write_text(NET.replace("nn.Conv2d(4, 4, 5, padding=2)", "nn.Conv2d(4, 4, 7, padding=3)"))
    args = ["-l", "2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-q"]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "analyze", "net.py:build", "wide.py:build", *args, "--threads", "1", "-o", "out"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for folder, rf in (("net-build", 11), ("wide-build", 15)):  # layer 2: 3 + (k - 1) * 2, k = 5 and 7
        header = json.loads((tmp_path / "out" / folder / "run.json").read_text())
        assert header["num_images"] == 2 and header["world_size"] == 1  # each model measured by one process
        assert json.loads((tmp_path / "out" / folder / "metrics.json").read_text())["layers"]["2"]["rf_h"] == rf
    assert run.stderr.count("done net.py:build") == 1 and run.stderr.count("done wide.py:build") == 1
