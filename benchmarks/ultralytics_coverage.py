"""Ultralytics coverage: does every model ``rfkit list-models --ultralytics`` prints build and measure?

For every bundled yaml name (each scale letter spelt out): build it (random init, CPU), trace it and measure a
one-image ERF of its default layer at a small input, as ``rfkit.erf`` does. A name that cannot be built on this
machine (:func:`rfkit.models.ultralytics.unavailable_reason`: a layer that downloads weights, offline) is listed
as ``left out`` with the reason, as ``rfkit list-models`` leaves it out. Rows stream into
``benchmarks/results/ultralytics_coverage.csv`` (``--resume`` skips the names already there); the summary goes to
``ultralytics_coverage.md``.

Usage::

    python benchmarks/ultralytics_coverage.py [--size 64] [--models 'yolo11*'] [--resume] [--summarise]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One model of the table."""

    model: str
    status: str = ""  # ok | left out | error
    layer: str = ""
    rf: str = ""
    method: str = ""
    seconds: float = 0.0
    error: str = ""


def measure(name: str, size: int) -> Row:
    """Build, trace and measure ``ultralytics:name``: the default layer's one-image ERF at ``size`` px."""
    import rfkit
    from rfkit.models.ultralytics import unavailable_reason

    row = Row(name)
    why = unavailable_reason(name)
    if why:
        row.status, row.error = "left out", why
        return row
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = rfkit.erf(
                f"ultralytics:{name}",
                images=rfkit.Images("noise", 1, input_size=size),
                options=rfkit.ERFOptions(bootstrap=0),
                runtime="cpu",
            )
        (layer,) = res.layers
        info = res.rf(layer)
        if not res.maps[layer].sum() > 0:
            raise ValueError(f"the ERF of {layer} is all zero")
        row.status, row.layer, row.method = "ok", layer, res.graph.method
        row.rf = "global" if info.is_global else "×".join(str(v) for v in info.size)
    except Exception as e:  # noqa: BLE001 - every failure is a row
        row.status, row.error = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    row.seconds = round(time.perf_counter() - t0, 2)
    return row


def write_summary(rows: list[Row], size: int, path: Path, total: int | None = None) -> None:
    """The table of ``rows``; ``total``: the number of names, when the run stopped before measuring all."""
    counts = Counter(r.status for r in rows)
    times = sorted(r.seconds for r in rows if r.status == "ok")
    lines = [
        "# Ultralytics coverage",
        "",
        f"Command: `python benchmarks/ultralytics_coverage.py --size {size}`: every bundled yaml name, built at "
        f"random init on the CPU, traced, and a one-image ERF of its default layer at {size}×{size} px.",
        "",
        *(
            [f"**Partial run: {len(rows)} of {total} names** (resume with `--resume`).", ""]
            if total and total > len(rows)
            else []
        ),
        "| names | built and measured | left out (reason below) | errors |",
        "|---|---|---|---|",
        f"| {len(rows)} | {counts['ok']} | {counts['left out']} | {counts['error']} |",
        "",
    ]
    if times:
        lines.append(
            f"Seconds per model (build + trace + ERF, one busy 2-core machine): median {times[len(times) // 2]:.1f}, "
            f"max {times[-1]:.1f}."
        )
        lines.append("")
    odd = [r for r in rows if r.status != "ok"]
    if odd:
        lines += ["| model | status | reason |", "|---|---|---|"]
        lines += [f"| `{r.model}` | {r.status} | {r.error} |" for r in odd]
        lines.append("")
    lines += ["| model | layer | RF (px) | traced with | seconds |", "|---|---|---|---|---|"]
    lines += [f"| `{r.model}` | `{r.layer}` | {r.rf} | {r.method} | {r.seconds} |" for r in rows if r.status == "ok"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--models", default="*")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--summarise", action="store_true", help="Only rewrite the summary from the CSV.")
    args = parser.parse_args()
    from rfkit.models.ultralytics import bundled_yaml_names

    names = [n for n in bundled_yaml_names() if fnmatch.fnmatch(n, args.models)]
    out = RESULTS / "ultralytics_coverage.csv"
    done: dict[str, Row] = {}
    if (args.resume or args.summarise) and out.is_file():
        with out.open(newline="") as f:
            done = {r["model"]: Row(**{**r, "seconds": float(r["seconds"])}) for r in csv.DictReader(f)}
    rows = [done[n] for n in names if n in done]
    if args.summarise:
        write_summary(rows, args.size, RESULTS / "ultralytics_coverage.md", total=len(names))
        return
    with out.open("a" if done else "w", newline="") as f:
        writer = csv.DictWriter(f, [fl.name for fl in fields(Row)])
        if not done:
            writer.writeheader()
        for n in names:
            if n in done:
                continue
            row = measure(n, args.size)
            rows.append(row)
            writer.writerow(asdict(row))
            f.flush()
            print(f"{row.status:8} {row.seconds:7.1f}s {n} {row.error}", flush=True)
    rows.sort(key=lambda r: names.index(r.model))
    write_summary(rows, args.size, RESULTS / "ultralytics_coverage.md")


if __name__ == "__main__":
    main()
