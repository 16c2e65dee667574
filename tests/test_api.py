"""The public API around the graph: model specs, lookup, networkx/pandas/CSV export, errors."""

from __future__ import annotations

import dataclasses
import math
import textwrap

import networkx as nx
import pandas as pd
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.models.spec import parse_spec


def test_timm_name_with_and_without_tag_give_the_same_graph():
    a = rfkit.trace("resnet18", input_size=64)
    b = rfkit.trace("resnet18.a1_in1k", input_size=64)
    assert a["layer4"] == b["layer4"]
    # torchvision-style ResNet-18: 7x7/2 stem, 3x3/2 max pool, 8 basic blocks of two 3x3 convs
    assert a["layer4"].size == (435, 435) and a["layer4"].stride == (32, 32)


def test_default_input_size_comes_from_the_model():
    assert rfkit.trace("torchvision:inception_v3").input_size == (299, 299)
    assert rfkit.trace("resnet18").input_size == (224, 224)
    assert rfkit.trace(nn.Conv2d(3, 3, 3)).input_size == (224, 224)


def test_file_factory_spec(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(
        textwrap.dedent("""
        import torch.nn as nn

        def build(width=4):
            return nn.Sequential(nn.Conv2d(1, width, 5, 2), nn.ReLU(), nn.Conv2d(width, width, 3))
    """)
    )
    g = rfkit.trace(f"{f}:build", input_size=(40, 30), trust=True)
    assert g["2"].size == (9, 9) and g.in_chans == 1
    with pytest.raises(rfkit.ModelNotFoundError, match="no function 'biuld'.*build"):
        rfkit.trace(f"{f}:biuld", trust=True)
    with pytest.raises(rfkit.ModelNotFoundError, match="does not exist"):
        rfkit.trace(f"{tmp_path / 'nope.py'}:build")


def test_unknown_timm_name_suggests_close_matches():
    with pytest.raises(rfkit.ModelNotFoundError, match="Close matches: .*resnet50"):
        rfkit.trace("resnet5O")


def test_unknown_torchvision_name():
    with pytest.raises(rfkit.ModelNotFoundError, match="vgg16"):
        rfkit.trace("torchvision:vgg61")


def test_spec_parsing():
    assert parse_spec("torchvision:alexnet").name == "alexnet"
    assert parse_spec("C:/x/net.py:f").path == "C:/x/net.py"


def test_module_is_left_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rfkit.trace(model, input_size=16)
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_untraceable_model_names_the_problem():
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # control flow on a tensor value
                return x
            return -x

    # the module is kept whole and, since nothing can record it, opaque; the conv before it stays exact
    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 1), DataDependent()), input_size=8)
    assert g["0"].size == (1, 1) and not g["0"].unknown
    assert g["1"].unknown and [o.module for o in g.opaque] == ["1"]
    assert "cannot be used as inputs to control flow" in g.opaque[0].reason


def test_failing_node_is_named():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(5, 4, 3)  # expects 5 channels, the previous layer makes 4

        def forward(self, x):
            return self.conv(x[:, :4])

    with pytest.raises(rfkit.TraceError, match="node conv .*Conv2d conv"):
        rfkit.trace(Broken(), input_size=8, in_chans=5)


def test_input_too_small_is_a_clear_error():
    # VGG-16 halves the map five times with 2x2 pools that cannot pad: 32 is the least that works
    with pytest.raises(rfkit.InputTooSmallError, match="input too small.*features.*smallest square input.* 32×32"):
        rfkit.trace("torchvision:vgg16", input_size=16)
    with pytest.raises(rfkit.InputTooSmallError):
        rfkit.trace(nn.Conv2d(3, 3, 5), input_size=(3, 8))


def test_lookup_by_module_or_node_name_and_close_matches():
    g = rfkit.trace("torchvision:resnet18", input_size=64)
    assert g["layer4"] is g[g.resolve("layer4")]
    assert g["layer4.1"] == g["layer4"]  # a Sequential's output is its last block's
    with pytest.raises(rfkit.NodeNotFoundError, match="Close matches: layer4"):
        g["layer5"]
    names = list(g)
    assert names[0] == "x" and names.index("layer1_0_conv1") < names.index("layer4_1_conv2")


def test_networkx_graph_carries_the_attributes():
    g = rfkit.trace("torchvision:resnet18", input_size=64)
    d = g.nx
    assert isinstance(d, nx.DiGraph) and nx.is_directed_acyclic_graph(d)
    node = g.resolve("layer1.0.conv2")
    assert d.nodes[node]["size"] == (19 + 8, 19 + 8) and d.nodes[node]["shape"] == (2, 64, 16, 16)
    assert list(nx.topological_sort(d))[0] == "x"
    assert d.graph["input_size"] == (64, 64)


def test_residual_add_has_both_paths_as_predecessors():
    g = rfkit.trace("torchvision:resnet18", input_size=64)
    assert set(g.nx.predecessors("add")) == {"layer1_0_bn2", "maxpool"}


def test_frame_and_csv(tmp_path):
    g = rfkit.trace("torchvision:resnet18", input_size=(64, 48))
    df = g.to_frame()
    assert len(df) == len(g)
    row = df.set_index("node").loc["layer4_1_relu_1"]
    assert (row.rf_h, row.rf_w, row.stride_h, row.center_w) == (435, 435, 32, 0)
    path = tmp_path / "sub" / "rf.csv"
    g.to_csv(path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    assert math.isinf(back.set_index("node").loc["fc", "rf_h"])
    assert not list(path.parent.glob(".*tmp"))


def test_rfinfo_is_frozen():
    g = rfkit.trace(nn.Conv2d(3, 3, 3), input_size=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.output.size = (1, 1)


def test_unknown_pretrained_tag_lists_the_tags():
    with pytest.raises(rfkit.ModelNotFoundError, match="no pretrained tag 'a1_in1kk'.*a1_in1k"):
        rfkit.trace("resnet50.a1_in1kk")


def test_default_size_follows_the_spatial_rank():
    g1 = rfkit.trace(nn.Conv1d(2, 2, 3))
    g3 = rfkit.trace(nn.Conv3d(1, 1, 3), input_size=None)
    assert g1.input_size == (224,) and g3.input_size == (224, 224, 224)


def test_model_fx_cannot_trace_is_recorded_with_make_fx():
    class ShapeDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, 2, 1)
            self.head = nn.Conv2d(4, 4, 5)

        def forward(self, x):
            if x.shape[-1] > 8:  # control flow on a shape: torch.fx cannot trace it
                x = self.stem(x)
            return self.head(x)

    g = rfkit.trace(ShapeDependent(), input_size=32)
    assert g.method == "make_fx" and g.unsupported == []
    assert g["stem"].size == (3, 3) and g["head"].size == (3 + 4 * 2,) * 2 and g["head"].stride == (2, 2)
    assert g.output == g["head"]


def blur_wide(x):  # (torch.fx wraps no-trace functions only under names without a leading _)
    """3x3 average at stride 1, only on maps wider than 4 (control flow on a shape: no-trace in timm's sense)."""
    return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1) if x.shape[-1] > 4 else x


class Blurs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 4, 2, stride=2)

    def forward(self, x):
        return blur_wide(self.b(blur_wide(blur_wide(self.a(x)))))


def test_a_no_trace_function_is_recorded_once_per_shape(monkeypatch):
    """A function torch.fx keeps whole is recorded with make_fx once per distinct input (shapes, strides, dtype,
    other arguments) and the recording reused: three calls at two shapes, two recordings, and the same RF as
    recording every call. By hand: 1 + 2 + 2 = 5 px at stride 1, + 1 for the 2x2 stride-2 conv, + 2 * 2 = 10."""
    import importlib

    import torch.fx.experimental.proxy_tensor as proxy_tensor
    from timm.layers import register_notrace_function

    propagate = importlib.import_module("rfkit.graph.propagate")
    register_notrace_function(blur_wide)
    recordings = []
    real = proxy_tensor.make_fx
    monkeypatch.setattr(proxy_tensor, "make_fx", lambda *a, **k: recordings.append(1) or real(*a, **k))

    monkeypatch.setattr(propagate, "_RECORDINGS", propagate._Recordings())
    g = rfkit.trace(Blurs(), input_size=16)
    assert g.method == "torch.fx" and len(recordings) == 2 and g.unsupported == []
    assert g.output.size == (10, 10) and g.output.stride == (2, 2)
    monkeypatch.setattr(propagate, "_RECORDINGS", propagate._Recordings(size=0))  # nothing kept: each call
    recordings.clear()
    fresh = rfkit.trace(Blurs(), input_size=16)
    assert len(recordings) == 3
    assert {n: r.info for n, r in g.records.items()} == {n: r.info for n, r in fresh.records.items()}
