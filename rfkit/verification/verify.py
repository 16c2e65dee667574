"""``rfkit.verify``: does the analytic RF of each chosen layer match what gradients measure?"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from rfkit.errors import RFKitError
from rfkit.verification.measure import measure, positive_weights, swap_functions, swap_modules


@dataclass(frozen=True)
class UnitCheck:
    """One measured unit of one layer.

    Attributes
    ----------
    layer : str
        The name asked for (module or node name).
    node : str
        The graph node holding it.
    unit : tuple
        Index of the unit, per spatial axis (``"centre"``, ``"next"`` or ``"corner"`` in ``kind``).
    analytic, measured : tuple
        ``(first, last)`` input pixel per axis, analytic (clipped to the input) and measured; ``None``
        bounds mean nothing is seen.
    status : str
        ``"pass"``, ``"fail"``, or ``"approximate"`` (the node is flagged approximate: shown, not judged).
    """

    layer: str
    node: str
    kind: str
    unit: tuple[int, ...]
    analytic: tuple
    measured: tuple
    status: str
    is_global: bool = False


@dataclass
class VerifyReport:
    """Result of :func:`verify`: one :class:`UnitCheck` per measured unit, and the measurement swaps."""

    model: str
    input_size: tuple[int, ...]
    checks: list[UnitCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def failures(self) -> list[UnitCheck]:
        return [c for c in self.checks if c.status == "fail"]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([c.__dict__ for c in self.checks])


def clipped_window(info, unit, size) -> tuple:
    """Analytic ``(first, last)`` pixel per axis of ``unit``, clipped to the pixels the node reads at all
    (``info.reads``, within the input of ``size``); an empty window on any axis means the unit sees
    nothing."""
    out = []
    reads = info.reads or tuple((0, n - 1) for n in size)
    for (lo, hi), (r_lo, r_hi) in zip(info.window_of(unit), reads):
        lo, hi = max(r_lo, lo), min(r_hi, hi)
        out.append((lo, hi) if lo <= hi else (None, None))
    if any(lo is None for lo, _ in out):
        return tuple((None, None) for _ in out)
    return tuple(out)


def agrees(measured, analytic, corner: bool) -> bool:
    """Centre units: the support is the clipped analytic window exactly. Corner units: zero padding inside
    the network may hide pixels next to the border (a padded position has no input behind it), so the
    support must lie within the clipped window and reach its far edge exactly."""
    measured, analytic = tuple(measured), tuple(analytic)
    if not corner:
        return measured == analytic
    for (m_lo, m_hi), (a_lo, a_hi) in zip(measured, analytic):
        if (a_lo is None) != (m_lo is None):
            return False
        if a_lo is not None and not (a_lo <= m_lo and m_hi == a_hi):
            return False
    return True


def _default_layers(g, model: nn.Module, limit: int) -> list[str]:
    """timm's stage outputs where the model lists them, else the top-level children, plus the output."""
    names = []
    info = getattr(model, "feature_info", None)
    if info is not None:
        try:
            names = [f["module"] for f in info]
        except (TypeError, KeyError):
            names = []
    if not names:
        names = [n for n, _ in model.named_children()]
    names = [n for n in names if n in g.module_outputs]
    picked = [n for n in names if g[n].shape is not None and (g[n].dims is not None or g[n].is_global)]
    if len(picked) > limit:
        step = len(picked) / limit
        picked = [picked[int(i * step)] for i in range(limit)]
    return picked


def verify(model, layers: list[str] | None = None, input_size=None, in_chans: int | None = None,
           max_layers: int = 8, seed: int = 0) -> VerifyReport:
    """Measure the gradient support of the centre, next and corner units of each layer and compare it with
    the analytic RF (size, centre and stride all enter through the unit's window).

    The model is measured in float64 with positive random weights, max pooling as average pooling and
    clamping activations as the identity (``report.notes`` lists each swap); global nodes must see the
    whole input. A spec string is built on the CPU with random weights; a module is copied, not changed.

    Examples
    --------
    >>> import rfkit, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    >>> report = rfkit.verify(net, input_size=32)
    >>> report.ok, len(report.checks) > 0
    (True, True)
    """
    import rfkit
    from rfkit.graph.tracer import record_model, trace_module
    from rfkit.models.spec import build_model, parse_spec

    g = rfkit.trace(model, input_size=input_size, in_chans=in_chans)
    if isinstance(model, str):
        real = build_model(parse_spec(model), device="cpu")
    else:
        real = copy.deepcopy(model)
    real = positive_weights(real.double().eval(), seed)
    notes = swap_modules(real)
    x = torch.empty((1, g.in_chans, *g.input_size), dtype=torch.float64)
    if g.method == "make_fx":
        gm, outputs = record_model(real, x)
    else:
        gm, outputs = trace_module(real)
        notes += swap_functions(gm)

    if layers is None:
        layers = _default_layers(g, real, max_layers)
        if g.resolve("") not in [g.resolve(n) for n in layers] and g.output.shape is not None:
            layers.append("")
    nodes = {}
    for name in layers:
        node = g.resolve(name)
        info = g[node]
        if info.unknown or info.shape is None or (info.dims is None and not info.is_global):
            continue
        nodes[name] = node
    if not nodes:
        raise RFKitError("none of the chosen layers has a spatial output with a known RF to verify")

    report = VerifyReport(g.model_name, g.input_size, notes=notes)
    for kind in ("centre", "next", "corner"):
        units, dims, names = {}, {}, []
        for layer, node in nodes.items():
            info = g[node]
            if info.dims is None:  # global without a grid: every unit sees everything
                shape_dims = tuple(range(2, len(info.shape)))
            else:
                shape_dims = info.dims
            sizes = [info.shape[d] for d in shape_dims]
            unit = {"centre": tuple(n // 2 for n in sizes), "corner": tuple(0 for _ in sizes),
                    "next": tuple(min(n // 2 + 1, n - 1) for n in sizes)}[kind]
            target = outputs.get(layer, node) if g.method == "make_fx" else node
            units[target], dims[target] = unit, shape_dims
            names.append((layer, node, target))
        measured = measure(gm, [t for _, _, t in names], tuple(x.shape), units, dims)
        for layer, node, target in names:
            info = g[node]
            unit, extent = measured[target]
            if info.is_global:
                want = info.reads or tuple((0, n - 1) for n in g.input_size)
            else:
                want = clipped_window(info, unit, g.input_size)
            ok = agrees(extent, want, corner=(kind == "corner" and not info.is_global))
            status = "pass" if ok else ("approximate" if info.approximate else "fail")
            report.checks.append(UnitCheck(layer or "<output>", node, kind, unit, want, tuple(extent), status,
                                           info.is_global))
    return report


def _fmt(window) -> str:
    if window[0][0] is None:
        return "nothing"
    return " × ".join(f"{lo}..{hi}" for lo, hi in window)


def summary_rows(report: VerifyReport) -> list[tuple[str, ...]]:
    """Rows for a table: layer, unit, analytic window, measured support, status."""
    return [(c.layer, f"{c.kind} {c.unit}", ("global: " if c.is_global else "") + _fmt(c.analytic),
             _fmt(c.measured), c.status) for c in report.checks]


