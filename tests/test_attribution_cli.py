"""`rfkit attribute`: the files it writes (maps, CSV, figure, report, manifest), what it refuses to overwrite,
and one-line errors with exit code 1 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rfkit_cli.app import app, main, normalise_argv

runner = CliRunner()
BASE = ["test_resnet", "-n", "2", "--weights", "random-safe", "--input-size", "32", "--device", "cpu", "--steps", "4"]


def invoke(*args):
    return runner.invoke(app, normalise_argv(["attribute", *args]))


def test_writes_maps_csv_figure_and_report(tmp_path):
    out = tmp_path / "maps of <net>"
    r = invoke(
        *BASE,
        "--methods",
        "saliency,ig,gradcam++,gradcam*saliency",
        "--faithfulness",
        "--faithfulness-steps",
        "4",
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    for name in ("saliency", "ig", "gradcam_pp", "gradcam_x_saliency"):
        m = np.load(out / "maps" / f"{name}.npy")
        assert m.shape == (2, 32, 32) and m.dtype == np.float32 and np.isfinite(m).all()
    assert np.load(out / "maps" / "gradcam_pp.npy").min() >= 0  # a CAM map is ReLU'd
    df = pd.read_csv(out / "attribution.csv")
    assert len(df) == 2 * 4 and set(df.method) == {"saliency", "ig", "gradcam++", "gradcam*saliency"}
    assert df[df.method == "ig"].completeness_error.notna().all() and df.deletion_auc.between(0, 1).all()
    assert (out / "figures" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "![Contribution maps](figures/grid.png)" in report and "`gradcam++`" in report
    assert "Random weights" in report and "CAM layer: layer4" in report
    listed = json.loads((out / "attribution.json").read_text())["files"]
    assert "maps/gradcam_pp.npy" in listed and "report.md" in listed


def test_paper_style_column_normalisation_and_given_steps(tmp_path):
    out = tmp_path / "paper"
    r = invoke(*BASE, "--methods", "saliency,ig", "--style", "paper", "--normalise", "column", "-o", str(out))
    assert r.exit_code == 0, r.output
    for ext in ("png", "pdf", "svg"):
        assert (out / "figures" / f"grid.{ext}").stat().st_size > 0
    doc = json.loads((out / "attribution.json").read_text())
    assert {"figures/grid.pdf", "figures/grid.svg"} <= set(doc["files"])
    assert doc["figure"]["normalise"] == "column" and doc["figure"]["titles"] == ["Saliency", "Integrated Gradients"]
    df = pd.read_csv(out / "attribution.csv")
    assert (df[df.method == "ig"].steps == 4).all() and df[df.method == "saliency"].steps.isna().all()
    report = (out / "report.md").read_text()
    assert "Integrated Gradients (`ig`)" in report and "path steps 4, as given" in report
    assert "paper style; each method's column divided by" in report
    assert "Integrated Gradients" in r.output and "path steps 4, as given" in r.output


def test_rerun_replaces_its_own_files_only(tmp_path):
    out = tmp_path / "run"
    assert invoke(*BASE, "--methods", "saliency,ig", "-o", str(out), "-q").exit_code == 0
    assert invoke(*BASE, "--methods", "saliency", "-o", str(out), "-q").exit_code == 0
    assert not (out / "maps" / "ig.npy").exists()  # the earlier run's map of a method not asked for again
    (out / "maps" / "gradcam.npy").write_bytes(b"someone else's")
    r = invoke(*BASE, "--methods", "gradcam", "-o", str(out), "-q")
    assert r.exit_code == 1 and "did not write" in str(r.exception)
    assert (out / "maps" / "gradcam.npy").read_bytes() == b"someone else's"


def test_unit_target_reports_the_rf_window_check(tmp_path):
    r = invoke(*BASE, "--methods", "saliency,layercam", "--target", "layer1@2,2", "-o", str(tmp_path / "u"))
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "u" / "attribution.csv")
    assert (df[df.method == "saliency"].outside_rf == 0).all() and df[df.method == "layercam"].outside_rf.isna().all()
    assert "analytic RF window" in (tmp_path / "u" / "report.md").read_text()


def test_quiet_still_prints_warnings_on_stderr_and_where_it_wrote(capsys, tmp_path, monkeypatch):
    """Without -o the maps go to rfkit-reports/MODEL-attribution (beside the analyze reports), said in one
    stdout line even with -q."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "attribute",
                "test_resnet",
                "-n",
                "1",
                "--weights",
                "random",
                "--input-size",
                "32",
                "--device",
                "cpu",
                "-q",
            ]
        )
    assert exc.value.code in (0, None)
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "init trap" in captured.err
    assert captured.out.splitlines() == [
        "wrote rfkit-reports/test_resnet-attribution: report.md, attribution.csv, figures/grid.png, "
        "figures/grid.caption.md, figures/grid.caption.tex and 1 map(s) in maps/"
    ]
    folder = tmp_path / "rfkit-reports" / "test_resnet-attribution"
    assert json.loads((folder / "attribution.json").read_text())["run"]["model"] == "test_resnet"
    assert np.load(folder / "maps" / "saliency.npy").shape == (1, 32, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--methods", "saliancy"), "close matches: saliency"),
        (("--target", "5000"), "outside the head's 1000 classes"),
        (("--target", "layer2@99,99"), "outside the 4x4 grid of layer 'layer2'"),  # 32 px / stride 8
        (("--methods", "gradcam", "--cam-layer", "fc"), "needs a layer with a spatial grid"),
        (("--methods", "ig", "--baseline", "grey"), "unknown baseline 'grey'"),
        (("--methods", "ig", "--ig-method", "simpson"), "unknown IG integration rule"),
        (("--target", "layer2@1;1"), "LAYER@i,j"),
        (("--normalise", "row"), "normalise 'row': use image"),
        (("--style", "poster"), "style 'poster': use report or paper"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, *args])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert not any("Traceback" in line for line in err)
