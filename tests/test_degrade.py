"""A module torch.fx cannot follow does not take the whole model down: it is kept whole and recorded
(exact), or, when nothing can record it, marked opaque; everything else keeps exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.graph.tracer import trace_module


class Split(nn.Module):
    """Branches on the input's width (shape-dependent control flow): torch.fx cannot follow it, make_fx
    records it on concrete shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 5, padding=2)

    def forward(self, x):
        if x.shape[-1] > 1:
            y0, y1 = x.chunk(2, 1)
            return torch.cat([self.a(y0), self.b(y1)], 1)
        return x


class ChunkList(nn.Module):
    """Like ultralytics' C2f: ``list()`` of a ``chunk``, whose length is in the call: torch.fx follows it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = list(x.chunk(2, 1))
        y.extend([self.a(y[-1])])
        return torch.cat(y, 1)


class DataDependent(nn.Module):
    """Branches on a value: neither torch.fx nor make_fx on meta tensors can follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if bool(x.mean() > -1e9):
            return self.conv(x)
        return x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.split = Split()
        self.odd = DataDependent()
        self.side = nn.Conv2d(4, 4, 5, padding=2)
        self.head = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        s = self.split(self.stem(x))
        return self.side(s), self.head(self.odd(s))


def test_an_untraceable_module_is_opaque_and_everything_else_exact():
    g = rfkit.trace(Net(), input_size=(20, 28))
    assert g.method == "torch.fx"
    assert set(g.untraced) == {"split", "odd"}
    assert all("TraceError" in why for why in g.untraced.values())
    # stem 3x3: 3; split: 3x3 on half the channels (5), 5x5 on the other half (7), concatenated: 7
    assert g["stem"].size == (3, 3) and g["split"].size == (7, 7) and g["split"].size_min == (5, 5)
    assert g["side"].size == (11, 11) and g["side"].stride == (1, 1) and g["side"].center == (0, 0)
    assert not any(g[k].unknown for k in ("stem", "split", "side"))
    # the data-dependent module and what follows it only
    assert g["odd"].unknown and g["head"].unknown
    assert g["odd"].shape == (2, 4, 20, 28)  # from a real forward pass: the module cannot run on meta tensors
    [opaque] = g.opaque
    assert opaque.module == "odd" and opaque.node == g.resolve("odd")
    assert opaque.reason.startswith("torch.fx: TraceError") and "make_fx" in opaque.reason


def test_a_list_of_chunks_is_traced_through():
    g = rfkit.trace(ChunkList(), input_size=8, in_chans=4)
    assert not g.untraced and g["a"].size == (3, 3) and g[""].size == (3, 3) and g[""].size_min == (1, 1)


def test_the_module_kept_whole_is_the_smallest_that_fails():
    gm, outputs = trace_module(Net())
    kept = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert {"split", "odd"} <= kept and not kept & {"split.a", "split.b", "odd.conv"}
    assert {"stem", "side", "head"} <= set(outputs)


def test_the_graph_at_another_size_reruns_the_model_for_the_opaque_module_only_when_needed():
    p = rfkit.prepare(Net(), input_size=16)
    g = p.graph_at((24, 12))
    assert g["odd"].shape == (2, 4, 24, 12) and g["side"].size == (11, 11)


def test_a_model_whose_forward_takes_varargs_is_traced_on_its_input():
    class Varargs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x, *args, **kwargs):
            return self.predict(x, *args, **kwargs)

        def predict(self, x, scale=1.0):
            return self.conv(x) * scale

    g = rfkit.trace(Varargs(), input_size=16)
    assert g.method == "torch.fx" and g["conv"].size == (3, 3) and not g.untraced


def test_a_model_that_cannot_run_at_all_is_one_line():
    class Broken(nn.Module):
        def forward(self, x):
            return x.view(-1, 7, 13, 99)

    with pytest.raises(rfkit.TraceError) as info:
        rfkit.trace(Broken(), input_size=16)
    assert "\n" not in str(info.value)


class RootBranch(nn.Module):
    """Branches on a value in its own forward: nothing can trace or record it, it only runs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.stem(x)
        if bool(y.mean() > -1e9):
            y = self.body(y)
        return self.pool(y)


def test_a_model_nothing_can_trace_still_has_a_graph_of_its_module_outputs():
    g = rfkit.trace(RootBranch(), input_size=(12, 20))
    assert g.method == "hooks"
    assert [g[m].shape for m in ("stem", "body", "pool")] == [(2, 4, 12, 20), (2, 4, 12, 20), (2, 4, 1, 1)]
    assert all(g[m].unknown for m in ("stem", "body", "pool"))
    assert g.records[g.resolve("body")].inputs == (g.resolve("stem"),)  # linked by the tensors passed on
    [opaque] = g.opaque
    assert opaque.module == "" and opaque.node == g.resolve("pool") and "make_fx" in opaque.reason


def test_erf_needs_no_graph_hooks_measure_the_centre_unit_and_say_the_rf_is_missing():
    torch.manual_seed(0)
    net = RootBranch()
    res = rfkit.erf(net, layers=["stem", "body"], images="noise", num_images=2, input_size=(12, 20), device="cpu")
    assert res.unit == {"stem": (6, 10), "body": (6, 10)}  # the centre of the output's grid
    for layer, half in (("stem", 1), ("body", 2)):  # 3x3, then 3x3 again: the gradient support, measured
        rows, cols = np.nonzero(res.maps[layer])
        assert rows.min() >= 6 - half and rows.max() <= 6 + half and cols.min() >= 10 - half
        assert cols.max() <= 10 + half and res.maps[layer].sum() > 0
    assert set(res.rf_missing) == {"stem", "body"} and "could not be traced" in res.rf_missing["stem"]
    assert any("no analytic RF to overlay" in w for w in res.warnings)
    assert res.center["stem"] == (5.5, 9.5)  # metrics centred on the image centre, as the warning says


def test_erf_of_a_layer_after_an_opaque_module_names_it():
    torch.manual_seed(0)
    res = rfkit.erf(Net(), layers=["side", "head"], images="noise", num_images=1, input_size=16, device="cpu")
    assert set(res.rf_missing) == {"head"} and "DataDependent at node odd" in res.rf_missing["head"]
    assert res.maps["head"].sum() > 0 and res.unit["head"] == (8, 8)


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Conv2d(3, 4, 3, padding=1)
        self.large = nn.Conv2d(3, 4, 5, padding=2)

    def forward(self, x):
        return self.small(x), self.large(x)


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()

    def forward(self, x):
        a, b = self.pair(x)
        return a * b


def test_an_element_of_a_module_tuple_output_is_a_layer():
    torch.manual_seed(0)
    g = rfkit.trace(TwoOutputs(), input_size=16)
    assert g["pair[0]"].size == (3, 3) and g["pair[1]"].size == (5, 5) and "pair" not in g.module_outputs
    res = rfkit.erf(TwoOutputs(), layers=["pair[1]"], images="noise", num_images=2, input_size=16, device="cpu")
    rows, cols = np.nonzero(res.maps["pair[1]"])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 10, 6, 10)  # the 5x5 window around (8, 8)


def test_without_the_last_resort_a_model_nothing_can_trace_is_a_trace_error():
    """trace_fx(last_resort=False) (the atlas at its second size) says why neither torch.fx nor make_fx could
    follow the model instead of running it for real."""
    from rfkit.graph.tracing import trace_fx

    with pytest.raises(rfkit.TraceError, match="recording it with make_fx failed too") as info:
        trace_fx(RootBranch(), input_size=(12, 20), last_resort=False)
    assert "\n" not in str(info.value)


def test_trace_fx_traces_a_meta_model_itself_on_request_and_refuses_one_with_weights():
    from rfkit.errors import ArgumentError
    from rfkit.graph.tracing import trace_fx

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2))
    with pytest.raises(ArgumentError, match="meta device"):
        trace_fx(net, input_size=16, copy=False)
    meta = net.to("meta")
    g, fxm = trace_fx(meta, input_size=16, copy=False)
    assert fxm.gm.get_submodule("2") is meta[2]  # the model itself, not a copy
    assert g["2"].size == (3 + 2, 3 + 2) and g["2"].stride == (2, 2)
    copied = trace_fx(meta, input_size=16)[1]
    assert copied.gm.get_submodule("2") is not meta[2]
