"""``rfkit erf``: effective receptive fields of chosen layers, measured from gradients."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfkit_cli.graph_cmd import UsageError, parse_input_size


def parse_unit(text: str | None) -> tuple[int, ...] | None:
    """``"3,4"`` or ``"3x4"`` → (3, 4).

    >>> parse_unit("3,4"), parse_unit(None)
    ((3, 4), None)
    """
    if text is None:
        return None
    parts = [p for p in re.split(r"[x×, ]+", text.strip()) if p]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--unit {text!r}: give the unit's row and column on the layer's grid, e.g. --unit 3,4")
    return tuple(int(p) for p in parts)


def split_names(items: list[str] | None) -> list[str] | None:
    """Repeated and comma-separated names as one list (None when nothing was given)."""
    return [n for item in (items or []) for n in item.split(",") if n] or None


def print_warnings(messages, seen: set[str], write: Callable[[str], None] | None = None) -> None:
    """Print each of ``messages`` as one line ``warning: ...`` (on stderr unless ``write`` says otherwise),
    skipping those already in ``seen`` (which collects them). Warnings print with ``-q`` too."""
    from rfkit.report.markdown import one_line

    for message in messages:
        line = one_line(message)
        if line not in seen:
            seen.add(line)
            (write or (lambda text: typer.echo(text, err=True)))(f"warning: {line}")


def erf_table(result, console: Console) -> None:
    """One row per layer: the ERF summary row (:func:`rfkit.report.summary.summary_rows`)."""
    from rfkit.report.formatting import pair
    from rfkit.report.summary import summary_rows

    table = Table(
        title=f"ERF of {escape(str(result.model))} @ {pair(result.input_size)} "
        f"({result.method}, {result.num_images} images)"
    )
    rows = summary_rows(result)
    for col in rows[0] if rows else ():
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row.values()))
    console.print(table)


def erf_command(
    model: str = typer.Argument(..., help="timm name[.tag], torchvision:NAME, or FILE.py:FACTORY."),
    layers: list[str] | None = typer.Option(
        None, "--layers", "-l", help="Module or node names (repeat, or comma-separate). Default: the final feature map."
    ),
    images: str = typer.Option("sample", "--images", help="sample, noise, a folder, or an image file."),
    num_images: int = typer.Option(32, "--num-images", "-n", min=1, help="Images to average over."),
    weights: str = typer.Option(
        "auto", "--weights", help="auto, pretrained, random, random-safe, or a checkpoint path."
    ),
    method: str = typer.Option("replknet", "--method", help="replknet or openerf."),
    unit: str | None = typer.Option(None, "--unit", help="Output unit to measure, 'i,j' (default: centre)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    input_size: str | None = typer.Option(None, "--input-size", help="224, or H W. Default: the model's own."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last memory format."),
    autocast: bool = typer.Option(False, "--autocast", help="bfloat16 autocast (GPU)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for erf.csv, metrics.json and maps/*.npy (raw maps); rfkit writes only its own files there.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress bar (warnings still print)."),
) -> None:
    """Measure the effective receptive field of MODEL's layers: the input gradient of one output unit,
    averaged over images, with its metrics centred on the unit's analytic RF centre."""
    from rich.progress import Progress

    import rfkit
    from rfkit.report.erf_files import check_erf_folder, save_erf

    console = Console(width=None if Console().is_terminal else 200, stderr=False)
    names = split_names(layers)
    size = parse_input_size(input_size)
    if method not in ("replknet", "openerf"):
        raise UsageError(f"--method {method!r}: use replknet or openerf")
    if out is not None:
        check_erf_folder(out, names or ())  # before the measurement, not after it
    with Progress(console=Console(stderr=True), transient=True, disable=quiet) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each warning is in result.warnings: printed below, once
        task = bar.add_task(f"ERF of {model}", total=num_images)
        result = rfkit.erf(
            model,
            layers=names,
            images=images,
            num_images=num_images,
            weights=weights,
            method=method,
            batch_size=batch_size,
            device=device,
            input_size=size,
            unit=parse_unit(unit),
            threads=threads,
            channels_last=channels_last,
            autocast=autocast,
            progress=lambda n: bar.advance(task, n),
        )
    if not quiet:
        erf_table(result, console)
        console.print(f"weights: {getattr(result.weights, 'description', result.weights)}", markup=False)
        console.print(f"images: {getattr(result.images, 'source', '')}, {result.num_images} used", markup=False)
    print_warnings(result.warnings, set())
    if out is not None:
        written = save_erf(result, out)
        console.print(
            f"wrote {written['csv']}, {written['json']} and {len(result.layers)} map(s) in {out / 'maps'}", markup=False
        )
