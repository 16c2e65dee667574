"""``rfkit analyze`` and ``rfkit list-models``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rfkit_cli.area_table import print_area_table
from rfkit_cli.console import print_warnings, stderr_console, stdout_console, terminal_text
from rfkit_cli.options import (
    AreaTable,
    BatchSize,
    Bootstrap,
    Device,
    Font,
    FullRF,
    Images,
    InputSize,
    LayersStages,
    Look,
    Method,
    Normalise,
    NumImages,
    Quiet,
    Seed,
    SharedScale,
    Style,
    StyleFile,
    Threads,
    TrustCheckpoint,
    UntilStable,
    UsageError,
    Weights,
    check_method,
    erf_options,
    figure_options,
    given,
    image_options,
    parse_input_size,
    runtime_options,
    split_names,
)
from rfkit_cli.progress import progress_display


def _with_preset(ctx, models, preset_name, layers, num_images, area):
    """The models, layers, image count and area table of the run: the options given, then the preset's (a
    preset with settings supplies its models only when none is named; a model list adds its models)."""
    from rfkit.report.presets import apply_preset

    run = apply_preset(
        preset_name,
        models,
        split_names(layers),
        num_images if given(ctx, "num_images") else None,
        area_table=area,
        default_images=num_images,
    )
    if not run.models:
        raise UsageError(
            "no model given: name one or more models (before -l: the words after it up to the next option are layers), "
            "or use --preset (rfkit list-models --presets)"
        )
    return list(run.models), list(run.layers) if run.layers else None, run.num_images, run.area_table


def _summary(outcomes, console: Console) -> None:
    table = Table(title="rfkit analyze: summary")
    for col in ("model", "status", "time", "report / error"):
        table.add_column(col, overflow="fold")
    colour = {"done": "green", "skipped": "cyan", "failed": "red"}
    for o in outcomes:
        where = f"{o.folder / 'report.md'}  ({o.message})" if o.folder else o.message
        table.add_row(escape(o.model), f"[{colour[o.status]}]{o.status}[/]", f"{o.seconds:.1f} s", escape(where))
    console.print(table)


def _share(names: list[str], device: str) -> tuple[list[str], str]:
    """Under torchrun, this process's share of the models (every N-th) and its own GPU (``cuda:LOCAL_RANK``
    for ``auto``/``cuda``); one process keeps them all."""
    import os

    import torch

    from rfkit.pipeline.distributed import current_world, my_share

    world = current_world()
    if not world.distributed:
        return names, device
    if device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return my_share(names, world), device


def analyze_command(
    ctx: typer.Context,
    models: list[str] | None = typer.Argument(
        None,
        help="timm name[.tag], torchvision:NAME, ultralytics:NAME.yaml, FILE.py:FACTORY (runs FILE.py: needs "
        "--trust); several for a batch run.",
    ),
    layers: LayersStages = None,
    images: Images = "sample",
    num_images: NumImages = 32,
    weights: Weights = "auto",
    input_size: InputSize = None,
    resolution: str | None = typer.Option(
        None, "--resolution", help="Input resolution of the productivity analysis (default: the input size)."
    ),
    method: Method = "replknet",
    device: Device = "auto",
    batch_size: BatchSize = None,
    threads: Threads = None,
    out: Path = typer.Option(Path("rfkit-reports"), "--out", "-o", help="Parent folder of the reports."),
    preset_name: str | None = typer.Option(
        None,
        "--preset",
        help="Add a preset's models; a preset with settings (yolo) supplies its models only when none is named, "
        "and its layers and image count unless given (rfkit list-models --presets).",
    ),
    trust_checkpoint: TrustCheckpoint = False,
    area: AreaTable = False,
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Skip models whose report is complete (same model, per its run.json: resume a batch).",
    ),
    stop_on_error: bool = typer.Option(
        False, "--stop-on-error", help="Stop at the first failure (default: go on and list failures at the end)."
    ),
    attribution: str | None = typer.Option(
        None,
        "--attribution",
        help="Add per-image contribution maps of the predicted class to each report, e.g. "
        "saliency,ig,gradcam (methods as rfkit attribute --methods reads them).",
    ),
    attribution_images: int = typer.Option(
        4, "--attribution-images", min=1, help="Images the contribution maps are computed for."
    ),
    normalise: Normalise = "image",
    style: Style = "report",
    look: Look = "rfkit",
    full_rf: FullRF = False,
    shared_scale: SharedScale = None,
    font: Font = None,
    style_file: StyleFile = None,
    bootstrap: Bootstrap = 200,
    seed: Seed = 0,
    until_stable: UntilStable = None,
    quiet: Quiet = False,
) -> None:
    """Analyse MODEL(s): analytic RF graph, productivity, and ERF of the stage outputs, written to
    OUT/<model>/ (report.md, CSV/JSON/NPY, figures, GraphViz). Only an earlier report of the same model
    there is replaced; each warning prints once on stderr."""
    from rfkit.analysis.batch import analyze_many

    names, layers, num_images, area = _with_preset(ctx, models, preset_name, layers, num_images, area)
    check_method(method)
    from rfkit.analysis.options import Output, ReportAttribution

    if given(ctx, "normalise") and attribution is None:
        raise UsageError("--normalise scales the attribution grid: add --attribution METHODS, or leave it out")
    figures = figure_options(style, look, full_rf, shared_scale, font, style_file, attribution_normalise=normalise)
    names, device = _share(names, device)
    what = image_options(images, num_images, input_size)
    res = parse_input_size(resolution, "--resolution")
    console = stdout_console()
    err = stderr_console()
    progress = progress_display(
        quiet, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    outcomes = []
    seen: set[str] = set()
    with progress, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each is in its report's warnings: printed once, below, and in report.md
        overall = progress.add_task("models", total=len(names), visible=len(names) > 1)
        current = {"task": None}

        def on_start(i, model):
            if current["task"] is not None:
                progress.remove_task(current["task"])
            current["task"] = progress.add_task(f"{model}: images", total=num_images)

        def step(name, n):
            if n is not None and current["task"] is not None:
                progress.advance(current["task"], n)
            elif current["task"] is not None:
                progress.update(current["task"], description=f"{names[len(outcomes)]}: {name}")

        def on_done(outcome):
            outcomes.append(outcome)
            progress.advance(overall)
            shown = (outcome.model, outcome.folder, outcome.message)
            model, folder, message = (escape(terminal_text(x)) for x in shown)
            line = {
                "done": f"[green]done[/] {model} → {folder}",
                "skipped": f"[cyan]skipped[/] {model} (complete report in {folder})",
                "failed": f"[red]failed[/] {model}: {message}",
            }[outcome.status]
            progress.console.print(line, soft_wrap=True)
            if area and not quiet and outcome.report is not None:
                print_area_table(outcome.report.result, console)
            if outcome.report is not None:
                print_warnings(
                    outcome.report.warnings,
                    seen,
                    lambda text: progress.console.print(text, markup=False, highlight=False, soft_wrap=True),
                )

        try:
            analyze_many(
                names,
                out=Output(out, figures),
                skip_existing=skip_existing,
                stop_on_error=stop_on_error,
                on_start=on_start,
                on_done=on_done,
                layers=layers,
                images=what,
                weights=weights,
                method=method,
                resolution=res,
                options=erf_options(bootstrap, until_stable),
                attribution=None if attribution is None else ReportAttribution(attribution, attribution_images),
                runtime=runtime_options(device, batch_size, threads, seed=seed),
                progress=step,
                trust=trust_checkpoint,
            )
        except KeyboardInterrupt:
            progress.stop()
            done = sum(o.status == "done" for o in outcomes)
            err.print(
                f"interrupted: {done} finished report(s) are complete; the one in progress was removed. "
                "Rerun with --skip-existing to resume."
            )
            sys.exit(130)
    if len(names) > 1 or any(o.status != "done" for o in outcomes):
        _summary(outcomes, console)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        console.print(f"{len(failed)} of {len(names)} model(s) failed")
        raise typer.Exit(1)


def list_models_command(
    pattern: str | None = typer.Argument(None, help="Wildcard pattern over model names, e.g. 'resnet*'."),
    source: str | None = typer.Option(
        None, "--source", help="List this model source's models (timm, torchvision, ultralytics, ...: --sources)."
    ),
    sources: bool = typer.Option(False, "--sources", help="List the model sources: spec prefix, input, layers."),
    preset_name: str | None = typer.Option(None, "--preset", help="List a preset's models."),
    presets: bool = typer.Option(False, "--presets", help="List the presets."),
    pretrained: bool = typer.Option(False, "--pretrained", help="List pretrained tags (name.tag)."),
    torchvision: bool = typer.Option(False, "--torchvision", help="List torchvision models too."),
    ultralytics: bool = typer.Option(False, "--ultralytics", help="List the yaml files ultralytics ships too."),
) -> None:
    """List model names rfkit can analyse (timm; any model source with --source) or the models of a preset."""
    from rfkit.report.presets import get_preset, preset, preset_names

    console = stdout_console()
    if sources:
        _print_sources(console)
        return
    if presets:
        for name in preset_names():
            p = get_preset(name)
            n = len(p.models)
            console.print(f"{name} ({n} model{'s' * (n != 1)}): {p.help}", markup=False, highlight=False)
        return
    if preset_name:
        names = [m for m in preset(preset_name) if pattern is None or _match(m, pattern)]
    else:
        listed = [source] if source else ["timm", *(["torchvision"] * torchvision), *(["ultralytics"] * ultralytics)]
        names = [n for s in listed for n in _source_models(s, pattern, pretrained)]
    if not names:
        where = f" in preset {preset_name!r}" if preset_name else f" in source {source!r}" if source else ""
        raise UsageError(f"no model matches {pattern!r}{where}")
    for n in names:
        console.print(n, highlight=False)


def _source_models(name: str, pattern: str | None, pretrained: bool) -> list[str]:
    """The spec strings of model source ``name``'s models matching ``pattern``; each one left out (it cannot be
    built here, e.g. it downloads weights, offline) is named on stderr with the reason."""
    from rfkit.models.sources import get_source

    source = get_source(name)
    left_out: list[tuple[str, str]] = []
    names = source.list_models(pattern, pretrained=pretrained, left_out=left_out)
    for spec, why in left_out:
        typer.echo(f"left out {spec}: {why}", err=True)
    return names


def _print_sources(console) -> None:
    """One block per registered model source: its spec prefix and what it holds, its input layout and how its
    layers are named."""
    from rfkit.models.sources import get_source, source_names

    for name in source_names():
        s = get_source(name)
        bare = f"; a bare name is a {name} name" if s.fallback else ""
        console.print(f"{name}: {s.description}{bare}", markup=False, highlight=False)
        console.print(f"    input {s.layout}; layers: {s.layers}", markup=False, highlight=False)


def _match(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(name, pattern)
