"""Keras coverage: does every model ``rfkit list-models --source keras`` prints build, read and measure?

For every model of ``keras.applications``: build it (random init, CPU) at its default input size, read its RF
graph from its layer configs (``rfkit.trace``), and count the layers without a rule (``unsupported``) and the
nodes whose shape differs from Keras' (``incomplete``): both must be 0 for an exact graph. The final feature
map's RF is recorded, and a one-image ERF of it is measured at ``--size`` (through Keras, as ``rfkit.erf``
does). Rows go to ``benchmarks/results/keras_coverage.csv``, the summary to ``keras_coverage.md``.

Usage::

    python benchmarks/keras_coverage.py [--size 96] [--models 'ResNet*'] [--no-erf] [--summarise]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One model of the table."""

    model: str
    status: str = ""  # ok | inexact | error
    input: str = ""
    nodes: int = 0
    unsupported: int = 0
    incomplete: str = ""
    layer: str = ""
    rf: str = ""
    stride: str = ""
    erf: str = ""
    seconds: float = 0.0
    error: str = ""


def measure(name: str, size: int, erf: bool) -> Row:
    """Build ``keras:name``, read its graph at its own size, and measure one ERF at ``size`` px."""
    import rfkit
    from rfkit.graph.layers import default_layer

    row = Row(f"keras:{name}")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = rfkit.prepare(row.model, weights="random-safe")
            g = p.graph
            row.input = "x".join(map(str, g.input_size))
            row.nodes, row.unsupported = len(g), sum(u.count for u in g.unsupported)
            row.incomplete = g.incomplete or ""
            row.layer = default_layer(g, p.model)
            row.rf = "x".join(f"{v:g}" for v in g[row.layer].size)
            row.stride = "x".join(f"{v:g}" for v in g[row.layer].stride)
            if erf:
                small = rfkit.prepare(row.model, weights="random-safe", input_size=size)
                layer = default_layer(small.graph, small.model)
                res = rfkit.erf(small, layers=layer, images="noise", num_images=1, device="cpu", metrics=False)
                row.erf = f"{layer} {'ok' if res.maps[layer].sum() > 0 else 'zero map'}"
        row.status = "ok" if not row.unsupported and not row.incomplete else "inexact"
    except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
        row.status, row.error = "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    row.seconds = round(time.perf_counter() - start, 1)
    return row


def summarise(rows: list[Row], erf: bool, size: int) -> None:
    """Write ``keras_coverage.md`` from the rows."""
    ok = sum(r.status == "ok" for r in rows)
    how = f"ERF of the final feature map at {size} px, one noise image" if erf else "graphs only (--no-erf)"
    lines = [
        "# Keras coverage",
        "",
        f"{ok} of {len(rows)} keras.applications models read exactly (no unsupported layer, every shape equal to",
        f"Keras') at their default input size, random-safe weights; {how}. The RF is the final feature map's",
        "(inf: global, through squeeze-and-excitation gates).",
        "",
        "| model | status | input | nodes | final layer | RF | stride | ERF | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.status}{': ' + r.error if r.error else ''} | {r.input} | {r.nodes} | {r.layer} | "
            f"{r.rf} | {r.stride} | {r.erf} | {r.seconds} |"
        )
    (RESULTS / "keras_coverage.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="input size of the one-image ERF")
    parser.add_argument("--models", default="*", help="fnmatch pattern over keras.applications names")
    parser.add_argument("--no-erf", action="store_true", help="read the graphs only")
    parser.add_argument("--summarise", action="store_true", help="rewrite the .md from the .csv only")
    args = parser.parse_args()
    if args.summarise:
        with open(RESULTS / "keras_coverage.csv", newline="") as f:
            rows = [Row(**{k: type(getattr(Row(""), k))(v) for k, v in r.items()}) for r in csv.DictReader(f)]
        return summarise(rows, any(r.erf for r in rows), args.size)
    from rfkit.models.keras_build import application_names

    names = [n for n in application_names() if fnmatch.fnmatch(n, args.models)]
    RESULTS.mkdir(exist_ok=True)
    rows = []
    with open(RESULTS / "keras_coverage.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, [x.name for x in fields(Row)])
        writer.writeheader()
        for n in names:
            row = measure(n, args.size, not args.no_erf)
            rows.append(row)
            writer.writerow(asdict(row))
            f.flush()
            print(f"{row.model}: {row.status} {row.input} {row.layer} rf {row.rf} ({row.seconds} s) {row.error}")
    summarise(rows, not args.no_erf, args.size)


if __name__ == "__main__":
    main()
