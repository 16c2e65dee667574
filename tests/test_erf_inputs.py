"""Inputs of the ERF engine: image sources and preprocessing (rfkit.pipeline.images, rfkit.models.data_config), weights
(rfkit.models.weights).

Truths used: hand-done PIL resize + crop + normalise, constant-colour images, files written here with known
colours, state_dicts saved here, weakrefs and tracemalloc for memory, and input gradients of a random
ResNet-18 for the zero-init trap.
"""

from __future__ import annotations

import dataclasses
import math
import time
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from rfkit.errors import (
    CheckpointError,
    ImageSourceError,
    RFKitError,
    WeightsError,
    WeightsUnavailableError,
    WeightsWarning,
)
from rfkit.models import hub
from rfkit.models import weights as wts
from rfkit.models.data_config import data_config_for
from rfkit.models.init_traps import detect_traps, make_safe
from rfkit.models.weights import load_model
from rfkit.models.weights_info import WeightsInfo
from rfkit.pipeline import images as imgs
from rfkit.pipeline.images import ImageStats, image_batches

pytest.importorskip("skimage")


def cfg(h=32, w=48, c=3, crop_pct=1.0, interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    return {
        "input_size": (c, h, w),
        "interpolation": interpolation,
        "mean": mean,
        "std": std,
        "crop_pct": crop_pct,
        "crop_mode": "center",
    }


def save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
    return path


def const(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


@pytest.fixture
def offline(monkeypatch):
    """Every download host unreachable, whatever the real network does."""
    monkeypatch.setattr(hub, "_unreachable", lambda url, timeout=None: "cannot reach huggingface.co (test)")


# ---------------------------------------------------------------------------------------------------------
# images: sources


def test_sample_gives_real_photos_then_seeded_views():
    st = ImageStats(source="", requested=0)
    batches = list(image_batches("sample", cfg(), 13, 5, stats=st))
    assert [tuple(b.shape) for b in batches] == [(5, 3, 32, 48), (5, 3, 32, 48), (3, 3, 32, 48)]
    assert all(b.dtype == torch.float32 and b.device.type == "cpu" for b in batches)
    assert st.used == 13 and st.requested == 13 and not st.skipped
    assert st.source.startswith("sample (scikit-image: astronaut, chelsea, coffee") and "3 seeded" in st.source
    x = torch.cat(batches)
    # real photographs: spread-out pixel values, no two images alike
    assert all(float(x[i].std()) > 0.05 for i in range(13))
    assert min(float((x[i] - x[j]).abs().mean()) for i in range(13) for j in range(i)) > 0.01
    # the astronaut photo is colour; 'camera' (index 4) is greyscale -> RGB with equal channels
    assert float((x[0, 0] - x[0, 2]).abs().mean()) > 0.05
    assert torch.equal(x[4, 0], x[4, 1]) and torch.equal(x[4, 1], x[4, 2])
    # deterministic; the seed changes only the extra views
    again = torch.cat(list(image_batches("sample", cfg(), 13, 4)))
    other = torch.cat(list(image_batches("sample", cfg(), 13, 4, seed=1)))
    assert torch.equal(x, again)
    assert torch.equal(x[:10], other[:10]) and not torch.equal(x[10:], other[10:])


def test_sample_32_views_offline_and_view_geometry():
    st = ImageStats(source="", requested=0)
    n = sum(b.shape[0] for b in image_batches("sample", cfg(16, 16), 32, 8, stats=st))
    assert n == st.used == 32
    for i in range(10, 32):
        v, photo = imgs.sample_view(i), imgs.sample_view(i % 10)
        w, h = v.size
        assert 0.25 * photo.size[0] * photo.size[1] * 0.8 <= w * h <= photo.size[0] * photo.size[1]


def test_constant_image_at_the_mean_normalises_to_zero(tmp_path):
    mean = (100 / 255, 150 / 255, 200 / 255)
    std = (0.2, 0.25, 0.5)
    c = cfg(24, 40, mean=mean, std=std, crop_pct=0.875, interpolation="bicubic")
    at_mean = save(tmp_path / "m.png", const(50, 70, (100, 150, 200)))
    one_std = save(tmp_path / "s.png", const(50, 70, (151, 214, 255)))
    x = torch.cat(list(image_batches([at_mean, one_std], c, 2, 2)))
    assert x[0].abs().max() < 1e-5
    expected = torch.tensor(
        [(151 / 255 - mean[0]) / std[0], (214 / 255 - mean[1]) / std[1], (255 / 255 - mean[2]) / std[2]]
    )
    assert torch.allclose(x[1].mean(dim=(1, 2)), expected, atol=1e-5)
    assert x[1].std(dim=(1, 2)).max() < 1e-5


def reference(img: Image.Image, h: int, w: int, crop_pct: float, mean, std) -> torch.Tensor:
    """Hand-done eval preprocessing: resize (aspect kept) to cover floor(h/pct) x floor(w/pct), centre crop."""
    sh, sw = math.floor(h / crop_pct), math.floor(w / crop_pct)
    W0, H0 = img.size
    if sh == sw:  # shorter side to sh, longer side truncated like torchvision's Resize(int)
        if W0 <= H0:
            nw, nh = sh, int(sh * H0 / W0)
        else:
            nh, nw = sh, int(sh * W0 / H0)
    else:
        r = min(H0 / sh, W0 / sw)
        nh, nw = round(H0 / r), round(W0 / r)
    big = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - h) / 2)), int(round((nw - w) / 2))
    arr = np.asarray(big.crop((left, top, left + w, top + h)), np.float32) / 255
    arr = (arr - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)


@pytest.mark.parametrize("h,w", [(40, 56), (48, 48), (56, 32)])
def test_preprocessing_matches_hand_done_pil(tmp_path, h, w):
    rng = np.random.default_rng(0)
    arr = (rng.random((97, 131, 3)) * 255).astype(np.uint8)
    arr = np.clip(arr.astype(int) + np.linspace(0, 120, 131)[None, :, None], 0, 255)  # a gradient: crops differ
    path = save(tmp_path / "img.png", arr)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = {}
    for pct in (0.875, 1.0):
        c = cfg(h, w, crop_pct=pct, interpolation="bicubic", mean=mean, std=std)
        x = next(image_batches(path, c, 1, 1))[0]
        ref = reference(Image.open(path).convert("RGB"), h, w, pct, mean, std)
        assert x.shape == ref.shape == (3, h, w)
        assert torch.allclose(x, ref, atol=1e-5), float((x - ref).abs().max())
        got[pct] = x
    assert (got[0.875] - got[1.0]).abs().mean() > 0.05  # crop_pct matters


def test_directory_recursive_mixed_extensions_corrupt_and_non_image(tmp_path):
    colours = {"a/b/y.png": 10, "a/x.JPG": 40, "c.bmp": 70, "d.tiff": 100, "e.webp": 130, "f.jpeg": 160}
    for name, v in colours.items():
        save(tmp_path / name, const(20, 20, (v, v, v)))
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (tmp_path / "notes.txt").write_text("not an image")
    st = ImageStats(source="", requested=0)
    c = cfg(8, 8, mean=(0, 0, 0), std=(1, 1, 1))
    x = torch.cat(list(image_batches(tmp_path, c, 50, 4, stats=st)))
    assert st.used == x.shape[0] == 6 and st.requested == 50
    assert st.source == f"dir {tmp_path.name} (recursive)"  # outside the working folder: by name, never absolute
    assert [p for p, _ in st.skipped] == [str(tmp_path / "corrupt.jpg")] and st.ignored == 1
    assert "UnidentifiedImageError" in st.skipped[0][1] or "Error" in st.skipped[0][1]
    # sorted walk: a/ (its sub-folder b/ sorts before x.JPG), then c, corrupt (skipped), d, e, f
    got = [round(float(x[i].mean()) * 255) for i in range(6)]
    assert all(abs(g - v) <= 2 for g, v in zip(got, [10, 40, 70, 100, 130, 160])), got  # lossy webp/jpeg


def test_paths_single_file_and_stops_at_num_images(tmp_path):
    files = [save(tmp_path / f"{i}.png", const(12, 12, (i * 20,) * 3)) for i in range(5)]
    st = ImageStats(source="", requested=0)
    x = torch.cat(list(image_batches([str(f) for f in files], cfg(8, 8), 3, 2, stats=st)))
    assert x.shape[0] == st.used == 3 and st.source == "5 paths"
    st = ImageStats(source="", requested=0)
    assert next(image_batches(files[0], cfg(8, 8), 4, 2, stats=st)).shape == (1, 3, 8, 8)
    assert st.used == 1 and st.source == f"file {files[0].name}"


def test_bad_sources_raise_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageSourceError, match="no image files in"):
        image_batches(empty, cfg(), 4, 2)
    (empty / "readme.md").write_text("x")
    with pytest.raises(ImageSourceError, match="1 other file"):
        image_batches(empty, cfg(), 4, 2)
    with pytest.raises(ImageSourceError, match="does not exist"):
        image_batches(tmp_path / "nope", cfg(), 4, 2)
    with pytest.raises(ImageSourceError, match="neither|does not exist"):
        image_batches("samples", cfg(), 4, 2)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"garbage")
    st = ImageStats(source="", requested=0)
    with pytest.raises(ImageSourceError, match="no readable image") as e:
        list(image_batches(bad, cfg(), 4, 2, stats=st))
    assert "\n" not in str(e.value) and len(st.skipped) == 1
    with pytest.raises(ImageSourceError):
        image_batches("noise", cfg(), 0, 2)
    with pytest.raises(ImageSourceError):
        image_batches(42, cfg(), 4, 2)
    assert issubclass(ImageSourceError, RFKitError)


def test_tensor_input_is_model_ready_and_checked():
    t = torch.randn(5, 3, 32, 48)
    st = ImageStats(source="", requested=0)
    batches = list(image_batches(t, cfg(), 10, 2, stats=st))
    assert [b.shape[0] for b in batches] == [2, 2, 1] and st.used == 5 and st.source == "tensor (5, 3, 32, 48)"
    assert torch.equal(torch.cat(batches), t)  # no re-normalisation
    batches[0].zero_()
    assert not torch.equal(t[:2], batches[0])  # a copy, free to modify
    assert next(image_batches(t[0], cfg(), 1, 1)).shape == (1, 3, 32, 48)
    with pytest.raises(ImageSourceError, match=r"input_size=\(32, 40\)"):
        image_batches(torch.randn(2, 3, 32, 40), cfg(), 2, 2)
    with pytest.raises(ImageSourceError, match="model input"):
        image_batches(torch.randn(2, 1, 32, 48), cfg(), 2, 2)
    with pytest.raises(ImageSourceError, match="dtype"):
        image_batches(torch.zeros(2, 3, 32, 48, dtype=torch.uint8), cfg(), 2, 2)


def test_noise_is_uniform_seeded_and_independent_of_batch_size():
    c = cfg(16, 16, mean=(0, 0, 0), std=(1, 1, 1))
    a = torch.cat(list(image_batches("noise", c, 7, 3)))
    b = torch.cat(list(image_batches("noise", c, 7, 7)))
    d = torch.cat(list(image_batches("noise", c, 7, 7, seed=1)))
    assert torch.equal(a, b) and not torch.equal(a, d)
    assert a.min() >= 0 and a.max() < 1 and abs(float(a.mean()) - 0.5) < 0.02
    n = next(image_batches("noise", cfg(16, 16, mean=(0.5,) * 3, std=(0.25,) * 3), 1, 1))
    assert n.min() >= -2 and n.max() < 2 and float(n.min()) < -1.9


def test_greyscale_model_gets_one_channel(tmp_path):
    c = cfg(16, 16, c=1, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2))
    x = next(image_batches("sample", c, 3, 3))
    assert x.shape == (3, 1, 16, 16)
    f = save(tmp_path / "g.png", const(20, 20, (127, 127, 127)))
    g = next(image_batches(f, c, 1, 1))
    assert torch.allclose(g, torch.full_like(g, (127 / 255 - 0.5) / 0.2), atol=1e-5)  # mean of the means


def test_streaming_keeps_at_most_one_batch_alive(monkeypatch):
    calls = []
    real = imgs._noise_image
    monkeypatch.setattr(imgs, "_noise_image", lambda i, c, s: (calls.append(i), real(i, c, s))[1])
    c = cfg(64, 64)
    per_image = 3 * 64 * 64 * 4
    gen = image_batches("noise", c, 1000, 10)
    assert calls == []  # nothing read before the first batch is asked for
    refs = []
    tracemalloc.start()
    try:
        while (batch := next(gen, None)) is not None:  # (enumerate would cache the last item)
            assert len(calls) == 10 * (len(refs) + 1)  # lazily: one batch at a time
            refs.append(weakref.ref(batch))
            del batch  # tensors hold no reference cycles: refcounting frees them at once
            assert sum(r() is not None for r in refs) == 0  # the generator keeps none of them
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(refs) == 100
    assert peak < 20 * per_image  # 1000 images would be 49 MB; a batch is 0.5 MB


# ---------------------------------------------------------------------------------------------------------
# images: data config


def test_data_config_for_timm_torchvision_and_plain_modules():
    import timm

    m = timm.create_model("test_resnet", pretrained=False)
    c = data_config_for(m, input_size=(64, 96))
    assert c["input_size"] == (3, 64, 96) and c["crop_pct"] == 0.95 and c["interpolation"] == "bilinear"
    assert data_config_for(m)["input_size"] == (3, 160, 160)
    assert data_config_for(timm.create_model("test_resnet", in_chans=1))["input_size"][0] == 1
    tv, info = load_model("torchvision:resnet18", "random")
    c = data_config_for(tv)
    assert c["input_size"] == (3, 224, 224) and c["crop_pct"] == 224 / 256 and c["interpolation"] == "bilinear"
    c = data_config_for(nn.Conv2d(3, 3, 3), spec="torchvision:efficientnet_b3")
    assert c["input_size"] == (3, 300, 300) and c["crop_pct"] == 300 / 320 and c["interpolation"] == "bicubic"
    plain = data_config_for(nn.Sequential(nn.Conv2d(1, 4, 3)), input_size=40)
    assert plain["input_size"] == (1, 40, 40) and plain["mean"] == (pytest.approx(0.449),)
    with pytest.raises(ImageSourceError):
        data_config_for(m, input_size=(0, 3))


# ---------------------------------------------------------------------------------------------------------
# weights: init traps


def test_detect_traps_resnet_convnext_and_not_grn():
    import timm

    r18 = timm.create_model("resnet18", pretrained=False)
    assert detect_traps(r18) == [f"layer{i}.{j}.bn2.weight" for i in range(1, 5) for j in range(2)]
    cn = timm.create_model("test_convnext", pretrained=False)
    traps = detect_traps(cn)
    assert len(traps) == 9 and all(t.endswith(".gamma") for t in traps)
    assert detect_traps(timm.create_model("test_nfnet")) == [f"stages.{i}.0.conv3.gain" for i in range(4)]
    assert detect_traps(timm.create_model("convnextv2_atto")) == []  # GRN starts at zero = identity
    assert detect_traps(timm.create_model("test_efficientnet")) == []
    assert detect_traps(timm.create_model("test_vit")) == []  # cls_token is tiny but not a gain

    class NormFreeBlock(nn.Module):  # NFNet (dm_nfnet_*) SkipInit: a block gain at zero; not a norm layer
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.skipinit_gain = nn.Parameter(torch.zeros(()))

    assert detect_traps(nn.Sequential(NormFreeBlock())) == ["0.skipinit_gain"]
    zero = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 4))
    nn.init.zeros_(zero[1].weight)
    assert detect_traps(zero) == ["1.weight"]


def test_make_safe_removes_traps_and_is_idempotent():
    import timm

    for name in ("resnet18", "test_convnext", "test_nfnet"):
        m = timm.create_model(name, pretrained=False)
        before = detect_traps(m)
        changed = make_safe(m)
        assert [c.split(":")[0] for c in changed] == before and detect_traps(m) == [] and make_safe(m) == []
    m = timm.create_model("resnet18", pretrained=False)
    make_safe(m)
    assert torch.equal(m.layer1[0].bn2.weight, torch.ones(64))
    zero = nn.Linear(4, 4)
    nn.init.zeros_(zero.weight)
    make_safe(zero)
    assert zero.weight.abs().max() > 0


def input_gradient(model: nn.Module, size: int) -> np.ndarray:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    f = model.forward_features(x)
    h, w = f.shape[-2:]
    torch.relu(f[:, :, h // 2, w // 2]).sum().backward()
    return torch.relu(x.grad).sum(1).mean(0).numpy()


def test_make_safe_widens_the_erf_of_a_random_resnet18():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)
        raw, info = load_model("resnet18", "random", seed=0)
    safe, sinfo = load_model("resnet18", "random-safe", seed=0)
    g0, g1 = input_gradient(raw, 64), input_gradient(safe, 64)
    support0, support1 = int((g0 > 1e-3 * g0.max()).sum()), int((g1 > 1e-3 * g1.max()).sum())
    # raw: only the stem + 1x1 downsample path (about 11 x 11 px); safe: the whole 64 x 64 input
    assert support0 < 200 and support1 > 3000, (support0, support1)
    assert np.isfinite(g1).all()
    ys, xs = np.nonzero(g0)
    assert ys.max() - ys.min() < 16 and xs.max() - xs.min() < 16
    assert len(info.traps) == 8 and sinfo.traps == info.traps and len(sinfo.changes) == 8


# ---------------------------------------------------------------------------------------------------------
# weights: load_model


def test_random_weights_warn_about_traps_and_are_seeded():
    with pytest.warns(WeightsWarning, match="init trap"):
        m1, info = load_model("test_resnet", "random", seed=3)
    assert info.kind == "random" and "WARNING" in info.description and "seed 3" in info.description
    assert len(info.traps) == 4 and info.warnings
    state = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)
        m2, _ = load_model("test_resnet", "random", seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not m1.training and next(m1.parameters()).device.type == "cpu"
    d = info.as_dict()
    assert d["kind"] == "random" and isinstance(d["traps"], list)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, s = load_model("test_resnet", "random-safe")  # no warning: nothing degenerate left
    assert s.kind == "random-safe" and not s.warnings


def test_pretrained_offline_fails_fast_with_one_line(offline):
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as e:
        load_model("test_resnet", "pretrained")
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert "\n" not in msg and "test_resnet" in msg and "checkpoint" in msg and "random-safe" in msg
    with pytest.raises(WeightsUnavailableError, match="torch hub cache"):
        load_model("torchvision:resnet18", "pretrained")
    with pytest.raises(WeightsUnavailableError, match="timm has no pretrained weights for resnetblur18"):
        load_model("resnetblur18", "pretrained")  # timm itself would silently fall back to random init
    assert issubclass(WeightsUnavailableError, RFKitError)


def test_pretrained_with_the_real_network_does_not_hang():
    """On this machine the hub is unreachable: the real probe + hub offline mode must fail in seconds
    (timm alone retries for about 45 s)."""
    hub._probes.clear()
    if hub._unreachable("https://huggingface.co") is None:
        pytest.skip("the Hugging Face hub is reachable here")
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="not in the local Hugging Face cache"):
        load_model("test_resnet.r160_in1k", "pretrained")
    assert time.perf_counter() - t < hub.NETWORK_TIMEOUT + 5


def test_auto_offline_falls_back_to_safe_random_with_warning(offline):
    with pytest.warns(WeightsWarning) as rec:
        m, info = load_model("test_resnet", "auto")
    assert [str(w.message) for w in rec] == list(info.warnings) and len(info.warnings) == 1
    assert info.kind == "random-safe" and info.tag is None
    assert "unavailable" in info.warnings[0] and "random-safe" in info.warnings[0]
    assert len(info.traps) == 4 and detect_traps(m) == []  # the zero-init BN scales were set to 1
    assert isinstance(m, nn.Module) and not any(p.is_meta for p in m.parameters())


def test_auto_offline_builds_the_model_once(offline, monkeypatch):
    """Offline with nothing cached, the pretrained attempt is refused before building: one build, at random init."""
    calls = []
    real = wts.build_model
    monkeypatch.setattr(wts, "build_model", lambda *a, **k: calls.append(k.get("pretrained")) or real(*a, **k))
    with pytest.warns(WeightsWarning):
        _, info = load_model("test_resnet", "auto")
    assert calls == [None] and info.kind == "random-safe"


def test_pretrained_from_the_local_hub_cache_offline(offline, tmp_path, monkeypatch):
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file

    torch.manual_seed(5)
    src = timm.create_model("test_resnet", pretrained=False)
    commit = "0" * 40
    repo = tmp_path / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(snap / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    offline_before = constants.HF_HUB_OFFLINE
    m, info = load_model("test_resnet", "pretrained")
    assert info.kind == "pretrained" and info.tag == "test_resnet.r160_in1k"
    assert info.description == "pretrained (timm test_resnet.r160_in1k)" and not info.traps
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), m.state_dict().values()))
    assert constants.HF_HUB_OFFLINE is offline_before  # offline mode was switched on for the load only


def test_checkpoint_round_trip_prefixes_and_wrappers(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(7)
    src = timm.create_model("test_resnet", pretrained=False)
    sd = src.state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(sd, raw)
    wrapped = tmp_path / "wrapped.pt"
    torch.save(
        {
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "epoch": 3,
            "args": __import__("argparse").Namespace(lr=0.1),
        },
        wrapped,
    )
    ema = tmp_path / "ema.bin"
    torch.save({"model_ema": sd}, ema)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    for path, key in ((raw, None), (wrapped, "state_dict"), (ema, "model_ema"), (st, None)):
        m, info = load_model("test_resnet", str(path))
        assert info.kind == "checkpoint" and info.path == str(path.resolve())
        # people read the file's name (tmp_path lies outside the working folder), never its absolute path
        assert info.description == f"checkpoint {path.name}" + (f" [{key!r}]" if key else "")
        assert all(torch.equal(a, b) for a, b in zip(sd.values(), m.state_dict().values()))
    # into a copy of a given module; the module itself is untouched
    other = timm.create_model("test_resnet", pretrained=False)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    m, info = load_model(other, raw)
    assert m is not other and all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(sd.values(), m.state_dict().values()))


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    import timm

    wrong = tmp_path / "convnext.pth"
    torch.save(timm.create_model("test_convnext").state_dict(), wrong)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \(.*unexpected key\(s\)") as e:
        load_model("test_resnet", str(wrong))
    msg = str(e.value)
    assert "\n" not in msg and "does not fit test_resnet" in msg and "bn1.bias" in msg and "head.fc.bias" in msg
    head = tmp_path / "head10.pth"
    torch.save(timm.create_model("test_resnet", num_classes=10).state_dict(), head)
    with pytest.raises(CheckpointError, match=r"fc.weight: checkpoint \(10, .*\) vs model \(1000, "):
        load_model("test_resnet", str(head))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model("test_resnet", str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model("test_resnet", str(junk))
    objects = tmp_path / "objects.pth"
    torch.save({"state_dict": sd_with_object()}, objects)
    with pytest.raises(CheckpointError, match=r"holds Python objects \(.*Opaque\)"):
        load_model("test_resnet", str(objects))
    empty = tmp_path / "meta.pth"
    torch.save({"epoch": 1, "note": "no weights"}, empty)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_model("test_resnet", str(empty))


class Opaque:
    """A class torch.load(weights_only=True) refuses."""


def sd_with_object():
    return {"w": torch.ones(1), "extra": Opaque()}


def test_module_options():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.train()
    before = [p.clone() for p in net.parameters()]
    m, info = load_model(net)
    assert m is net and net.training and info.kind == "as-given" and info.description == "as given (Sequential)"
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert load_model(net, "as-given")[0] is net
    for option in ("random", "random-safe", "pretrained"):
        with pytest.raises(WeightsError, match="needs a model spec"):
            load_model(net, option)
    nn.init.zeros_(net[1].weight)
    with pytest.warns(WeightsWarning, match="make_safe"):
        _, info = load_model(net)
    assert info.traps == ("1.weight",) and torch.equal(net[1].weight, torch.zeros(4))  # reported, not fixed
    with pytest.raises(WeightsError, match="meta device"):
        load_model(nn.Conv2d(3, 3, 3, device="meta"))
    with pytest.raises(WeightsError, match="unknown weights option"):
        load_model("test_resnet", "pretrianed")
    with pytest.raises(WeightsError, match="as-given"):
        load_model("test_resnet", "as-given")


def test_file_factory_weights(tmp_path):
    f = tmp_path / "net.py"
    f.write_text("import torch.nn as nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    m, info = load_model(f"{f}:build", trust=True)
    assert info.kind == "as-given" and info.description == "as built by net:build"
    with pytest.raises(WeightsUnavailableError, match="factory"):
        load_model(f"{f}:build", "pretrained", trust=True)


def test_weights_info_is_frozen():
    info = WeightsInfo("random", "random init")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.kind = "pretrained"
