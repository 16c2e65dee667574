"""Time and coverage of an atlas build: ``benchmarks/results/atlas_timm.md``.

Run the build (timed), then this script on its folder::

    /usr/bin/time -v torchrun --standalone --nproc-per-node 2 $(which rfkit) atlas build --source timm --out A -q
    python benchmarks/atlas_coverage.py A --wall MINUTES --note "load average 12 on 2 cores"

It reads the per-model files of the atlas (``A/models/*.json``: each model's seconds, rows and failures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def summary(folder: Path, wall: float | None, note: str) -> str:
    stored = [json.loads(p.read_text()) for p in sorted((folder / "models").glob("*.json"))]
    seconds = sorted(d["seconds"] for d in stored)
    failed = Counter(f["input_size"] for d in stored for f in d["failures"])
    whole = sum(not d["failures"] for d in stored)
    rows = sum(len(d["rows"]) for d in stored)
    lines = [
        "# Atlas build: time and coverage",
        "",
        f"`python benchmarks/atlas_coverage.py {folder.name}` on the folder of `rfkit atlas build --source timm` "
        "(default size and 640 px, meta device, 2 torchrun ranks, one torch thread each).",
        "",
        f"Models stored: {len(stored)}; with every size traced: {whole} ({100 * whole / max(len(stored), 1):.1f}%); "
        f"rows: {rows}.",
        "",
        "| size | models that failed there |",
        "|---|---|",
        *[f"| {size} | {n} |" for size, n in sorted(failed.items())],
        "",
    ]
    if seconds:
        lines += [
            f"Seconds per model (both sizes, in one rank): median {statistics.median(seconds):.2f}, 90th percentile "
            f"{seconds[int(0.9 * len(seconds))]:.2f}, max {seconds[-1]:.2f}, sum {sum(seconds) / 60:.1f} min "
            f"(so {sum(seconds) / 120:.1f} min of wall time on 2 ranks).",
            "",
        ]
    if wall is not None:
        lines += [f"Wall time measured: {wall:.1f} min. {note}", ""]
    reasons = [
        f"| {d['model']} | {f['input_size']} | {f['reason'][:160].replace('|', '/')} |"
        for d in stored
        for f in d["failures"]
    ]
    if reasons:
        lines += ["## Failures", "", "| model | size | reason |", "|---|---|---|", *sorted(reasons), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("atlas", type=Path)
    p.add_argument("--wall", type=float, default=None, help="measured wall time of the build, minutes")
    p.add_argument("--note", default="")
    p.add_argument("--out", type=Path, default=RESULTS / "atlas_timm.md")
    args = p.parse_args(argv)
    args.out.write_text(summary(args.atlas, args.wall, args.note))
    print(args.out.read_text().split("\n## ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
