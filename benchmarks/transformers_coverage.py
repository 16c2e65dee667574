"""Transformers coverage: which vision classes that ``rfkit list-models --source transformers`` prints build and trace?

For every class name: build ``transformers:CLASS`` from its default config on the meta device (no weights, offline)
and trace it at its own input size (its image processor's), as ``rfkit graph`` does; with ``--erf``, also build it
on the CPU at random init and measure a one-image ERF of its default layer at ``--size`` px, as ``rfkit erf`` does.
Rows stream into ``benchmarks/results/transformers_coverage.csv`` (``--resume`` skips the classes already there);
the summary goes to ``transformers_coverage.md``.

Usage::

    python benchmarks/transformers_coverage.py [--models 'Segformer*,Swin*'] [--erf --size 64] [--resume] [--summarise]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One class of the table."""

    model: str
    status: str = ""  # ok | error
    input: str = ""
    method: str = ""
    output_rf: str = ""
    unsupported: int = 0
    erf_layer: str = ""
    seconds: float = 0.0
    error: str = ""


def _rf(info) -> str:
    if info.unknown:
        return "unknown"
    return "global" if info.is_global else "×".join(str(v) for v in info.size)


def measure(name: str, erf: bool, size: int) -> Row:
    """Trace ``transformers:name`` at its own input size; with ``erf``, a one-image ERF at ``size`` px."""
    import rfkit

    row = Row(name)
    spec = f"transformers:{name}"
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = rfkit.trace(spec)
            row.input, row.method = "×".join(map(str, g.input_size)), g.method
            row.output_rf, row.unsupported = _rf(g[""]) if "" in g.module_outputs else "tuple", len(g.unsupported)
            if erf:
                res = rfkit.erf(spec, images="noise", num_images=1, input_size=size, device="cpu", bootstrap=0)
                (row.erf_layer,) = res.layers
                if not res.maps[row.erf_layer].sum() > 0:
                    raise ValueError(f"the ERF of {row.erf_layer} is all zero")
        row.status = "ok"
    except Exception as e:  # noqa: BLE001 - every failure is a row
        row.status, row.error = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    row.seconds = round(time.perf_counter() - t0, 2)
    return row


def write_summary(rows: list[Row], erf: bool, size: int, path: Path, total: int, models: str = "*") -> None:
    counts = Counter(r.status for r in rows)
    methods = Counter(r.method for r in rows if r.status == "ok")
    what = (
        f"traced at its own input size, and a one-image ERF of its default layer at {size}×{size} px"
        if erf
        else ("traced on the meta device at its own input size")
    )
    lines = [
        "# Transformers coverage",
        "",
        f"Command: `python benchmarks/transformers_coverage.py{' --erf --size ' + str(size) if erf else ''}"
        f"{'' if models == '*' else f' --models {models!r}'}`: every class `rfkit list-models --source transformers` "
        f"prints{'' if models == '*' else ' that matches one of these patterns'}, built from its default config "
        f"offline, {what}.",
        "",
        *([f"**Partial run: {len(rows)} of {total} classes** (`--resume` goes on).", ""] if total > len(rows) else []),
        "| classes | ok | errors | traced with torch.fx | recorded with make_fx | with unsupported ops |",
        "|---|---|---|---|---|---|",
        f"| {len(rows)} | {counts['ok']} | {counts['error']} | {methods['torch.fx']} | {methods['make_fx']} | "
        f"{sum(1 for r in rows if r.status == 'ok' and r.unsupported)} |",
        "",
    ]
    lines += ["Seconds: build and trace (and ERF) on one busy 2-core machine shared with other jobs.", ""]
    bad = [r for r in rows if r.status != "ok"]
    if bad:
        lines += ["| class | error |", "|---|---|"] + [f"| `{r.model}` | {r.error} |" for r in bad] + [""]
    lines += ["| class | input | traced with | output RF | unsupported ops | seconds |", "|---|---|---|---|---|---|"]
    lines += [
        f"| `{r.model}` | {r.input} | {r.method} | {r.output_rf} | {r.unsupported} | {r.seconds} |"
        for r in rows
        if r.status == "ok"
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="*", help="Comma-separated wildcard patterns over class names.")
    parser.add_argument("--erf", action="store_true")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--summarise", action="store_true", help="Only rewrite the summary from the CSV.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rfkit.models.transformers import image_classes

    names = sorted({n for pattern in args.models.split(",") for n in image_classes(pattern)})
    out = RESULTS / "transformers_coverage.csv"
    done: dict[str, Row] = {}
    if (args.resume or args.summarise) and out.is_file():
        with out.open(newline="") as f:
            done = {
                r["model"]: Row(**{**r, "seconds": float(r["seconds"]), "unsupported": int(r["unsupported"])})
                for r in csv.DictReader(f)
            }
    rows = [done[n] for n in names if n in done]
    if not args.summarise:
        with out.open("a" if done else "w", newline="") as f:
            writer = csv.DictWriter(f, [fl.name for fl in fields(Row)])
            if not done:
                writer.writeheader()
            for n in names:
                if n in done:
                    continue
                row = measure(n, args.erf, args.size)
                rows.append(row)
                writer.writerow(asdict(row))
                f.flush()
                print(f"{row.status:6} {row.seconds:7.1f}s {n} {row.method} {row.output_rf} {row.error}", flush=True)
    rows.sort(key=lambda r: names.index(r.model))
    write_summary(rows, args.erf, args.size, RESULTS / "transformers_coverage.md", len(names), args.models)


if __name__ == "__main__":
    main()
