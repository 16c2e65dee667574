"""`rfkit analyze`, batch runs, `rfkit report` and `rfkit list-models` through Typer's test runner.

The golden files in tests/golden/tiny_net/ are the outputs for tests/golden/tiny_net.py (conv 3x3 s2 p1,
ReLU, conv 3x3 p1, unit weights, bias 100 so the ReLU never clips) at 16x16, checked by hand:

- layer ``0``: RF 3, stride 2, centre0 = (3 - 1) / 2 - 1 = 0, padding 1; unit (4, 4) of the 8x8 map is
  centred on pixel 8;
- layer ``2``: RF 3 + (3 - 1) * 2 = 7, stride 2, centre0 0, padding 3, the unit sees pixels 5..11;
- its ERF is 12 * outer(a, a) with a = (1, 1, 2, 1, 2, 1, 1) (three RGB channels, two channels in each
  conv, the paths through the stride-2 layer), so the 95% interval is the whole RF (7, ratio 1) and
  RepLKNet's 0.5 box is 5x5 (area 25 / 256 = 0.0977): the 3x3 box holds 7.97 of the 37.0 total of
  log10(m + 1) / max, the 5x5 box 19.9;
- productivity at 16: every layer productive (RF 7 < 16); input range: min = 1 + rf_in of the last
  conv = 4, max = 7.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rfkit.report.provenance import COLUMNS as PROVENANCE
from rfkit_cli.app import app, main, normalise_argv

GOLDEN = Path(__file__).parent / "golden"
HAS_DOT = shutil.which("dot") is not None
NO_DOT_LINE = (
    "GraphViz's `dot` is not installed: `graph.dot` holds the graph (render it with "
    "`dot -Tsvg graph.dot -o graph.svg` after `apt-get install graphviz` / `brew install graphviz`)."
)
runner = CliRunner()


def golden_report() -> list[str]:
    """The golden report.md; without GraphViz's ``dot`` the drawing is replaced by a note and not listed."""
    lines = (GOLDEN / "tiny_net" / "report.md").read_text().splitlines()
    if HAS_DOT:
        return lines
    return [
        NO_DOT_LINE if line.startswith("![Graph at module depth") else line
        for line in lines
        if not line.startswith("- [graph.svg]")
    ]


def invoke(*args):
    return runner.invoke(app, normalise_argv(list(args)))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    shutil.copy(GOLDEN / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    return "tiny_net.py:build"


TINY_ARGS = ["-l", "0,2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-q", "--trust"]


def test_analyze_writes_the_golden_files(tiny, tmp_path):
    r = invoke("analyze", tiny, *TINY_ARGS, "--out", "out")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "out" / "tiny_net-build"
    assert (folder / "graph.dot").read_text() == (GOLDEN / "tiny_net" / "graph.dot").read_text()
    # layers.csv: the provenance columns of the run (tests/test_provenance.py), then the golden graph columns
    layers = pd.read_csv(folder / "layers.csv", keep_default_na=False)
    assert tuple(layers.columns[: len(PROVENANCE)]) == PROVENANCE
    golden = pd.read_csv(GOLDEN / "tiny_net" / "layers.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(layers.drop(columns=list(PROVENANCE)), golden)
    report = (folder / "report.md").read_text().splitlines()
    golden = golden_report()
    assert len(report) == len(golden)
    for got, want in zip(report, golden):
        if want != "| rfkit | VERSION |":
            assert got == want
    m = np.load(folder / "maps" / "2.npy")
    a = np.array([1, 1, 2, 1, 2, 1, 1])
    np.testing.assert_allclose(m[5:12, 5:12], 12 * np.outer(a, a), rtol=1e-6)
    assert m.sum() == pytest.approx(12 * a.sum() ** 2, rel=1e-6)


def test_analyze_folder_is_complete(tiny, tmp_path):
    r = invoke("analyze", tiny, *TINY_ARGS, "--out", "out")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "out" / "tiny_net-build"
    run = json.loads((folder / "run.json").read_text())
    assert run["model"] == "tiny_net.py:build" and run["num_images"] == 2 and run["input_size"] == [16, 16]
    assert run["weights_kind"] == "as-given" and run["layers"] == ["0", "2"]
    assert run["input_range"] == {"min": [4, 4], "max": [7, 7]}
    for f in (
        "figures/overlay_0.png",
        "figures/overlay_2.png",
        "figures/stages.png",
        "figures/rf_growth.png",
        "graph.dot",
        "erf.csv",
        "metrics.json",
        "maps/0.npy",
    ):
        assert (folder / f).stat().st_size > 0, f
    assert (folder / "graph.svg").is_file() == HAS_DOT  # drawn only where GraphViz's dot is installed
    erf = pd.read_csv(folder / "erf.csv", dtype={"layer": str}).set_index("layer")
    assert erf.loc["2", "status"] == "productive" and erf.loc["2", "rf_h"] == 7
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_batch_goes_on_after_a_failure_and_summarises(tiny, tmp_path):
    r = invoke("analyze", tiny, "no_such_model_xyz", *TINY_ARGS, "--out", "out")
    assert r.exit_code == 1
    assert "summary" in r.output and "failed" in r.output and "no_such_model_xyz" in r.output
    assert "1 of 2 model(s) failed" in r.output
    assert (tmp_path / "out" / "tiny_net-build" / "run.json").is_file()


def test_stop_on_error_stops_at_the_first_failure(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "no_such_model_xyz", tiny, *TINY_ARGS, "--out", "out", "--stop-on-error"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "no_such_model_xyz" in err[-1]
    assert not (tmp_path / "out" / "tiny_net-build").exists()


def test_ctrl_c_keeps_finished_reports_and_skip_existing_resumes(tiny, tmp_path, monkeypatch, capsys):
    import rfkit.analysis.analyze as analyze_mod

    shutil.copy(tmp_path / "tiny_net.py", tmp_path / "other_net.py")
    real = analyze_mod.write_figures
    calls = {"n": 0}

    def interrupted(folder, result, *options):
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C while the second report is being written
            raise KeyboardInterrupt
        return real(folder, result, *options)

    monkeypatch.setattr(analyze_mod, "write_figures", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["analyze", tiny, "other_net.py:build", *TINY_ARGS, "--out", "out"])
    assert exc.value.code == 130
    assert "Rerun with --skip-existing" in capsys.readouterr().err
    out = tmp_path / "out"
    assert (out / "tiny_net-build" / "run.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["tiny_net-build"]  # nothing half-written

    first = (out / "tiny_net-build" / "run.json").stat().st_mtime_ns
    r = invoke("analyze", tiny, "other_net.py:build", *TINY_ARGS, "--out", "out", "--skip-existing")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output
    assert (out / "tiny_net-build" / "run.json").stat().st_mtime_ns == first
    assert (out / "other_net-build" / "run.json").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["no_such_model_xyz"], "no_such_model_xyz"),
        (["tiny_net.py:build", "-l", "01"], "Close matches"),
        (["tiny_net.py:build", "--images", "EMPTY"], "no image files"),
        (["tiny_net.py:build", "--method", "x"], "--method"),
        (["--preset", "nope"], "unknown preset"),
        ([], "no model given"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tiny, tmp_path, args, message, capsys):
    (tmp_path / "EMPTY").mkdir()
    base = [a for a in TINY_ARGS if a != "-q"]
    if "--images" in args:
        base = [a for i, a in enumerate(base) if a != "--images" and (i == 0 or base[i - 1] != "--images")]
    with pytest.raises(SystemExit) as exc:
        main(["analyze", *args, *base, "--out", "out", "--stop-on-error", "-q"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:") and message in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_unwritable_output_folder(tiny, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["analyze", tiny, *TINY_ARGS, "--out", str(blocker / "out"), "--stop-on-error"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write to the output folder") and "--out" in err


def test_corrupt_images_are_skipped_and_reported(tiny, tmp_path):
    from PIL import Image

    imgs = tmp_path / "imgs"
    (imgs / "sub").mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(imgs / "a.png")
    Image.fromarray(np.zeros((18, 18, 3), np.uint8)).save(imgs / "sub" / "b.jpg")
    (imgs / "broken.jpg").write_bytes(b"not a jpeg at all")
    args = [a for a in TINY_ARGS if a != "noise"]
    args[args.index("--images") + 1 : args.index("--images") + 1] = [str(imgs)]
    r = invoke("analyze", tiny, *args, "--out", "out")
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "out" / "tiny_net-build" / "run.json").read_text())
    assert run["num_images"] == 2
    assert any("1 unreadable image file(s) skipped" in w and "broken.jpg" in w for w in run["warnings"])
    assert "broken.jpg" in (tmp_path / "out" / "tiny_net-build" / "report.md").read_text()


def test_report_site_builds_strict(tiny, tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    import subprocess
    import sys

    shutil.copy(tmp_path / "tiny_net.py", tmp_path / "other_net.py")
    r = invoke("analyze", tiny, "other_net.py:build", *TINY_ARGS, "--out", "out")
    assert r.exit_code == 0, r.output
    r = invoke("report", "out", "--site", "site")
    assert r.exit_code == 0, r.output
    home = (tmp_path / "site" / "docs" / "index.md").read_text()
    assert "tiny_net.py:build" in home and "other_net.py:build" in home
    compare = (tmp_path / "site" / "docs" / "compare.md").read_text()
    assert "](figures/compare_final_1.png)" in compare  # the final layers of both models in one grid
    assert (tmp_path / "site" / "docs" / "figures" / "compare_final_1.png").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"],
        cwd=tmp_path / "site",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "site" / "models" / "tiny_net-build" / "index.html").is_file()


def test_report_without_analyses_is_an_error(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nothing"), "--site", str(tmp_path / "site")])
    assert exc.value.code == 1 and "no finished analysis" in capsys.readouterr().err


def test_list_models():
    r = invoke("list-models", "--preset", "openerf")
    names = r.output.split()
    assert r.exit_code == 0 and len(names) == 33 and "swinv2_cr_small_ns_224.sw_in1k" in names
    r = invoke("list-models", "resnet5*")
    assert r.exit_code == 0 and "resnet50" in r.output.split() and "resnet18" not in r.output.split()
    r = invoke("list-models", "--presets")
    assert "openerf (33 models)" in r.output
