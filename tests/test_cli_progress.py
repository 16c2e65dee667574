"""Progress where no terminal shows a bar (CI logs, nohup, a pipe): plain lines on stderr, a line per step and
per tenth of the images; nothing with --quiet."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from rfkit_cli.app import app, normalise_argv
from rfkit_cli.progress import LineProgress, progress_display

GOLDEN = Path(__file__).parent / "golden"


def test_line_progress_prints_each_step_and_each_tenth():
    out = io.StringIO()
    now = {"t": 0.0}
    bar = LineProgress(Console(file=out, width=200), clock=lambda: now["t"])
    with bar:
        task = bar.add_task("net: images", total=32)
        for _ in range(8):  # 4 images a batch: 12.5%, 25%, ... 100%
            now["t"] += 1.5
            bar.advance(task, 4)
        now["t"] += 3
        bar.update(task, description="net: writing the report")
        bar.update(task, description="net: writing the report")  # the same step again: no line
        hidden = bar.add_task("models", total=1, visible=False)
        bar.advance(hidden)
    lines = out.getvalue().splitlines()
    # by hand: tenths 1, 2, 3, 5, 6, 7, 8, 10 are passed at 4, 8, 12, 20, 24, 28, 32 images (16 is the 5th tenth)
    assert lines[0] == "net: images: 0/32"
    assert lines[1:] == [
        "net: images: 4/32 (12%), 2 s",
        "net: images: 8/32 (25%), 3 s",
        "net: images: 12/32 (38%), 4 s",
        "net: images: 16/32 (50%), 6 s",
        "net: images: 20/32 (62%), 8 s",
        "net: images: 24/32 (75%), 9 s",
        "net: images: 28/32 (88%), 10 s",
        "net: images: 32/32 (100%), 12 s",
        "net: writing the report (15 s)",
    ]


def test_the_display_fits_the_stream():
    assert isinstance(progress_display(False, console=Console(file=io.StringIO())), LineProgress)
    assert not isinstance(
        progress_display(False, console=Console(file=io.StringIO(), force_terminal=True)), LineProgress
    )
    quiet = progress_display(True, console=Console(file=io.StringIO()))
    assert not isinstance(quiet, LineProgress) and quiet.disable


def test_analyze_without_a_terminal_says_what_it_does(tmp_path, monkeypatch):
    shutil.copy(GOLDEN / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    args = ["analyze", "tiny_net.py:build", "--trust", "-l", "0,2", "--images", "noise", "-n", "4", "--batch-size", "2"]
    r = CliRunner().invoke(app, normalise_argv([*args, "--input-size", "16", "--device", "cpu", "--out", "out"]))
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert "tiny_net.py:build: images: 0/4" in lines
    assert any(line.startswith("tiny_net.py:build: measuring the ERF: 4/4 (100%)") for line in lines)
    figures = [line for line in lines if "drawing figure" in line]
    assert [f.split(" (")[0] for f in figures] == [f"tiny_net.py:build: drawing figure {k} of 5" for k in range(1, 6)]
    quiet = CliRunner().invoke(
        app, normalise_argv([*args, "--input-size", "16", "--device", "cpu", "--out", "q", "-q"])
    )
    assert quiet.exit_code == 0 and "images:" not in quiet.stderr
