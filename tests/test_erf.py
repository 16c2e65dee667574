"""The gradient ERF engine against independent truths: polynomial coefficients of linear conv chains,
analytic windows, OpenERF's own code, and the model left as found."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn

import rfkit
from rfkit.effective.engine import erf
from rfkit.errors import LayerError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def ones_chain(n: int, dilation: int = 1, stride: int = 1, chans: int = 3) -> nn.Sequential:
    """n linear 3x3 convs with unit weights and no bias (the first sums the input channels)."""
    layers = []
    for i in range(n):
        conv = nn.Conv2d(chans if i == 0 else 1, 1, 3, stride=stride, dilation=dilation, bias=False)
        nn.init.ones_(conv.weight)
        layers.append(conv)
    return nn.Sequential(*layers)


def positive_images(n: int, size: int, chans: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand(n, chans, size, size, generator=gen)


def poly_coefficients(n: int) -> np.ndarray:
    c = np.array([1.0])
    for _ in range(n):
        c = np.convolve(c, [1.0, 1.0, 1.0])
    return c


def run(net, size, layers=None, n_images=2, **kw):
    return erf(
        net,
        layers=layers,
        images=positive_images(n_images, size),
        num_images=n_images,
        input_size=size,
        device="cpu",
        **kw,
    )


@pytest.mark.parametrize("n", [1, 3, 6])
def test_linear_chain_is_outer_product_of_polynomial_coefficients(n):
    size = 2 * n + 9  # odd: the centre unit's RF is centred in the image
    res = run(ones_chain(n), size)
    layer = res.layers[0]
    c = poly_coefficients(n)
    want = np.zeros((size, size))
    cy, cx = res.center[layer]
    r = n  # RF half-width
    want[int(cy) - r : int(cy) + r + 1, int(cx) - r : int(cx) + r + 1] = 3 * np.outer(c, c)  # 3 RGB channels
    np.testing.assert_allclose(res.maps[layer], want, rtol=1e-5, atol=1e-6)
    ys, xs = np.nonzero(res.maps[layer])
    (lo_y, hi_y), (lo_x, hi_x) = res.rf(layer).window_of(res.unit[layer])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (lo_y, hi_y, lo_x, hi_x)


def second_moment(m: np.ndarray, axis: int) -> float:
    p = m.sum(axis=1 - axis)
    p = p / p.sum()
    i = np.arange(len(p))
    mean = (p * i).sum()
    return float((p * (i - mean) ** 2).sum())


def test_erf_width_grows_as_sqrt_depth():
    # the variance of (1 + x + x^2)^n's coefficients is 2n/3: the ERF's std grows as sqrt(n), the RF as n
    stds = {}
    for n in (2, 8, 18):
        res = run(ones_chain(n), 2 * n + 9, n_images=1)
        m = res.maps[res.layers[0]]
        assert second_moment(m, 0) == pytest.approx(2 * n / 3, rel=1e-5)
        stds[n] = math.sqrt(second_moment(m, 1))
    assert stds[8] / stds[2] == pytest.approx(2.0, rel=1e-4)
    assert stds[18] / stds[2] == pytest.approx(3.0, rel=1e-4)


def test_dilation_scales_the_erf_and_leaves_the_gridding_pattern():
    n, d = 3, 2
    plain = run(ones_chain(n), 31, n_images=1)
    dilated = run(ones_chain(n, dilation=d), 31, n_images=1)
    mp, md = plain.maps[plain.layers[0]], dilated.maps[dilated.layers[0]]
    cy, cx = (int(v) for v in dilated.center[dilated.layers[0]])
    ys, xs = np.nonzero(md)
    # only pixels an even offset from the centre are reached: the gridding artefact of stacked dilation 2
    assert np.all((ys - cy) % d == 0) and np.all((xs - cx) % d == 0)
    assert ys.max() - ys.min() == d * 2 * n  # support 2*d*n + 1 pixels = the analytic RF
    assert dilated.rf(dilated.layers[0]).size == (2 * d * n + 1,) * 2
    # on the grid it is the undilated ERF, spread out by d
    py, px = (int(v) for v in plain.center[plain.layers[0]])
    np.testing.assert_allclose(
        md[cy - d * n : cy + d * n + 1 : d, cx - d * n : cx + d * n + 1 : d],
        mp[py - n : py + n + 1, px - n : px + n + 1],
        rtol=1e-5,
    )


def test_moving_the_unit_by_one_moves_the_support_by_the_stride():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=(1, 2)), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2))
    for conv in (net[0], net[2]):
        nn.init.uniform_(conv.weight, 0.1, 1.0)
        nn.init.ones_(conv.bias)
    size = 40
    g = rfkit.trace(net, input_size=size)
    stride = g["2"].stride
    assert stride == (2, 4)
    supports = {}
    for unit in [(4, 3), (5, 3), (4, 4)]:
        res = run(net, size, layers=["2"], unit=unit)
        ys, xs = np.nonzero(res.maps["2"])
        supports[unit] = (ys.min(), ys.max(), xs.min(), xs.max())
        assert ((ys.min(), ys.max()), (xs.min(), xs.max())) == g["2"].window_of(unit)
        assert res.center["2"] == g["2"].center_of(unit)
    base = np.array(supports[(4, 3)])
    assert tuple(np.array(supports[(5, 3)]) - base) == (2, 2, 0, 0)  # one unit down: stride_h pixels down
    assert tuple(np.array(supports[(4, 4)]) - base) == (0, 0, 4, 4)  # one unit right: stride_w right


def small_cnn():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
    )
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_batch_size_does_not_change_the_map():
    net = small_cnn().train()  # train mode on purpose: the engine must measure in eval mode
    images = torch.randn(7, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    maps = [
        erf(net, layers=["4", "7"], images=images, num_images=7, input_size=24, device="cpu", batch_size=b).maps
        for b in (1, 3, 7)
    ]
    for other in maps[1:]:
        for layer in ("4", "7"):
            np.testing.assert_allclose(other[layer], maps[0][layer], rtol=1e-5, atol=1e-8)


def test_several_layers_from_one_forward_match_separate_runs():
    net = small_cnn()
    images = torch.randn(4, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    both = erf(net, layers=["4", "7"], images=images, num_images=4, input_size=24, device="cpu")
    for layer in ("4", "7"):
        alone = erf(net, layers=[layer], images=images, num_images=4, input_size=24, device="cpu")
        np.testing.assert_allclose(both.maps[layer], alone.maps[layer], rtol=1e-6)


def test_replknet_method_matches_a_literal_reimplementation():
    # RepLKNet's get_input_grad: relu(out[:, :, h//2, w//2]).sum(), relu(grad).sum((0, 1)), averaged
    net = small_cnn().eval()
    images = torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(7))
    res = erf(net, images=images, num_images=3, input_size=24, device="cpu")
    want = np.zeros((24, 24))
    for img in images:
        x = img[None].clone().requires_grad_(True)
        out = net(x)
        score = torch.relu(out[:, :, out.shape[2] // 2, out.shape[3] // 2]).sum()
        (grad,) = torch.autograd.grad(score, x)
        want += torch.relu(grad).sum((0, 1)).numpy()
    np.testing.assert_allclose(res.maps[res.layers[0]], want / 3, rtol=1e-5, atol=1e-9)


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fail = False

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.fail and not isinstance(x, torch.fx.Proxy):  # fails on real tensors only, not while tracing
            raise RuntimeError("boom")
        return x


def test_model_is_left_as_found_even_when_the_forward_raises():
    net = Exploding().train()
    net.conv.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ok = erf(net, layers=["bn"], images="noise", num_images=2, input_size=12, device="cpu")
    assert ok.num_images == 2
    net.fail = True  # the forward now raises after the hooked layer... so hook a layer after it
    with pytest.raises(RuntimeError, match="boom"):
        erf(net, layers=[""], images="noise", num_images=2, input_size=12, device="cpu")
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert net.training and net.bn.training
    assert net.conv.weight.requires_grad is False and net.conv.bias.requires_grad is True
    assert net.bn.weight.requires_grad is True
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats untouched: eval mode during the run


def test_layer_errors_name_the_problem():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(rfkit.NodeNotFoundError, match="Close matches"):
        erf(net, layers=["01"], images="noise", num_images=1, input_size=16, device="cpu")
    with pytest.raises(LayerError, match="no spatial grid"):
        erf(net, layers=["3"], images="noise", num_images=1, input_size=16, device="cpu")
    with pytest.raises(LayerError, match="outside"):
        erf(net, layers=["0"], unit=(14, 0), images="noise", num_images=1, input_size=16, device="cpu")


def test_non_module_nodes_are_measured_through_the_graph():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 3, 3, padding=1)
            self.b = nn.Conv2d(3, 3, 5, padding=2)

        def forward(self, x):
            return torch.relu(self.a(x) + self.b(x)) * 2

    net = Residual()
    g = rfkit.trace(net, input_size=20)
    add = next(n for n, r in g.records.items() if r.op == "operator.add")
    res = erf(net, layers=[add], images=positive_images(2, 20), num_images=2, input_size=20, device="cpu")
    ys, xs = np.nonzero(res.maps[add])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 12, 8, 12)  # the 5x5 branch around (10, 10)


# --- token layouts: the unit picked is the right token ---------------------------------------------


def patch_support(res, layer):
    ys, xs = np.nonzero(res.maps[layer])
    return (ys.min(), ys.max()), (xs.min(), xs.max())


def test_vit_prefix_tokens_are_skipped():
    model = timm.create_model("test_vit", pretrained=False)
    g = rfkit.trace(model)
    size = g.input_size
    layer = "blocks.0.norm1"  # per-token, after the class token was prepended: the RF is one patch
    assert g[layer].shape[1] == 1 + math.prod(s // 16 for s in size)
    for unit in [(0, 0), (2, 1), (3, 3)]:
        res = erf(model, layers=[layer], unit=unit, images="noise", num_images=1, device="cpu")
        ((y0, y1), (x0, x1)) = patch_support(res, layer)
        p = model.patch_embed.patch_size
        assert (y0, y1, x0, x1) == (
            p[0] * unit[0],
            p[0] * unit[0] + p[0] - 1,
            p[1] * unit[1],
            p[1] * unit[1] + p[1] - 1,
        )


def test_swin_channels_last_and_window_layouts_pick_the_same_patch():
    model = (
        timm.create_model("test_swin", pretrained=False)
        if "test_swin" in timm.list_models("test_*")
        else timm.create_model(
            "swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1), num_heads=(1, 1), embed_dim=16, img_size=56
        )
    )
    g = rfkit.trace(model, input_size=56)
    names = [
        n
        for n, r in g.records.items()
        if r.layout is not None
        and r.info.shape
        and len(r.info.shape) == 3
        and r.info.shape[0] > 2
        and not r.info.is_global
        and r.kind == "call_module"
    ]
    window_node = names[0]  # a (B*windows, tokens, C) node inside the first block: qkv
    norm = "layers.0.blocks.0.norm1"
    assert len(g[norm].shape) == 4 and g[norm].dims == (1, 2)  # channels-last
    for unit in [(0, 0), (5, 3)]:
        res = erf(
            model, layers=[norm, window_node], unit=unit, images="noise", num_images=1, device="cpu", input_size=56
        )
        ps = 4
        want = ((ps * unit[0], ps * unit[0] + ps - 1), (ps * unit[1], ps * unit[1] + ps - 1))
        assert patch_support(res, norm) == want
        assert patch_support(res, window_node) == want


def test_default_layer_is_the_final_feature_map():
    vit = timm.create_model("test_vit", pretrained=False)
    res = erf(vit, images="noise", num_images=1, device="cpu")
    assert res.layers == ["norm"]
    assert res.unit["norm"] == tuple(s // 16 // 2 for s in res.input_size)
    cnn = timm.create_model("test_resnet", pretrained=False)
    g = rfkit.trace(cnn)
    last = cnn.feature_info[-1]["module"]
    res = erf(cnn, images="noise", num_images=1, device="cpu", metrics=False)
    assert g.resolve(res.layers[0]) == g.resolve(last)
    # at 32 px the last stage is a 1x1 map, like the pooled output after it: still the stage is measured
    small = erf(cnn, images="noise", num_images=1, device="cpu", metrics=False, input_size=32)
    assert small.layers == [last] and small.grid[last] == (1, 1) and not small.rf(last).is_global


# --- OpenERF ------------------------------------------------------------------------------------


def _write_images(tmp_path, n=3, size=(40, 52)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    return tmp_path


@pytest.mark.parametrize("name,layer", [("test_resnet", "layer2"), ("test_vit", "forward_features")])
def test_openerf_method_reproduces_openerf(tmp_path, name, layer):
    pytest.importorskip("openerf")
    from openerf.erf import compute_erf

    folder = _write_images(tmp_path)
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    if name == "test_vit":
        # at init the final LayerNorm has unit scale and zero shift, so the channel mean that OpenERF's score
        # takes is 0 for every input and both maps would be all zero: give it a trained-like, uneven scale
        with torch.no_grad():
            model.norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
    theirs = compute_erf(model, image_dir=folder, target_layer=layer, device="cpu", show_progress=False).erf_map
    ours = erf(
        model,
        layers=None if layer == "forward_features" else [layer],
        images=folder,
        num_images=3,
        method="openerf",
        device="cpu",
        weights="as-given",
    )
    m = ours.maps[ours.layers[0]]
    assert np.count_nonzero(m) >= 100  # a real map, not two all-zero ones
    corr = np.corrcoef(m.ravel(), theirs.ravel())[0, 1]
    assert corr > 0.99
    np.testing.assert_allclose(m / m.sum(), theirs, rtol=1e-3, atol=1e-7)


def test_channels_last_threads_and_cpu_autocast_leave_the_map_unchanged():
    net = small_cnn()
    images = torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(11))
    before = torch.get_num_threads()
    plain = erf(net, layers=["7"], images=images, num_images=3, input_size=24, device="cpu")
    fast = erf(
        net,
        layers=["7"],
        images=images,
        num_images=3,
        input_size=24,
        device="cpu",
        channels_last=True,
        threads=1,
        autocast=True,
    )
    np.testing.assert_allclose(fast.maps["7"], plain.maps["7"], rtol=1e-4, atol=1e-9)
    assert torch.get_num_threads() == before
    assert any("autocast" in w and "ignored" in w for w in fast.warnings)
    assert all(p.is_contiguous() for p in net.parameters())  # the caller's weights keep their memory format


def test_small_rf_layers_are_measured_on_a_crop_with_the_same_map():
    net = small_cnn()
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(13))
    kw = dict(layers=["2", "4", "7"], images=images, num_images=6, input_size=64, device="cpu", batch_size=2)
    cropped, whole = erf(net, **kw), erf(net, crop=False, **kw)
    # layer 2 (RF 3), 4 and 7 (after the pool) are small next to 64 px: measured on crops holding their window
    assert set(cropped.crops) == {"2", "4", "7"} and not whole.crops
    for layer in ("2", "4", "7"):
        (y0, y1), (x0, x1) = cropped.crops[layer]
        (wy0, wy1), (wx0, wx1) = cropped.rf(layer).window_of(cropped.unit[layer])
        assert y0 <= wy0 and wy1 < y1 and x0 <= wx0 and wx1 < x1
        np.testing.assert_allclose(cropped.maps[layer], whole.maps[layer], rtol=1e-4, atol=1e-9)


def test_the_crop_is_checked_on_one_image_not_a_batch(monkeypatch):
    import rfkit.effective.engine as engine

    passes = []
    real = engine._Runner.maps

    def maps(self, x, keys, crops=None, per_image=False):
        passes.append((x.shape[0], x.shape[-1], tuple(k for k in keys if not (crops or {}).get(k))))
        return real(self, x, keys, crops, per_image)

    monkeypatch.setattr(engine._Runner, "maps", maps)
    net = small_cnn()
    images = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(13))
    erf(net, layers=["2"], images=images, num_images=8, input_size=64, device="cpu", batch_size=4, metrics=False)
    whole = [p for p in passes if p[1] == 64 and p[2]]  # passes over the whole input measuring layer 2
    assert whole == [(1, 64, ("2",))]  # one image checks the crop; both batches then run on the crop only


def test_a_crop_that_changes_the_map_is_not_used():
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    # TF 'SAME' padding depends on the input size: a crop of another length pads differently
    net = nn.Sequential(Conv2dSame(3, 4, 4, stride=3), nn.ReLU(), Conv2dSame(4, 4, 3, stride=2))
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    kw = dict(layers=["0"], images=images, num_images=4, input_size=64, device="cpu", batch_size=1)
    from rfkit.effective.crop import crop_for

    g = rfkit.trace(net, input_size=64)
    assert crop_for(g["0"], (0, 0), (64, 64)) is not None  # the RF alone says a 3x3 crop would do...
    res, whole = erf(net, unit=(0, 0), **kw), erf(net, unit=(0, 0), crop=False, **kw)
    assert not res.crops  # ...but on a 3-pixel input 'SAME' pads 0 instead of 1 on the left: rejected
    np.testing.assert_allclose(res.maps["0"], whole.maps["0"], rtol=1e-6)
