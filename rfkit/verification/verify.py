"""``rfkit.verify``: does the analytic RF of each chosen layer match what gradients measure?"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

import rfkit.validate as validate
from rfkit.errors import RFKitError
from rfkit.graph.layers import default_layers
from rfkit.pipeline.prepare import Prepared, check_model
from rfkit.verification.estimate import estimate_layers
from rfkit.verification.measure import Measurable, measure, prepared_for_measuring


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


@dataclass(frozen=True)
class EstimateCheck:
    """The RF of one layer estimated from gradients alone (:func:`rfkit.verification.estimate.estimate_rf`) next to
    the analytic one, per axis.

    Attributes
    ----------
    layer, node : str
        The name asked for and the graph node holding it.
    analytic_size, analytic_stride, analytic_center : tuple
        From the analytic graph at ``input_size``.
    size, stride, center : tuple
        Estimated from gradients.
    input_size : tuple
        Where the estimate was measured (the input may have been enlarged to find an unclipped unit).
    status : str
        ``"pass"``, ``"fail"``, or ``"not judged"``: only shift-invariant (period 1), non-global,
        non-approximate layers are judged; ``reason`` says why one is not, or what differs.
    """

    layer: str
    node: str
    analytic_size: tuple
    analytic_stride: tuple
    analytic_center: tuple
    size: tuple
    stride: tuple
    center: tuple
    input_size: tuple[int, ...]
    status: str
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class VerifyReport:
    """Result of :func:`verify`: one :class:`UnitCheck` per measured unit, one :class:`EstimateCheck` per
    layer (when estimated), and the measurement swaps."""

    model: str
    input_size: tuple[int, ...]
    checks: list[UnitCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    estimates: list[EstimateCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks) and not self.estimate_failures

    @property
    def failures(self) -> list[UnitCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def estimate_failures(self) -> list[EstimateCheck]:
        return [e for e in self.estimates if e.status == "fail"]

    def to_frame(self):
        """One row per checked unit (:class:`UnitCheck`'s fields: layer, node, unit, analytic and measured
        window, status, reason), as a :class:`pandas.DataFrame`; the estimates are :meth:`estimates_frame`."""
        import pandas as pd

        return pd.DataFrame([c.__dict__ for c in self.checks])

    def estimates_frame(self):
        import pandas as pd

        return pd.DataFrame([e.__dict__ for e in self.estimates])


VerifyResult = VerifyReport
"""What :func:`verify` returns, under the name every result type shares (``*Result``)."""


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


def verify(
    model: str | nn.Module | Prepared,
    layers: list[str] | None = None,
    input_size=None,
    in_chans: int | None = None,
    max_layers: int = 8,
    seed: int = 0,
    estimate: bool = True,
    estimate_max_size: int | None = None,
    *,
    trust: bool = False,
) -> VerifyReport:
    """Measure the gradient support of the centre, next and corner units of each layer and compare it with
    the analytic RF (size, centre and stride all enter through the unit's window).

    The model is measured in float64 with positive random weights, max pooling as average pooling and
    clamping activations as the identity (``report.notes`` lists each swap); global nodes must see the
    whole input. A spec string is built on the CPU with random weights; a module, or a model prepared by
    :func:`rfkit.prepare` (whose trace is reused), is copied, not changed.

    With ``estimate`` (default), each layer's size, stride and centre are also estimated from gradients
    alone (:func:`rfkit.verification.estimate.estimate_rf`, on the same measurable model) and put next to the
    analytic ones in ``report.estimates``; a disagreement on a shift-invariant, non-global,
    non-approximate layer fails the report. Such layers may be measured on an input enlarged up to
    ``estimate_max_size`` pixels per axis (default: twice the input) to find a unit clear of the border,
    when their analytic RF is at most half that; the others are estimated at the input size only.

    By default (``layers=None``) up to ``max_layers`` stage outputs are checked, then the model output, or,
    for a model returning a tuple or dict, its final feature map (:func:`rfkit.graph.layers.default_layers`).

    A spec whose file runs code (``FILE.py:FACTORY``, ``ultralytics:PATH.pt``) is built only with ``trust``
    (:func:`rfkit.prepare`); otherwise :class:`~rfkit.errors.UntrustedFileError`.

    Raises
    ------
    ArgumentError, InputSizeError
        An argument of the wrong type or value (``max_layers=0``, layers that are not names, ...).
    NodeNotFoundError
        A layer name is not in the graph.

    Examples
    --------
    >>> import rfkit, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU6(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    >>> report = rfkit.verify(net, input_size=32)
    >>> report.ok, len(report.checks) > 0
    (True, True)
    >>> e = report.estimates[-1]  # layer 3, estimated from gradients alone
    >>> e.size, e.stride, e.center, e.analytic_size == e.size, e.status
    ((13, 13), (4, 4), (5, 5), True, 'pass')
    """
    check_model(model)
    layers = validate.layer_names(layers)
    max_layers = validate.count(max_layers, "max_layers")
    seed = validate.seed(seed)
    estimate_max_size = validate.count(estimate_max_size, "estimate_max_size", optional=True)
    m = Measurable(prepared_for_measuring(model, input_size, in_chans, seed, trust), seed)
    g, real = m.g, m.real
    x = torch.empty((1, g.in_chans, *g.input_size), dtype=torch.float64)
    if m.gm is None:
        gm, outputs = m.record(x)
    else:
        gm, outputs = m.gm, {}
    layers = [layers] if isinstance(layers, str) else layers
    if layers is None:
        layers = default_layers(g, real, max_layers)
    nodes = {}
    for name in layers:
        node = g.resolve(name)
        info = g[node]
        if info.unknown or info.shape is None or (info.dims is None and not info.is_global):
            continue
        nodes[name] = node
    if not nodes:
        raise RFKitError("none of the chosen layers has a spatial output with a known RF to verify")

    report = VerifyReport(g.model_name, g.input_size, notes=list(m.notes))
    for kind in ("centre", "next", "corner"):
        units, dims, names = {}, {}, []
        for layer, node in nodes.items():
            info = g[node]
            if info.dims is None:  # global without a grid: every unit sees everything
                shape_dims = tuple(range(2, len(info.shape)))
            else:
                shape_dims = info.dims
            sizes = [info.shape[d] for d in shape_dims]
            unit = {
                "centre": tuple(n // 2 for n in sizes),
                "corner": tuple(0 for _ in sizes),
                "next": tuple(min(n // 2 + 1, n - 1) for n in sizes),
            }[kind]
            target = outputs.get(layer, node) if g.method == "make_fx" else m.node_in_gm(node)
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
            report.checks.append(
                UnitCheck(layer or "<output>", node, kind, unit, want, tuple(extent), status, info.is_global)
            )
    if estimate:
        try:
            report.estimates = estimate_checks(m, nodes, estimate_max_size)
        except Exception as e:  # noqa: BLE001 - the unit checks stand on their own; say why there is no estimate
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            report.notes.append(f"gradient estimate not available: {type(e).__name__}: {msg}")
    return report


def _not_judged(info) -> str:
    """Why the estimate of a node with this analytic RF is shown but not judged ("" if it is judged)."""
    for flag, why in (
        ("unknown", "analytic RF unknown"),
        ("is_global", "global"),
        ("approximate", "analytic RF approximate"),
    ):
        if getattr(info, flag):
            return why
    if not info.shift_invariant:
        return f"periodic (period {info.period})"
    return ""


def _same(a, b) -> bool:
    """Equal per axis (int and float alike; NaN equals nothing)."""
    return len(a) == len(b) and all(x == y or math.isclose(x, y, abs_tol=1e-9) for x, y in zip(a, b))


def judge_estimate(info, est) -> tuple[str, str]:
    """``(status, reason)`` of a gradient estimate against the analytic :class:`~rfkit.RFInfo` of its node.

    Judged only for shift-invariant (period 1), non-global, non-approximate nodes (a misaligned merge of
    equal strides is exact: the union of the windows). An estimate that found no unit clear of the border
    (clipped, or every unit seeing everything) is judged only where the analytic RF is at most half the
    input it was measured at — then such a unit must exist."""
    why = _not_judged(info)
    if why:
        return "not judged", why
    measured = not est.clipped and not est.is_global and all(math.isfinite(s) for s in est.stride + est.center)
    if not measured:
        if all(a * 2 <= n for a, n in zip(info.size, est.input_size)):
            what = "global" if est.is_global else "clipped"
            return "fail", f"estimate {what} at {'×'.join(map(str, est.input_size))}, analytic RF {info.size}"
        return "not judged", f"RF too large for the largest input tried ({'×'.join(map(str, est.input_size))})"
    bad = [
        name
        for name, a, e in (
            ("size", info.size, est.size),
            ("stride", info.stride, est.stride),
            ("centre", info.center, est.center),
        )
        if not _same(a, e)
    ]
    return ("fail", "differs: " + ", ".join(bad)) if bad else ("pass", "")


def estimate_checks(measurable: Measurable, nodes: dict[str, str], max_size: int | None = None) -> list[EstimateCheck]:
    """Estimate each layer (``nodes``: layer -> node) of a measurable model and judge it against its
    analytic RF, at the input size the estimate used."""
    g = measurable.g
    cap = max_size or 2 * max(g.input_size)
    # enlarge only where it can lead to a judgement: judged layers whose analytic RF fits in half the cap
    # (a wrong analytic size cannot hide behind this: an estimate found at the input size is still judged)
    caps = {
        layer: 0 if _not_judged(g[node]) or any(2 * r > cap for r in g[node].size) else cap
        for layer, node in nodes.items()
    }
    estimates = estimate_layers(measurable, list(nodes), caps)
    out = []
    for est in estimates:
        info = measurable.graph(tuple(est.input_size))[est.layer]
        status, reason = judge_estimate(info, est)
        out.append(
            EstimateCheck(
                est.layer or "<output>",
                est.node,
                info.size,
                info.stride,
                info.center,
                est.size,
                est.stride,
                est.center,
                est.input_size,
                status,
                reason,
                est.notes,
            )
        )
    return out


def _fmt(window) -> str:
    if window[0][0] is None:
        return "nothing"
    return " × ".join(f"{lo}..{hi}" for lo, hi in window)


def _pair(values) -> str:
    return "×".join(
        "∞" if v == math.inf else "-" if isinstance(v, float) and math.isnan(v) else f"{v:g}" for v in values
    )


def estimate_rows(report: VerifyReport) -> list[tuple[str, ...]]:
    """Rows for a table: layer, analytic and estimated size / stride / centre (h × w), input, status."""
    return [
        (
            e.layer,
            _pair(e.analytic_size),
            _pair(e.size),
            _pair(e.analytic_stride),
            _pair(e.stride),
            _pair(e.analytic_center),
            _pair(e.center),
            "×".join(map(str, e.input_size)),
            e.status + (f" ({e.reason})" if e.reason else ""),
        )
        for e in report.estimates
    ]


def summary_rows(report: VerifyReport) -> list[tuple[str, ...]]:
    """Rows for a table: layer, unit, analytic window, measured support, status."""
    return [
        (
            c.layer,
            f"{c.kind} {c.unit}",
            ("global: " if c.is_global else "") + _fmt(c.analytic),
            _fmt(c.measured),
            c.status,
        )
        for c in report.checks
    ]
