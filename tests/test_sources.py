"""The registry of model sources (rfkit.models.sources): which source a spec belongs to, the registry's rules,
the recipe in docs/architecture.md (run as written), a source's own tracer, and ``rfkit list-models --source``."""

from __future__ import annotations

import re
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.errors import ArgumentError, ModelNotFoundError, WeightsUnavailableError, WeightsWarning
from rfkit.models.sources import (
    ModelSource,
    ModelSpec,
    get_source,
    register_source,
    source_for,
    source_names,
    unregister_source,
)
from rfkit.models.spec import build_model, parse_spec
from rfkit.models.weights import load_model
from rfkit_cli.app import app

RECIPE = "### Add a model source"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _recipe_code() -> str:
    """The python blocks of the recipe section of docs/architecture.md, joined."""
    section = DOCS.read_text(encoding="utf-8").split(RECIPE, 1)[1].split("\n##", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the recipe has no python block"
    return "\n".join(blocks)


@pytest.fixture
def tinynets():
    """The recipe's source, registered by running the recipe's code; unregistered afterwards."""
    namespace: dict = {}
    exec(compile(_recipe_code(), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    try:
        yield get_source("tinynets")
    finally:
        unregister_source("tinynets")
    assert "tinynets" not in source_names()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resnet50.a1_in1k", ModelSpec("timm", "resnet50.a1_in1k")),
        ("timm:resnet50", ModelSpec("timm", "resnet50")),
        ("  torchvision:vgg16 ", ModelSpec("torchvision", "vgg16")),
        ("ultralytics:yolo11n.yaml", ModelSpec("ultralytics", "yolo11n.yaml")),
        ("ultralytics:runs/best.pt", ModelSpec("ultralytics", "runs/best.pt")),
        ("nets/mine.py:build", ModelSpec("file", "build", "nets/mine.py")),
        ("file:nets/mine.py:build", ModelSpec("file", "build", "nets/mine.py")),
        ("torchvision:odd.py:x", ModelSpec("torchvision", "odd.py:x")),  # an explicit prefix wins over a claim
    ],
)
def test_each_spec_goes_to_its_source_and_its_text_parses_back(text, expected):
    spec = parse_spec(text)
    assert spec == expected
    assert parse_spec(get_source(spec.source).spec_text(spec)) == spec


def test_the_registry_refuses_what_would_make_specs_ambiguous():
    class Fallback(ModelSource):
        name, fallback = "other", True

    class Named(ModelSource):
        name = "timm"

    with pytest.raises(ArgumentError, match="'timm' is the fallback source already"):
        register_source(Fallback())
    with pytest.raises(ArgumentError, match="registered already: pass replace=True"):
        register_source(Named())
    for bad in ("", "a:b", " x"):
        Bad = type("Bad", (ModelSource,), {"name": bad})
        with pytest.raises(ArgumentError, match="needs a name without ':'"):
            register_source(Bad())
    with pytest.raises(ArgumentError, match="takes a ModelSource, got str"):
        register_source("timm")
    with pytest.raises(ArgumentError, match=r"unknown model source 'ultralytic'\. Close matches: ultralytics\."):
        get_source("ultralytic")
    assert source_names()[:4] == ("timm", "torchvision", "ultralytics", "file")


def test_a_source_that_claims_specs_comes_after_the_prefixes_and_before_the_fallback():
    class Onnxish(ModelSource):
        name = "onnxish"

        def claims(self, text):
            return text.endswith(".onnxish")

    register_source(Onnxish())
    try:
        assert source_for("model.onnxish").name == "onnxish"
        assert source_for("torchvision:model.onnxish").name == "torchvision"
        assert parse_spec("onnxish:resnet").name == "resnet"
        assert source_for("resnet18").name == "timm"
    finally:
        unregister_source("onnxish")


def test_the_recipe_runs_and_every_stage_takes_its_source(tinynets):
    g = rfkit.trace("tinynets:strided")
    # hand-computed: r = 3, then 3 + 2*2 = 7 (stride 2 -> 4), then 7 + 2*4 = 15; input its default 32x32
    assert [g[n].size for n in ("0", "1", "2")] == [(3, 3), (7, 7), (15, 15)]
    assert [g[n].stride for n in ("0", "1", "2")] == [(2, 2), (4, 4), (4, 4)]
    assert g.input_size == (32, 32)
    assert rfkit.trace("tinynets:plain3")["2"].size == (7, 7)
    with pytest.raises(ModelNotFoundError, match=r"unknown tinynets model 'strided2'\. Close matches: strided\."):
        build_model("tinynets:strided2")

    with pytest.warns(WeightsWarning, match="tinynets:strided has no pretrained weights rfkit can fetch"):
        model, info = load_model("tinynets:strided", seed=0)
    assert info.kind == "random-safe" and info.description.startswith("random init (tinynets default, seed 0)")
    assert isinstance(model, nn.Sequential) and not next(model.parameters()).is_meta
    with pytest.raises(WeightsUnavailableError, match="cannot fetch pretrained weights for tinynets:strided"):
        load_model("tinynets:strided", "pretrained")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)
        res = rfkit.erf("tinynets:strided", layers=["2"], images="noise", num_images=2, device="cpu", seed=0)
    erf_map = res.maps["2"]
    assert erf_map.shape == (32, 32)
    support = torch.nonzero(torch.as_tensor(erf_map) > 0)
    assert (support.max(0).values - support.min(0).values + 1).tolist() <= [15, 15]  # inside the analytic RF

    r = CliRunner().invoke(app, ["list-models", "--source", "tinynets"])
    assert r.exit_code == 0 and r.output.split() == ["tinynets:plain3", "tinynets:strided"]
    r = CliRunner().invoke(app, ["list-models", "--sources"])
    assert "tinynets: hand-built conv stacks" in r.output and "input NCHW" in r.output


def test_a_source_with_its_own_tracer_traces_specs_and_prepared_models(tinynets, monkeypatch):
    calls = []

    def own_trace(model, input_size, *, in_chans, registry, trust, spec):
        calls.append((type(model).__name__, spec))
        from rfkit.graph.tracing import trace_fx

        return trace_fx(nn.Sequential(nn.Conv2d(3, 1, 5)), input_size=input_size)

    monkeypatch.setitem(sys.modules, "tiny_tracer", types.SimpleNamespace(trace=own_trace))
    monkeypatch.setattr(type(tinynets), "tracer", "tiny_tracer:trace")
    assert rfkit.trace("tinynets:strided", input_size=16)["0"].size == (5, 5)
    prepared = rfkit.prepare("tinynets:plain3", weights="random", input_size=16)
    assert prepared.graph["0"].size == (5, 5)
    assert calls == [("str", ModelSpec("tinynets", "strided")), ("Sequential", ModelSpec("tinynets", "plain3"))]

    monkeypatch.setattr(type(tinynets), "tracer", "tiny_tracer:missing")
    with pytest.raises(rfkit.errors.TraceError, match="tracer 'tiny_tracer:missing' is not a function"):
        rfkit.trace("tinynets:strided")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "torchvison"], "error: unknown model source 'torchvison'. Close matches: torchvision."),
        (["--source", "file"], "error: the file source has no list of models: its models are your files"),
        (["--source", "timm", "no_such_net*"], "error: no model matches 'no_such_net*' in source 'timm'"),
    ],
)
def test_list_models_source_errors_are_one_line(args, message, capfd):
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["list-models", *args])
    err = capfd.readouterr().err
    assert e.value.code == 1 and err.strip().splitlines() == [err.strip()] and err.startswith(message)


def test_list_models_source_lists_what_the_library_lists():
    import timm
    import torchvision

    r = CliRunner().invoke(app, ["list-models", "--source", "torchvision", "resnet*"])
    expected = sorted(f"torchvision:{n}" for n in torchvision.models.list_models() if n.startswith("resnet"))
    assert r.exit_code == 0 and sorted(r.output.split()) == expected
    r = CliRunner().invoke(app, ["list-models", "--source", "timm", "test_*"])
    assert r.output.split() == timm.list_models("test_*")
