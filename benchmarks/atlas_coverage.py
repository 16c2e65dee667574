"""Time and coverage of an atlas build: ``benchmarks/results/atlas_timm.md``.

Run the build under ``/usr/bin/time -v`` (wall time, and the user + system CPU seconds of every process it
waited for: torchrun, its ranks and their forked children) with the load average sampled beside it, then this
script on its folder::

    (while true; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 10; done) > load.log &
    /usr/bin/time -v -o time.log torchrun --standalone --nproc-per-node 2 $(which rfkit) atlas build \\
        --source timm --out A -q
    python benchmarks/atlas_coverage.py A --time time.log --load load.log --note "8 engineers' tests running"

It reads the per-model files of the atlas (``A/models/*.json``: each model's seconds, rows and failures). A size a
model cannot run at by design (status ``not-defined``: a ViT whose patch does not divide 640, a fixed attention
bias) and a model without trained weights (``no-weights``) are counted apart from rfkit's failures. On a
shared machine the wall time says little; the CPU seconds divided by the cores are what the same build takes on
a quiet machine with that many cores (a little less: CPU time itself grows when processes fight for caches).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def read_time(path: Path) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak memory from a ``/usr/bin/time -v`` report."""
    text = path.read_text()

    def field(name: str) -> str:
        m = re.search(rf"{re.escape(name)}: (.+)", text)
        return m.group(1).strip() if m else ""

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {"wall": wall, "cpu": cpu, "max_rss_gb": int(field("Maximum resident set size (kbytes)")) / 1e6}


def read_load(path: Path) -> list[float]:
    """The 1-minute load averages of a log of ``<unix time> <1 min> <5 min> <15 min>`` lines."""
    return [float(line.split()[1]) for line in path.read_text().splitlines() if len(line.split()) >= 2]


def reason_group(reason: str) -> str:
    """A failure's reason without what differs between models of one cause (node names, numbers, the
    make_fx attempt's own message).

    >>> reason_group("running the traced graph failed at node _assert_34 (torch._assert): AssertionError: x")
    'running the traced graph failed at node … (torch._assert): AssertionError: x'
    """
    r = re.sub(r" \(recording it with make_fx failed too.*", "", reason)
    r = re.sub(r"at node \S+ \(", "at node … (", r)
    r = re.sub(r"Proxy\([^)]*\)", "…", r)
    r = re.sub(r"\b\d+(\.\d+)?\b", "N", r)
    return r[:170]


def status(failure: dict) -> str:
    """A stored failure's status; ``failed`` for files written before statuses.

    >>> status({"reason": "x"}), status({"status": "not-defined"})
    ('failed', 'not-defined')
    """
    return failure.get("status", "failed")


def _costliest(stored: list[dict], n: int) -> list[tuple[float, str]]:
    return sorted(((d["cpu_seconds"], d["model"]) for d in stored if d.get("cpu_seconds") is not None), reverse=True)[
        :n
    ]


def summary(folder: Path, timing: dict | None, load: list[float], cores: int, note: str) -> str:
    stored = [json.loads(p.read_text()) for p in sorted((folder / "models").glob("*.json"))]
    by_source: dict[str, list[dict]] = defaultdict(list)
    for d in stored:
        by_source[d["source"]].append(d)
    lines = [
        "# Atlas build: time and coverage",
        "",
        f"`python benchmarks/atlas_coverage.py {folder.name}` on the folder of `rfkit atlas build` (each model at "
        f"its default size and at 640 px, meta device, {cores} torchrun ranks, one torch thread each).",
        "",
        "| source | models | every size traced | failed at the default size | failed at another size only | "
        "not defined at a size (the model's own limit) | no trained weights | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, models in by_source.items():
        failed = [[f for f in d["failures"] if status(f) == "failed"] for d in models]
        whole = sum(not f for f in failed)
        default = sum(any(x["input_size"] == "default" for x in f) for f in failed)
        undefined = sum(any(status(f) == "not-defined" for f in d["failures"]) for d in models)
        unweighted = sum(any(status(f) == "no-weights" for f in d["failures"]) for d in models)
        rows = sum(len(d["rows"]) for d in models)
        lines.append(
            f"| {source} | {len(models)} | {whole} ({100 * whole / len(models):.1f}%) | {default} | "
            f"{len(models) - whole - default} | {undefined} | {unweighted} | {rows} |"
        )
    lines += [
        "",
        '"Every size traced" counts the models rfkit did not fail on: a size a model cannot run at by design is '
        "not an rfkit failure (its own forward raises there, on the meta device), and is listed apart below.",
        "",
    ]
    if timing:
        quiet = timing["cpu"] / cores / 60
        lines += [
            f"Wall time: {timing['wall'] / 60:.1f} min; CPU time (user + system, every process): "
            f"{timing['cpu'] / 60:.1f} min, so **{quiet:.1f} min on {cores} quiet cores** (CPU time / {cores}); "
            f"peak memory of one process {timing['max_rss_gb']:.1f} GB.",
            "",
        ]
    if load:
        lines += [
            f"Load average (1 min, sampled every 10 s during the build): median {statistics.median(load):.1f}, "
            f"min {min(load):.1f}, max {max(load):.1f}, on {cores} cores.",
            "",
        ]
    if note:
        lines += [note, ""]
    seconds = sorted(d["seconds"] for d in stored)
    if seconds:
        total = sum(seconds)
        top = sum(seconds[-30:]) / total
        lines += [
            f"Wall seconds per model (as stored, under that load): median {statistics.median(seconds):.2f}, 90th "
            f"percentile {seconds[int(0.9 * len(seconds))]:.2f}, max {seconds[-1]:.2f}; the 30 slowest models took "
            f"{100 * top:.0f}% of the time.",
            "",
        ]
    cpu = sorted(d["cpu_seconds"] for d in stored if d.get("cpu_seconds") is not None)
    if cpu:
        total = sum(cpu)
        lines += [
            f"CPU seconds per model (its own process, both sizes; {len(cpu)} models): median "
            f"{statistics.median(cpu):.2f}, 90th percentile {cpu[int(0.9 * len(cpu))]:.2f}, max {cpu[-1]:.2f}, "
            f"sum {total / 60:.1f} min ({total / 60 / cores:.1f} min on {cores} cores; the rest of the CPU time "
            f"above is the processes' start, imports and the table); the 30 costliest models took "
            f"{100 * sum(cpu[-30:]) / total:.0f}%: "
            + ", ".join(f"{m} {c:.0f} s" for c, m in _costliest(stored, 8))
            + ".",
            "",
        ]
    for kind, title in SECTIONS.items():
        lines += _reasons(stored, kind, title)
    return "\n".join(lines)


#: The tables of reasons, by status.
SECTIONS = {
    "failed": "rfkit failures, by reason",
    "not-defined": "Not defined at the size (the model itself cannot run there), by the model's reason",
    "no-weights": "No trained weights, by reason",
}


def _reasons(stored: list[dict], kind: str, title: str) -> list[str]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in stored:
        for f in d["failures"]:
            if status(f) == kind:
                groups[reason_group(f["reason"])].append((d["model"], f["input_size"]))
    if not groups:
        return []
    lines = [f"## {title}", "", "| models | size | reason | which |", "|---|---|---|---|"]
    for reason, hits in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        sizes = ", ".join(f"{s} ({n})" for s, n in Counter(s for _, s in hits).items())
        names = ", ".join(sorted(m for m, _ in hits)[:8]) + (", ..." if len(hits) > 8 else "")
        lines.append(f"| {len(hits)} | {sizes} | {reason.replace('|', '/')} | {names} |")
    return [*lines, ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("atlas", type=Path)
    p.add_argument("--time", type=Path, default=None, help="the build's /usr/bin/time -v report")
    p.add_argument("--load", type=Path, default=None, help="the load average sampled during the build")
    p.add_argument("--cores", type=int, default=2, help="cores (and torchrun ranks) of the machine")
    p.add_argument("--note", default="", help="a paragraph on the conditions of the run")
    p.add_argument("--out", type=Path, default=RESULTS / "atlas_timm.md")
    args = p.parse_args(argv)
    timing = read_time(args.time) if args.time else None
    load = read_load(args.load) if args.load else []
    args.out.write_text(summary(args.atlas, timing, load, args.cores, args.note))
    print(args.out.read_text().split("\n## ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
