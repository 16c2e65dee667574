"""``rfkit atlas build|query|site``: the receptive-field atlas of a model zoo."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from rfkit.errors import UsageError
from rfkit_cli.options import parse_input_size

atlas_app = typer.Typer(
    no_args_is_help=True,
    help="The receptive-field atlas: the analytic RF of every stage of every model of a zoo, as a table "
    "(build), filtered (query) and as a static site (site).",
)

ATLAS_HELP = "The atlas folder (written by `rfkit atlas build --out`)."

#: Columns `rfkit atlas query` prints unless --columns names others.
SHOWN = ["model", "input_h", "input_w", "layer", "rf_h", "rf_w", "stride_h", "stride_w", "is_global", "status"]


@atlas_app.command("build")
def build_command(
    out: Path = typer.Option(Path("rfkit-atlas"), "--out", "-o", help="The atlas folder (created, or resumed)."),
    source: str = typer.Option("timm", "--source", help="Comma-separated: timm, torchvision, ultralytics."),
    models: str = typer.Option("*", "--models", help="fnmatch pattern over model names, e.g. 'resnet*'."),
    input_size: list[str] = typer.Option(
        ["640"],
        "--input-size",
        help="Input size(s) besides each model's default: 640, or H W; repeat for more.",
    ),
    timeout: int = typer.Option(240, "--timeout", min=1, help="Seconds one model may take at one size."),
    fresh: bool = typer.Option(False, "--fresh", help="Trace every model again instead of resuming."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Trace again the models that failed."),
    erf_init: bool = typer.Option(
        False, "--erf-init", help="Also measure each stage's ERF at initialisation (random-safe weights; slow)."
    ),
    erf_size: str = typer.Option("64", "--erf-size", help="Input size of the ERF at init: 64, or H W."),
    erf_images: int = typer.Option(4, "--erf-images", min=1, max=256, help="Noise images of the ERF at init."),
    erf_trained: bool = typer.Option(
        False,
        "--erf-trained",
        help="Also measure each stage's ERF with trained weights (a file given by --weights-dir/--weights-map, "
        "else the pretrained weights where they can be had: cache, or online); a model without is one line.",
    ),
    weights_dir: Path | None = typer.Option(
        None, "--weights-dir", help="Folder of weight files named after the models: MODEL.safetensors, .pth, .pt, .bin."
    ),
    weights_map: Path | None = typer.Option(
        None, "--weights-map", help='JSON file {"MODEL": "PATH", ...} of weight files (relative to the file).'
    ),
    hub: bool = typer.Option(
        True, "--hub/--no-hub", help="For a model without a given file, try its pretrained weights (cache/online)."
    ),
    images: str = typer.Option(
        "sample", "--images", help="Images of the trained ERF: 'sample' (photos shipped with rfkit) or a folder."
    ),
    trained_images: int = typer.Option(8, "--trained-images", min=1, max=4096, help="Images of the trained ERF."),
    trained_size: str | None = typer.Option(
        None, "--trained-size", help="Input size of the trained ERF: 224, or H W. Default: each model's own."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the summary."),
) -> None:
    """Trace every model of the sources matching --models (meta device, no weights) at its default input
    size and at each --input-size, and write a row per model, size and stage (the final feature map last) to
    OUT/atlas.csv. Resumes: a model already stored at the same sizes is kept. A model that fails is one line
    on stderr and a row of OUT/failures.csv (status failed; not-defined where the model itself cannot run at
    that size; no-weights where --erf-trained found no trained weights). Under torchrun each process takes every
    N-th model."""
    from rfkit.atlas.build import build_atlas
    from rfkit.atlas.measured import ErfAtInit, ErfTrained, images_option, weights_table
    from rfkit.atlas.zoo import parse_sources
    from rfkit.formatting import one_line

    sizes = [parse_input_size(s) for s in input_size]
    counts = {"ok": 0, "failed": 0, "kept": 0}
    trained = None
    if erf_trained:
        trained = ErfTrained(
            images_option(images),
            trained_images,
            parse_input_size(trained_size, "--trained-size"),
            weights_table(weights_dir, weights_map),
            hub,
        )
    elif weights_dir or weights_map:
        raise UsageError("--weights-dir and --weights-map give the weights of --erf-trained: add --erf-trained")

    def done(r) -> None:
        counts["kept" if r.skipped else "ok" if r.ok else "failed"] += 1
        for f in r.failures:
            what = FAILURE_LINES.get(f.get("status", "failed"), "failed")
            typer.echo(f"{what}: {one_line(f['model'])} at {f['input_size']}: {one_line(f['reason'])}", err=True)
        if not quiet and not r.skipped and r.ok:
            typer.echo(f"{one_line(r.model.name)}: {len(r.rows)} rows ({r.seconds:.1f} s)")

    table = build_atlas(
        out,
        sources=parse_sources(source),
        models=models,
        sizes=sizes,
        timeout=timeout,
        resume=not fresh,
        retry_failed=retry_failed,
        erf_init=ErfAtInit(parse_input_size(erf_size, "--erf-size"), erf_images) if erf_init else None,
        erf_trained=trained,
        on_done=done,
    )
    typer.echo(
        f"{counts['ok']} models traced, {counts['kept']} kept from before, {counts['failed']} with failures "
        f"(this process); table: {table}"
    )


#: How a row of failures.csv starts its line on stderr, by status.
FAILURE_LINES = {"failed": "failed", "not-defined": "not defined", "no-weights": "no trained weights"}


@atlas_app.command("query")
def query_command(
    expression: str = typer.Argument(..., help="e.g. 'rf_final >= 800 and stride_final == 32'."),
    atlas: Path = typer.Option(Path("rfkit-atlas"), "--atlas", "-a", help=ATLAS_HELP),
    input_size: str | None = typer.Option(
        None, "--input-size", help="Rows at this input size (640, or H W). Default: each model's own."
    ),
    layers: str = typer.Option("final", "--layers", help="final (the final feature map: a row per model) or all."),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated columns to print."),
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
) -> None:
    """Print the atlas rows for which EXPRESSION holds: column names, numbers, quoted strings, comparisons,
    arithmetic and and/or/not (nothing else is evaluated)."""
    from rfkit.atlas.table import load, pick_columns, query, select_rows

    df = select_rows(load(atlas), parse_input_size(input_size), layers)
    found = pick_columns(query(df, expression), columns.split(",") if columns else SHOWN)
    if csv:
        found.to_csv(sys.stdout, index=False)
        return
    _print_table(found)


def _print_table(df) -> None:
    from rich.table import Table

    from rfkit_cli.console import stdout_console

    table = Table(*map(str, df.columns))
    for row in df.itertuples(index=False):
        table.add_row(*map(str, row))
    console = stdout_console()
    console.print(table)
    console.print(f"{len(df)} rows")


@atlas_app.command("site")
def site_command(
    atlas: Path = typer.Option(Path("rfkit-atlas"), "--atlas", "-a", help=ATLAS_HELP),
    site: Path = typer.Option(Path("rfkit-atlas-site"), "--site", help="The mkdocs project folder to write."),
    title: str = typer.Option("rfkit receptive-field atlas", "--title", help="The site's name."),
) -> None:
    """Write the atlas as an mkdocs-material project: a page listing every model (sortable, filterable), a
    page per family with its members' RF growth on one plot, a page per model. Build it with
    `mkdocs build -f SITE/mkdocs.yml`."""
    from rfkit.atlas.site import build_atlas_site

    written = build_atlas_site(atlas, site, title)
    typer.echo(f"wrote the atlas site to {written}; build it with: mkdocs build -f {written / 'mkdocs.yml'}")
