"""``rfkit erf``: effective receptive fields of chosen layers, measured from gradients."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfkit_cli.area_table import print_area_table
from rfkit_cli.console import print_warnings, stdout_console
from rfkit_cli.options import (
    AreaTable,
    BatchSize,
    Bootstrap,
    Device,
    Font,
    Images,
    InputSize,
    LayersFinal,
    Method,
    NumImages,
    Quiet,
    Seed,
    StyleFile,
    Threads,
    TrustCheckpoint,
    UntilStable,
    UsageError,
    Weights,
    Workers,
    check_method,
    given,
    parse_input_size,
    split_names,
)
from rfkit_cli.progress import progress_display


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


def _with_preset(ctx, preset_name, model, layers, num_images, area):
    """The model, layers, image count and area table of the run: the options given, else the preset's."""
    from rfkit.report.presets import apply_preset

    run = apply_preset(
        preset_name,
        [model] if model else [],
        split_names(layers),
        num_images if given(ctx, "num_images") else None,
        area_table=area,
        default_images=num_images,
    )
    if len(run.models) != 1:
        raise UsageError(
            "rfkit erf measures one model: name it, or use a preset of one model (rfkit analyze takes several)"
            if run.models
            else "no model given: name one (before -l: the words after it up to the next option are layers), or use "
            "--preset (rfkit list-models --presets)"
        )
    return run.models[0], list(run.layers) if run.layers else None, run.num_images, run.area_table


def erf_table(result, console: Console) -> None:
    """The ERF summary rows (:func:`rfkit.report.erf_files.summary_rows`) as report.md shows them: where each
    unit looks, how much of it it uses, then the notes."""
    from rfkit.formatting import pair
    from rfkit.report.erf_files import erf_rows, summary_rows
    from rfkit.report.summary import GEOMETRY, LAYER, MEASURED, NOTES, centre_finding

    rows = summary_rows(result)
    console.print(
        f"ERF of {result.model} @ {pair(result.input_size)} ({result.method}, {result.num_images} images)",
        markup=False,
        highlight=False,
    )
    for title, columns in zip(("where each unit looks", "how much of its RF it uses"), (GEOMETRY, MEASURED)):
        table = Table(title=title)
        header = [c for c in columns if rows and c in rows[0]]
        for col in header:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(escape(row[c]) for c in header))
        console.print(table)
    _ci_table(result, console)
    for row in rows:
        if row[NOTES]:
            console.print(f"note: {row[LAYER]}: {row[NOTES]}", markup=False, highlight=False)
    for finding in filter(None, map(centre_finding, erf_rows(result))):
        console.print(f"note: {finding} (sizes are centred on the ERF)", markup=False, highlight=False)


def _ci_table(result, console: Console) -> None:
    """The headline metrics with their 95% intervals, as report.md's "How many images are enough" table
    (:func:`rfkit.report.summary.ci_row`); nothing for a run without intervals."""
    from rfkit.report.erf_files import erf_rows
    from rfkit.report.summary import ci_row

    rows = [r for r in map(ci_row, erf_rows(result)) if r is not None]
    if not rows:
        return
    reason = (result.bootstrap or {}).get("reason")
    title = "value (no interval: see below)" if reason else "value [95% interval], bootstrap over independent images"
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(escape(v) for v in row.values()))
    console.print(table)
    if reason:
        console.print(reason, markup=False, highlight=False)


def erf_command(
    ctx: typer.Context,
    model: str | None = typer.Argument(
        None,
        help="timm name[.tag] (resnet50.a1_in1k), torchvision:NAME, ultralytics:NAME.yaml, or FILE.py:FACTORY "
        "(runs FILE.py: needs --trust); or use --preset.",
    ),
    layers: LayersFinal = None,
    images: Images = "sample",
    num_images: NumImages = 32,
    weights: Weights = "auto",
    method: Method = "replknet",
    unit: str | None = typer.Option(None, "--unit", help="Output unit to measure, 'i,j' (default: centre)."),
    batch_size: BatchSize = None,
    device: Device = "auto",
    input_size: InputSize = None,
    threads: Threads = None,
    workers: Workers = None,
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last memory format."),
    autocast: bool = typer.Option(False, "--autocast", help="bfloat16 autocast (GPU)."),
    trust_checkpoint: TrustCheckpoint = False,
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for erf.csv, metrics.json, maps/*.npy (raw maps), figures/*.png; rfkit writes only its own files.",
    ),
    preset_name: str | None = typer.Option(
        None, "--preset", help="A preset's model and settings; options given win (rfkit list-models --presets)."
    ),
    area: AreaTable = False,
    bootstrap: Bootstrap = 200,
    seed: Seed = 0,
    until_stable: UntilStable = None,
    font: Font = None,
    style_file: StyleFile = None,
    quiet: Quiet = False,
) -> None:
    """Measure the effective receptive field of MODEL's layers: the input gradient of one output unit,
    averaged over images, with its sizes centred on the ERF's own centre (its centre of mass)."""
    import rfkit
    from rfkit.io import new_folders_removed_on_failure
    from rfkit.pipeline.devices import resolve_device
    from rfkit.pipeline.distributed import current_world
    from rfkit.report.erf_files import check_erf_folder, save_erf
    from rfkit.report.figures.looks import FigureOptions

    looks = FigureOptions(font=font, style_file=style_file)  # a bad font or style file: before measuring
    console = stdout_console()
    model, names, num_images, area = _with_preset(ctx, preset_name, model, layers, num_images, area)
    size = parse_input_size(input_size)
    check_method(method)
    world = current_world(resolve_device(device))  # under torchrun: rank 0 alone prints and writes
    quiet = quiet or not world.writes
    with new_folders_removed_on_failure(out if out is not None and world.writes else None):
        if out is not None and world.writes:
            check_erf_folder(out, names or ())  # before the measurement, not after it
        with progress_display(quiet) as bar, warnings.catch_warnings():
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
                trust=trust_checkpoint,
                threads=threads,
                workers=workers,
                channels_last=channels_last,
                autocast=autocast,
                bootstrap=bootstrap,
                seed=seed,
                until_stable=until_stable,
                progress=lambda n: bar.advance(task, n),
            )
        if not quiet:
            erf_table(result, console)
            if area:
                print_area_table(result, console)
            console.print(f"weights: {getattr(result.weights, 'description', result.weights)}", markup=False)
            console.print(f"images: {getattr(result.images, 'source', '')}, {result.num_images} used", markup=False)
            if until_stable is not None and result.stopped:
                console.print(f"stopped: {result.stopped}", markup=False, highlight=False)
        if not world.writes:
            return
        print_warnings(result.warnings, set())
        if out is not None:
            with looks.applied():
                written = save_erf(result, out)
            console.print(
                f"wrote {written['csv']}, {written['json']} and {len(result.layers)} map(s) in {out / 'maps'}",
                markup=False,
            )
            figures = [str(written[k]) for k in ("panels", "convergence") if k in written]
            console.print(f"wrote {' and '.join(figures)}", markup=False)
