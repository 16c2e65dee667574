"""``rfkit rf-grid``: the analytic RF boxes and centres of a grid of units of one layer over an image, with
each unit's ERF."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from rfkit_cli.console import print_warnings
from rfkit_cli.options import Device, InputSize, Look, Model, Seed, Style, TrustCheckpoint, Weights, parse_input_size


def rf_grid_command(
    model: Model,
    layer: str = typer.Option(..., "--layer", "-l", help="The layer (module or node name) whose units are drawn."),
    image: str = typer.Option(
        "sample", "--image", help="The image: sample (the first sample photograph), noise, or an image file."
    ),
    units: str = typer.Option(
        "corners", "--units", help="corners (the four corner units and the centre unit) or N (an N×N lattice)."
    ),
    erf: bool = typer.Option(True, "--erf/--no-erf", help="Measure each unit's ERF (one backward pass per unit)."),
    out: Path = typer.Option(
        Path("rfkit-rf-grid.png"), "--out", "-o", help="The figure: .png, .pdf or .svg (paper style: all three)."
    ),
    weights: Weights = "auto",
    input_size: InputSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    trust_checkpoint: TrustCheckpoint = False,
    style: Style = "report",
    look: Look = "rfkit",
) -> None:
    """Draw the analytic RF box and centre of a grid of units of one layer over an image, with the ERF of
    each unit measured on it. A file at --out that rfkit did not write is left alone (error)."""
    from rfkit.effective.unit_grid import lattice_size, unit_grid
    from rfkit.report.figures.compare import figure_paths
    from rfkit.report.figures.looks import look_named, style_named
    from rfkit.report.figures.rf_grid import save_rf_grid

    chosen = units if units == "corners" else lattice_size(units)  # checked before the model is built
    style_named(style), look_named(look)
    figure_paths(out, style)  # a foreign file at --out: refused before the measurement, not after it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = unit_grid(
            model,
            layer,
            image=image,
            units=chosen,
            measure=erf,
            weights=weights,
            input_size=parse_input_size(input_size),
            device=device,
            seed=seed,
            trust=trust_checkpoint,
        )
    print_warnings([str(w.message) for w in caught] + list(grid.warnings), set())
    from rfkit.report.figures.captions import written_captions

    written = save_rf_grid(grid, out, look=look, style=style)
    written += written_captions(written[0])
    typer.echo(
        f"wrote {', '.join(map(str, written))}: {len(grid.units)} unit(s) of {grid.layer}"
        + (", each with its ERF" if erf else "")
    )
