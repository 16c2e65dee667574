"""``rfkit collect``: the rows of many report folders as one CSV table."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def collect_command(
    folders: list[Path] = typer.Argument(
        ..., help="Report folders written by `rfkit analyze`, or folders holding them (searched recursively)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="CSV file to write (atomically; only a file rfkit collect wrote is replaced). Default: stdout.",
    ),
) -> None:
    """Collect the reports in FOLDERS into one tidy CSV table: a row per model and measured layer, the
    provenance columns first (model, weights, input size, ERF method, images, rfkit version, time, seed), then
    the ERF metrics and the layer's analytic RF. A folder that is not a report or cannot be read is listed
    on stderr with its reason, and the others are collected."""
    from rfkit.formatting import one_line
    from rfkit.report.collect import collect, describe, write_collected

    frame = collect(folders, on_skip=lambda s: typer.echo(f"warning: {one_line(s)}", err=True))
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    written = write_collected(frame, out)
    typer.echo(f"wrote {describe(frame)} to {written}")
