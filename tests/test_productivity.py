"""Unproductive-layer analysis, input resolution range, hand-built graphs, GraphViz export and the CLI.

Expected values are derived by hand in the comments (RF recurrence r' = r + (k_eff - 1) * S on the
minimum-over-paths RF), never captured from rfkit's own output.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib.util
import math
import re
import shutil
import warnings

import pandas as pd
import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.errors import (
    ArchitectureError,
    GraphvizNotFoundError,
    InputSizeError,
    InputTooSmallError,
    NodeNotFoundError,
    RenderError,
)
from rfkit.graph.handbuilt import GraphBuilder, graph_from_layers
from rfkit.graph.productivity import Status, input_resolution_range, productivity
from rfkit.report import dot as dot_module
from rfkit.report.dot import STATUS_COLOURS, render, to_dot
from rfkit_cli.app import app, main, normalise_argv

P, PC, C, U, G = (Status.PRODUCTIVE, Status.PARTIALLY_CRITICAL, Status.CRITICAL, Status.UNPRODUCTIVE, Status.GLOBAL)
HAS_DOT = shutil.which("dot") is not None
runner = CliRunner()


def statuses(report, names):
    return [report[n].status for n in names]


def chain(size, kernels, dilations=None):
    """Hand-built chain of stride-1 'same' convolutions named c1, c2, ..."""
    b = GraphBuilder(size)
    for i, k in enumerate(kernels, 1):
        d = dilations[i - 1] if dilations else 1
        pad = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k if isinstance(k, tuple) else (k, k), (d, d)))
        b.conv(f"c{i}", k, padding=pad, dilation=d)
    return b.build()


def resnet_builder(
    size, stem=(7, 2, 3), maxpool=True, blocks=(2, 2, 2, 2), strides=(1, 2, 2, 2), width=64, dilations=None
):
    """A torchvision-style ResNet with BasicBlocks, layer by layer, named like torchvision's modules."""
    b = GraphBuilder(size, name="resnet-like")
    b.conv("conv1", stem[0], stem[1], stem[2], channels=width)
    b.pointwise("bn1", "bn")
    b.pointwise("relu", "relu")
    if maxpool:
        b.pool("maxpool", 3, 2, 1)
    prev, ch = b.last, width
    for si, (n, st) in enumerate(zip(blocks, strides)):
        out_ch = width * 2**si
        d = dilations[si] if dilations else 1
        for bi in range(n):
            p = f"layer{si + 1}.{bi}"
            s = st if bi == 0 else 1
            b.conv(f"{p}.conv1", 3, s, d, d, input=prev, channels=out_ch)
            b.pointwise(f"{p}.bn1", "bn")
            b.pointwise(f"{p}.relu1", "relu")
            b.conv(f"{p}.conv2", 3, 1, d, d, channels=out_ch)
            b.pointwise(f"{p}.bn2", "bn")
            short = prev
            if s != 1 or out_ch != ch:
                b.conv(f"{p}.downsample.0", 1, s, 0, input=prev, channels=out_ch)
                short = b.pointwise(f"{p}.downsample.1", "bn")
            b.add(f"{p}.add", [f"{p}.bn2", short])
            prev = b.pointwise(p, "relu")
            ch = out_ch
    b.global_pool("avgpool", input=prev)
    b.linear("fc", 1000)
    return b.build()


# --- statuses on hand-built nets ---------------------------------------------------------------------------
def test_chain_reaches_productive_critical_unproductive():
    # 3x3 convs at 8x8: RF 3, 5, 7, 9, 11; c4 is the first whose RF passes 8 (its input has 7 < 8): critical;
    # c5 receives 9 >= 8: unproductive
    g = chain(8, [3, 3, 3, 3, 3])
    r = productivity(g, 8)
    assert statuses(r, ["c1", "c2", "c3", "c4", "c5"]) == [P, P, P, C, U]
    assert r["c4"].rf_in == (7, 7) and r["c4"].rf_out == (9, 9)
    assert r["c5"].covered == (True, True) and r["c4"].exceeds == (True, True)
    # at 9x9, c4's RF (9) does not pass the input: productive; c5 receives 9 >= 9: unproductive
    assert statuses(productivity(g, 9), ["c4", "c5"]) == [P, U]
    # at 10x10 c5 receives 9 < 10, its RF 11 > 10: critical
    assert statuses(productivity(g, 10), ["c4", "c5"]) == [P, C]


def test_partially_critical_on_a_non_square_input():
    # input 8 (h) x 32 (w): RF 3, 5, 7, 9, 11 on both axes; c4's RF passes 8 on h only
    g = chain((8, 32), [3, 3, 3, 3, 3])
    r = productivity(g)
    assert r.input_size == (8, 32)
    assert statuses(r, ["c3", "c4", "c5"]) == [P, PC, PC]
    assert r["c4"].exceeds == (True, False)
    # c5 receives 9 >= 8 on h but 9 < 32 on w: not every axis is covered, so it still adds context on w
    assert r["c5"].covered == (True, False)


def test_partially_critical_from_a_non_square_kernel():
    # 1x9 then 1x9 convs on a square 16x16 input: RF (1, 9) then (1, 17): the second passes 16 on w only;
    # a third receives (1, 17): covered on w only, not unproductive
    g = chain(16, [(1, 9), (1, 9), (1, 3)])
    r = productivity(g, 16)
    assert r["c2"].rf_out == (1, 17)
    assert statuses(r, ["c1", "c2", "c3"]) == [P, PC, PC]


def test_global_layers_are_reported_as_global():
    b = GraphBuilder(32)
    b.conv("conv", 3, padding=1)
    b.attention("attn")
    b.pointwise("mlp", "linear")
    b.global_pool("pool", input="conv")
    b.linear("fc", 10)
    r = productivity(b.build(), 32)
    assert statuses(r, ["conv", "attn", "pool", "fc"]) == [P, G, G, G]
    # after the attention the min over paths is still the conv's 3 pixels: the MLP is analysed as a layer
    assert r["mlp"].status is P and r["mlp"].rf_in == (3, 3)
    # at 2x2, everything local is unproductive, but global layers stay global
    r2 = productivity(b.build(), 2)
    assert statuses(r2, ["mlp", "attn", "pool", "fc"]) == [U, G, G, G]


def test_squeeze_excitation_gate_does_not_make_layers_unproductive():
    # conv (RF 3) -> SE gate (global) -> x * gate -> conv: the product's min over paths is the conv's 3 px
    b = GraphBuilder(16)
    b.conv("conv", 3, padding=1)
    b.global_pool("se.pool")
    b.pointwise("se.fc1", "conv1x1")
    b.pointwise("se.gate", "sigmoid")
    b.mul("se", ["conv", "se.gate"])
    b.conv("next", 3, padding=1)
    g = b.build()
    assert g["se"].is_global and g["se"].local_size == (3, 3) and g["se"].size_min == (3, 3)
    r = productivity(g, 16)
    assert statuses(r, ["se.pool", "se.fc1", "se.gate", "next"]) == [G, G, G, P]
    assert r["next"].rf_in == (3, 3) and r["next"].rf_out == (5, 5)


def test_residual_shortcut_keeps_the_min_over_paths_small():
    # stem 5x5 (RF 5) -> a: 3x3 (in 5, RF 7) -> b: 3x3 (in 7, RF 9) -> add(b, stem): min 5, max 9 -> c: 3x3
    b = GraphBuilder(8)
    b.conv("stem", 5, padding=2)
    b.conv("a", 3, padding=1)
    b.conv("b", 3, padding=1)
    b.add("add", ["b", "stem"])
    b.conv("c", 3, padding=1)
    g = b.build()
    r = productivity(g, 8)
    assert statuses(r, ["a", "b", "c"]) == [P, C, P]
    assert r["c"].rf_in == (5, 5)
    # with the max over (local) paths, c receives 9 >= 8: unproductive
    assert productivity(g, 8, path="max")["c"].status is U


def test_unknown_rf_is_reported_not_guessed():
    class Cum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 3)

    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3), Cum(), nn.Conv2d(3, 3, 3)), input_size=16)
    r = productivity(g, 16)
    assert statuses(r, ["0", "2"]) == [P, Status.UNKNOWN]
    assert input_resolution_range(g).skipped


def test_report_counts_lookup_and_frame():
    g = chain(8, [3, 3, 3, 3, 3])
    r = productivity(g, 8)
    counts = r.counts()
    assert counts[P] == 3 and counts[C] == 1 and counts[U] == 1 and counts[G] == 0 and len(counts) == 6
    assert [e.node for e in r.select("unproductive")] == ["c5"]
    assert "3 productive" in r.summary() and "1 unproductive" in r.summary()
    df = r.to_frame()
    assert list(df.status) == ["productive"] * 3 + ["critical", "unproductive"]
    assert list(df.rf_in_h) == [1, 3, 5, 7, 9]
    with pytest.raises(NodeNotFoundError):
        r["nope"]
    with pytest.raises(InputSizeError, match="3 axes"):
        productivity(g, (8, 8, 8))
    with pytest.raises(InputTooSmallError):
        productivity(g, 0)
    with pytest.raises(ValueError, match="path"):
        productivity(g, 8, path="median")


# --- dilation: where rfa-toolbox is wrong -------------------------------------------------------------------
def test_dilation_grows_the_rf():
    # 3x3 convs with dilation 1, 2, 4, 8: RF 3, 7, 15, 31 (k_eff = d*2 + 1); then a plain 3x3: 33
    g = chain(16, [3, 3, 3, 3, 3], dilations=[1, 2, 4, 8, 1])
    assert [g[f"c{i}"].size for i in range(1, 6)] == [(3, 3), (7, 7), (15, 15), (31, 31), (33, 33)]
    r = productivity(g, 16)
    # c4 receives 15 < 16 and reaches 31 > 16: critical; c5 receives 31 >= 16: unproductive.
    # Ignoring dilation (rfa-toolbox) gives RF 3, 5, 7, 9, 11: all productive at 16.
    assert statuses(r, ["c1", "c2", "c3", "c4", "c5"]) == [P, P, P, C, U]


def _rfa():
    """rfa-toolbox's graph builder; its import needs the ``collections.Sequence`` aliases of Python < 3.10."""
    if importlib.util.find_spec("rfa_toolbox") is None:
        pytest.skip("rfa-toolbox is not installed")
    for name in ("Sequence", "Mapping", "MutableMapping", "Iterable", "Callable", "Set", "MutableSet"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rfa_toolbox.encodings.pytorch.ingest_architecture import create_graph_from_model
    return create_graph_from_model


def test_rfa_toolbox_ignores_dilation_and_upsampling():
    create_graph = _rfa()
    dilated = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in (1, 2, 4, 8)]).eval()
    graph = create_graph(dilated, input_res=(1, 1, 16, 16))
    convs = [n for n in graph.all_layers if n.layer_info.name.startswith("Conv")]
    # rfa-toolbox: 3, 5, 7, 9 (dilation ignored); exact: 3, 7, 15, 31
    assert [int(n.receptive_field_min[0]) for n in convs] == [3, 5, 7, 9]
    assert [rfkit.trace(dilated, input_size=16)[str(i)].size[0] for i in range(4)] == [3, 7, 15, 31]
    up = nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1), nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3, 1, 1)).eval()
    graph = create_graph(up, input_res=(1, 1, 16, 16))
    convs = [n for n in graph.all_layers if n.layer_info.name.startswith("Conv")]
    # rfa-toolbox keeps the stride-2 multiplicator after upsampling: 3 + 2*2 = 7. Exactly: the upsampled
    # units are 1 pixel apart, a 3x3 window spans 2 source units: 3 + 2 = 5
    assert int(convs[-1].receptive_field_min[0]) == 7
    assert rfkit.trace(up, input_size=16)["2"].size == (5, 5)


# --- input resolution range -------------------------------------------------------------------------------
def test_range_of_a_chain_with_a_non_square_kernel():
    # conv (3, 5) then conv (3, 5): RF (3, 5) then (5, 9); the second receives (3, 5): min (4, 6), max (5, 9)
    g = chain(32, [(3, 5), (3, 5)])
    lo, hi = input_resolution_range(g)
    assert lo == (4, 6) and hi == (5, 9)
    r = input_resolution_range(g)
    assert r.min_nodes == ("c2", "c2") and r.feasible
    # just below min on every axis the second conv is unproductive; at min it is not
    assert productivity(g, (3, 5))["c2"].status is U
    assert productivity(g, (4, 6))["c2"].status is not U


def test_range_ignores_pooling_unless_asked_and_handles_global_paths():
    # conv 3 (RF 3) -> max pool 2/2 (in 3, RF 4, S2) -> conv 3 (in 4, RF 8) -> pool 2/2 (in 8, RF 10)
    b = GraphBuilder(32)
    b.conv("c1", 3, padding=1)
    b.pool("p1", 2)
    b.conv("c2", 3, padding=1)
    b.pool("p2", 2)
    g = b.build()
    assert g["p2"].size == (10, 10)
    assert input_resolution_range(g).min == (5, 5)  # set by c2 (in 4)
    assert input_resolution_range(g, weighted_only=False).min == (9, 9)  # p2 receives 8
    assert input_resolution_range(g).max == (10, 10)
    # an SE gate makes the max unbounded unless global paths are ignored
    b.global_pool("se.pool", input="c2")
    b.mul("se", ["c2", "se.pool"])
    g = b.build()
    assert input_resolution_range(g).max == (math.inf, math.inf)
    assert input_resolution_range(g, ignore_global=True).max == (10, 10)


def test_range_of_resnet18_and_resnet50():
    # ResNet-18: the shortcut path keeps 11 (stem 7 + max pool 2*2); layer4.1.conv1 adds 2*32: 75; so
    # layer4.1.conv2 receives 75: min 76. The largest RF is layer4's 435.
    g = rfkit.trace("torchvision:resnet18", input_size=224)
    r = input_resolution_range(g)
    assert (r.min, r.max) == ((76, 76), (435, 435))
    assert g.records[r.min_nodes[0]].module == "layer4.1.conv2"
    # ResNet-50: layer4.x.conv2 (3x3 at stride 32) receives 11: 75; conv3 (1x1) receives 75: min 76
    # (rfa-toolbox's README says 75: its rule makes a layer unproductive at R <= input RF). Max 427.
    g = rfkit.trace("torchvision:resnet50", input_size=224)
    assert tuple(input_resolution_range(g)) == ((76, 76), (427, 427))


# --- the RFA worked example: ResNet-18 at 16x16 and two redesigns -------------------------------------------
def _resnet18_16():
    return rfkit.trace("torchvision:resnet18", input_size=16)


def test_rfa_worked_example_resnet18_at_16():
    # stem 7/2: 7 < 16 productive; max pool: 11 productive. Each block's conv1 receives the shortcut's 11
    # and adds 2*S >= 8: critical; conv2 receives >= 19 >= 16: unproductive; the 1x1 downsamples keep 11
    r = productivity(_resnet18_16(), 16)
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert statuses(r, ["conv1", "maxpool"]) == [P, P]
    assert all(r[f"{b}.conv1"].status is C for b in blocks)
    assert all(r[f"{b}.conv2"].status is U for b in blocks)
    assert all(r[f"layer{s}.0.downsample.0"].status is P for s in (2, 3, 4))
    assert statuses(r, ["avgpool", "fc"]) == [G, G]
    assert r.counts() == {U: 8, C: 8, PC: 0, P: 5, G: 2, Status.UNKNOWN: 0}


def _efficient_redesign():
    # README redesign 1: 3x3 stem (stride 2 kept), the first three blocks, then the head
    from torchvision.models import resnet18

    m = resnet18()
    m.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
    m.layer2 = m.layer2[:1]
    m.layer3 = nn.Identity()
    m.layer4 = nn.Identity()
    m.fc = nn.Linear(128, 1000)
    return m


def _performance_redesign():
    # README redesign 2: 3x3 stride-1 stem, no max pool, three stages (2, 3, 3 blocks; 2 downsamplings)
    from torchvision.models.resnet import BasicBlock, ResNet

    m = ResNet(BasicBlock, [2, 3, 3, 1])
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.layer4 = nn.Identity()
    m.fc = nn.Linear(256, 1000)
    return m


def test_rfa_redesigns_remove_the_unproductive_layers():
    # efficient: stem 3 -> max pool 7 (S4); layer1 blocks: conv1 7 -> 15, conv2 15 -> 23 (critical);
    # layer2.0: conv1 7 -> 15 (S8), conv2 15 -> 31 (critical); no layer receives >= 16
    r = productivity(rfkit.trace(_efficient_redesign(), input_size=16), 16)
    assert r.counts()[U] == 0 and r.counts()[C] == 3
    assert [e.module for e in r.select(C)] == ["layer1.0.conv2", "layer1.1.conv2", "layer2.0.conv2"]
    # performance: stem 3 (S1); layer1 convs reach 7; layer2 (S2) conv2s reach 9, 11, 11; layer3 (S4):
    # layer3.0.conv2 15, then conv1s receive 3 and reach 11, conv2s receive 11 and reach 19 > 16 (critical)
    r = productivity(rfkit.trace(_performance_redesign(), input_size=16), 16)
    assert r.counts()[U] == 0
    assert [e.module for e in r.select(C)] == ["layer3.1.conv2", "layer3.2.conv2"]
    assert r["layer3.0.conv2"].rf_out == (15, 15) and r["layer3.1.conv2"].rf_in == (11, 11)


# --- hand-built graphs == traced graphs ---------------------------------------------------------------------
FIELDS = (
    "size",
    "size_min",
    "local_size",
    "stride",
    "center",
    "padding",
    "is_global",
    "misaligned",
    "windows",
    "reads",
)


def assert_same_rf(traced, built, names):
    for name in names:
        a, b = traced[name], built[name]
        for f in FIELDS:
            assert repr(getattr(a, f)) == repr(getattr(b, f)), (name, f, getattr(a, f), getattr(b, f))
        if a.dims:
            assert [a.shape[d] for d in a.dims] == [b.shape[d] for d in b.dims], name


@pytest.mark.parametrize("size", [224, 16, (96, 64), (33, 47)])
def test_handbuilt_resnet18_equals_traced(size):
    traced = rfkit.trace("torchvision:resnet18", input_size=size)
    built = resnet_builder(size)
    names = [
        n
        for n in built.module_outputs
        if not n.endswith((".add", ".relu1", ".bn1", ".bn2")) and n not in ("bn1", "relu")
    ]
    # conv1, maxpool, 8 x (conv1, conv2, output), 3 x downsample.{0,1}, avgpool, fc; and the containers
    # layer1..layer4 and layerN.0.downsample, which name their last layer's output as torch's Sequential does
    assert len(names) == 34 + 4 + 3 and "layer4" in names and "layer2.0.downsample" in names
    assert_same_rf(traced, built, names)
    assert built["layer4"].size == (435, 435) and built["layer4"].size_min == (11, 11)
    # the same statuses follow
    rt, rb = productivity(traced, 16), productivity(built, 16)
    assert [rt[n].status for n in names] == [rb[n].status for n in names]


class DilatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.d1 = nn.Conv2d(8, 8, 3, 1, 2, dilation=2)
        self.d2 = nn.Conv2d(8, 8, (3, 5), 1, (4, 8), dilation=(4, 4))
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.tconv = nn.ConvTranspose2d(8, 8, 4, 2, 1)
        self.ap = nn.AdaptiveAvgPool2d((3, 5))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.d2(self.d1(self.stem(x)))
        p = self.pool(x)
        c = torch.cat([self.up(p), self.tconv(p)], 1)
        return self.fc(torch.flatten(self.gap(c), 1)), self.ap(c)


@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_handbuilt_dilated_resampling_net_equals_traced(size):
    traced = rfkit.trace(DilatedNet(), input_size=size)
    b = GraphBuilder(size)
    b.conv("stem", 3, 2, 1)
    b.conv("d1", 3, 1, 2, 2)
    b.conv("d2", (3, 5), 1, (4, 8), (4, 4))
    b.pool("pool", 3, 2, 1, ceil_mode=True)
    b.upsample("up", 2, mode="bilinear")
    b.conv_transpose("tconv", 4, 2, 1, input="pool")
    b.concat("cat", ["up", "tconv"])
    b.adaptive_pool("ap", (3, 5))
    b.global_pool("gap", input="cat")
    b.linear("fc", 4)
    built = b.build()
    assert_same_rf(traced, built, ["stem", "d1", "d2", "pool", "up", "tconv", "ap", "gap", "fc"])
    # by hand: stem 3 (S2); d1 k_eff 5: 3 + 4*2 = 11; d2 k_eff (9, 17): 11 + 8*2 = 27, 11 + 16*2 = 43
    assert built["d2"].size == (27, 43) and built["up"].period == (2, 2)


@pytest.mark.parametrize("size", [31, 32])
def test_handbuilt_same_padding_equals_timm_conv2d_same(size):
    from timm.layers import Conv2dSame

    traced = rfkit.trace(nn.Sequential(Conv2dSame(3, 4, 3, 2), Conv2dSame(4, 4, 5, 2)), input_size=size)
    b = GraphBuilder(size)
    b.conv("0", 3, 2, "same")
    b.conv("1", 5, 2, "same")
    built = b.build()
    assert_same_rf(traced, built, ["0", "1"])
    # TF 'SAME', k 3, s 2: output ceil(size / 2) = 16 at both sizes; total padding 15*2 + 3 - size: 2 at 31
    # (1 left: unit 0 sees pixels -1..1, centre 0, padding 1), 1 at 32 (all right: pixels 0..2, centre 1, padding 0)
    assert built["0"].shape[2:] == (16, 16)
    assert built["0"].center == ((0, 0) if size == 31 else (1, 1))
    assert built["0"].padding == ((1, 1) if size == 31 else (0, 0))


def test_graph_from_layers_and_exports(tmp_path):
    g = graph_from_layers(
        [
            {"name": "conv1", "op": "conv", "kernel": 3, "stride": 2, "padding": 1},
            {"name": "conv2", "op": "conv", "kernel": 3, "dilation": 2, "padding": 2},
            {"name": "skip", "op": "pool", "kernel": 1, "input": "conv1"},
            {"name": "sum", "op": "add", "inputs": ["conv2", "skip"]},
            {"name": "head", "op": "global_pool"},
            {"name": "fc", "op": "linear", "units": 10},
        ],
        input_size=(32, 24),
        name="paper-net",
    )
    # conv2: 3 + 4*2 = 11 (S2); the sum: max 11, min 3 (the 1x1 skip)
    assert g["sum"].size == (11, 11) and g["sum"].size_min == (3, 3) and g["sum"].stride == (2, 2)
    assert g["sum"].shape == (1, 3, 16, 12) and g.method == "handbuilt"
    assert list(g.nx.predecessors("sum")) == ["conv2", "skip"]
    g.to_csv(tmp_path / "rf.csv")
    df = pd.read_csv(tmp_path / "rf.csv").set_index("node")
    assert df.loc["conv2", "rf_h"] == 11 and math.isinf(df.loc["fc", "rf_h"])
    assert productivity(g, 8)["conv2"].status is C  # receives 3 < 8, reaches 11 > 8
    assert "paper-net" in repr(g)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda b: (b.conv("a", 3), b.conv("a", 3)), "used twice"),
        (lambda b: b.conv("a", 3, input="nope"), "unknown input 'nope'"),
        (lambda b: b.conv("a", 0), "kernel must be an integer >= 1"),
        (lambda b: b.conv("a", 3, padding="reflect"), "padding must be"),
        (lambda b: (b.conv("a", 3, 2), b.conv("b", 3, input="input"), b.add("c", ["a", "b"])), "different sizes"),
        (lambda b: (b.linear("fc", 10), b.conv("c", 3)), "no spatial axes"),
        (lambda b: b.layer({"name": "x", "op": "warp"}), "unknown op 'warp'"),
        (lambda b: b.upsample("u"), "either scale or size"),
        (lambda b: b.add("s", ["input"]), "at least two inputs"),
    ],
)
def test_handbuilt_errors(build, message):
    with pytest.raises(ArchitectureError, match=message):
        build(GraphBuilder(16))


def test_handbuilt_input_too_small():
    b = GraphBuilder(8)
    b.conv("a", 5)
    with pytest.raises(InputTooSmallError, match="layer 'b'"):
        b.conv("b", 5)


# --- GraphViz ---------------------------------------------------------------------------------------------
NODE = re.compile(r'(n\d+) \[label=<<B>([^<]+)</B>.*?fillcolor="(#[0-9a-f]+)"')


def parse_nodes(src: str) -> dict[str, str]:
    """Title (bold first line) -> fill colour of each node of a DOT source written by to_dot."""
    return {m.group(2): m.group(3) for m in NODE.finditer(src)}


def node_ids(src: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in NODE.finditer(src)}


def test_to_dot_depth_2_resnet18_blocks_and_colours():
    src = to_dot(_resnet18_16(), input_size=16, depth=2)
    nodes = parse_nodes(src)
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert set(blocks) <= set(nodes)
    assert not any(k.startswith("layer1.0.") for k in nodes)  # collapsed
    # every block holds an unproductive conv2: red; the stem conv is productive: green; the head: global
    assert all(nodes[b] == STATUS_COLOURS[U] for b in blocks)
    assert nodes["conv1"] == STATUS_COLOURS[P] and nodes["fc"] == STATUS_COLOURS[G]
    assert 'label="layer3"' in src  # clusters for the stages
    assert "RF 27×27, min 11×11 · stride 4×4" in src  # layer1.0's output: max 27, min 11
    ids = node_ids(src)
    for a, b in [("maxpool", "layer1.0"), ("layer1.0", "layer1.1"), ("layer1.1", "layer2.0"), ("layer4.1", "avgpool")]:
        assert f"{ids[a]} -> {ids[b]};" in src


def test_to_dot_depth_1_and_full_graph():
    g = _resnet18_16()
    nodes = parse_nodes(to_dot(g, input_size=16, depth=1))
    assert {"layer1", "layer2", "layer3", "layer4"} <= set(nodes) and "layer1.0" not in nodes
    full = to_dot(g, 16, legend=False)
    assert len(NODE.findall(full)) == len(g)  # one box per node
    assert parse_nodes(full)["layer1.0.conv2"] == STATUS_COLOURS[U]
    plain = to_dot(g)  # no input size: no status colours
    assert set(parse_nodes(plain).values()) == {dot_module.NEUTRAL_COLOUR}
    with pytest.raises(ValueError, match="depth"):
        to_dot(g, depth=0)


def test_to_dot_of_a_handbuilt_graph_shows_layer_parameters():
    g = chain(16, [3, 3], dilations=[1, 4])
    src = to_dot(g, 16)
    assert "conv 3 d4" in src and "RF 11×11 · stride 1×1" in src  # 3 + 2*4 = 11


def test_render_without_dot_writes_the_source_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    g = chain(8, [3, 3])
    with pytest.raises(GraphvizNotFoundError) as e:
        render(g, tmp_path / "net.svg", input_size=8)
    msg = str(e.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz", "net.dot"):
        assert hint in msg
    assert (tmp_path / "net.dot").read_text().startswith("digraph")
    assert not (tmp_path / "net.svg").exists()
    # asking for DOT source needs no dot program
    assert render(g, tmp_path / "src.gv").read_text().startswith("digraph")
    with pytest.raises(RenderError, match="svg, png, pdf"):
        render(g, tmp_path / "net.jpg")


@pytest.mark.skipif(not HAS_DOT, reason="GraphViz's dot is not installed")
def test_render_svg_png_pdf(tmp_path):
    g = chain(8, [3, 3, 3, 3])
    svg = render(g, tmp_path / "a.svg", input_size=8, depth=None)
    text = svg.read_text()
    assert "<svg" in text and STATUS_COLOURS[C] in text and "c4" in text
    assert (render(g, tmp_path / "a.png", 8)).read_bytes()[:4] == b"\x89PNG"
    assert (render(g, tmp_path / "a.pdf", 8)).read_bytes()[:4] == b"%PDF"


# --- CLI ----------------------------------------------------------------------------------------------------
def invoke(*args):
    return runner.invoke(app, normalise_argv(list(args)))


def test_cli_resolution_adds_status_and_summary(tmp_path):
    csv = tmp_path / "rf.csv"
    r = invoke("graph", "torchvision:resnet18", "--resolution", "16", "--csv", str(csv))
    assert r.exit_code == 0, r.output
    assert "status" in r.output and "unproductive" in r.output
    assert "8 unproductive, 8 critical, 5 productive, 2 global" in r.output
    assert "layer1.0.conv2" in r.output
    df = pd.read_csv(csv).set_index("node")
    assert df.loc["layer1_0_conv2", "status"] == "unproductive" and df.loc["conv1", "status"] == "productive"


def test_cli_input_range_and_non_square_resolution():
    r = invoke("graph", "torchvision:resnet18", "-q", "--input-range")
    assert r.exit_code == 0, r.output
    assert "min 76×76" in r.output and "max 435×435" in r.output and "layer4.1.conv2" in r.output
    r = invoke("graph", "torchvision:resnet18", "-q", "--resolution", "16", "64")
    assert r.exit_code == 0, r.output
    assert "at 16×64" in r.output


def test_cli_model_too_small_for_the_resolution_is_analysed_from_its_default_size():
    r = invoke("graph", "torchvision:vgg16", "-q", "--resolution", "16")
    assert r.exit_code == 0, r.output
    assert "cannot run at 16×16" in r.output and "traced at 224×224" in r.output
    assert "unproductive" in r.output


def test_cli_dot_output(tmp_path, monkeypatch):
    out = tmp_path / "g.dot"
    r = invoke("graph", "torchvision:resnet18", "-q", "--resolution", "32", "--dot", str(out), "--depth", "2")
    assert r.exit_code == 0, r.output
    nodes = parse_nodes(out.read_text())
    assert "layer4.1" in nodes and nodes["layer4.1"] == STATUS_COLOURS[U]  # layer4.1.conv2 receives 75 >= 32
    if HAS_DOT:
        svg = tmp_path / "g.svg"
        assert invoke("graph", "torchvision:resnet18", "-q", "--dot", str(svg)).exit_code == 0
        assert "<svg" in svg.read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--resolution", "16", "--depth", "2"), "--depth applies to the --dot graph"),
        (("--dot", "x.jpg"), "must end in .svg, .png, .pdf or .dot"),
        (("--resolution", "abc"), "--resolution 'abc'"),
        (("--ignore-global",), "--ignore-global applies to --input-range"),
        (("--dot", "x.svg", "--depth", "0"), "--depth 0"),
    ],
)
def test_cli_usage_errors_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["graph", "torchvision:resnet18", "-q", *args])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


def test_cli_without_dot_binary_writes_dot_and_fails_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        main(["graph", "torchvision:resnet18", "-q", "--resolution", "32", "--dot", str(tmp_path / "g.svg")])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install graphviz" in err and "brew install graphviz" in err
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
