"""Gradient RF estimation (``rfkit.verification.estimate``) against independent truths: hand-computed conv chains
with different h and w, the ``receptivefield`` package's own code on the same net (it swaps the axes),
enlargement of a too-small input, global layers, periodic upsampling, timm's test models against the
analytic graph, and ``rfkit verify`` judging the estimate."""

from __future__ import annotations

import dataclasses
import importlib
import math
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.errors import NodeNotFoundError, RFKitError
from rfkit.verification.estimate import EstimateResult, RFEstimate, estimate_rf

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def anisotropic() -> nn.Sequential:
    """conv (3, 7) stride (1, 2) dilation (2, 1) padding (2, 3), ReLU, conv (5, 3) stride (3, 1) padding (0, 1).

    By hand (r' = r + (k_eff - 1) S, S' = S s, c' = c + ((k_eff - 1) / 2 - p) S, P = (r - 1) / 2 - c):
    layer 0, h: k_eff 5 -> r 5, S 1, c 0 + (2 - 2) = 0, P 2;  w: k_eff 7 -> r 7, S 2, c 0 + (3 - 3) = 0, P 3.
    layer 2, h: r 5 + 4 * 1 = 9, S 3, c 0 + (2 - 0) * 1 = 2, P 2;  w: r 7 + 2 * 2 = 11, S 2, c 0 + 0 = 0, P 5.
    """
    return nn.Sequential(
        nn.Conv2d(3, 4, (3, 7), stride=(1, 2), dilation=(2, 1), padding=(2, 3)),
        nn.ReLU(),
        nn.Conv2d(4, 4, (5, 3), stride=(3, 1), padding=(0, 1)),
    )


def test_anisotropic_chain_matches_hand_computation():
    est = estimate_rf(anisotropic(), layers=["0", "2"], input_size=(48, 64))
    first, second = est
    assert (first.size, first.stride, first.center, first.padding) == ((5, 7), (1, 2), (0, 0), (2, 3))
    assert (second.size, second.stride, second.center, second.padding) == ((9, 11), (3, 2), (2, 0), (2, 5))
    assert not first.clipped and not first.is_global and first.shift_invariant
    assert first.input_size == second.input_size == (48, 64)  # large enough: not enlarged
    assert any(n.startswith("h: the support has holes") for n in first.notes)  # dilation 2 along h only
    assert not any("holes" in n for n in second.notes)
    # the measured unit's support is its window: centre + unit * stride -/+ (size - 1) / 2
    for e in est:
        for (lo, hi), c, u, s, r in zip(e.support, e.center, e.unit, e.stride, e.size):
            assert (lo, hi) == (c + u * s - (r - 1) / 2, c + u * s + (r - 1) / 2)


def _receptivefield():
    try:
        return importlib.import_module("receptivefield.pytorch"), importlib.import_module("receptivefield.types")
    except ImportError:
        pass
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "receptivefield==0.4.0"],
            check=True,
            timeout=90,
            capture_output=True,
        )
        importlib.invalidate_caches()
        return importlib.import_module("receptivefield.pytorch"), importlib.import_module("receptivefield.types")
    except Exception as e:  # noqa: BLE001 - offline, no matplotlib...: nothing to compare with
        pytest.skip(f"the receptivefield package cannot be installed or imported: {type(e).__name__}: {e}")


class _WithFeatureMaps(nn.Module):
    """The anisotropic net as the receptivefield package wants it: ``feature_maps`` lists the conv outputs.
    Constant positive weights, as its own examples use (it feeds a zero image)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = anisotropic()
        for p in self.net.parameters():
            nn.init.constant_(p, 0.1)

    def forward(self, x):
        self.feature_maps = []
        for m in self.net:
            x = m(x)
            if isinstance(m, nn.Conv2d):
                self.feature_maps.append(x)
        return x


def test_receptivefield_package_swaps_height_and_width():
    """receptivefield 0.4.0 on a 48 × 64 (h × w) input returns, for the second conv,
    size Size(w=9, h=11), stride (x=3, y=2), offset (x=2.5, y=0.5): the true RF is 9 high and 11 wide with
    strides 3 (h) and 2 (w), so each of its (w, h) / (x, y) pairs holds (h, w). (Its offset is the centre
    in pixel-edge coordinates, +0.5, from the clipped corner unit: swapped too.)"""
    rf_torch, rf_types = _receptivefield()
    theirs = rf_torch.PytorchReceptiveField(_WithFeatureMaps).compute(rf_types.ImageShape(w=64, h=48, c=3))
    ours = estimate_rf(anisotropic(), layers=["0", "2"], input_size=(48, 64))
    # feature map sizes are right: (w, h) = (32, 48) and (32, 15)
    assert [(d.size.h, d.size.w) for d in theirs] == [(48, 32), (15, 32)]
    d = theirs[1].rf
    ours_hw = ours[1]
    assert ours_hw.size == (9, 11) and ours_hw.stride == (3, 2) and ours_hw.center == (2, 0)  # hand-computed
    their_size_hw = (int(d.size.h), int(d.size.w))
    their_stride_hw = (float(d.stride[1]), float(d.stride[0]))  # stride is (x, y) = (w, h) by its own types
    assert their_size_hw != ours_hw.size  # it is wrong...
    assert their_size_hw == ours_hw.size[::-1]  # ...because it swaps the axes
    assert their_stride_hw == tuple(float(s) for s in ours_hw.stride[::-1])
    assert (float(d.offset[1]), float(d.offset[0])) == tuple(c + 0.5 for c in ours_hw.center[::-1])
    # first conv: strides swapped as well; its size counts rows with a gradient, so dilation holes shrink it
    d0 = theirs[0].rf
    assert (float(d0.stride[1]), float(d0.stride[0])) == (2.0, 1.0) and ours[0].stride == (1, 2)
    assert (int(d0.size.h), int(d0.size.w)) == (7, 3) and ours[0].size == (5, 7)


def test_even_kernels_give_half_pixel_centres_and_asymmetric_padding():
    """ZeroPad2d (left 2, right 0, top 1, bottom 0), conv (2, 4) stride 2 padding (0, 1), conv (2, 3)
    padding (0, 1). By hand: after the pad c = (-1, -2); conv 1: r (2, 4), S 2, c (-1 + 0.5, -2 + 1.5 - 1) =
    (-0.5, -1.5); conv 2: r (2 + 2, 4 + 2 * 2) = (4, 8), c (-0.5 + 0.5 * 2, -1.5 + 0) = (0.5, -1.5),
    P = (1.5 - 0.5, 3.5 + 1.5) = (1, 5)."""
    net = nn.Sequential(
        nn.ZeroPad2d((2, 0, 1, 0)),
        nn.Conv2d(3, 4, (2, 4), stride=2, padding=(0, 1)),
        nn.Conv2d(4, 4, (2, 3), padding=(0, 1)),
    )
    est = estimate_rf(net, layers=["1", "2"], input_size=(24, 40))
    assert (est[0].size, est[0].stride, est[0].center, est[0].padding) == ((2, 4), (2, 2), (-0.5, -1.5), (1, 3))
    assert (est[1].size, est[1].stride, est[1].center, est[1].padding) == ((4, 8), (2, 2), (0.5, -1.5), (1, 5))
    g = rfkit.trace(net, input_size=(24, 40))
    assert (g["2"].size, g["2"].center, g["2"].padding) == (est[1].size, est[1].center, est[1].padding)


def stride2_chain(n: int = 4) -> nn.Sequential:
    """n convs 3x3 stride 2 padding 1: r = 2^(n+1) - 1, S = 2^n, c = 0 (31, 16, 0 for n = 4)."""
    return nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, 2, 1) for i in range(n)])


def test_too_small_input_is_enlarged_per_axis():
    # h = 64 already has units clear of the border (grid 4: units 1 and 2); w = 16 has one unit
    est = estimate_rf(stride2_chain(), layers="3", input_size=(64, 16))[0]
    assert (est.size, est.stride, est.center, est.padding) == ((31, 31), (16, 16), (0, 0), (15, 15))
    assert est.input_size == (64, 64) and not est.clipped
    enlarged = [n for n in est.notes if n.startswith("input enlarged")]
    assert enlarged[0].startswith("input enlarged from 64×16 to 64×32") and "to 64×64" in enlarged[1]
    # not allowed to grow enough: clipped, and the size is a lower bound
    capped = estimate_rf(stride2_chain(), layers="3", input_size=16, max_size=32)[0]
    assert capped.clipped and capped.input_size == (32, 32)
    assert all(s <= 31 for s in capped.size) and any("lower bound" in n for n in capped.notes)
    assert all(math.isnan(s) for s in capped.stride)  # no two units clear of the border


def test_a_model_that_takes_one_size_only_says_why_it_was_not_enlarged():
    net = nn.Sequential(*stride2_chain(), nn.Flatten(), nn.Linear(4, 2))  # the linear takes 16 × 16 only
    est = estimate_rf(net, layers="3", input_size=16)[0]
    assert est.input_size == (16, 16) and est.is_global  # its one unit sees everything: global as far as known
    assert any(n.startswith("could not enlarge the input to 32×32") for n in est.notes)
    assert any("the largest input the model took" in n for n in est.notes)


class SE(nn.Module):
    """conv, then squeeze-and-excitation gating: every unit sees the whole input through the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class PoolBroadcast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.conv(x)
        return x + self.pool(x)


@pytest.mark.parametrize("net", [SE(), PoolBroadcast()], ids=["se", "pool+broadcast"])
def test_global_layers_are_flagged(net):
    est = estimate_rf(net, layers=["conv", ""], input_size=16, max_size=64)
    local, out = est["conv"], est[""]
    assert not local.is_global and local.size == (3, 3) and local.input_size == (16, 16)
    assert out.is_global and out.size == (math.inf, math.inf) and all(math.isnan(s) for s in out.stride)
    assert out.input_size == (64, 64)  # kept seeing everything while the input was doubled to the cap
    assert any("global" in n for n in out.notes) and not out.clipped
    assert rfkit.trace(net, input_size=16)[""].is_global  # the analytic graph agrees


def test_a_global_pool_is_global_without_growing_to_the_cap():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))
    est = estimate_rf(net, layers="1", input_size=16)[0]
    assert est.is_global and est.grid == (1, 1)
    assert est.input_size == (32, 32)  # one doubling: its one unit did not become more


def test_upsampling_is_periodic_with_a_fractional_stride():
    """conv 3x3 stride 2, nearest upsampling x2: units 2k and 2k + 1 see the same window, 2 pixels on from
    the previous pair: stride 1, period 2 (as the analytic graph's windows say)."""
    net = nn.Sequential(nn.Conv2d(3, 3, 3, 2), nn.Upsample(scale_factor=2))
    est = estimate_rf(net, layers="1", input_size=32)[0]
    info = rfkit.trace(net, input_size=32)["1"]
    assert info.period == (2, 2)
    assert not est.shift_invariant and est.stride == info.stride == (1, 1) and est.size == (3, 3)
    lo, hi = est.support[0]
    assert (lo, hi) == info.window_of(est.unit)[0]
    assert any("repeats every 2 units" in n for n in est.notes)
    # a transposed conv 4 stride 2 after a stride-2 conv: units 0, 1 see -3..1, -1..3, then again 2 on
    net = nn.Sequential(nn.Conv2d(3, 3, 3, 2, 1), nn.ConvTranspose2d(3, 3, 4, 2, 1))
    est = estimate_rf(net, layers="1", input_size=32)[0]
    info = rfkit.trace(net, input_size=32)["1"]
    assert info.period == (2, 2) and not est.shift_invariant
    assert (est.size, est.stride, est.center) == (info.size, info.stride, info.center) == ((5, 5), (1, 1), (-1, -1))
    assert est.support == info.window_of(est.unit)


class WindowMean(nn.Module):
    """Every unit takes the mean over its 4 × 4 window (a stand-in for Swin's window attention)."""

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 4, 4, w // 4, 4).mean((3, 5), keepdim=True).expand(b, c, h // 4, 4, w // 4, 4)
        return x.reshape(b, c, h, w)


def test_aligned_windows_repeat_every_window():
    """conv 3x3 pad 1, then 4-unit windows: units 4k..4k+3 see pixels 4k-1..4k+4 (6 pixels), so the
    pattern repeats every 4 units, 4 pixels on: stride 1, centre of unit 0 at 1.5."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), WindowMean())
    est = estimate_rf(net, layers="1", input_size=32)[0]
    assert (est.size, est.stride, est.center, est.shift_invariant) == ((6, 6), (1, 1), (1.5, 1.5), False)
    assert est.support == ((15, 20), (15, 20)) and est.unit == (16, 16)
    assert any("repeats every 4 units" in n for n in est.notes)
    info = rfkit.trace(net, input_size=32)["1"]
    assert (info.size, info.stride, info.center, info.period) == (est.size, est.stride, est.center, (4, 4))


TIMM = [("test_resnet", 64, 1024, 5), ("test_convnext", 64, 256, 2), ("test_efficientnet", 64, 128, 3)]


@pytest.mark.parametrize("model, size, cap, n_local", TIMM, ids=[t[0] for t in TIMM])
def test_timm_stage_outputs_match_the_analytic_graph(model, size, cap, n_local):
    est = estimate_rf(model, input_size=size, max_size=cap)
    compared = 0
    for e in est:
        info = rfkit.trace(model, input_size=e.input_size)[e.layer]
        if info.is_global:
            assert e.is_global, e
            continue
        assert info.shift_invariant and not info.approximate
        if e.clipped or e.is_global:  # the RF outgrew the cap: only allowed when it is that large
            assert any(r * 2 > n for r, n in zip(info.size, e.input_size)), e
            continue
        assert (e.size, e.stride, e.center, e.padding) == (info.size, info.stride, info.center, info.padding), e
        compared += 1
    assert compared == n_local


def test_timm_model_by_module_and_node_name():
    g = rfkit.trace("test_resnet", input_size=64)
    node = g.resolve("layer1")
    by_module, by_node = estimate_rf("test_resnet", layers=["layer1", node], input_size=64)
    assert by_module.node == by_node.node == node
    assert by_module.size == by_node.size == g["layer1"].size


class Dynamic(nn.Module):
    """Shape-dependent control flow: torch.fx cannot trace it, make_fx records it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 2, 1)
        self.conv2 = nn.Conv2d(4, 4, (3, 5), padding=(1, 2))

    def forward(self, x):
        x = self.conv1(x)
        if x.shape[-1] > 2:
            x = self.conv2(x)
        return x


def test_model_that_only_make_fx_can_record():
    """conv 3 stride 2 pad 1 then conv (3, 5) pad (1, 2): r (3 + 2 * 2, 3 + 4 * 2) = (7, 11), S 2, c 0."""
    assert rfkit.trace(Dynamic(), input_size=16).method == "make_fx"
    est = estimate_rf(Dynamic(), layers=["conv2"], input_size=(16, 8))[0]
    assert (est.size, est.stride, est.center, est.padding) == ((7, 11), (2, 2), (0, 0), (3, 5))
    assert est.input_size == (16, 16)  # w: RF 11 needs more room than 8 px; enlarged and re-recorded
    assert any(n.startswith("input enlarged from 16×8 to 16×16") for n in est.notes)
    report = rfkit.verify(Dynamic(), input_size=16)  # verify's own make_fx path measures gradients too
    assert report.ok and [e.status for e in report.estimates] == ["pass", "pass"]
    with pytest.raises(RFKitError, match="only module outputs"):
        estimate_rf(Dynamic(), layers=[rfkit.trace(Dynamic(), input_size=16).resolve("conv1")], input_size=16)


def test_unknown_layer_and_bad_model():
    with pytest.raises(NodeNotFoundError):
        estimate_rf(anisotropic(), layers=["nope"], input_size=16)
    with pytest.raises(TypeError):
        estimate_rf(42)


def test_model_is_left_as_found():
    net = anisotropic().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    estimate_rf(net, layers="2", input_size=32)
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).dtype == torch.float32


def test_results_are_frozen_and_tabular():
    est = estimate_rf(anisotropic(), input_size=(48, 64))
    assert isinstance(est, EstimateResult) and all(isinstance(e, RFEstimate) for e in est)
    assert [e.layer for e in est] == ["0", "1", "2"]  # the top-level children, as verify picks them
    assert est.layers == ["0", "1", "2"] and est["2"] is est[2] is est[-1] and len(est) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.notes = ()
    with pytest.raises(KeyError, match="no estimate of layer 'nope'"):
        est["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        est[0].size = (1, 1)
    df = est.to_frame()
    assert list(df["layer"]) == ["0", "1", "2"]
    assert df.loc[2, ["size_h", "size_w", "stride_h", "stride_w", "center_h", "center_w"]].tolist() == [
        9,
        11,
        3,
        2,
        2,
        0,
    ]
    assert est["2"].as_dict()["padding"] == (2, 5)


# --- rfkit verify ----------------------------------------------------------------------------------------
def test_verify_reports_estimates_next_to_analytic():
    report = rfkit.verify(anisotropic(), input_size=(48, 64))
    assert report.ok
    rows = {e.layer: e for e in report.estimates}
    assert rows["2"].size == rows["2"].analytic_size == (9, 11) and rows["2"].status == "pass"
    assert rows["2"].stride == (3, 2) and rows["2"].center == (2, 0)
    assert not rfkit.verify(anisotropic(), input_size=(48, 64), estimate=False).estimates


def test_verify_fails_when_the_estimate_disagrees(monkeypatch):
    """With a wrong conv rule the estimate (size 5 from gradients) disagrees with the analytic 1."""
    from rfkit.graph.handlers import neutral
    from rfkit.graph.registry import DEFAULT_REGISTRY

    monkeypatch.setitem(DEFAULT_REGISTRY.modules, nn.Conv2d, neutral.neutral)  # pretend convs see one pixel
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    report = rfkit.verify(net, input_size=16, layers=["2"])
    assert not report.ok
    bad = report.estimate_failures[0]
    assert bad.analytic_size == (1, 1) and bad.size == (5, 5) and "size" in bad.reason


def test_verify_does_not_judge_global_layers():
    report = rfkit.verify(SE(), input_size=16, layers=["conv", ""])
    status = {e.layer: (e.status, e.reason) for e in report.estimates}
    assert status["conv"] == ("pass", "") and status["<output>"] == ("not judged", "global")
    assert report.ok


def test_cli_verify_shows_the_estimate_table():
    from rfkit_cli.app import app, normalise_argv

    runner = CliRunner()
    r = runner.invoke(app, normalise_argv(["verify", "test_resnet", "--input-size", "64", "-l", "layer1,layer2"]))
    assert r.exit_code == 0, r.output
    assert "gradient estimate" in r.output and "2/2 judged estimates agree" in r.output
    r = runner.invoke(
        app, normalise_argv(["verify", "test_resnet", "--input-size", "64", "-l", "layer1", "--no-estimate"])
    )
    assert r.exit_code == 0 and "gradient estimate" not in r.output
