"""The extension registries (op rules, ERF methods and metrics, figure types, presets, CLI commands) and the
public face (``import rfkit``, ``rfkit.errors``, ``to_frame`` on every result), each checked against values
computed another way: by hand, by torch.autograd, by a loop over the same bootstrap resamples, or from the
dicts a frame is made of."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfkit
from rfkit.effective.bootstrap import _interval, resample_counts
from rfkit.effective.methods import ERF_METHODS, ERFMethod, register_method
from rfkit.effective.metric_registry import ERF_METRICS, ERFMetric, register_metric
from rfkit.effective.metrics import compute_metrics
from rfkit.errors import (
    ArgumentError,
    ERFMethodError,
    ERFMetricError,
    FigureTypeError,
    PresetError,
    RFKitError,
    RFKitWarning,
    RuleFailedWarning,
    UnsupportedOpError,
)
from rfkit.graph.registry import DEFAULT_REGISTRY as R
from rfkit.registry import NamedRegistry
from rfkit.report.figures.registry import FIGURE_TYPES, FigureType, figure_type_names, register_figure_type
from rfkit.report.presets import PRESETS, Preset, apply_preset, get_preset, register_preset

PACKAGE = Path(rfkit.__file__).parent


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))


@pytest.fixture(scope="module")
def images():
    return torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def res(images):
    """An ERF of two layers on 8 independent images: enough for bootstrap intervals."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFKitWarning)
        return rfkit.erf(
            _net(), layers=["0", "2"], images=images, num_images=8, input_size=32, device="cpu", bootstrap=50
        )


# ------------------------------------------------------------------------------------------------ op rules
class _Blur(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 3, stride=2, padding=1)


def _blur_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Blur(), nn.Conv2d(4, 4, 3, padding=1))


def test_a_rule_with_ints_and_default_dilation_gives_the_hand_computed_rf_and_the_measured_support():
    with R.scoped():
        R.module(_Blur, leaf=True)(lambda ctx: ctx.local_op(kernel=3, stride=2, pad=1))
        g = rfkit.trace(_blur_net(), input_size=32)
        report = rfkit.verify(_blur_net(), input_size=32, estimate=False)
    # conv 3; blur: 3 + (3 - 1) * 1 = 5, stride 2; conv: 5 + (3 - 1) * 2 = 9; centre of unit 0: 0 (pad 1 twice)
    assert (g["1"].size, g["1"].stride, g["2"].size, g["2"].center) == ((5, 5), (2, 2), (9, 9), (0, 0))
    assert g.incomplete is None and not g.unsupported
    assert report.ok and {c.status for c in report.checks} >= {"pass"}, report.to_frame()


def test_a_broken_rule_is_one_warning_naming_rule_op_node_and_error_and_the_graph_is_incomplete():
    def broken_blur(ctx):
        return {}["kernel"]

    with R.scoped(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        R.module(_Blur, leaf=True)(broken_blur)
        g = rfkit.trace(_blur_net(), input_size=32)
    failed = [w for w in caught if issubclass(w.category, RuleFailedWarning)]
    assert len(failed) == 1, [str(w.message) for w in caught]
    text = str(failed[0].message)
    for part in ("broken_blur", "_Blur", "node _1", "module 1", "KeyError: 'kernel'"):
        assert part in text, text
    assert "KeyError: 'kernel'" in g.incomplete and "_1" in g.incomplete
    assert math.isnan(g["1"].size[0]) and math.isnan(g["2"].size[0])  # unknown, and everything after it
    assert g["0"].size == (3, 3)  # before it: exact
    assert [u.op for u in g.unsupported] == [f"{__name__}._Blur"]


def test_a_rule_that_cannot_model_its_op_is_unsupported_without_a_warning():
    def refuses(ctx):
        raise UnsupportedOpError("blur along channels")

    with R.scoped(), warnings.catch_warnings():
        warnings.simplefilter("error", RuleFailedWarning)
        R.module(_Blur, leaf=True)(refuses)
        g = rfkit.trace(_blur_net(), input_size=32)
    assert g.incomplete is None
    assert g.unsupported[0].reasons == ("blur along channels",)
    assert math.isnan(g["2"].size[0])


# ----------------------------------------------------------------------------------- the named registry
def test_named_registry_refuses_taken_names_names_close_matches_and_scopes():
    r = NamedRegistry("colour", PresetError)
    r.register("magma", 1)
    with pytest.raises(PresetError, match="registered already"):
        r.register("magma", 2)
    assert r.register("magma", 2, replace=True) == 2
    with pytest.raises(PresetError, match=r"unknown colour 'magam' \(close matches: magma\); use one of magma"):
        r.get("magam")
    with pytest.raises(PresetError, match="non-empty name"):
        r.register("", 3)
    with r.scoped():
        r.register("viridis", 3)
        assert r.names() == ["magma", "viridis"]
    assert r.names() == ["magma"] and "viridis" not in r and r.unregister("magma") == 2 and len(r) == 0


# -------------------------------------------------------------------------------------------- ERF methods
def test_erf_methods_are_records_and_an_unknown_one_names_close_matches():
    assert ERF_METHODS.names()[:2] == ["replknet", "openerf"]
    with pytest.raises(ERFMethodError, match=r"'replknt' \(close matches: replknet\)") as e:
        rfkit.erf(_net(), images="noise", num_images=1, input_size=16, method="replknt", device="cpu")
    assert isinstance(e.value, ArgumentError)  # what code catching bad arguments catches
    with pytest.raises(ERFMethodError, match="must be callable"):
        register_method(ERFMethod("x", None, lambda g: g))


def test_a_registered_method_gives_the_map_torch_autograd_gives(images):
    """``|unit|`` summed over channels, ``|grad|`` summed over RGB, on the unit at (2, 3) by the method's own
    default: the same map as autograd image by image."""
    method = ERFMethod(
        "abs", lambda entries, batch: entries.abs().sum(), lambda g: g.abs().sum(dim=1), unit=lambda grid, t: (2, 3)
    )
    net = _net().eval()
    with ERF_METHODS.scoped():
        register_method(method)
        got = rfkit.erf(
            net, layers=["2"], method="abs", images=images, num_images=8, input_size=32, device="cpu", bootstrap=0
        )
        from rfkit_cli.options import check_method

        assert check_method("abs") == "abs"
    expected = np.zeros((32, 32))
    for x in images:
        x = x[None].clone().requires_grad_(True)
        net(x)[0, :, 2, 3].abs().sum().backward()
        expected += x.grad[0].abs().sum(dim=0).numpy() / len(images)
    assert got.unit["2"] == (2, 3) and got.method == "abs"
    np.testing.assert_allclose(got.maps["2"], expected, rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------------------------------------- ERF metrics
def _context_metric(m, ctx):
    """Hands back what it was given: the map's total, the centres and the RF."""
    return {
        "ctx_total": m.sum(),
        "ctx_center_x": ctx.center[1],
        "ctx_erf_center_x": ctx.erf_center[1],
        "ctx_rf_w": ctx.rf_size[1] if ctx.rf_size else math.nan,
    }


def test_a_registered_metric_sees_the_clean_map_and_both_centres():
    m = np.zeros((9, 9))
    m[4, 6] = 2.0
    m[0, 0] = -1.0  # clipped: a metric sees the non-negative part
    m[1, 1] = np.nan  # counted as 0
    columns = ("ctx_total", "ctx_center_x", "ctx_erf_center_x", "ctx_rf_w")
    with ERF_METRICS.scoped():
        register_metric(ERFMetric("ctx", _context_metric, columns))
        row = compute_metrics(m, center=(4, 4), rf_size=(3, 5), fit=False).as_dict()
    assert (row["ctx_total"], row["ctx_center_x"], row["ctx_erf_center_x"], row["ctx_rf_w"]) == (2.0, 4.0, 6.0, 5.0)
    assert tuple(row)[-4:] == columns  # its columns last


def test_a_metric_that_breaks_its_contract_is_refused():
    with ERF_METRICS.scoped():
        register_metric(ERFMetric("a", lambda m, c: {"col": 1.0}, ("col",)))
        with pytest.raises(ERFMetricError, match="column 'col' belongs to metric 'a'"):
            register_metric(ERFMetric("b", lambda m, c: {"col": 1.0}, ("col",)))
        register_metric(ERFMetric("liar", lambda m, c: {"other": 1.0}, ("said",)))
        with pytest.raises(ERFMetricError, match=r"'liar' returned \['other'\], not its columns \['said'\]"):
            compute_metrics(np.ones((5, 5)), center=(2, 2), fit=False)
    with ERF_METRICS.scoped():
        register_metric(ERFMetric("clash", lambda m, c: {"r50": 1.0}, ("r50",)))
        with pytest.raises(ERFMetricError, match="'r50' is one of rfkit's own"):
            compute_metrics(np.ones((5, 5)), center=(2, 2), fit=False).as_dict()


def _peak_share(m, ctx):
    return {"peak_share": m.max() / m.sum()}


def test_a_registered_metric_reaches_the_rows_and_its_interval_is_the_percentile_over_the_same_resamples(images):
    with ERF_METRICS.scoped():
        register_metric(ERFMetric("peak_share", _peak_share, ("peak_share",)))
        register_metric(ERFMetric("peak", lambda m, c: {"peak": m.max()}, ("peak",), interval=False))
        got = rfkit.erf(
            _net(), layers=["2"], images=images, num_images=8, input_size=32, device="cpu", bootstrap=40, seed=3
        )
    m = got.maps["2"].astype(np.float64)
    row = got.to_frame().iloc[0]
    assert row["peak_share"] == pytest.approx(m.max() / m.sum(), rel=1e-9)
    assert row["peak"] == pytest.approx(m.max(), rel=1e-9) and "peak_ci_low" not in row
    # the intervals by hand: the per-image maps, one group each, the same resample counts, a loop
    net = _net().eval()
    per_image = []
    for x in images:
        x = x[None].clone().requires_grad_(True)
        torch.relu(net(x)[0, :, 8, 8]).sum().backward()
        per_image.append(torch.relu(x.grad[0]).sum(dim=0).numpy().astype(np.float64))
    weights = resample_counts(8, 40, seed=got.bootstrap["seed"])
    values = [(w @ np.reshape(per_image, (8, -1))).max() / (w @ np.reshape(per_image, (8, -1))).sum() for w in weights]
    assert got.ci["2"]["peak_share"] == pytest.approx(_interval(values, 0.95), rel=1e-5)
    assert "peak" not in got.ci["2"]


# ------------------------------------------------------------------------------------------- figure types
def test_figure_types_are_looked_up_by_name_and_check_what_they_draw(res, tmp_path):
    assert figure_type_names()[:4] == ["overlay", "stages", "rf_growth", "convergence"]
    with pytest.raises(FigureTypeError, match=r"'stage' \(close matches: stages"):
        rfkit.figure("stage", res)
    with pytest.raises(FigureTypeError, match="draws from UnitGrid, not ERFResult"):
        rfkit.figure("rf_grid", res)
    assert rfkit.figure("rf_growth", res.graph).axes  # a graph alone is enough for RF growth
    path = rfkit.figure("overlay", res, "2", path=tmp_path / "o.png")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"


def test_a_figure_type_in_every_report_is_drawn_per_layer_with_the_report_options(res, tmp_path):
    from rfkit.report.figures import FigureOptions, write_figures

    seen = []

    def marks(result, layer, *, style):
        from matplotlib.figure import Figure

        seen.append((layer, style))
        return Figure()

    steps = []
    with FIGURE_TYPES.scoped():
        for name in ("overlay", "stages", "rf_growth", "convergence"):  # only the new one, to stay fast
            FIGURE_TYPES.unregister(name)
        register_figure_type(
            FigureType(
                "marks",
                marks,
                (rfkit.ERFResult,),
                per_layer=True,
                in_report=lambda r: True,
                report_options=lambda o: {"style": o.style},
            )
        )
        files = write_figures(tmp_path, res, FigureOptions(style="report"), progress=steps.append)
    assert seen == [("0", "report"), ("2", "report")]
    assert {k: p.name for k, p in files.items()} == {"marks:0": "marks_0.png", "marks:2": "marks_2.png"}
    assert steps == ["drawing figure 1 of 2", "drawing figure 2 of 2"]
    assert "marks" not in FIGURE_TYPES


# ------------------------------------------------------------------------------------------------ presets
def test_presets_are_one_registry_with_close_matches():
    assert get_preset("yolo").has_settings and not get_preset("tiny").has_settings
    with pytest.raises(PresetError, match=r"unknown preset 'yollo' \(close matches: yolo\)"):
        get_preset("yollo")
    with PRESETS.scoped():
        register_preset(Preset("two", ("resnet18", "resnet50"), layers=("layer4",)))
        assert apply_preset("two").layers == ("layer4",) and apply_preset("two", ["x"]).models == ("x",)
        with pytest.raises(PresetError, match="registered already"):
            register_preset(Preset("two", ("resnet18",)))
        with pytest.raises(PresetError, match="non-empty tuple"):
            register_preset(Preset("none", ()))
    assert "two" not in PRESETS


def test_list_models_shows_a_registered_preset(capsys):
    from rfkit_cli.app import main

    with PRESETS.scoped():
        register_preset(Preset("mine", ("resnet18",), "my one model"))
        try:
            main(["list-models", "--presets"])
        except SystemExit as e:
            assert e.code in (0, None)
    assert "my one model" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- commands
def test_the_app_is_the_command_table():
    from rfkit_cli.app import COMMANDS, app

    registered = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert sorted(registered) == sorted(c.name for c in COMMANDS)


# ----------------------------------------------------------------------------------------- the public face
def test_the_namespace_is_small_and_former_names_still_import():
    assert dir(rfkit) == sorted(rfkit.__all__)
    assert set(rfkit.__all__) == {
        *("trace", "erf", "attribute", "analyze", "prepare", "collect", "figure", "verify", "errors"),
        *("RFGraph", "RFInfo", "ERFResult", "AttributionResult", "VerifyResult", "AnalyzeResult", "Prepared"),
        "__version__",
    }
    from rfkit.analysis.analyze import Report
    from rfkit.graph.productivity import productivity
    from rfkit.verification.verify import VerifyReport

    assert rfkit.productivity is productivity and rfkit.VerifyResult is rfkit.VerifyReport is VerifyReport
    assert rfkit.AnalyzeResult is Report and rfkit.ModelNotFoundError is rfkit.errors.ModelNotFoundError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rfkit.nope  # noqa: B018


def _classes_deriving_from_rfkit_errors() -> list[str]:
    """``module:Class`` of every class defined in rfkit outside rfkit/errors.py whose base is a class of
    rfkit.errors (by name)."""
    names = {n for n, v in vars(rfkit.errors).items() if isinstance(v, type) and issubclass(v, BaseException)}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) in names for b in node.bases):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.name}")
    return found


def test_every_exception_and_warning_class_is_in_rfkit_errors():
    assert _classes_deriving_from_rfkit_errors() == []
    for name, cls in vars(rfkit.errors).items():
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls.__module__ == "rfkit.errors":
            assert issubclass(cls, (RFKitError, RFKitWarning)) or cls is UnsupportedOpError, name
    from rfkit.attribution.errors import MethodError
    from rfkit.io import OutputError
    from rfkit.pipeline.images import ImageWarning
    from rfkit.report.collect import CollectError
    from rfkit.report.presets import PresetError as OldPresetError
    from rfkit.report.site import SiteWarning

    errors = rfkit.errors
    assert (MethodError, OutputError, ImageWarning, CollectError, OldPresetError, SiteWarning) == (
        errors.MethodError,
        errors.OutputError,
        errors.ImageWarning,
        errors.CollectError,
        errors.PresetError,
        errors.SiteWarning,
    )


# -------------------------------------------------------------------------------------------- to_frame
def test_erf_result_frame_is_its_rf_and_metric_dicts(res):
    frame = res.to_frame()
    assert list(frame["layer"]) == ["0", "2"]
    for i, layer in enumerate(res.layers):
        row = frame.iloc[i]
        info = res.rf(layer)
        assert (row["rf_h"], row["rf_w"], row["stride_h"]) == (info.size[0], info.size[1], info.stride[0])
        assert (row["unit_h"], row["unit_w"]) == res.unit[layer] and row["finite"]
        for key, value in res.metrics[layer].as_dict().items():
            assert row[key] == value or (value is None and pd.isna(row[key])), key
        for key, (low, high) in res.ci[layer].items():
            assert (row[f"{key}_ci_low"], row[f"{key}_ci_high"]) == (low, high)
    assert (res.rf("0").size, res.rf("2").size) == ((5, 5), (9, 9))  # by hand: 5; 5 + (3 - 1) * 2


def test_analyze_result_frame_is_the_rows_of_its_metrics_json(res, tmp_path):
    """The report's per-layer rows as ``write_erf_files`` writes them (``metrics.json``; ``erf.csv`` is the
    same rows after the provenance columns), with each layer's productivity status."""
    import json

    from rfkit.graph.productivity import productivity
    from rfkit.report.erf_files import write_erf_files
    from rfkit.report.files import plain

    prod = productivity(res.graph, 16)
    report = rfkit.AnalyzeResult("Sequential", tmp_path, res, prod, (16, 16))
    statuses = {layer: prod[res.nodes[layer]].status.value for layer in res.layers}
    write_erf_files(res, tmp_path, statuses, {"model": "Sequential"})
    written = json.loads((tmp_path / "metrics.json").read_text())["layers"]
    frame = report.to_frame()
    assert list(frame["status"]) == [statuses[layer] for layer in res.layers] and set(statuses.values()) != {""}
    assert [plain(r) for r in frame.to_dict("records")] == [written[layer] for layer in res.layers]


def test_graph_verify_and_attribution_frames_are_their_records(res):
    g = res.graph
    frame = g.to_frame()
    assert list(frame["node"]) == list(g.records)
    assert frame.set_index("node").loc["_2", "rf_h"] == g["_2"].size[0]
    report = rfkit.verify(_net(), input_size=32, estimate=False)
    assert report.to_frame().to_dict("records") == [c.__dict__ for c in report.checks]
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFKitWarning)
        attribution = rfkit.attribute(
            net, images="noise", num_images=2, methods="saliency", input_size=8, device="cpu", target=0
        )
    frame = attribution.to_frame()
    from rfkit.report.files import plain  # NaN as None: NaN != NaN in a dict comparison

    assert [plain(r) for r in frame.to_dict("records")] == [plain(r) for r in attribution.rows()] and len(frame) == 2
    assert list(frame["score"]) == pytest.approx([float(s) for s in attribution.scores])
