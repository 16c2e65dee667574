"""Sizes a model cannot run at are "not defined", not rfkit failures (issue 24, item 2): the cases of
benchmarks/results/atlas_timm.md (EfficientFormer's fixed 7x7 attention bias, a patch-14 ViT at 640 px) get the
model's own reason and status not-defined in failures.csv, apart from rfkit's failures, on the site and in the
coverage report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch.nn as nn

import rfkit
from rfkit.atlas import build_atlas, load, load_failures
from rfkit.atlas.undefined import undefined_reason
from rfkit.errors import TraceError
from rfkit.models.spec import build_model

ROOT = Path(__file__).resolve().parents[1]


def test_efficientformer_at_640_is_not_defined_with_its_own_reason(tmp_path):
    """EfficientFormer-L1's last stage adds an attention bias of a fixed 7x7 grid (49 positions): at 640 px the
    grid is 20x20 and its own forward pass fails on that add, in timm's code."""
    build_atlas(tmp_path, models="efficientformer_l1", sizes=[(640, 640)], recycle=None)
    failures = load_failures(tmp_path)
    assert failures[["model", "input_size", "status"]].values.tolist() == [
        ["efficientformer_l1", "640x640", "not-defined"]
    ]
    reason = failures["reason"][0]
    assert reason.startswith("the model itself cannot run at 640x640: RuntimeError: ")
    assert "49" in reason and "timm/models/efficientformer.py:" in reason and "attention_bias" in reason
    df = load(tmp_path)
    g = rfkit.trace("efficientformer_l1")
    final = df[df["is_final"]].iloc[0]
    assert set(df["input_h"]) == {224} and final["rf_h"] == g[final["layer"]].size[0]  # its 224 px rows, whole


def test_a_patch_14_vit_at_640_is_not_defined_with_its_own_reason():
    """deepseek_vit_412m (patch 14, built for each size as the atlas builds it): 640 is not a multiple of 14."""
    model = build_model("deepseek_vit_412m")
    reason = undefined_reason("deepseek_vit_412m", model, (224, 224), (640, 640), TraceError("trace failed"))
    assert reason is not None and "AssertionError" in reason and "divisible by patch size (14)" in reason
    assert "(640)" in reason  # the model's own message, with the size (not a traced Proxy)
    assert undefined_reason("deepseek_vit_412m", model, (224, 224), (448, 448), TraceError("x")) is None  # 32 x 14


def test_a_model_that_runs_at_the_size_keeps_rfkits_failure(tmp_path, monkeypatch):
    """test_convnext3 runs at 96 px: a trace failure there is rfkit's (status failed); one at 8 px, where its
    downsampling leaves nothing, is the model's (not-defined, with the smallest size it takes)."""
    import rfkit.atlas.build as build

    real = build._graph_at

    def broken(m, fxm, size):
        if size == (96, 96):
            raise TraceError("an op without a rule (as a bug of rfkit would)")
        return real(m, fxm, size)

    monkeypatch.setattr(build, "_graph_at", broken)
    build_atlas(tmp_path, models="test_convnext3", sizes=[(96, 96), (8, 8)], recycle=None)
    failures = load_failures(tmp_path).set_index("input_size")
    assert failures.loc["96x96", "status"] == "failed" and "an op without a rule" in failures.loc["96x96", "reason"]
    assert failures.loc["8x8", "status"] == "not-defined" and "smallest square input" in failures.loc["8x8", "reason"]


def test_a_model_that_does_not_run_on_meta_even_at_its_size_cannot_be_told_apart():
    class ReadsValues(nn.Module):
        def forward(self, x):
            return x * float(x.mean())  # .item() of a meta tensor raises at any size

    assert undefined_reason(None, ReadsValues().to("meta"), (32, 32), (64, 64), TraceError("x")) is None


def _coverage():
    spec = importlib.util.spec_from_file_location("atlas_coverage", ROOT / "benchmarks" / "atlas_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_report_and_the_site_keep_them_apart(tmp_path):
    models = tmp_path / "A" / "models"
    models.mkdir(parents=True)
    stored = [
        ("vit_a", [{"input_size": "640x640", "status": "not-defined", "reason": "AssertionError: divisible"}]),
        ("net_b", [{"input_size": "640x640", "status": "failed", "reason": "TraceError: no rule"}]),
        ("net_c", [{"input_size": "640x640", "reason": "older file: a failure"}]),
        ("net_d", []),
    ]
    for name, failures in stored:
        data = {"source": "timm", "model": name, "rows": [{}] * 5, "failures": failures, "seconds": 1.0}
        (models / f"{name}.json").write_text(json.dumps(data))
    text = _coverage().summary(tmp_path / "A", None, [], 2, "")
    assert "| timm | 4 | 2 (50.0%) | 0 | 2 | 1 | 0 | 20 |" in text  # vit_a counts as traced: not rfkit's failure
    rfkit_part = text.split("## rfkit failures")[1].split("## ")[0]
    undefined_part = text.split("## Not defined at the size")[1]
    assert "net_b" in rfkit_part and "net_c" in rfkit_part and "vit_a" not in rfkit_part
    assert "vit_a" in undefined_part and "net_b" not in undefined_part


def test_the_site_lists_them_apart(tmp_path):
    import pandas as pd

    from rfkit.atlas.site import write_atlas_site

    build_atlas(tmp_path / "A", models="test_convnext3", sizes=[(8, 8)], recycle=None)
    gaps = load_failures(tmp_path / "A")
    failed = {"source": "timm", "model": "other_net", "family": "x", "input_size": "default", "status": "failed",
              "reason": "TraceError: no rule for <op>"}  # fmt: skip
    write_atlas_site(load(tmp_path / "A"), tmp_path / "S", gaps=pd.concat([gaps, pd.DataFrame([failed])]))
    missing = (tmp_path / "S" / "docs" / "missing.md").read_text()
    titles = ("rfkit failures (1)", "Not defined at this size (1)", "No trained weights (0)")
    ours, undefined, _ = (missing.split(f"## {t}")[1] for t in titles)
    assert "other_net" in ours and "&lt;op&gt;" in ours and "test_convnext3" not in ours.split("## ")[0]
    assert "[test_convnext3](models/" in undefined and "8x8" in undefined and "other_net" not in undefined
    page = next((tmp_path / "S" / "docs" / "models").glob("*.md")).read_text()
    assert "## Not in the table" in page and "- Not defined at 8x8: the model itself cannot run at 8x8" in page
    assert "Not in the table: missing.md" in (tmp_path / "S" / "mkdocs.yml").read_text()
