"""``rfkit attribute``: per-image contribution maps of a class or a unit, written as maps, CSV, a figure and
report.md."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfkit.formatting import pair
from rfkit_cli.console import print_warnings, stdout_console
from rfkit_cli.options import (
    BatchSize,
    Device,
    Font,
    Images,
    InputSize,
    Model,
    Normalise,
    NumImages,
    Quiet,
    Style,
    StyleFile,
    TrustCheckpoint,
    Weights,
    figure_options,
    image_options,
    runtime_options,
)
from rfkit_cli.progress import progress_display

#: The built-in methods' ids, for the help text (rfkit.attribution.methods.method_names(); the CLI tests
#: check that they agree, without importing the models' stack when the CLI starts).
METHOD_IDS = (
    "saliency",
    "input_x_gradient",
    "smoothgrad",
    "guided_backprop",
    "ig",
    "blur_ig",
    "blur_ig_pair",
    "guided_ig",
    "xrai",
    "occlusion",
    "gradcam",
    "gradcam++",
    "hirescam",
    "xgradcam",
    "layercam",
    "scorecam",
    "eigengradcam",
    "eigencam",
    "ablationcam",
    "fullgrad",
    "guided_gradcam",
)


def attribution_table(result, console: Console) -> None:
    """One row per method (:func:`rfkit.report.attribution_files.method_summary`), how the path steps were
    chosen (with IG or Blur IG), then each image's target."""
    from rfkit.report.attribution_files import METHOD_COLUMNS, method_summary, steps_setting

    table = Table(
        title=f"Contribution maps of {escape(str(result.model))} @ {pair(result.input_size)}"
        f" ({result.num_images} images)"
    )
    for col in METHOD_COLUMNS:
        table.add_column(col, overflow="fold")
    for row in method_summary(result):
        table.add_row(*(escape(cell) for cell in row.values()))
    console.print(table)
    if result.steps:
        console.print(steps_setting(result), markup=False)
    for i, t in enumerate(result.targets):
        console.print(f"{result.labels[i]}: target {t.label}, score {result.scores[i]:.4g}", markup=False)
    if result.cam_layer:
        console.print(f"CAM layer {result.cam_note}", markup=False)


def attribute_command(
    model: Model,
    images: Images = "sample",
    num_images: NumImages = 4,
    methods: str = typer.Option(
        "saliency",
        "--methods",
        "-m",
        help="Comma-separated: " + ", ".join(METHOD_IDS) + ", or GRADIENT*CAM.",
    ),
    target: str = typer.Option(
        "predicted", "--target", "-t", help="A class index, predicted, LAYER (its centre unit) or LAYER@i,j."
    ),
    cam_layer: str | None = typer.Option(
        None,
        "--cam-layer",
        help="Layer (module) of the CAM methods. Default: the final feature "
        "map the score depends on position by position.",
    ),
    weights: Weights = "auto",
    input_size: InputSize = None,
    baseline: str = typer.Option("zeros", "--baseline", help="IG baseline: zeros, black or blur."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=1,
        help="Path steps of IG, Blur IG and Guided IG, used as given. Default: from 50, doubled per image until the "
        "completeness error is under 5%, at most 512.",
    ),
    ig_method: str = typer.Option(
        "gausslegendre",
        "--ig-method",
        help="IG integration: gausslegendre, riemann_trapezoid, riemann_left, riemann_right, riemann_middle.",
    ),
    noise: float = typer.Option(0.15, "--noise", help="SmoothGrad noise sigma, as a fraction of the input range."),
    samples: int = typer.Option(25, "--samples", min=1, help="SmoothGrad samples per image."),
    blur_sigma: float | None = typer.Option(
        None, "--blur-sigma", help="Blur IG's largest blur in pixels (default 50 at 224 px)."
    ),
    score: str = typer.Option(
        "logit", "--score", help="What a class target's maps explain: logit (pre-softmax) or probability (softmax)."
    ),
    channels: str = typer.Option(
        "sum",
        "--channels",
        help="How a per-channel attribution becomes one map: sum (signed, over colour channels) or "
        "max_relu_minmax (max over channels, ReLU, each map rescaled to [0, 1]: seed 002's rule).",
    ),
    option: list[str] | None = typer.Option(
        None,
        "--option",
        help="A method's own option, METHOD.OPTION=VALUE (e.g. occlusion.window=8); repeat for more.",
    ),
    sanity: bool = typer.Option(
        False,
        "--sanity",
        help="Model-randomisation check: re-initialise the top layers and report the rank correlation per method.",
    ),
    sanity_layers: int = typer.Option(3, "--sanity-layers", min=1, help="Layers the sanity check re-initialises."),
    faithfulness: bool = typer.Option(False, "--faithfulness", help="Deletion/insertion AUC per method and image."),
    faithfulness_steps: int = typer.Option(
        16, "--faithfulness-steps", min=1, help="Steps of the deletion/insertion curves."
    ),
    batch_size: BatchSize = None,
    device: Device = "auto",
    seed: int = typer.Option(0, "--seed", min=0, help="Seeds random weights, noise images and SmoothGrad."),
    trust: TrustCheckpoint = False,
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for maps/*.npy, attribution.csv, figures/grid.png and report.md, written whole (an "
        "interrupted run leaves the earlier folder as it was); only a folder rfkit attribute wrote is replaced. "
        "Default: rfkit-reports/MODEL-attribution.",
    ),
    style: Style = "report",
    normalise: Normalise = "image",
    font: Font = None,
    style_file: StyleFile = None,
    quiet: Quiet = False,
) -> None:
    """Per-image contribution maps of MODEL: which pixels drove a class logit, or one unit of a layer, on each
    image, for several attribution methods."""
    import rfkit
    from rfkit.attribution.methods import check_run, parse_methods, parse_options
    from rfkit.attribution.options import AttributionOptions, Checks
    from rfkit.io import new_folders_removed_on_failure
    from rfkit.pipeline.devices import resolve_device
    from rfkit.pipeline.distributed import current_world
    from rfkit.report.attribution_files import check_attribution_folder, default_folder, save_attribution
    from rfkit.report.figures.attribution import check_normalise
    from rfkit.report.figures.looks import style_named

    looks = figure_options(font=font, style_file=style_file)  # a bad font or style file: before the run

    console = stdout_console()
    names = parse_methods(methods)
    check_run(score, channels)
    parse_options(option or None, names)
    what = image_options(images, num_images, input_size)
    style_named(style)
    check_normalise(normalise)
    world = current_world(resolve_device(device))  # under torchrun: rank 0 alone prints and writes
    quiet = quiet or not world.writes
    out = default_folder(model) if out is None else out
    with new_folders_removed_on_failure(out if world.writes else None):
        if world.writes:
            check_attribution_folder(out)  # before the run, not after it
        with progress_display(quiet) as bar, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each warning is in result.warnings: printed below, once
            task = bar.add_task(f"maps of {model}", total=num_images)
            result = rfkit.attribute(
                model,
                images=what,
                methods=names,
                target=target,
                layer=cam_layer,
                weights=weights,
                options=AttributionOptions(
                    baseline, steps, ig_method, noise, samples, blur_sigma, score, channels, option or None
                ),
                checks=Checks(sanity, sanity_layers, faithfulness, faithfulness_steps),
                runtime=runtime_options(device, batch_size, seed=seed),
                progress=lambda n: bar.advance(task, n),
                trust=trust,
            )
        if not quiet:
            attribution_table(result, console)
            console.print(f"weights: {getattr(result.weights, 'description', result.weights)}", markup=False)
        if not world.writes:
            return
        print_warnings(result.warnings, set())
        with looks.applied():
            written = save_attribution(result, out, style=style, normalise=normalise)
        figures = ", ".join(p.relative_to(out).as_posix() for k, p in written.items() if k.startswith("figure"))
        console.print(
            f"wrote {out}: report.md, attribution.csv, {figures} and {len(result.methods)} map(s) in maps/",
            markup=False,
            soft_wrap=True,
        )
