"""``rfkit verify``: analytic RF against measured gradient support, per layer."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from rfkit_cli.graph_cmd import parse_input_size


def verify_command(
    model: str = typer.Argument(..., help="timm name, torchvision:NAME, or FILE.py:FACTORY."),
    layers: Optional[List[str]] = typer.Option(None, "--layers", "-l",
                                               help="Module or node names (repeat, or comma-separate). "
                                                    "Default: the stage outputs and the output."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="224, or H W. Default: the model's own."),
) -> None:
    """Measure the gradient support of the centre, next and corner units of each layer (float64, positive
    random weights) and compare it with the analytic RF. Exit code 1 on any mismatch."""
    import rfkit
    from rfkit.verification.verify import summary_rows

    names = [n for item in (layers or []) for n in item.split(",") if n] or None
    report = rfkit.verify(model, layers=names, input_size=parse_input_size(input_size))
    console = Console(width=None if Console().is_terminal else 200)
    table = Table(title=f"rfkit verify {report.model} @ {'×'.join(map(str, report.input_size))}")
    for col in ("layer", "unit", "analytic RF (pixels h × w)", "measured support", "status"):
        table.add_column(col, overflow="fold")
    colours = {"pass": "green", "fail": "red", "approximate": "yellow"}
    for row in summary_rows(report):
        table.add_row(*row[:-1], f"[{colours[row[-1]]}]{row[-1]}[/]")
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    failed = len(report.failures)
    console.print(f"{len(report.checks) - failed}/{len(report.checks)} units agree"
                  + ("" if report.ok else f"; {failed} mismatch(es)"))
    if not report.ok:
        raise typer.Exit(1)
