"""``rfkit verify``: analytic RF against measured gradient support, per layer."""

from __future__ import annotations

import typer
from rich.table import Table

from rfkit_cli.console import stdout_console
from rfkit_cli.options import InputSize, LayersStages, Model, TrustCheckpoint, parse_input_size, split_names


def verify_command(
    model: Model,
    layers: LayersStages = None,
    input_size: InputSize = None,
    estimate: bool = typer.Option(
        True, "--estimate/--no-estimate", help="Also estimate size, stride and centre from gradients alone and compare."
    ),
    estimate_max_size: int | None = typer.Option(
        None,
        "--estimate-max-size",
        help="Largest input (pixels per axis) the estimate may enlarge to. Default: twice the input.",
    ),
    trust: TrustCheckpoint = False,
) -> None:
    """Measure the gradient support of the centre, next and corner units of each layer (float64, positive
    random weights) and compare it with the analytic RF; estimate each layer's size, stride and centre from
    gradients alone and compare them too. Exit code 1 on any mismatch."""
    import rfkit
    from rfkit.formatting import pair
    from rfkit.verification.verify import estimate_rows, summary_rows

    names = split_names(layers)
    report = rfkit.verify(
        model,
        layers=names,
        input_size=parse_input_size(input_size),
        estimate=estimate,
        estimate_max_size=estimate_max_size,
        trust=trust,
    )
    console = stdout_console()
    table = Table(title=f"rfkit verify {report.model} @ {pair(report.input_size)}")
    for col in ("layer", "unit", "analytic RF (pixels h × w)", "measured support", "status"):
        table.add_column(col, overflow="fold")
    colours = {"pass": "green", "fail": "red", "approximate": "yellow"}
    for row in summary_rows(report):
        table.add_row(*row[:-1], f"[{colours[row[-1]]}]{row[-1]}[/]")
    console.print(table)
    if report.estimates:
        table = Table(title="gradient estimate (h × w) next to the analytic RF")
        for col in (
            "layer",
            "size",
            "estimated",
            "stride",
            "estimated",
            "centre",
            "estimated",
            "measured at",
            "status",
        ):
            table.add_column(col, overflow="fold")
        for row in estimate_rows(report):
            status = row[-1].split(" ")[0]
            colour = {"pass": "green", "fail": "red"}.get(status, "yellow")
            table.add_row(*row[:-1], f"[{colour}]{row[-1]}[/]")
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    failed = len(report.failures)
    console.print(
        f"{len(report.checks) - failed}/{len(report.checks)} units agree"
        + ("" if not failed else f"; {failed} mismatch(es)")
    )
    if report.estimates:
        bad = len(report.estimate_failures)
        judged = sum(e.status != "not judged" for e in report.estimates)
        console.print(
            f"{judged - bad}/{judged} judged estimates agree" + ("" if not bad else f"; {bad} estimate mismatch(es)")
        )
    if not report.ok:
        raise typer.Exit(1)
