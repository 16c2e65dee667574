"""Unproductive-layer analysis of rfkit and of rfa-toolbox, side by side, on torchvision models.

For every model and input resolution the script runs

* rfkit: ``rfkit.trace(model, input_size=R)``, then ``productivity(g, R)`` and ``input_resolution_range(g)``;
* rfa-toolbox: ``create_graph_from_pytorch_model(model, input_res=(1, 3, R, R))``, each node's status as its
  ``visualize_architecture`` colours it (red: ``is_border``; orange: ``receptive_field_min > R`` on every
  axis; yellow: on some axes; white: productive) and its ``input_resolution_range`` three ways (default,
  which is ``filter_all_inf_rf=True``; ``filter_all_inf_rf=False`` as its README calls it; ``lower_bound=True``).

Layers (convolutions, pooling, adaptive pooling, linear) are matched between the tools by module scope
and order; the table counts statuses over the matched layers, lists every layer whose status differs, and
names the cause of each difference, found by re-evaluating rfa-toolbox's two unproductive rules apart:

* ``dense layer``: rfa-toolbox gives adaptive pooling, flatten and fully connected layers an infinite RF and
  colours them by it (red), rfkit reports them as ``global``;
* ``kernel covers map``: rfa-toolbox's second rule calls a layer unproductive when its kernel is at least the
  feature map it reads (``input_res // stride`` of its input), whatever the RF;
* ``RF differs``: the two tools compute different minimum RFs (rfa-toolbox ignores dilation, treats
  upsampling as identity);
* ``threshold``: rfa-toolbox also requires the layer's own RF to exceed the input strictly.

Usage::

    python benchmarks/productivity_vs_rfa.py [--models resnet18 ...] [--resolutions 32 224]

rfa-toolbox is optional (``pip install --no-deps --ignore-requires-python rfa-toolbox attrs tqdm``); it is
imported after restoring the ``collections.Sequence`` aliases it needs on Python >= 3.10. The report is
printed and written, atomically, to ``benchmarks/results/productivity_vs_rfa.md``.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import importlib.metadata
import math
import platform
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_MODELS = ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "toy_dilated")
DEFAULT_RESOLUTIONS = (32, 224)
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "productivity_vs_rfa.md"
STATUSES = ("productive", "partially critical", "critical", "unproductive", "global")
README_RANGES = {"resnet50": "(75, 75) – (427, 427)"}  # rfa-toolbox's README, for filter_all_inf_rf=False


# --- rfa-toolbox -----------------------------------------------------------------------------------------
def load_rfa():
    """rfa-toolbox's graph builder and range function, or None when it is not installed."""
    for name in ("Sequence", "Mapping", "MutableMapping", "Iterable", "Callable", "Set", "MutableSet"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import rfa_toolbox
            from rfa_toolbox.utils.graph_utils import input_resolution_range
    except ImportError:
        return None
    return rfa_toolbox.create_graph_from_pytorch_model, input_resolution_range


def rfa_type(layer_name: str) -> str | None:
    """Layer type from rfa-toolbox's ``layer_info.name`` (``"Conv2d 3x3 / (1, 1)"``, ``"Fully Connected"``)."""
    low = layer_name.lower()
    if low.startswith(("conv", "conv-norm")):
        return "conv"
    if "adaptive" in low:
        return "global_pool"
    if "pool" in low:
        return "pool"
    if low.startswith("fully connected"):
        return "linear"
    return None


def rfa_scope(node_name: str) -> str | None:
    """Module scope of an rfa-toolbox node: ``"layer1.0..15"`` → ``"layer1.0"``, ``".1213"`` → ``""``."""
    if ".." in node_name:
        return node_name[: node_name.rindex("..")]
    return "" if node_name.startswith(".") else None


def _axes(value) -> tuple[float, ...]:
    if hasattr(value, "__len__"):
        return tuple(float(v) for v in value)
    return (float(value),) * 2


def rfa_status(node, res: int) -> tuple[str, str]:
    """(status, rule) as rfa-toolbox's ``visualize_node`` colours the node; ``rule`` says which of
    ``is_border``'s two rules fired (``rf``, ``kernel``, ``both``) or ``""``."""
    import numpy as np

    border = node.is_border(res)
    rf_min = np.asarray(node.receptive_field_min)
    rule = ""
    if border:
        rf_rule = all(np.all(res <= np.asarray(p.receptive_field_min)) for p in node.predecessors) and bool(
            np.all(res < rf_min)
        )
        kernel_rule = (
            node.layer_info.kernel_size != np.inf
            and bool(node.predecessors)
            and all(node._feature_map_size_larger_than_kernel(p, res) for p in node.predecessors)
        )
        rule = "both" if rf_rule and kernel_rule else ("rf" if rf_rule else "kernel")
        return "unproductive", rule
    if np.all(rf_min > res):
        return "critical", rule
    if np.any(rf_min > res):
        return "partially critical", rule
    return "productive", rule


# --- matching ----------------------------------------------------------------------------------------------
@dataclass
class Pair:
    """A layer as both tools see it."""

    name: str
    kind: str
    ours: object  # LayerProductivity
    rfa_status: str
    rfa_rule: str
    rfa_rf_min: tuple[float, ...]
    rfa_kernel: object


def rfkit_scope(module: str) -> str:
    return module.rsplit(".", 1)[0] if "." in module else ""


def match_layers(g, report, rfa_graph) -> tuple[list[Pair], list[str], list[str]]:
    """Pair rfkit's layers with rfa-toolbox's by (scope, type) and order. Returns the pairs and the
    layers found by one tool only."""
    ours: dict[tuple[str, str], list] = collections.defaultdict(list)
    for e in report:
        kind = "global_pool" if e.category == "global_pool" else e.category
        if kind in ("conv", "pool", "linear", "global_pool"):
            called = g.records[e.node].kind == "call_module"  # else e.module is the scope it runs in
            ours[(rfkit_scope(e.module) if called else e.module, kind)].append(e)
    theirs: dict[tuple[str, str], list] = collections.defaultdict(list)
    for node in rfa_graph.all_layers:
        kind, scope = rfa_type(node.layer_info.name), rfa_scope(node.name)
        if kind is not None and scope is not None:
            theirs[(scope, kind)].append(node)
    pairs, only_ours, only_theirs = [], [], []
    for key in list(dict.fromkeys(list(ours) + list(theirs))):
        a, b = ours.get(key, []), theirs.get(key, [])
        for e, node in zip(a, b):
            pairs.append(
                Pair(
                    e.module or e.node,
                    key[1],
                    e,
                    *rfa_status(node, report.input_size[0]),
                    _axes(node.receptive_field_min),
                    node.layer_info.kernel_size,
                )
            )
        only_ours += [f"{e.module or e.node} ({key[1]})" for e in a[len(b) :]]
        only_theirs += [f"{n.layer_info.name} in {key[0] or 'top level'}" for n in b[len(a) :]]
    return pairs, only_ours, only_theirs


def cause(p: Pair) -> str:
    """Why the two statuses of a pair differ."""
    ours = p.ours
    if ours.status.value == "global" or all(math.isinf(v) for v in p.rfa_rf_min):
        return "dense layer"
    if tuple(float(v) for v in ours.rf_out) != p.rfa_rf_min:
        return "RF differs"
    if p.rfa_status == "unproductive" and p.rfa_rule == "kernel":
        return "kernel covers map"
    if ours.status.value == "unproductive" and p.rfa_status != "unproductive":
        return "threshold"
    return "unexplained"


# --- one model ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    model: str
    res: int
    pairs: list[Pair] = field(default_factory=list)
    only_ours: list[str] = field(default_factory=list)
    only_theirs: list[str] = field(default_factory=list)
    ours_counts: dict[str, int] = field(default_factory=dict)
    rfa_counts: dict[str, int] = field(default_factory=dict)
    error: str = ""


def toy_dilated():
    """A small segmentation-style net: two stride-2 convolutions, a ×4 upsampling back to full resolution,
    then dilated 3×3 convolutions (dilation 2, 4, 8) and a classifier: the two ops rfa-toolbox gets wrong."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 2, 1),
        nn.ReLU(),
        nn.Upsample(scale_factor=4, mode="nearest"),
        nn.Conv2d(8, 8, 3, 1, 2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 4, dilation=4),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 8, dilation=8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()


def build(name: str):
    """A torchvision classification model with random weights, or ``toy_dilated``."""
    import torchvision

    if name == "toy_dilated":
        return toy_dilated()
    return getattr(torchvision.models, name)(weights=None).eval()


def run_one(name: str, model, res: int, rfa) -> Result:
    import rfkit
    from rfkit.graph.productivity import productivity

    out = Result(name, res)
    g = rfkit.trace(model, input_size=res)
    report = productivity(g, res)
    if rfa is None:
        out.error = "rfa-toolbox not installed"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = rfa[0](model, input_res=(1, 3, res, res))
        except Exception as e:  # noqa: BLE001 - a failing peer is reported
            out.error = f"rfa-toolbox failed: {type(e).__name__}: {e}"
            return out
    out.pairs, out.only_ours, out.only_theirs = match_layers(g, report, graph)
    for p in out.pairs:
        ours = p.ours.status.value
        out.ours_counts[ours] = out.ours_counts.get(ours, 0) + 1
        theirs = (
            "global" if p.rfa_status != "unproductive" and all(math.isinf(v) for v in p.rfa_rf_min) else p.rfa_status
        )
        out.rfa_counts[theirs] = out.rfa_counts.get(theirs, 0) + 1
    return out


def ranges(name: str, model, rfa) -> dict[str, str]:
    import rfkit
    from rfkit.graph.productivity import input_resolution_range

    def fmt(r) -> str:
        lo, hi = r
        return f"{tuple(int(v) for v in lo)} – {tuple(float(v) if math.isinf(v) else int(v) for v in hi)}"

    g = rfkit.trace(model, input_size=224)
    out = {
        "rfkit": fmt(input_resolution_range(g)),
        "rfkit ignore_global": fmt(input_resolution_range(g, ignore_global=True)),
        "rfkit all layers": fmt(input_resolution_range(g, weighted_only=False)),
    }
    if rfa is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = rfa[0](model, input_res=(1, 3, 224, 224))
            out["rfa default"] = fmt(rfa[1](graph))  # filter_all_inf_rf=True is the real default
            out["rfa filter_all_inf_rf=False"] = fmt(rfa[1](graph, filter_all_inf_rf=False))  # the README's call
            out["rfa lower_bound"] = fmt(rfa[1](graph, lower_bound=True))
    out["rfa README"] = README_RANGES.get(name, "-")
    return out


# --- report ------------------------------------------------------------------------------------------------
def render(results: list[Result], range_rows: dict[str, dict[str, str]], env: str, argv: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Unproductive layers: rfkit vs rfa-toolbox",
        "",
        f"Generated {stamp} by `{argv}`.",
        "",
        f"Environment: {env}.",
        "",
        "Statuses counted over the layers both tools find (convolutions, pooling, adaptive pooling, "
        "linear), matched by module scope and order. rfa-toolbox's status is the colour its "
        "`visualize_architecture` gives (red = `is_border`); `global` for rfa-toolbox = a layer with an "
        "infinite RF that it does not colour red. See docs/productivity.md for every rule.",
        "",
        "## Status counts",
        "",
        "| model | input | tool | " + " | ".join(STATUSES) + " | matched | only in this tool |",
        "|---|---|---|" + "---|" * len(STATUSES) + "---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.res} | - | " + " | ".join("-" for _ in STATUSES) + f" | - | {r.error} |")
            continue
        for tool, counts, only in (("rfkit", r.ours_counts, r.only_ours), ("rfa-toolbox", r.rfa_counts, r.only_theirs)):
            lines.append(
                f"| {r.model} | {r.res} | {tool} | "
                + " | ".join(str(counts.get(s, 0)) for s in STATUSES)
                + f" | {len(r.pairs)} | {', '.join(only) or '-'} |"
            )
    lines += [
        "",
        "## Layers whose status differs",
        "",
        "rfkit: `rf_in → rf_out` (min over paths); rfa-toolbox: its `receptive_field_min` and, for red "
        "layers, which rule fired (`rf`: inputs' RF ≥ input; `kernel`: kernel ≥ feature map).",
        "",
    ]
    for r in results:
        if r.error:
            continue
        diffs = [p for p in r.pairs if p.ours.status.value != p.rfa_status]
        by_cause = collections.Counter(cause(p) for p in diffs)
        head = ", ".join(f"{n} {c}" for c, n in by_cause.most_common()) or "none"
        lines += [f"### {r.model} at {r.res}×{r.res}: {len(diffs)} of {len(r.pairs)} differ ({head})", ""]
        if not diffs:
            continue
        lines += ["| layer | rfkit | rfa-toolbox | cause |", "|---|---|---|---|"]
        for p in diffs:
            ours = p.ours
            rin = "×".join(_num(v) for v in _sq(ours.rf_in))
            rout = "×".join(_num(v) for v in _sq(ours.rf_out))
            theirs = f"{p.rfa_status} (r_min {'×'.join(_num(v) for v in _sq(p.rfa_rf_min))}" + (
                f", rule {p.rfa_rule})" if p.rfa_rule else ")"
            )
            lines.append(f"| {p.name} | {ours.status.value} ({rin} → {rout}) | {theirs} | {cause(p)} |")
        lines.append("")
    lines += [
        "## Input resolution ranges (min – max)",
        "",
        "rfkit: `input_resolution_range(g)` (min set by layers with weights), with `ignore_global=True`, "
        "and with `weighted_only=False`; rfa-toolbox: `input_resolution_range(graph)` with its defaults "
        "(`filter_all_inf_rf=True`, although its docstring says the filter is off by default), with "
        "`filter_all_inf_rf=False` (the call its README shows) and with `lower_bound=True`; and the range "
        "its README quotes for that call.",
        "",
    ]
    cols = list(next(iter(range_rows.values())).keys()) if range_rows else []
    lines += ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for model, row in range_rows.items():
        lines.append(f"| {model} | " + " | ".join(row.get(c, "-") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _sq(values) -> tuple:
    values = tuple(values)
    return values[:1] if len(set(values)) == 1 else values


def _num(v) -> str:
    v = float(v)
    return "∞" if math.isinf(v) else f"{v:g}"


def environment(rfa) -> str:
    import torch
    import torchvision

    rfa_version = importlib.metadata.version("rfa-toolbox") if rfa is not None else "not installed"
    return (
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"rfa-toolbox {rfa_version}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="torchvision model names")
    p.add_argument("--resolutions", nargs="+", type=int, default=list(DEFAULT_RESOLUTIONS))
    p.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rfa = load_rfa()
    results, range_rows = [], {}
    for name in args.models:
        print(f"{name} ...", file=sys.stderr, flush=True)
        model = build(name)
        for res in args.resolutions:
            results.append(run_one(name, model, res, rfa))
        range_rows[name] = ranges(name, model, rfa)
    command = (
        "python benchmarks/productivity_vs_rfa.py --models "
        + " ".join(args.models)
        + " --resolutions "
        + " ".join(map(str, args.resolutions))
    )
    text = render(results, range_rows, environment(rfa), command)
    print(text)
    from rfkit.io import atomic_write_text

    atomic_write_text(args.output, text)
    print(f"written: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
