"""Trace + analyse time of rfkit and of rfa-toolbox, side by side, on timm models.

For every model the script times

* ``rfkit (spec)``: ``rfkit.trace(name)``, end to end (model construction on the meta device included);
* ``rfkit (module)``: ``rfkit.trace(module)`` on a CPU model built with ``timm.create_model`` beforehand;
* ``rfa-toolbox``: ``rfa_toolbox.create_graph_from_pytorch_model(module, input_res=...)`` on the same
  CPU model (it needs real tensors: it runs ``torch.jit.trace``, i.e. real forward passes).

Each timing is the median of ``--repeats`` calls after one untimed warm-up call; when the warm-up takes
longer than ``--slow-seconds`` the number of repeats is capped at ``--slow-repeats`` (the ``n`` column
says how many were used). Machines are noisy: quote the speed-up ratio (rfa-toolbox median / rfkit
median, measured in the same run) rather than the absolute times.

rfa-toolbox's time is almost all ``torch.jit.trace`` (with its default trace check: three real forward
passes). On a machine shared with other jobs, torch's multi-threaded CPU kernels stall and that time
swings tenfold (resnet50: 1.5 s to 13 s on 2 busy cores), while rfkit (meta device, no arithmetic)
barely moves. Hence ``--threads 1`` by default; ``--threads 0`` keeps torch's own setting.

The ``final RF`` column is the receptive field of the model's last feature map (the last entry of timm's
``feature_info``, e.g. ``layer4`` of a ResNet) as ``max / min`` over paths, per tool, so the table also
shows whether the tools agree.

Usage::

    python benchmarks/graph_speed.py [--repeats N] [--models NAME ...] [--input-size S] [--threads T]

rfa-toolbox is optional (``pip install --no-deps --ignore-requires-python rfa-toolbox attrs tqdm``:
its pins ``numpy<2`` and ``graphviz<0.20`` would otherwise downgrade rfkit's environment). Without it
its rows say "not installed" and the script still exits 0. A copy of the table is written, atomically,
to ``benchmarks/results/graph_speed.md``.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import gc
import importlib.metadata
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DEFAULT_MODELS = ("resnet50", "convnext_tiny", "vit_base_patch16_224")
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "graph_speed.md"
RFA_DIST = "rfa-toolbox"
RFA_MODULE = "rfa_toolbox"
# Aliases removed from ``collections`` in Python 3.10 that rfa-toolbox still imports from there.
COLLECTIONS_ALIASES = ("Sequence", "Mapping", "MutableMapping", "Iterable", "Callable", "Set", "MutableSet")
COLUMNS = (
    "model",
    "tool",
    "n",
    "median s",
    "min-max s",
    "rfkit speed-up",
    "final layer",
    "final RF max / min",
    "notes",
)


# --- timing ---------------------------------------------------------------------------------------
@dataclass
class Timed:
    """Result of :func:`time_call`.

    Attributes
    ----------
    value : Any
        What the warm-up call returned (None when it raised).
    seconds : list of float
        Wall-clock seconds of the timed repeats (empty when the warm-up raised).
    warmup_s : float
        Seconds of the warm-up call.
    error : BaseException or None
        The exception raised by the warm-up call, if any.
    """

    value: Any = None
    seconds: list[float] = field(default_factory=list)
    warmup_s: float = math.nan
    error: BaseException | None = None

    @property
    def median(self) -> float | None:
        """Median of the timed repeats, or None when there are none."""
        return statistics.median(self.seconds) if self.seconds else None


def _timed_once(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn`` once after a garbage collection; return its value and the elapsed seconds."""
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def time_call(fn: Callable[[], Any], repeats: int, slow_seconds: float, slow_repeats: int) -> Timed:
    """Time ``fn``: one untimed warm-up call, then ``repeats`` timed calls.

    Parameters
    ----------
    fn : callable
        Function without arguments to time.
    repeats : int
        Number of timed calls after the warm-up.
    slow_seconds : float
        When the warm-up takes longer than this, at most ``slow_repeats`` timed calls are made.
    slow_repeats : int
        Cap on the timed calls for slow functions.

    Returns
    -------
    Timed
        The warm-up's value and the repeat timings; the exception instead when the warm-up raised
        (the function is then not called again).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            value, warmup_s = _timed_once(fn)
        except Exception as e:  # noqa: BLE001 - any failure of a tool is reported, not raised
            return Timed(warmup_s=time.perf_counter() - start, error=e)
        n = repeats if warmup_s <= slow_seconds else min(repeats, slow_repeats)
        seconds = [_timed_once(fn)[1] for _ in range(n)]
    return Timed(value=value, seconds=seconds, warmup_s=warmup_s)


def describe_error(error: BaseException) -> str:
    """One line naming an exception, its message and the function where it was raised.

    Examples
    --------
    >>> try:
    ...     int("x")
    ... except ValueError as e:
    ...     print(describe_error(e))
    ValueError in <module>: invalid literal for int() with base 10: 'x'
    """
    frames = traceback.extract_tb(error.__traceback__)
    where = f" in {frames[-1].name}" if frames else ""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else "(no message)"
    return f"{type(error).__name__}{where}: {message}"


# --- receptive-field figures ----------------------------------------------------------------------
@dataclass(frozen=True)
class FinalRF:
    """Receptive field of the last feature map, per spatial axis.

    Attributes
    ----------
    size : tuple of float
        Largest RF over paths (``inf`` when global, ``nan`` when unknown).
    size_min : tuple of float
        Smallest RF over paths.
    """

    size: tuple[float, ...]
    size_min: tuple[float, ...]

    @property
    def known(self) -> bool:
        """Whether both sizes are finite numbers."""
        return all(math.isfinite(v) for v in self.size + self.size_min)

    def agrees_with(self, other: FinalRF) -> bool:
        """Whether both RFs are known and equal."""
        return self.known and other.known and self.size == other.size and self.size_min == other.size_min


def _as_axes(value: Any, ndim: int = 2) -> tuple[float, ...]:
    """A scalar or a sequence (numpy numbers included) as a tuple of ``ndim`` floats."""
    if hasattr(value, "__len__"):  # tuple, list or numpy array
        return tuple(float(v) for v in value)
    return (float(value),) * ndim


def format_axes(values: tuple[float, ...]) -> str:
    """``427`` for a square RF, ``427x300`` otherwise; ``inf`` and ``?`` (unknown) spelled out.

    Examples
    --------
    >>> format_axes((427.0, 427.0)), format_axes((5.0, 3.0)), format_axes((math.nan, math.nan))
    ('427', '5x3', '?')
    """

    def one(v: float) -> str:
        if math.isnan(v):
            return "?"
        return "inf" if math.isinf(v) else f"{v:g}"

    texts = [one(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def format_rf(rf: FinalRF | None) -> str:
    """``max / min`` of a :class:`FinalRF`, or ``-`` when there is none."""
    if rf is None:
        return "-"
    return f"{format_axes(rf.size)} / {format_axes(rf.size_min)}"


def final_feature_module(model) -> str:
    """Qualified name of the module that outputs the model's last feature map.

    Taken from timm's ``feature_info`` (``layer4`` for a ResNet, ``stages.3`` for a ConvNeXt,
    ``blocks.11`` for a ViT-B); ``""`` (the model output) when the model has none.
    """
    info = getattr(model, "feature_info", None)
    try:
        return str(info[-1]["module"])
    except (TypeError, IndexError, KeyError):
        return ""


# --- rfkit ----------------------------------------------------------------------------------------
def rfkit_final_rf(graph, module: str) -> FinalRF:
    """RF of ``module``'s output in an rfkit graph (the graph's output when absent)."""
    info = graph[module] if module and module in graph else graph.output
    return FinalRF(tuple(map(float, info.size)), tuple(map(float, info.size_min)))


def rfkit_notes(graph) -> str:
    """Unsupported ops of an rfkit graph in one line (empty when every op has a rule)."""
    ops = graph.unsupported
    if not ops:
        return ""
    listed = ", ".join(f"{op.op.rsplit('.', 1)[-1]} x{op.count}" for op in ops)
    return f"no RF rule for: {listed}"


# --- rfa-toolbox ----------------------------------------------------------------------------------
@dataclass
class RfaToolbox:
    """rfa-toolbox as found in this environment.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"not installed"`` or ``"import failed: ..."``.
    version : str
        Installed version, ``""`` when not installed.
    create_graph : callable or None
        ``rfa_toolbox.create_graph_from_pytorch_model`` when importable.
    """

    status: str
    version: str = ""
    create_graph: Callable | None = None


def _apply_collections_shim() -> None:
    """Restore the ``collections.Sequence``-style aliases that rfa-toolbox imports (gone since 3.10)."""
    for name in COLLECTIONS_ALIASES:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def load_rfa_toolbox() -> RfaToolbox:
    """Import rfa-toolbox if it is installed, never raising.

    Returns
    -------
    RfaToolbox
        Its status, version and graph-building function.
    """
    if importlib.util.find_spec(RFA_MODULE) is None:
        return RfaToolbox("not installed")
    version = importlib.metadata.version(RFA_DIST)
    _apply_collections_shim()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import rfa_toolbox
    except Exception as e:  # noqa: BLE001 - a broken optional peer is reported, not raised
        return RfaToolbox(f"import failed: {describe_error(e)}", version)
    return RfaToolbox("ok", version, rfa_toolbox.create_graph_from_pytorch_model)


def _strip_input_prefix(name: str) -> str:
    """rfa-toolbox names functional-op nodes ``inp_<scope>.out_<i>``; drop the ``inp_``."""
    return name[len("inp_") :] if name.startswith("inp_") else name


def rfa_final_node(output_node, module: str):
    """Node of an rfa-toolbox graph that outputs ``module``.

    rfa-toolbox node names start with the module scope (``layer4.2..36``, ``inp_stages.3.blocks.2.out_0``);
    the last node in its (topological) layer list inside ``module`` is the module's output. Falls back
    to the last node with a finite RF when ``module`` is empty or matches no node.
    """
    layers = output_node.all_layers
    if module:
        inside = [n for n in layers if _strip_input_prefix(n.name).startswith(module + ".")]
        if inside:
            return inside[-1]
    finite = [n for n in layers if all(math.isfinite(v) for v in _as_axes(n.receptive_field_max))]
    return finite[-1] if finite else output_node


def rfa_final_rf(output_node, module: str) -> FinalRF:
    """RF (``receptive_field_max`` / ``receptive_field_min``) of ``module``'s output node."""
    node = rfa_final_node(output_node, module)
    return FinalRF(_as_axes(node.receptive_field_max), _as_axes(node.receptive_field_min))


# --- one model ------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table (see ``COLUMNS``)."""

    model: str
    tool: str
    timed: Timed | None = None
    final_layer: str = ""
    rf: FinalRF | None = None
    notes: str = ""
    speedup: str = ""

    def cells(self) -> tuple[str, ...]:
        """The row as strings, in ``COLUMNS`` order."""
        median = self.timed.median if self.timed else None
        seconds = self.timed.seconds if self.timed else []
        n = str(len(seconds)) if seconds else "-"
        spread = f"{min(seconds):.2f}-{max(seconds):.2f}" if seconds else "-"
        return (
            self.model,
            self.tool,
            n,
            "-" if median is None else f"{median:.3f}",
            spread,
            self.speedup,
            self.final_layer or "(output)",
            format_rf(self.rf),
            self.notes,
        )


def _rfkit_row(model: str, tool: str, fn: Callable, module: str, args) -> Row:
    """Time an rfkit call and read the final RF of the graph it returned."""
    timed = time_call(fn, args.repeats, args.slow_seconds, args.slow_repeats)
    if timed.error is not None:
        return Row(model, tool, timed, module, notes=f"failed: {describe_error(timed.error)}")
    return Row(model, tool, timed, module, rfkit_final_rf(timed.value, module), rfkit_notes(timed.value))


def _rfa_row(model: str, cpu_model, module: str, rfa: RfaToolbox, args) -> Row:
    """Time rfa-toolbox's graph construction on ``cpu_model`` and read its final RF."""
    tool = "rfa-toolbox"
    if rfa.create_graph is None:
        return Row(model, tool, None, module, notes=rfa.status)
    if cpu_model is None:
        return Row(model, tool, None, module, notes="skipped: the CPU model could not be built")
    input_res = (1, 3, args.input_size, args.input_size)
    timed = time_call(
        lambda: rfa.create_graph(cpu_model, input_res=input_res), args.repeats, args.slow_seconds, args.slow_repeats
    )
    if timed.error is not None:
        return Row(
            model, tool, timed, module, notes=f"failed after {timed.warmup_s:.1f} s: {describe_error(timed.error)}"
        )
    return Row(model, tool, timed, module, rfa_final_rf(timed.value, module))


def _build_cpu_model(name: str):
    """``timm.create_model(name)`` on the CPU in eval mode, or the exception that prevented it."""
    import timm

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timm.create_model(name, pretrained=False).eval(), None
    except Exception as e:  # noqa: BLE001
        return None, e


def _add_speedups(rows: list[Row], reference: Row) -> None:
    """Fill each rfkit row's speed-up (reference median / its median) and the reference's own cell."""
    ref = reference.timed.median if reference.timed else None
    reference.speedup = "1.0x (ref)" if ref is not None else "n/a"
    for row in rows:
        if row is reference:
            continue
        median = row.timed.median if row.timed else None
        row.speedup = f"{ref / median:.1f}x" if ref is not None and median else "n/a"


def _add_agreement(rows: list[Row], reference: Row) -> None:
    """Say in the rfa-toolbox row whether its final RF matches rfkit's (first rfkit row with an RF)."""
    rfkit_rf = next((row.rf for row in rows if row is not reference and row.rf is not None), None)
    if reference.rf is None or rfkit_rf is None:
        return
    if not rfkit_rf.known:
        verdict = "rfkit has no RF to compare"
    else:
        verdict = "RF agrees with rfkit" if reference.rf.agrees_with(rfkit_rf) else "RF DIFFERS from rfkit"
    reference.notes = "; ".join(filter(None, (verdict, reference.notes)))


def benchmark_model(name: str, rfa: RfaToolbox, args) -> list[Row]:
    """Rows ``rfkit (spec)``, ``rfkit (module)`` and ``rfa-toolbox`` for one timm model.

    Parameters
    ----------
    name : str
        timm model name.
    rfa : RfaToolbox
        The peer tool, possibly unavailable.
    args : argparse.Namespace
        Parsed command line (repeats, slow-call cap, input size).

    Returns
    -------
    list of Row
    """
    size = (args.input_size, args.input_size)
    import rfkit

    cpu_model, build_error = _build_cpu_model(name)
    module = final_feature_module(cpu_model) if cpu_model is not None else ""
    spec_row = _rfkit_row(name, "rfkit (spec)", lambda: rfkit.trace(name, input_size=size), module, args)
    if cpu_model is None:
        module_row = Row(name, "rfkit (module)", None, notes=f"model not built: {describe_error(build_error)}")
    else:
        module_row = _rfkit_row(name, "rfkit (module)", lambda: rfkit.trace(cpu_model, input_size=size), module, args)
    rfa_row = _rfa_row(name, cpu_model, module, rfa, args)
    rows = [spec_row, module_row, rfa_row]
    _add_speedups(rows, rfa_row)
    _add_agreement(rows, rfa_row)
    return rows


# --- output ---------------------------------------------------------------------------------------
def render_table(rows: list[Row]) -> str:
    """Plain-text table with aligned columns, a rule under the header and one between models."""
    cells = [COLUMNS] + [row.cells() for row in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(values) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(COLUMNS), rule]
    for i, row in enumerate(rows):
        if i and row.model != rows[i - 1].model:
            out.append("")
        out.append(line(row.cells()))
    return "\n".join(out)


def environment_line(rfa: RfaToolbox) -> str:
    """Versions, CPU count and torch threads, for the record."""
    import timm
    import torch

    import rfkit

    rfa_text = rfa.version or "not installed"
    return (
        f"python {platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}, "
        f"rfkit {rfkit.__version__}, rfa-toolbox {rfa_text}; {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}; {platform.machine()} {platform.system()}"
    )


def command_line(args) -> str:
    """The command that reproduces this run (every option spelled out)."""
    return (
        f"python benchmarks/graph_speed.py --repeats {args.repeats} --input-size {args.input_size} "
        f"--threads {args.threads} --models {' '.join(args.models)}"
    )


def render_report(table: str, env: str, args) -> str:
    """Markdown copy of the table: when, where, how, then the table in a text block."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Graph speed: rfkit vs rfa-toolbox",
            "",
            f"Generated {stamp} by `{command_line(args)}`.",
            "",
            f"Environment: {env}.",
            "",
            f"Median of n timed calls after one warm-up (n capped at {args.slow_repeats} when the warm-up "
            f"takes over {args.slow_seconds:g} s); min-max = fastest and slowest timed call. "
            "Speed-up = rfa-toolbox median / rfkit median, same run. "
            "`rfkit (spec)` includes building the model on the meta device; `rfkit (module)` and "
            "`rfa-toolbox` get a CPU model built beforehand. Final RF = RF of the last feature map "
            "(timm `feature_info`), max / min over paths.",
            "",
            "```text",
            table,
            "```",
            "",
        ]
    )


# --- command line ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="timm model names")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up (default 5)")
    p.add_argument("--input-size", type=int, default=224, help="square input size (default 224)")
    p.add_argument(
        "--slow-seconds", type=float, default=5.0, help="a warm-up slower than this caps the repeats (default 5)"
    )
    p.add_argument("--slow-repeats", type=int, default=3, help="repeats for slow calls (default 3)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: steady timings on a busy machine; 0: torch's own)",
    )
    p.add_argument("--output", type=Path, default=RESULTS_PATH, help=f"markdown copy (default {RESULTS_PATH})")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.slow_repeats < 1:
        p.error("--repeats and --slow-repeats must be at least 1")
    if args.threads < 0:
        p.error("--threads must be 0 (torch's default) or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write its markdown copy; return the exit status."""
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rfa = load_rfa_toolbox()
    rows: list[Row] = []
    for name in args.models:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        rows.extend(benchmark_model(name, rfa, args))
    table = render_table(rows)
    env = environment_line(rfa)
    print(f"{env}\n\n{table}")
    from rfkit.io import atomic_write_text

    path = atomic_write_text(args.output, render_report(table, env, args))
    print(f"\nwritten: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
