"""A caption pair beside every figure, written from what the figure drew; no absolute local path in what people
read; fonts settable (issue 21 items 5 and 8)."""

from __future__ import annotations

import json
import os

import pytest
import torch.nn as nn
from typer.testing import CliRunner

import rfkit
from rfkit.errors import ArgumentError
from rfkit.report.figures.captions import MD_MARK, TEX_MARK, caption_paths, latex_text
from rfkit.report.figures.compare import random_rows_text
from rfkit.report.figures.looks import FigureOptions
from rfkit.report.figures.overlay import save_overlay
from rfkit.report.figures.stage_grid import save_stage_grid, stage_grid_figure
from rfkit_cli.app import app, main, normalise_argv

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NET = (
    "import torch.nn as nn\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))\n"
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    f = tmp_path_factory.mktemp("models") / "net.py"
    f.write_text(NET)
    kw = dict(images="noise", num_images=2, input_size=24, device="cpu", weights="random")
    return rfkit.erf(f"{f}:build", layers=["0", "2"], trust=True, **kw)


def _caption(path):
    md, tex = caption_paths(path)
    return md.read_text(encoding="utf-8"), tex.read_text(encoding="utf-8")


def test_latex_escape_by_hand():
    assert latex_text("50% of a_b & {c} #1 $2") == r"50\% of a\_b \& \{c\} \#1 \$2"
    assert latex_text("7×7, σ\\x") == r"7$\times$7, $\sigma$\textbackslash{}x"
    assert latex_text("a\nb\x1b[2J") == "a b [2J"


def test_overlay_caption_names_what_is_drawn(result, tmp_path):
    paths = save_overlay(result, "2", [tmp_path / "o.png", tmp_path / "o.svg"], gaussian=False, zoom=False)
    assert [p.name for p in paths] == ["o.png", "o.svg"]
    md, tex = _caption(tmp_path / "o.png")  # one pair for both formats, named after the stem
    assert md.startswith(MD_MARK + "\n") and tex.startswith(TEX_MARK + "\n\\caption{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.caption.md", "o.caption.tex", "o.png", "o.svg"]
    # the 5x5 after 3x3 conv at the unit (12, 12) of a 24 px input: a 7x7 box, inside the input, no arrows
    assert "layer 2" in md and "centre unit (12, 12)" in md and "each map divided by its own maximum" in md
    assert "colour floor 0.001" in md and "solid box is the analytic receptive field" in md
    assert "cross marks the unit" in md
    assert "Gaussian" not in md and "arrows" not in md and "zoomed" not in md  # not drawn: not described
    assert "random init, not a trained network" in md and "2 image(s) (noise (seed 0))" in md
    assert "input 24×24 px" in md and "ERF method replknet" in md
    assert "input 24$\\times$24 px" in tex


def test_overlay_caption_follows_the_markers_drawn(result, tmp_path):
    save_overlay(result, "2", tmp_path / "z.png", gaussian=False, zoom=True)
    md, _ = _caption(tmp_path / "z.png")
    assert "a zoomed view enlarges a small RF" in md


def test_stage_grid_caption_and_title_say_per_panel_or_shared(result, tmp_path):
    save_stage_grid(result, tmp_path / "own.png", shared=False)
    save_stage_grid(result, tmp_path / "one.png", shared=True)
    own, one = _caption(tmp_path / "own.png")[0], _caption(tmp_path / "one.png")[0]
    assert "each map divided by its own maximum" in own and "one colour scale" not in own
    assert "largest value over all panels (one colour scale)" in one
    title = _title(stage_grid_figure(result, shared=False))
    assert "each panel on its own colour scale" in title and "one colour scale" not in title
    assert "one colour scale" in _title(stage_grid_figure(result, shared=True))


def _title(fig) -> str:
    from matplotlib.text import Text

    return next(t.get_text() for t in fig.findobj(Text) if "colour scale" in t.get_text())


def test_random_rows_counted_not_some():
    random = [{"weights_kind": "random"}, {"weights_kind": "random-safe"}]
    assert random_rows_text(random).startswith("RANDOM WEIGHTS in every row")
    assert random_rows_text(random + [{"weights_kind": "pretrained"}]).startswith("RANDOM WEIGHTS in 2 of 3 rows")
    assert random_rows_text([{"weights_kind": "checkpoint"}]) == ""


def test_font_family_reaches_the_svg_text(result, tmp_path):
    with FigureOptions(font="serif").applied():
        save_overlay(result, "2", tmp_path / "serif.svg")
    save_overlay(result, "2", tmp_path / "plain.svg")
    serif, plain = ((tmp_path / n).read_text() for n in ("serif.svg", "plain.svg"))
    assert "DejaVu Serif" in serif  # matplotlib's serif family on this machine, in the text's style
    assert "DejaVu Serif" not in plain and "DejaVu Sans" in plain


def test_style_file_applies_and_bad_ones_are_one_line(result, tmp_path):
    good = tmp_path / "mono.mplstyle"
    good.write_text("font.family: monospace\nsavefig.bbox: standard\n")
    assert FigureOptions(style_file=str(good)).rc() == {"font.family": ["monospace"]}  # savefig.* is rfkit's
    assert FigureOptions(style_file=str(good), font="serif").rc()["font.family"] == ["serif"]  # --font wins
    bad = tmp_path / "bad.mplstyle"
    bad.write_text("lines.linewidth: thick\n")
    for kwargs, words in (
        ({"style_file": str(bad)}, "style file"),
        ({"style_file": str(tmp_path / "none.mplstyle")}, "no such file"),
        ({"font": "No Such Font 42"}, "is not installed"),
    ):
        with pytest.raises(ArgumentError, match=words) as e:
            FigureOptions(**kwargs)
        assert "\n" not in str(e.value)


def _invoke(*args):
    return CliRunner().invoke(app, normalise_argv([str(a) for a in args]))


def test_cli_bad_style_file_is_one_line_exit_1(tmp_path, capsys):
    f = tmp_path / "net.py"
    f.write_text(NET)
    bad = tmp_path / "bad.mplstyle"
    bad.write_text("no.such.key: 3\n")
    args = ["erf", f"{f}:build", "--trust", "-l", "2", "--images", "noise", "-n", "2", "--input-size", "16"]
    for more in (["--style-file", bad], ["--font", "No Such Font 42"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in [*args, "-o", tmp_path / "o", *more, "-q"]])
        out = capsys.readouterr()
        text = (out.out + out.err).strip()
        assert exc.value.code == 1 and len(text.splitlines()) == 1, text
        assert ("unknown key 'no.such.key'" in text or "is not installed" in text) and "Traceback" not in text
    assert not (tmp_path / "o" / "erf.csv").exists()  # refused before measuring


def test_erf_out_captions_and_no_absolute_path(tmp_path, monkeypatch):
    """``rfkit erf -o``: panels.png with its captions in the manifest; the FILE.py spec given by its absolute
    path (outside the working folder) is shown by file name in the captions and the metrics."""
    f = tmp_path / "models" / "net.py"
    f.parent.mkdir()
    f.write_text(NET)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = work / "o"
    r = _invoke("erf", f"{f}:build", "--trust", "-l", "0,2", "--images", "noise", "-n", "2", "--input-size", "16",
                "-o", out, "--font", "serif", "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    listed = json.loads((out / ".rfkit-erf.json").read_text())["files"]
    assert {"figures/panels.caption.md", "figures/panels.caption.tex", "figures/panels.png"} <= set(listed)
    md, tex = _caption(out / "figures" / "panels.png")
    assert "Model net.py:build" in md and str(tmp_path) not in md + tex
    assert str(tmp_path) not in (out / "metrics.json").read_text()
    # inside the working folder: relative to it
    os.makedirs("nets")
    (work / "nets" / "net.py").write_text(NET)
    p = rfkit.prepare(str(work / "nets" / "net.py") + ":build", input_size=16, trust=True)
    assert p.name == "nets/net.py:build"


def test_analyze_lists_captions_in_run_json(tmp_path):
    from rfkit.analysis.analyze import analyze

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    rep = analyze(net, layers=["0", "2"], images="noise", num_images=2, input_size=16, device="cpu",
                  out=tmp_path, bootstrap=0)  # fmt: skip
    files = set(json.loads((rep.folder / "run.json").read_text())["files"])
    pngs = {f for f in files if f.endswith(".png")}
    assert pngs == {"figures/overlay_0.png", "figures/overlay_2.png", "figures/stages.png", "figures/rf_growth.png"}
    for png in pngs:
        stem = png[: -len(".png")]
        assert {f"{stem}.caption.md", f"{stem}.caption.tex"} <= files
        assert (rep.folder / f"{stem}.caption.md").read_text().startswith(MD_MARK)
