"""``rfkit figure``: the multi-model grid of ERFs papers use, from analysis folders."""

from __future__ import annotations

from pathlib import Path

import typer

from rfkit_cli.console import terminal_text
from rfkit_cli.options import Font, Look, SharedScale, Style, StyleFile, figure_options


def figure_command(
    folders: list[Path] = typer.Argument(..., help="Analysis folders written by `rfkit analyze`, or their parent."),
    layers: str = typer.Option(
        "stages",
        "--layers",
        help="final (each model's final measured layer) or stages (the layers nearest 1/4, 1/2 and 3/4 of each "
        "model's depth, then its final one).",
    ),
    out: Path = typer.Option(
        Path("rfkit-figure.png"), "--out", "-o", help="The figure: .png, .pdf or .svg (paper style: all three)."
    ),
    style: Style = "report",
    look: Look = "rfkit",
    shared_scale: SharedScale = None,
    font: Font = None,
    style_file: StyleFile = None,
) -> None:
    """Draw the ERFs of several models as one grid: rows are models, columns are layers at the same depth
    fraction, with one spatial scale; each panel on its own colour scale, or all on one with --shared-scale.
    A file at --out that rfkit did not write is left alone (error); a report folder whose files are not
    rfkit's is skipped with a warning."""
    from rfkit.report.figures.captions import written_captions
    from rfkit.report.figures.compare import save_comparison
    from rfkit.report.site import find_analyses

    looks = figure_options(font=font, style_file=style_file)

    analyses = find_analyses(folders, on_skip=lambda line: typer.echo(f"warning: {terminal_text(line)}", err=True))
    with looks.applied():
        written = save_comparison(analyses, out, layers, look=look, style=style, shared=bool(shared_scale))
    written += written_captions(written[0])
    typer.echo(f"wrote {', '.join(map(str, written))}: {len(analyses)} model(s), layers {layers}")
