#!/usr/bin/env python3
"""Regenerate the atlas the docs publish: every model of timm, torchvision and ultralytics, analytic columns.

One command, run from anywhere (paths are relative to this file; part of the release checklist, RELEASING.md)::

    python docs/build_atlas.py                       # build (resumes), site, docs page, table, screenshots
    python docs/build_atlas.py --atlas A --site S    # other folders for the atlas and its site

It runs, in order:

1. ``torchrun --standalone --nproc-per-node 2 -m rfkit_cli.app atlas build --source timm,torchvision,ultralytics
   --input-size 640 --out rfkit-atlas -q`` (one process per core, one torch thread each; it resumes: run it again
   after an interruption and only the missing models are traced);
2. ``rfkit atlas site --atlas rfkit-atlas --site rfkit-atlas-site`` and ``mkdocs build --strict`` of that site;
3. the docs' copy: ``docs/atlas-models.md`` (the sortable, filterable list of every model at its default size:
   text, so a release's diff shows which models' RFs changed), ``docs/assets/atlas/atlas.csv.gz`` (the whole
   tidy table, every stage at both sizes: about 8 MB as CSV, 0.3 MB compressed, written byte-for-byte
   reproducibly) and ``failures.csv``;
4. with Chromium (``apt-get install chromium``), screenshots of the built site for ``docs/atlas.md``: the list
   with a filter typed in, a family page and a model page (``docs/assets/atlas/*.png``, quantised to 128 colours
   to keep them small), taken with the browser tests' driver (``tests/chromium.py``).

What is committed: step 3 and 4's files. What is not: the atlas folder (a JSON file per model, tens of MB) and
the built site (a page and a figure per model and family, about 125 MB): the one command rebuilds both.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
ASSETS = DOCS / "assets" / "atlas"
PAGE = DOCS / "atlas-models.md"
SOURCES = "timm,torchvision,ultralytics"
TABLE_GZ = "atlas.csv.gz"


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(cmd, check=True, env=env, **kwargs)


def build(atlas: Path, nproc: int) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cli = ["-m", "rfkit_cli.app", "atlas", "build", "--source", SOURCES, "--input-size", "640", "--out", str(atlas)]
    run([*torchrun, *cli, "-q"])


def site(atlas: Path, folder: Path) -> Path:
    from rfkit.atlas.site import build_atlas_site

    build_atlas_site(atlas, folder)
    run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", "mkdocs.yml"], cwd=folder)
    return folder / "site"


def _models(n: int) -> str:
    return f"{n} model" if n == 1 else f"{n} models"


def docs_page(atlas: Path) -> None:
    """``docs/atlas-models.md`` and the tables in ``docs/assets/atlas/``."""
    from rfkit.atlas import load
    from rfkit.atlas.site import LIST_HELP, WIDE_PAGE, model_list
    from rfkit.atlas.table import FAILED, FAILURES, NOT_DEFINED, TABLE, load_failures
    from rfkit.report.markdown import md_text
    from rfkit.version import __version__

    df = load(atlas / TABLE)
    failures = load_failures(atlas)
    finals = df[(df["input_from"] == "default") & df["is_final"]]
    counts = finals.groupby(finals["source"].str.split("-").str[0], sort=False).size()
    failed = failures[failures["status"] == FAILED]
    failed_default = failed[failed["input_size"] == "default"]
    failed_640 = failed[failed["input_size"] == "640x640"]
    undefined_640 = failures[(failures["status"] == NOT_DEFINED) & (failures["input_size"] == "640x640")]
    ASSETS.mkdir(parents=True, exist_ok=True)
    (ASSETS / TABLE).unlink(missing_ok=True)
    # no name and no time in the gzip header: the same table gives the same bytes, no change to commit
    with open(ASSETS / TABLE_GZ, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write((atlas / TABLE).read_bytes())
    shutil.copyfile(atlas / FAILURES, ASSETS / FAILURES)
    lines = [
        *WIDE_PAGE,
        "# The atlas of timm, torchvision and ultralytics",
        "",
        f"Every model of timm, torchvision (classification, segmentation, detection backbones) and the yaml models "
        f"ultralytics ships, traced analytically by rfkit {md_text(__version__)} with `python docs/build_atlas.py` "
        "([how](atlas.md#building-the-published-atlas)): "
        + ", ".join(f"{n} from {md_text(s)}" for s, n in counts.items())
        + f". rfkit could not trace {_models(len(failed_default))} at their default size and {len(failed_640)} "
        f"at 640 px; {_models(len(undefined_640))} cannot run at 640 px themselves (not defined at that size: a patch "
        "that does not divide it, a fixed attention grid): [failures.csv](assets/atlas/failures.csv) gives each "
        "one's status and reason.",
        "",
        "The whole table, every stage at the default size and at 640 px with every column of "
        f"[the atlas](atlas.md#what-is-in-the-table): [{TABLE_GZ}](assets/atlas/{TABLE_GZ}) "
        f'({(ASSETS / TABLE_GZ).stat().st_size / 1e6:.1f} MB; `rfkit.atlas.load("{TABLE_GZ}")` reads it, '
        f"`rfkit atlas query --atlas {TABLE_GZ} ...` queries it).",
        "",
        f"{len(finals)} models at their default input size: {LIST_HELP}",
        "",
        *model_list(finals),
        "",
    ]
    PAGE.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(finals)} models) and {ASSETS.relative_to(ROOT)}/")


def screenshots(built: Path, family: str, model: str, filter_text: str) -> None:
    """The list with ``filter_text`` typed into its box, the page of ``family`` and of ``model`` (``source:name``)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from chromium import CHROMIUM, Browser, serve
    from PIL import Image

    from rfkit.atlas.site import page_name

    if CHROMIUM is None:
        print("no chromium on PATH: screenshots skipped (apt-get install chromium)")
        return
    base, server = serve(built)
    browser = Browser()
    try:
        shots = {
            "list.png": ("index.html", filter_text, 620),
            "family.png": (f"families/{page_name(family)}/", None, 700),
            "model.png": (f"models/{page_name(model)}/", None, 820),
        }
        for name, (page, typed, height) in shots.items():
            found = browser.open(base + page)
            if found["errors"]:
                raise RuntimeError(f"{page}: console errors {found['errors']}")
            if typed:
                browser.type_into("input.atlas-filter", typed)
            browser.evaluate("window.scrollTo(0, 0)")
            path = browser.screenshot(ASSETS / name, height=height)
            Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")
    finally:
        browser.close()
        server.shutdown()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atlas", type=Path, default=Path("rfkit-atlas"), help="the atlas folder (resumed)")
    p.add_argument("--site", type=Path, default=Path("rfkit-atlas-site"), help="the atlas site's folder")
    p.add_argument("--nproc", type=int, default=2, help="torchrun processes (one per core)")
    p.add_argument("--skip-build", action="store_true", help="use the atlas folder as it is")
    p.add_argument("--family", default="regnet", help="the family page of the screenshots")
    p.add_argument("--model", default="timm:resnet50", help="the model page of the screenshots (source:name)")
    p.add_argument("--filter", default="convnext rf>=1000", help="typed into the list's box for its screenshot")
    args = p.parse_args(argv)
    if not args.skip_build:
        build(args.atlas, args.nproc)
    built = site(args.atlas, args.site)
    docs_page(args.atlas)
    screenshots(built, args.family, args.model, args.filter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
