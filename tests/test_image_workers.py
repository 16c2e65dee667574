"""Threads decoding images ahead of the model (``workers``) and the device's free memory for the batch size:
the same images, in the same order, with the same skipped files, whatever the number of threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

import rfkit
from rfkit.errors import ArgumentError, ImageSourceError
from rfkit.pipeline import devices
from rfkit.pipeline.images import ImageStats, image_batches

CFG = {
    "input_size": (3, 24, 24),
    "mean": (0.5,) * 3,
    "std": (0.25,) * 3,
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "crop_mode": "center",
}


@pytest.fixture
def folder(tmp_path):
    for i in range(9):  # one grey level per file (25 i), so that an image tells which file it came from
        Image.fromarray(np.full((30 + i, 28, 3), 25 * i, dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "img3.png").write_bytes(b"not a png")  # skipped, and replaced by the next file
    (tmp_path / "img5.png").write_bytes(b"")
    return tmp_path


def _run(folder, n, bs, workers):
    stats = ImageStats(source="", requested=n)
    batches = list(image_batches(folder, CFG, n, bs, stats=stats, workers=workers))
    return batches, stats


@pytest.mark.parametrize("workers", [1, 3])
def test_threads_give_the_same_batches_and_skips(folder, workers):
    want, want_stats = _run(folder, 6, 4, 0)
    got, got_stats = _run(folder, 6, 4, workers)
    assert [tuple(b.shape) for b in got] == [(4, 3, 24, 24), (2, 3, 24, 24)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert [name.rsplit("/", 1)[-1] for name, _ in got_stats.skipped] == ["img3.png", "img5.png"]
    assert got_stats.skipped == want_stats.skipped and got_stats.used == want_stats.used == 6
    # the first six readable files, in name order: img0 img1 img2 img4 img6 img7
    levels = torch.cat(got).mean(dim=(1, 2, 3)) * 0.25 + 0.5  # undo the normalisation
    assert torch.allclose(levels * 255 / 25, torch.tensor([0.0, 1, 2, 4, 6, 7]), atol=1e-3)


def test_threads_stop_when_enough_images_are_read(folder):
    batches, stats = _run(folder, 2, 2, 4)
    assert stats.used == 2 and len(batches) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("rfkit-decode")]


def test_a_folder_of_unreadable_files_still_fails_in_one_line(tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"junk")
    with pytest.raises(ImageSourceError, match="no readable image .* 3 file"):
        _run(tmp_path, 2, 2, 2)


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ImageSourceError, match="workers must be an int >= 0"):
        image_batches("noise", CFG, 2, 2, workers=workers)


def test_erf_with_decoding_threads_gives_the_same_map(folder):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 5, padding=2))
    a = rfkit.erf(
        net,
        layers=["2"],
        images=rfkit.Images(str(folder), 5, input_size=24),
        options=rfkit.ERFOptions(metrics=False),
        runtime=rfkit.Runtime("cpu", workers=0),
    )
    b = rfkit.erf(
        net,
        layers=["2"],
        images=rfkit.Images(str(folder), 5, input_size=24),
        options=rfkit.ERFOptions(metrics=False),
        runtime=rfkit.Runtime("cpu", workers=3),
    )
    assert a.num_images == b.num_images == 5
    assert np.array_equal(a.maps["2"], b.maps["2"]) and a.maps["2"].any()
    with pytest.raises(ArgumentError, match="workers must be an int from 0 to 1024"):
        rfkit.erf(
            net,
            layers=["2"],
            images=rfkit.Images(str(folder), 5, input_size=24),
            options=rfkit.ERFOptions(metrics=False),
            runtime=rfkit.Runtime("cpu", workers=-2),
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs a CUDA device")
def test_pinned_batches(folder):
    batch = next(image_batches(folder, CFG, 2, 2, pin_memory=True))
    assert batch.is_pinned()


def test_free_cuda_memory_counts_what_the_cache_holds_unused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3_000, 10_000))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 900)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 400)
    assert devices.free_device_memory(torch.device("cuda")) == 3_500


def test_cuda_batch_follows_free_memory(monkeypatch):
    g = rfkit.trace(torch.nn.Conv2d(3, 4, 3, padding=1), input_size=8)  # 5376 bytes per image
    cuda = torch.device("cuda")
    monkeypatch.setattr(devices, "free_device_memory", lambda device: 2 * 5376 * 10)
    assert devices.auto_batch_size(g, cuda) == 10  # half of the free memory
    monkeypatch.setattr(devices, "free_device_memory", lambda device: 10**12)
    assert devices.auto_batch_size(g, cuda) == devices.DEFAULT_BATCH["cuda"]
    monkeypatch.setattr(devices, "free_device_memory", lambda device: 100)
    assert devices.auto_batch_size(g, cuda) == 1
    monkeypatch.setattr(devices, "free_device_memory", lambda device: None)
    assert devices.auto_batch_size(g, torch.device("mps")) == devices.DEFAULT_BATCH["mps"]
