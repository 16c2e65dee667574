"""One pipeline: a model is built once and traced once, then every stage takes the prepared model.

Builds are counted where every build goes through (:func:`rfkit.models.spec._build_on`), traces where every
torch.fx trace goes through (:meth:`rfkit.graph.tracer.RFTracer.trace`), recordings with make_fx at
:func:`rfkit.graph.tracer.record_model`'s ``make_fx``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit
import rfkit.models.spec as spec_module
import rfkit.models.weights as wts
from rfkit.errors import ArgumentError
from rfkit.graph.layers import default_layers, evenly_spaced, stage_layers
from rfkit.graph.tracer import RFTracer
from rfkit.graph.tracing import FxModel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Counts:
    """Model builds, whole-model torch.fx traces and GraphModule bindings, as they happen."""

    def __init__(self, monkeypatch, model_types: tuple[type, ...] | None = None) -> None:
        self.builds: list[str] = []
        self.traces: list[str] = []
        self.binds = 0
        build_on, trace, bind = spec_module._build_on, RFTracer.trace, FxModel.bind

        def counted_build(build, device, pretrained, spec):
            self.builds.append(f"{spec.display_name} pretrained={pretrained}")
            return build_on(build, device, pretrained, spec)

        def counted_trace(tracer, root, *args, **kwargs):
            if model_types is None or isinstance(root, model_types):  # not timm's no-trace probes of parts
                self.traces.append(type(root).__name__)
            return trace(tracer, root, *args, **kwargs)

        def counted_bind(fxm, model):
            self.binds += 1
            return bind(fxm, model)

        monkeypatch.setattr(spec_module, "_build_on", counted_build)
        monkeypatch.setattr(RFTracer, "trace", counted_trace)
        monkeypatch.setattr(FxModel, "bind", counted_bind)


@pytest.fixture
def offline(monkeypatch):
    """Every download host unreachable, whatever the real network does."""
    monkeypatch.setattr(wts, "_unreachable", lambda url, timeout=None: "cannot reach huggingface.co (test)")


class Residual(nn.Module):
    """conv -> (x + conv(x)) -> conv: the sum is a graph node that is no module's output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1, stride=2)

    def forward(self, x):
        x = torch.relu(self.a(x))
        return self.c(x + torch.relu(self.b(x)))


def test_analyze_builds_once_and_traces_once_offline(offline, monkeypatch, tmp_path):
    """``rfkit analyze`` of a timm spec offline: the pretrained attempt is refused before building, the model is
    built once (at random init), traced once, and a graph-node layer is caught by binding that one trace to
    the live model, not by tracing it again."""
    import timm

    counts = Counts(monkeypatch, (timm.models.ResNet,))
    with pytest.warns(rfkit.errors.WeightsWarning):
        report = rfkit.analyze(
            "test_resnet",
            layers=["layer1", "add_1"],
            images="noise",
            num_images=1,
            input_size=32,
            device="cpu",
            out=tmp_path,
        )
    assert counts.builds == ["test_resnet pretrained=False"]
    assert counts.traces == ["ResNet"]
    assert counts.binds == 1
    assert report.result.weights.kind == "random-safe"
    assert report.result.layers == ["layer1", "add_1"]
    assert (report.folder / "graph.dot").is_file()


def test_stages_take_a_prepared_model_and_build_and_trace_nothing(monkeypatch):
    torch.manual_seed(0)
    net = Residual()
    prepared = rfkit.prepare(net, input_size=16)
    assert prepared.model is net and prepared.weights.kind == "as-given" and prepared.input_size == (16, 16)
    reference = rfkit.erf(net, layers=["a", "add"], images="noise", num_images=2, input_size=16, device="cpu")
    counts = Counts(monkeypatch)

    res = rfkit.erf(prepared, layers=["a", "add"], images="noise", num_images=2, device="cpu")
    assert res.graph is prepared.graph
    for layer in ("a", "add"):  # the same maps as from the module itself
        np.testing.assert_array_equal(res.maps[layer], reference.maps[layer])
    report = rfkit.verify(prepared)
    estimates = rfkit.estimate_rf(prepared, layers=["c"])
    attribution = rfkit.attribute(prepared, images="noise", num_images=1, methods="saliency", target="c", device="cpu")

    assert counts.builds == [] and counts.traces == []
    assert report.ok and [c.layer for c in report.checks if c.kind == "centre"] == ["a", "b", "c"]
    # conv 3x3 (a), then 3x3 (b) beside the identity, then 3x3 stride 2 (c): 7x7, stride 2, unit 0 at 0
    assert (estimates[0].size, estimates[0].stride, estimates[0].center) == ((7, 7), (2, 2), (0, 0))
    assert attribution.maps["saliency"].shape == (1, 16, 16)
    assert all(p.requires_grad for p in net.parameters()) and net.training  # left as found


def test_erf_catches_graph_nodes_of_every_capture_group_with_one_bound_graph(monkeypatch):
    """Cropped layers run in capture groups of their own; the graph nodes of all of them come from one
    GraphModule bound once from the prepared trace (no trace of the live model)."""
    torch.manual_seed(0)
    prepared = rfkit.prepare(Residual(), input_size=64)
    counts = Counts(monkeypatch)
    res = rfkit.erf(prepared, layers=["add", "c"], images="noise", num_images=2, device="cpu", crop=True)
    assert set(res.crops) == {"add", "c"}  # each measured on its own crop: three capture groups in all
    assert counts.traces == [] and counts.binds == 1


def test_a_prepared_model_refuses_other_sizes_and_weights():
    prepared = rfkit.prepare(Residual(), input_size=16)
    with pytest.raises(ArgumentError, match=r"prepared at input size \(16, 16\).*prepare it again"):
        rfkit.erf(prepared, images="noise", num_images=1, input_size=32, device="cpu")
    with pytest.raises(ArgumentError, match="weights='random' is for rfkit.prepare"):
        rfkit.attribute(prepared, images="noise", num_images=1, weights="random", target="c", device="cpu")
    assert rfkit.prepare(prepared) is prepared


def test_the_graph_at_another_size_comes_from_the_same_trace(monkeypatch):
    prepared = rfkit.prepare(Residual(), input_size=16)
    counts = Counts(monkeypatch)
    g = prepared.graph_at((24, 40))
    assert counts.traces == []
    assert g.input_size == (24, 40) and g["c"].size == (7, 7) and g.output.shape[2:] == (12, 20)


def test_one_spacing_rule_for_the_erf_stages_and_the_verify_layers():
    net = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1) for _ in range(12)])
    g = rfkit.trace(net, input_size=8)
    # 12 stages to 6: step 11/5 = 2.2, indices round(0, 2.2, 4.4, 6.6, 8.8, 11)
    assert evenly_spaced([str(i) for i in range(12)], 6) == ["0", "2", "4", "7", "9", "11"]
    assert stage_layers(g, net, limit=6) == ["0", "2", "4", "7", "9", "11"]
    assert default_layers(g, net, limit=6) == ["0", "2", "4", "7", "9", "11"]  # the output is "11" already
    assert default_layers(g, net, limit=1) == ["0", ""]
