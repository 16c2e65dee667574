"""Zoo coverage: does rfkit trace every timm and torchvision architecture with zero unsupported ops?

For every ``timm.list_models()`` architecture and every torchvision classification, segmentation and
detection backbone, at the model's default input size, on the meta device: traced? how many ops without
an RF rule? how long? Rows stream into ``benchmarks/results/zoo_coverage.csv`` (through a ``.partial``
file, renamed when the run completes, so ``--resume`` picks up an interrupted run), and a summary with
every failure's reason goes to ``zoo_coverage.md``.

``--verify`` runs :func:`rfkit.verify` instead, on one model per family (the one with the fewest
parameters of each timm module / torchvision family) at a small input size, into ``zoo_verify.csv`` /
``zoo_verify.md``.

Usage::

    python benchmarks/zoo_coverage.py [--jobs 2] [--models 'resnet*'] [--no-torchvision] [--resume]
    python benchmarks/zoo_coverage.py --verify [--verify-size 96]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import multiprocessing as mp
import signal
import sys
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One model of the coverage table."""

    source: str
    model: str
    family: str
    status: str = ""  # ok | unsupported | error | timeout
    input_size: str = ""
    method: str = ""
    nodes: int = 0
    unsupported_nodes: int = 0
    unsupported_ops: str = ""
    output_rf: str = ""
    seconds: float = 0.0
    error: str = ""


# --- which models (listed by the library, shared with `rfkit atlas build`) -----------------------------------
def timm_models(pattern: str) -> list[tuple[str, str, str]]:
    from rfkit.atlas.zoo import timm_models as listed

    return [(m.source, m.name, m.family) for m in listed(pattern)]


def torchvision_models(pattern: str) -> list[tuple[str, str, str]]:
    from rfkit.atlas.zoo import torchvision_models as listed

    return [(m.source, m.name, m.family) for m in listed(pattern)]


# --- one model -------------------------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def trace_one(task: tuple[str, str, str, int]) -> dict:
    """Trace one model in a worker; never raises."""
    source, name, family, timeout = task
    import rfkit

    row = Row(source, name, family)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        if source == "torchvision-detection":
            from rfkit.atlas.zoo import DETECTION_SIZE, build_detection_backbone

            g = rfkit.trace(build_detection_backbone(name), input_size=DETECTION_SIZE)
        else:
            g = rfkit.trace(name if source == "timm" else f"torchvision:{name}")
        ops = g.unsupported
        row.status = "unsupported" if ops else "ok"
        row.input_size = "x".join(map(str, g.input_size))
        row.method = g.method
        row.nodes = len(g)
        row.unsupported_nodes = sum(o.count for o in ops)
        row.unsupported_ops = "; ".join(f"{o.op} x{o.count}: {o.reasons[0]}" for o in ops)[:600]
        out = g.output
        row.output_rf = "global" if out.is_global else "x".join(map(str, out.size))
    except _Timeout:
        row.status, row.error = "timeout", f"no result within {timeout} s"
    except rfkit.RFKitError as e:
        row.status, row.error = "error", f"{type(e).__name__}: {e}"[:600]
    except Exception as e:  # noqa: BLE001 - a crash is a finding, reported in the table
        row.status, row.error = "error", f"crash {type(e).__name__}: {e}"[:600]
    finally:
        signal.alarm(0)
        row.seconds = round(time.perf_counter() - start, 3)
    return asdict(row)


def verify_one(task: tuple[str, str, str, int, int]) -> dict:
    source, name, family, timeout, size = task
    import timm

    import rfkit

    result = {
        "source": source,
        "model": name,
        "family": family,
        "status": "",
        "input_size": "",
        "checks": 0,
        "failures": 0,
        "notes": "",
        "seconds": 0.0,
        "error": "",
    }
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        spec = name if source == "timm" else f"torchvision:{name}"
        fixed = (
            source == "timm"
            and timm.get_pretrained_cfg(name) is not None
            and timm.get_pretrained_cfg(name).fixed_input_size
        )
        try:
            report = rfkit.verify(spec, input_size=None if fixed else size, max_layers=4)
        except rfkit.RFKitError:  # some models only take their own size (ViT pos-embeds, asserts)
            report = rfkit.verify(spec, input_size=None, max_layers=4)
        result.update(
            status="pass" if report.ok else "fail",
            input_size="x".join(map(str, report.input_size)),
            checks=len(report.checks),
            failures=len(report.failures),
            notes=f"{len(report.notes)} swaps"
            + "".join(
                f"; {c.layer} {c.kind}: analytic {c.analytic} measured {c.measured}" for c in report.failures[:3]
            ),
        )
    except _Timeout:
        result.update(status="timeout", error=f"no result within {timeout} s")
    except Exception as e:  # noqa: BLE001
        result.update(status="error", error=f"{type(e).__name__}: {e}"[:400])
    finally:
        signal.alarm(0)
        result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def parameter_count(source: str, name: str) -> int:
    """Parameters of a model built on the meta device (no memory), or a huge number if it cannot be built."""
    from rfkit.models.spec import build_model

    try:
        model = build_model(name if source == "timm" else f"torchvision:{name}")
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001
        return 1 << 62


def smallest_per_family(tasks: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The model with the fewest parameters of each family (float64 verification of a 7B model would not
    fit in memory; a small one exercises the same ops)."""
    best: dict[tuple[str, str], tuple[int, tuple]] = {}
    for t in tasks:
        n = parameter_count(t[0], t[1])
        key = (t[0], t[2])
        if key not in best or n < best[key][0]:
            best[key] = (n, t)
    return [t for _, t in sorted(best.values(), key=lambda x: (x[1][0], x[1][2]))]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


# --- output ----------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def summary(rows: list[dict]) -> str:
    lines = [
        "# Zoo coverage",
        "",
        "Command: `python benchmarks/zoo_coverage.py`, at each model's default input size, on the meta device.",
        "",
    ]
    lines += [
        "| source | models | traced, zero unsupported ops | with unsupported ops | errors | timeouts |",
        "|---|---|---|---|---|---|",
    ]
    by_source: dict[str, Counter] = {}
    for r in rows:
        by_source.setdefault(r["source"], Counter())[r["status"]] += 1
    for source, c in sorted(by_source.items()):
        n = sum(c.values())
        lines.append(
            f"| {source} | {n} | {c['ok']} ({100 * c['ok'] / n:.1f}%) | {c['unsupported']} | {c['error']} "
            f"| {c['timeout']} |"
        )
    seconds = sorted(float(r["seconds"]) for r in rows if r["status"] in ("ok", "unsupported"))
    if seconds:
        lines += [
            "",
            f"Trace time per model: median {seconds[len(seconds) // 2]:.2f} s, "
            f"90th percentile {seconds[int(len(seconds) * 0.9)]:.2f} s, max {seconds[-1]:.2f} s "
            "(2 workers, 1 torch thread each; meta device).",
            f"Models recorded with make_fx (torch.fx could not trace them): "
            f"{sum(r['method'] == 'make_fx' for r in rows)}.",
        ]
    ops = Counter()
    for r in rows:
        for part in filter(None, r["unsupported_ops"].split("; ")):
            ops[part.split(" x")[0]] += 1
    if ops:
        lines += ["", "## Ops without a rule (models affected)", "", "| op | models |", "|---|---|"]
        lines += [f"| `{op}` | {n} |" for op, n in ops.most_common()]
    bad = [r for r in rows if r["status"] != "ok"]
    explained = [
        (pattern, why) for pattern, why in KNOWN_GAPS if any(fnmatch.fnmatch(r["model"], pattern) for r in bad)
    ]
    if explained:
        lines += ["", "## Why they fail", "", "| models | why |", "|---|---|"]
        lines += [f"| `{pattern}` | {why} |" for pattern, why in explained]
    if bad:
        lines += [
            "",
            "## Every model that is not fully supported",
            "",
            "| model | source | status | reason |",
            "|---|---|---|---|",
        ]
        for r in sorted(bad, key=lambda r: (r["status"], r["model"])):
            reason = (r["error"] or r["unsupported_ops"]).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['model']} | {r['source']} | {r['status']} | {reason[:300]} |")
    return "\n".join(lines) + "\n"


def verify_summary(rows: list[dict]) -> str:
    c = Counter(r["status"] for r in rows)
    lines = [
        "# Zoo verify (one model per family)",
        "",
        "`python benchmarks/zoo_coverage.py --verify`: `rfkit.verify` (centre, next and corner units of up to "
        "4 stage outputs and the output, float64, positive random weights) on the smallest model of each family.",
        "",
        f"pass {c['pass']}, fail {c['fail']}, error {c['error']}, timeout {c['timeout']} of {len(rows)} families.",
        "",
        "| family | model | size | status | checks | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["status"] == "pass", r["family"])):
        note = (r["error"] or r["notes"]).replace("|", "\\|")[:300]
        lines.append(f"| {r['family']} | {r['model']} | {r['input_size']} | {r['status']} | {r['checks']} | {note} |")
    return "\n".join(lines) + "\n"


KNOWN_GAPS = [
    (
        "*halo*",
        "Halo attention: queries are cut into blocks (a window partition) while keys and values are "
        "overlapping windows unfolded at the block stride (`Tensor.unfold`); the two index the grid "
        "differently (block factor vs window position) and rfkit cannot align them in the matmul.",
    ),
    (
        "hiera_*",
        "Hiera unrolls the token grid into mask-unit order and pools queries by a max over the unrolled "
        "stride dim; its attention then joins queries and keys whose batch dims hold different pieces "
        "of the grid.",
    ),
    (
        "sam2_hiera_*",
        "Windowed max pooling with stride 2 inside 8×8 windows (SAM2's Hiera): strided windows inside "
        "windows are not modelled.",
    ),
    ("hieradet_*", "As SAM2's Hiera: strided max pooling inside windows."),
    (
        "nextvit_*",
        "E-MHSA pools row-major tokens with AvgPool1d(16, 16) over rows of 28 tokens: the pooled "
        "windows cross row boundaries, so they are not a product of pieces of the two axes.",
    ),
    (
        "tnt_*",
        "TNT's pixel embedding runs a k7 s4 convolution inside each 16×16 patch: strided convolutions "
        "inside windows are not modelled.",
    ),
]


# --- main ------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="*", help="fnmatch pattern over model names")
    p.add_argument("--no-torchvision", action="store_true")
    p.add_argument("--no-timm", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=int, default=240, help="seconds per model")
    p.add_argument("--resume", action="store_true", help="skip models already in the (partial) results")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run the models that were not ok again")
    p.add_argument("--limit", type=int, default=0, help="only the first N models (0: all)")
    p.add_argument("--verify", action="store_true", help="sampled rfkit.verify, one model per family")
    p.add_argument("--verify-size", type=int, default=96)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    from rfkit.io import atomic_write_text

    args = parse_args(argv)
    tasks = ([] if args.no_timm else timm_models(args.models)) + (
        [] if args.no_torchvision else torchvision_models(args.models)
    )
    stem = "zoo_verify" if args.verify else "zoo_coverage"
    if args.verify:
        tasks = smallest_per_family([t for t in tasks if t[0] != "torchvision-detection"])
    if args.limit:
        tasks = tasks[: args.limit]
    final, partial = args.out / f"{stem}.csv", args.out / f".{stem}.csv.partial"
    done = {
        r["model"] + "|" + r["source"]: r for r in (read_rows(final) + read_rows(partial) if args.resume else [])
    }  # newest last
    if args.retry_failed:  # run the failures among this run's models again; keep every other row
        wanted = {f"{t[1]}|{t[0]}" for t in tasks}
        done = {k: r for k, r in done.items() if r["status"] in ("ok", "pass") or k not in wanted}
    todo = [t for t in tasks if f"{t[1]}|{t[0]}" not in done]
    print(f"{len(tasks)} models, {len(done)} already done, {len(todo)} to go", flush=True)

    keys = (
        ["source", "model", "family", "status", "input_size", "checks", "failures", "notes", "seconds", "error"]
        if args.verify
        else [f.name for f in fields(Row)]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = list(done.values())
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        worker = verify_one if args.verify else trace_one
        jobs = [(*t, args.timeout, args.verify_size) if args.verify else (*t, args.timeout) for t in todo]
        ctx = mp.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init_worker, maxtasksperchild=25) as pool:
            for i, row in enumerate(pool.imap_unordered(worker, jobs), 1):
                rows.append(row)
                writer.writerow(row)
                f.flush()
                print(
                    f"[{i}/{len(jobs)}] {row['model']}: {row['status']} ({row['seconds']} s) "
                    f"{(row.get('error') or row.get('unsupported_ops') or '')[:120]}",
                    flush=True,
                )
    rows.sort(key=lambda r: (r["source"], r["model"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(final, buf.getvalue())
    partial.unlink(missing_ok=True)
    atomic_write_text(args.out / f"{stem}.md", verify_summary(rows) if args.verify else summary(rows))
    print((verify_summary if args.verify else summary)(rows).split("\n## ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
