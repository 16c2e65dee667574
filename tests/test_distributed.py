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
from rfkit.pipeline.distributed import SINGLE, World, all_reduce_sums, current_world, my_share

NET = (
    "import torch\nimport torch.nn as nn\n\n\n"
    "def build():\n"
    "    torch.manual_seed(3)\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))\n"
)


def test_models_are_shared_among_ranks():
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
    args = ["-l", "0,2", "--images", "noise", "-n", "8", "--input-size", "16", "--device", "cpu", "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "erf", "net.py:build", "--trust", *args, "--threads", "1", "-o", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    one = rfkit.erf(
        "net.py:build",
        layers=["0", "2"],
        images=rfkit.Images("noise", 8, input_size=16),
        runtime=rfkit.Runtime("cpu", batch_size=2, distributed=False),
        trust=True,
    )  # fmt: skip
    both = np.load(tmp_path / "out" / "maps" / "2.npy")
    # the same images in other batches: equal up to float32 rounding of the per-batch maps
    np.testing.assert_allclose(both, one.maps["2"], rtol=1e-6, atol=1e-9 * np.abs(both).max())
    assert np.count_nonzero(both) > 0
    run_header = json.loads((tmp_path / "out" / "metrics.json").read_text())["run"]
    assert run_header["world_size"] == 2 and run_header["images_per_rank"] == [4, 4]
    assert run_header["num_images"] == 8 and one.images_per_rank == (8,)
    assert "error" not in run.stderr.lower()
    assert "8/8 (100%)" in run.stdout + run.stderr  # rank 0's bar counts every rank's images
    # the confidence intervals too: the groups are sources (here one per image), whichever rank measured them
    layer = json.loads((tmp_path / "out" / "metrics.json").read_text())["layers"]["2"]
    assert run_header["bootstrap"]["groups"] == 8 and one.bootstrap["groups"] == 8
    for column in ("erf_rf_ratio_h", "erf_rf_ratio_w", "total_mass", "r50", "centroid_dy"):
        np.testing.assert_allclose(
            [layer[f"{column}_ci_low"], layer[f"{column}_ci_high"]], one.ci["2"][column], rtol=1e-6
        )
    np.testing.assert_allclose(np.load(tmp_path / "out" / "maps" / "2.sem.npy"), one.sem["2"], rtol=1e-5, atol=1e-12)
    # the layers' metrics were shared among the ranks (rank 0 fitted layer 0, rank 1 layer 2): the same as one's
    layers = json.loads((tmp_path / "out" / "metrics.json").read_text())["layers"]
    for key in ("0", "2"):
        want = one.metrics[key].as_dict()
        for column in ("erf_side_h", "r50", "gauss_sigma_y", "gauss_sigma_x", "area_ratio_0.5"):
            np.testing.assert_allclose(layers[key][column], want[column], rtol=1e-5)


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
         "rfkit_cli.app", "erf", "switch.py:build", "--trust", *args, "0.01", "--batch-size", "1", "--threads", "1",
         "-o", "out", "-q"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="not stable after all 9 images"):
        one = rfkit.erf(
            "switch.py:build",
            layers=["2"],
            images=rfkit.Images("imgs", 9, input_size=16),
            options=rfkit.ERFOptions(until_stable=0.01),
            runtime=rfkit.Runtime("cpu", batch_size=2, distributed=False),
            trust=True,
        )  # fmt: skip
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
         "rfkit_cli.app", "analyze", "net.py:build", "wide.py:build", "--trust", *args, "--threads", "1", "-o", "out"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for folder, rf in (("net-build", 11), ("wide-build", 15)):  # layer 2: 3 + (k - 1) * 2, k = 5 and 7
        header = json.loads((tmp_path / "out" / folder / "run.json").read_text())
        assert header["num_images"] == 2 and header["world_size"] == 1  # each model measured by one process
        assert json.loads((tmp_path / "out" / folder / "metrics.json").read_text())["layers"]["2"]["rf_h"] == rf
    assert run.stderr.count("done net.py:build") == 1 and run.stderr.count("done wide.py:build") == 1


# ---------------------------------------------------------------------------------------------------------
# each rank decodes only its share of the files (two ranks as two threads, with an in-process all_gather)


def _fake_gather(monkeypatch, size):
    """``torch.distributed.all_gather_object`` for ``size`` threads, the thread's rank in ``rank_of``."""
    import threading

    import torch.distributed as dist

    barrier, slots, rank_of = threading.Barrier(size), {}, {}

    def all_gather_object(out, obj):
        me = rank_of[threading.get_ident()]
        slots[me] = obj
        barrier.wait()
        out[:] = [slots[r] for r in range(size)]
        barrier.wait()  # nobody overwrites a slot before everyone has read it

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    return rank_of


def _ranks(size, fn, rank_of):
    import threading

    results, errors = [None] * size, []

    def run(r):
        rank_of[threading.get_ident()] = r
        try:
            results[r] = fn(r)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_decode_only_their_files_and_together_read_one_process_stream(tmp_path, monkeypatch, size):
    from PIL import Image

    import rfkit.pipeline.images as images_module
    from rfkit.pipeline.images import ImageStats, image_batches
    from rfkit.pipeline.sharded import sharded_batches

    for i in range(11):  # grey level 20 i tells the file; two unreadable files, one early, one late
        Image.new("RGB", (12, 12), (20 * i,) * 3).save(tmp_path / f"{i:02d}.png")
    for bad in ("01.png", "06.png"):
        (tmp_path / bad).write_bytes(b"broken")
    cfg = {"input_size": (3, 8, 8), "mean": (0.0,) * 3, "std": (1.0,) * 3, "interpolation": "bilinear",
           "crop_pct": 1.0, "crop_mode": "center"}  # fmt: skip
    one_stats = ImageStats(source="", requested=7)
    one = torch.cat(list(image_batches(tmp_path, cfg, 7, 2, stats=one_stats)))

    decoded = []
    real = images_module.read_image
    monkeypatch.setattr(images_module, "read_image", lambda path, mode="RGB": decoded.append(path) or real(path, mode))
    rank_of = _fake_gather(monkeypatch, size)

    def share(r):
        st = ImageStats(source="", requested=7)
        return list(sharded_batches(tmp_path, cfg, 7, 2, World(rank=r, size=size, backend="gloo"), stats=st)), st

    out = _ranks(size, share, rank_of)
    assert len({len(batches) for batches, _ in out}) == 1  # every rank yields one batch per step
    got = {int(i): img for batches, _ in out for b in batches for i, img in zip(b.index, b.images)}
    assert sorted(got) == list(range(7))
    assert torch.equal(torch.stack([got[i] for i in range(7)]), one)  # the same images, in the same places
    assert all(st.used == 7 and st.skipped == one_stats.skipped for _, st in out)
    assert [name.rsplit("/", 1)[-1] for name, _ in one_stats.skipped] == ["01.png", "06.png"]
    assert len(decoded) == len(set(decoded))  # no file decoded twice
    assert {p.name for p in decoded} >= {f"{i:02d}.png" for i in (0, 2, 3, 4, 5, 7, 8)}


def test_a_tensor_is_shared_without_messages():
    from rfkit.pipeline.sharded import sharded_batches

    cfg = {"input_size": (1, 2, 2), "mean": (0.0,), "std": (1.0,), "interpolation": "bilinear",
           "crop_pct": 1.0, "crop_mode": "center"}  # fmt: skip
    x = torch.arange(7.0).view(7, 1, 1, 1).expand(7, 1, 2, 2)
    shares = [list(sharded_batches(x, cfg, 7, 2, World(rank=r, size=3))) for r in range(3)]
    assert [[b.index.tolist() for b in s] for s in shares] == [[[0, 3], [6]], [[1, 4], []], [[2, 5], []]]
    assert all(torch.equal(b.images[:, 0, 0, 0], torch.as_tensor(b.index, dtype=torch.float32))
               for s in shares for b in s)  # fmt: skip


CLASSIFIER = (
    "import torch\nimport torch.nn as nn\n\n\n"
    "def build():\n"
    "    torch.manual_seed(5)\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
    "                         nn.Linear(4, 3))\n"
)


def test_two_gloo_ranks_compute_the_contribution_maps_of_one_process(tmp_path, monkeypatch):
    """`rfkit attribute` under torchrun: each rank computes its share of the images, rank 0 writes them all in
    stream order; SmoothGrad's noise is seeded image by image, so even it equals one process's maps."""
    (tmp_path / "net.py").write_text(CLASSIFIER)
    args = ["--images", "noise", "-n", "5", "--input-size", "12", "--device", "cpu", "--batch-size", "2"]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "rfkit_cli.app", "attribute", "net.py:build", "--trust", "--methods", "saliency,smoothgrad", "--samples", "4",
         *args, "-o", "out", "-q"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    one = rfkit.attribute(
        "net.py:build",
        images=rfkit.Images("noise", 5, input_size=12),
        methods="saliency,smoothgrad",
        options=rfkit.AttributionOptions(samples=4),
        runtime=rfkit.Runtime("cpu", batch_size=3, distributed=False),
        trust=True,
    )  # fmt: skip
    for method in ("saliency", "smoothgrad"):
        both = np.load(tmp_path / "out" / "maps" / f"{method}.npy")
        assert both.shape == (5, 12, 12) and np.abs(both).max() > 0
        np.testing.assert_allclose(both, one.maps[method], rtol=1e-5, atol=1e-7 * np.abs(both).max())
    assert run.stdout.count("wrote") == 1  # rank 0 alone writes


def test_a_joined_group_is_destroyed_at_exit(monkeypatch):
    """A process group left to the interpreter's teardown can abort a gloo rank ("terminate called without an
    active exception", seen once in the torchrun test above): joining registers :func:`leave` to run at exit,
    and it destroys the group."""
    import atexit
    import socket

    import torch.distributed as dist

    from rfkit.pipeline import distributed as D

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    D._join(D.Launch(0, 1, 0, "127.0.0.1", port, 30.0), "gloo")
    try:
        assert dist.is_initialized() and registered == [D.leave]
    finally:
        D.leave()
    assert not dist.is_initialized()
    D.leave()  # twice: a no-op
