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
    # the confidence intervals too: the groups are images by stream index, whichever rank measured them
    layer = json.loads((tmp_path / "out" / "metrics.json").read_text())["layers"]["2"]
    assert run_header["bootstrap"]["groups"] == 7 and one.bootstrap["groups"] == 7
    for column in ("erf_rf_ratio_h", "erf_rf_ratio_w", "total_mass", "r50", "centroid_dy"):
        np.testing.assert_allclose(
            [layer[f"{column}_ci_low"], layer[f"{column}_ci_high"]], one.ci["2"][column], rtol=1e-6
        )
    np.testing.assert_allclose(np.load(tmp_path / "out" / "maps" / "2.sem.npy"), one.sem["2"], rtol=1e-5, atol=1e-12)


SWITCH = (
    "import torch\nimport torch.nn as nn\n\n\n"
    "def build():\n"
    "    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 1, 7, padding=3, bias=False))\n"
    "    with torch.no_grad():\n"
    "        net[0].weight.fill_(1.0)\n"
    "        net[0].bias.copy_(torch.tensor([0.0, 100.0]))\n"
    "        net[2].weight.zero_()\n"
    "        net[2].weight[0, 0] = 1.0\n"
    "        net[2].weight[0, 1, 3, 3] = 400.0\n"
    "    return net\n"
)
"""A white image opens a 7×7 path to the unit besides its heavy centre, a black one only the centre: with
about half the images white the ERF is 1 or 3 px tall by the draw of images (tests/test_bootstrap.py)."""


def test_two_gloo_ranks_take_the_until_stable_decision_of_one_process(tmp_path, monkeypatch):
    """Every rank checks with everyone's groups, also the rank whose share ran out first (9 images, one per
    batch: rank 0 has 5 batches, rank 1 four), and the run goes to -n as one process's does. Batches of 1 on
    2 ranks are checked after the same images as one process's batches of 2."""
    from PIL import Image

    (tmp_path / "switch.py").write_text(SWITCH)
    (tmp_path / "imgs").mkdir()
    for i, white in enumerate([1, 0, 1, 1, 0, 0, 1, 0, 1]):
        Image.new("RGB", (16, 16), (255 * white,) * 3).save(tmp_path / "imgs" / f"{i}.png")
    args = ["-l", "2", "--images", "imgs", "-n", "9", "--input-size", "16", "--device", "cpu", "--until-stable"]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "erf", "switch.py:build", *args, "0.01", "--batch-size", "1", "--threads", "1", "-o",
         "out", "-q"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="not stable after all 9 images"):
        one = rfkit.erf("switch.py:build", layers=["2"], images="imgs", num_images=9, input_size=16, device="cpu",
                        batch_size=2, distributed=False, until_stable=0.01)  # fmt: skip
    header = json.loads((tmp_path / "out" / "metrics.json").read_text())["run"]
    assert header["num_images"] == one.num_images == 9 and header["images_per_rank"] == [5, 4]
    assert header["stopped"] == one.stopped and "not stable after all 9 images" in run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "maps" / "2.npy"), one.maps["2"], rtol=1e-6)


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
