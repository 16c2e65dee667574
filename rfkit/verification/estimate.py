"""Receptive fields estimated from input gradients alone: size, stride, centre and padding per axis.

This is what the ``receptivefield`` package (fornax.ai) does, with the axes right: it back-propagates a
point perturbation from a few output grid points and reads the RF off the gradient blob, but its
``estimate_rf_from_gradient`` sums the (H, W) map over W to get what it calls the *width*, so every
``(w, h)`` pair it returns holds the height first. rfkit keeps ``(h, w)`` pairs everywhere.

How each number is measured, per spatial axis and independently of the analytic RF rules:

* the model is made **measurable** as :func:`rfkit.verify` does (:mod:`rfkit.verification.measure`):
  a float64 copy with every weight positive, max pooling as average pooling, clamping activations as the
  identity, softmax as a softplus normalisation, positive inputs. The gradient of a unit with respect to
  pixel ``p`` is a sum, over the paths from ``p`` to the unit, of products of weights and local slopes.
  With positive weights and inputs the activations of conv/BN/ReLU stacks stay positive, so every slope is
  positive and no ReLU is dead: every path contributes a positive term, no two can cancel, and the
  gradient is non-zero exactly where a path exists — the gradient support *is* the set of pixels the unit
  can see. (With signed random weights dead ReLUs cut paths and terms can cancel; a max pool passes the
  gradient to one pixel per window: the blob is then only a lower bound, and where it is smaller than the
  true RF it is so differently for each unit.) The estimate shares verify's swaps, listed in ``notes``;
  float64 keeps tiny but non-zero contributions from rounding to zero.
* the **support** ``(first, last)`` of a unit is the first and last input index with a non-zero gradient
  (RF size ``last - first + 1``, holes left by dilation included, as the convention counts them);
* a unit is **clipped** on an axis when its support touches the first or last pixel the layer reads at all
  (the support of all its units together, one backward pass): zero padding may have cut it there. Only
  unclipped units are used. If fewer than two neighbouring unclipped units exist, the input is
  **enlarged**, doubling the affected axes up to ``max_size`` pixels (default 1024), and the
  layer is measured again; the note says so. At the cap the layer is reported with ``clipped=True``;
* the **stride** is the shift of the support between neighbouring units along each axis separately —
  ``(i, j)`` vs ``(i + 1, j)`` for h, ``(i, j)`` vs ``(i, j + 1)`` for w — checked to be the same for both
  ends of the support over a run of 3 shifts. When it is not (upsampling, aligned windows), up to 17
  units are measured to find the period ``p`` (at most 8) after which the pattern repeats, and the stride
  is the shift over one period divided by ``p`` (``shift_invariant=False``; where no period is found, the
  mean shift over the units measured);
* the **centre** of unit 0 is extrapolated from the measured unit ``i``: ``(first + last) / 2 - i * S``;
  the effective **padding** is ``(size - 1) / 2 - centre`` (Distill's definition, as in
  :class:`rfkit.RFInfo`);
* a layer is **global** when every unit (checked on the first, centre and last unit of each axis, which
  bound the others) sees all the layer reads, and keeps doing so as the input is doubled up to
  ``max_size`` (an RF larger than the input looks the same until the input is made larger than the RF).
  A layer whose grid stays at one unit while the input doubles is global at once (a global pool).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction

import torch
import torch.nn as nn

import rfkit.validate as validate
from rfkit.errors import RFKitError
from rfkit.graph.layers import default_layers
from rfkit.graph.layout import plain
from rfkit.graph.units import fit_batch, grid_shape, select_unit
from rfkit.pipeline.prepare import Prepared, check_model
from rfkit.verification.measure import Measurable, outputs_of, prepared_for_measuring

DEFAULT_MAX_SIZE = 1024  # per axis: the largest input the estimate enlarges to
_RUN = (-1, 0, 1, 2)  # units measured around the centre unit first (3 shifts)
_MAX_PERIOD = 8  # Swin's 7-unit windows
_WIDE = tuple(range(-_MAX_PERIOD, _MAX_PERIOD + 1))  # units measured when the shift is not constant

Number = int | float


def _num(x: Fraction | float) -> Number:
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


@dataclass(frozen=True)
class RFEstimate:
    """The RF of one layer, estimated from gradients (one entry per spatial axis, ``(h, w)`` for images).

    Attributes
    ----------
    layer : str
        The name asked for (module or node name; ``""`` is the model output).
    node : str
        The graph node holding it.
    size : tuple
        Support extent of an unclipped unit, per axis; ``math.inf`` on a global axis. A lower bound where
        ``clipped``.
    stride : tuple
        Shift of the support between neighbouring units (a fraction when the pattern repeats every few
        units); ``math.nan`` where it cannot be measured (global, a single unclipped unit).
    center : tuple
        Input coordinate of the RF centre of unit 0, extrapolated from ``unit`` (may be a half pixel).
    padding : tuple
        Effective padding ``(size - 1) / 2 - center``.
    is_global : bool
        Every unit sees all the input the layer reads, up to the largest input tried.
    unit : tuple
        The grid unit whose support gave ``size`` and ``center``.
    input_size : tuple
        The input size the layer was measured at (larger than asked when it had to be enlarged).
    clipped : bool
        No unit whose RF is untouched by the border was found up to ``max_size``.
    notes : tuple of str
        What happened: enlargement, clipping, gaps in the support (dilation), periodic patterns.
    support : tuple
        ``(first, last)`` input pixel per axis seen by ``unit``.
    shift_invariant : bool
        The support shifts by the same amount from every unit to the next (period 1) on every axis.
    grid : tuple
        Units per axis at ``input_size``.
    """

    layer: str
    node: str
    size: tuple[Number, ...]
    stride: tuple[Number, ...]
    center: tuple[Number, ...]
    padding: tuple[Number, ...]
    is_global: bool
    unit: tuple[int, ...]
    input_size: tuple[int, ...]
    clipped: bool
    notes: tuple[str, ...] = ()
    support: tuple = ()
    shift_invariant: bool = True
    grid: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)

    def as_row(self, axis_names: Sequence[str] = ("h", "w")) -> dict:
        """A flat dict for a table: one column per quantity and axis (``size_h``, ``size_w``, ...)."""
        names = list(axis_names)[: len(self.size)]
        if len(names) < len(self.size):
            names = [f"a{i}" for i in range(len(self.size))]
        row = {"layer": self.layer or "<output>", "node": self.node}
        for key in ("size", "stride", "center", "padding"):
            for a, v in zip(names, getattr(self, key)):
                row[f"{key}_{a}"] = v
        row.update(
            is_global=self.is_global,
            clipped=self.clipped,
            shift_invariant=self.shift_invariant,
            unit=self.unit,
            input_size=self.input_size,
            notes="; ".join(self.notes),
        )
        return row


class RFEstimates(list):
    """The :class:`RFEstimate` of each layer, in order; ``est["layer1"]`` finds one by layer name,
    ``notes`` lists the measurement swaps, :meth:`to_frame` gives a DataFrame."""

    def __init__(self, items=(), notes: Sequence[str] = (), model: str = "") -> None:
        super().__init__(items)
        self.notes = list(notes)
        self.model = model

    def __getitem__(self, key):
        if isinstance(key, str):
            for e in self:
                if key in (e.layer, e.node):
                    return e
            raise KeyError(key)
        return super().__getitem__(key)

    def to_frame(self):
        return estimates_frame(self)


def estimates_frame(estimates: Sequence[RFEstimate], axis_names: Sequence[str] = ("h", "w")):
    """A pandas DataFrame with one row per estimate (see :meth:`RFEstimate.as_row`).

    >>> import rfkit, torch.nn as nn
    >>> from rfkit.verification.estimate import estimate_rf, estimates_frame
    >>> est = estimate_rf(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)), layers=["1"], input_size=16)
    >>> estimates_frame(est)[["layer", "size_h", "size_w", "stride_h", "center_h"]].to_dict("records")
    [{'layer': '1', 'size_h': 5, 'size_w': 5, 'stride_h': 1, 'center_h': 2}]
    """
    import pandas as pd

    return pd.DataFrame([e.as_row(axis_names) for e in estimates])


# --- measuring ------------------------------------------------------------------------------------------
class _Probe:
    """The measurable model run once at one input size; the support of any unit of the chosen layers by
    one backward pass each (cached)."""

    def __init__(self, gm, targets: dict[str, str], layouts: dict[str, tuple], x: torch.Tensor) -> None:

        self.naxes = x.dim() - 2
        self.size = tuple(x.shape[2:])
        names = list(dict.fromkeys(targets.values()))
        self.x = x.requires_grad_(True)
        with torch.enable_grad():
            outs = outputs_of(gm, names)(self.x)
        outs = dict(zip(names, outs))
        self.y = {layer: outs[t] for layer, t in targets.items()}
        self.layouts = dict(layouts)
        self.grid = {}
        for layer, layout in self.layouts.items():
            spatial = layout is not None and any(f.axis is not None for dl in layout for f in dl.factors)
            self.grid[layer] = grid_shape(layout, self.naxes) if spatial else None
        self._cache: dict = {}

    def support(self, layer: str, unit: tuple[int, ...] | None) -> tuple[tuple, ...]:
        """Per axis ``(first, last, count)`` of input indices with a non-zero gradient of ``unit``'s
        entries (all channels; ``None``: every grid unit at once, i.e. all the layer reads);
        ``(None, None, 0)`` when it sees nothing."""
        key = (layer, None if unit is None else tuple(unit))
        if key not in self._cache:
            y = self.y[layer]
            if self.grid[layer] is None:
                entries = y[:1]
            elif unit is None:  # every grid entry: prefix tokens (class token...) left out
                entries = y
                for d, dl in enumerate(fit_batch(self.layouts[layer], tuple(y.shape))):
                    if dl.prefix:
                        entries = entries.narrow(d, dl.prefix, dl.size - dl.prefix)
            else:
                entries = select_unit(y, self.layouts[layer], unit)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(entries.sum(), self.x, retain_graph=True)
            mask = grad[0].abs().sum(dim=0) > 0
            out = []
            for axis in range(mask.dim()):
                other = tuple(d for d in range(mask.dim()) if d != axis)
                idx = torch.nonzero(mask.any(dim=other) if other else mask).flatten()
                out.append((int(idx.min()), int(idx.max()), len(idx)) if len(idx) else (None, None, 0))
            self._cache[key] = tuple(out)
        return self._cache[key]


@dataclass
class _Axis:
    """What one round found on one axis."""

    status: str  # "ok", "periodic", "irregular", "single", "clipped", "everything", "none"
    reads: tuple = (None, None)
    size: Fraction | float = math.nan
    stride: Fraction | float = math.nan
    center: Fraction | float = math.nan
    index: int = 0
    support: tuple = (None, None)
    period: int = 1
    gaps: bool = False
    note: str = ""
    shifts: int = 0  # neighbouring pairs the stride was checked on
    short: bool = False  # irregular, with too few units clear of the border to look for the period


def _unit(base: tuple[int, ...], axis: int, i: int) -> tuple[int, ...]:
    u = list(base)
    u[axis] = i
    return tuple(u)


def _runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _period(ext: dict[int, tuple], run: list[int]) -> tuple[int, Fraction] | None:
    """Smallest p such that the support of unit i + p is that of unit i shifted by one constant D > 0
    (both ends), over the whole run: stride D / p. (Units that all see the same window, as inside an
    attention window, are no stride 0: a grid that grows with the input moves on somewhere.)"""
    for p in range(1, _MAX_PERIOD + 1):
        pairs = [(i, i + p) for i in run if i + p in ext and i + p <= run[-1]]
        if not pairs or len(run) < (2 * p + 1 if p > 1 else 2):
            continue
        shifts = {(ext[j][0] - ext[i][0], ext[j][1] - ext[i][1]) for i, j in pairs}
        if len(shifts) == 1:
            d_lo, d_hi = shifts.pop()
            if d_lo == d_hi > 0:
                return p, Fraction(d_lo, p)
    return None


def _measure_axis(probe: _Probe, layer: str, base: tuple[int, ...], axis: int) -> _Axis:
    n = probe.grid[layer][axis]
    b = base[axis]

    def ext(i: int) -> tuple:
        return probe.support(layer, _unit(base, axis, i))[axis]

    reads = probe.support(layer, None)[axis][:2]  # what all units together see
    if reads[0] is None:
        return _Axis("none", note="the layer sees nothing")
    if ext(b)[:2] == reads and ext(0)[:2] == reads and ext(n - 1)[:2] == reads:
        return _Axis("everything", reads=reads, support=reads)

    def interior(i: int) -> bool:
        e = ext(i)
        return e[0] is not None and e[0] > reads[0] and e[1] < reads[1]

    measured = {i: ext(i) for i in (b + k for k in _RUN) if 0 <= i < n}
    good = [i for i in measured if interior(i)]
    runs = sorted(_runs(good), key=lambda r: (-len(r), abs(r[0] - b)))
    if not runs:
        sizes = [e[1] - e[0] + 1 for e in measured.values() if e[0] is not None]
        i = max(measured, key=lambda k: -1 if measured[k][0] is None else measured[k][1] - measured[k][0])
        return _Axis("clipped", reads=reads, size=max(sizes), index=i, support=measured[i][:2])
    run = runs[0]
    if len(run) == 1:
        i = run[0]
        e = measured[i]
        return _Axis(
            "single", reads=reads, size=Fraction(e[1] - e[0] + 1), index=i, support=e[:2], gaps=e[2] != e[1] - e[0] + 1
        )
    found = _period({i: measured[i] for i in run}, run)
    if found is None or found[0] != 1:  # not one shift throughout: look at more units for the period
        wide = {i: ext(i) for i in (b + k for k in _WIDE) if 0 <= i < n}
        good = [i for i in wide if interior(i)]
        run = sorted(_runs(good), key=lambda r: (-len(r), abs(r[0] - b)))[0]
        measured = wide
        found = _period({i: wide[i] for i in run}, run)
    i = b if b in run else min(run, key=lambda k: abs(k - b))
    e = measured[i]
    gaps = any(measured[k][2] != measured[k][1] - measured[k][0] + 1 for k in run)
    short = False
    if found is None:  # no period: the mean shift, or nothing where all units measured see the same window
        stride = Fraction(sum(measured[run[-1]][:2]) - sum(measured[run[0]][:2]), 2 * (run[-1] - run[0]))
        stride = stride if stride > 0 else math.nan
        status, period, short = "irregular", 0, len(run) < len(_WIDE)
    else:
        period, stride = found
        status = "ok" if period == 1 else "periodic"
    size = max(measured[k][1] - measured[k][0] + 1 for k in run)
    center = Fraction(e[0] + e[1], 2) - i * stride if isinstance(stride, Fraction) else math.nan
    return _Axis(
        status,
        reads=reads,
        size=Fraction(size),
        stride=stride,
        center=center,
        index=i,
        support=e[:2],
        period=period,
        gaps=gaps,
        shifts=len(run) - 1,
        short=short,
    )


def _measure_layer(probe: _Probe, layer: str) -> list[_Axis] | None:
    """Per axis findings for ``layer``; None when it has no spatial grid."""
    grid = probe.grid[layer]
    if grid is None:
        return None
    base = tuple(n // 2 for n in grid)
    return [_measure_axis(probe, layer, base, a) for a in range(len(grid))]


# --- the model at several input sizes -------------------------------------------------------------------
def _probe(m: Measurable, size: tuple[int, ...], layers: Sequence[str]) -> _Probe:
    """The measurable model run at input ``size`` for ``layers`` (module names only where it is recorded
    with make_fx)."""
    g = m.graph(size)
    x = m.x(size)
    if m.gm is None:
        gm, outputs = m.record(x.detach())
        missing = [name for name in layers if name not in outputs]
        if missing:
            raise RFKitError(
                f"{m.g.model_name} can only be recorded with make_fx, so only module outputs "
                f"can be measured; {missing[0]!r} is not one (use a module name)"
            )
        targets = {name: outputs[name] for name in layers}
    else:
        gm = m.gm
        targets = {name: m.node_in_gm(g.resolve(name)) for name in layers}
    layouts = {}
    for name in layers:
        record = g.record(name)
        layout = record.layout
        if layout is None and record.info.shape is not None and len(record.info.shape) == 2 + len(size):
            layout = plain(record.info.shape, tuple(range(2, 2 + len(size))))
        layouts[name] = layout
    return _Probe(gm, targets, layouts, x)


def _fmt(size) -> str:
    return "×".join(str(s) for s in size)


def _finish(
    layer: str, node: str, probe: _Probe, axes: list[_Axis] | None, notes: list[str], at_cap: bool
) -> RFEstimate:
    naxes = probe.naxes
    nan = (math.nan,) * naxes
    if axes is None:  # no spatial grid: the whole output is one unit
        ext = probe.support(layer, ())
        whole = all(lo == 0 and hi == n - 1 for (lo, hi, _), n in zip(ext, probe.size))
        notes.append("no spatial grid: the output is one unit" + ("" if whole else " that sees part of the input"))
        size = (math.inf,) * naxes if whole else tuple(math.nan if lo is None else hi - lo + 1 for lo, hi, _ in ext)
        return RFEstimate(
            layer,
            node,
            size,
            nan,
            nan,
            nan,
            whole,
            (),
            probe.size,
            False,
            tuple(notes),
            tuple(e[:2] for e in ext),
            True,
            (),
        )
    names = ("h", "w") if naxes == 2 else tuple(f"axis {a}" for a in range(naxes))
    size, stride, center, padding = [], [], [], []
    clipped = False
    for a, ax in enumerate(axes):
        if ax.status == "everything":
            size.append(math.inf)
            stride.append(math.nan)
            center.append(math.nan)
            padding.append(math.nan)
            continue
        size.append(_num(ax.size))
        stride.append(_num(ax.stride))
        center.append(_num(ax.center))
        padding.append(_num((ax.size - 1) / 2 - ax.center) if not math.isnan(ax.center) else math.nan)
        if ax.status == "clipped":
            clipped = True
            notes.append(
                f"{names[a]}: every unit measured touches the border of what the layer reads up to "
                f"{_fmt(probe.size)}: size {size[-1]} is a lower bound"
            )
        elif ax.status == "single":
            notes.append(f"{names[a]}: only one unclipped unit at {_fmt(probe.size)}: stride and centre not measured")
        elif ax.status == "ok" and ax.shifts == 1:
            notes.append(f"{names[a]}: stride from one pair of units only (two units clear of the border)")
        elif ax.status == "periodic":
            notes.append(
                f"{names[a]}: the RF pattern repeats every {ax.period} units (stride {stride[-1]}); size is "
                f"the largest over a period, centre extrapolated from unit {ax.index}"
            )
        elif ax.status == "irregular":
            notes.append(
                f"{names[a]}: the support does not shift evenly (no period up to {_MAX_PERIOD} over "
                f"{ax.shifts + 1} units clear of the border); stride is the mean shift"
                + (" (none: they all see the same window)" if math.isnan(ax.stride) else "")
            )
        elif ax.status == "none":
            notes.append(f"{names[a]}: {ax.note}")
        if ax.gaps:
            notes.append(f"{names[a]}: the support has holes (dilation); size counts the whole extent")
    everything = [ax.status == "everything" for ax in axes]
    is_global = all(everything)
    if any(everything):
        which = "every axis" if is_global else ", ".join(n for n, e in zip(names, everything) if e)
        why = "the largest input allowed (max_size)" if at_cap else "the largest input the model took"
        notes.append(
            f"{which}: every unit sees all the input it reads, up to {_fmt(probe.size)}, "
            f"{why}: global (or an RF larger than that)"
        )
    reads = [ax.reads for ax in axes]
    if any(r[0] is not None and (r[0] > 0 or r[1] < n - 1) for r, n in zip(reads, probe.size)):
        notes.append("the layer reads only pixels " + " × ".join(f"{lo}..{hi}" for lo, hi in reads))
    unit = tuple(
        ax.index if ax.status not in ("everything", "none") else g // 2 for ax, g in zip(axes, probe.grid[layer])
    )
    support = tuple(ax.support for ax in axes)
    shift_invariant = all(ax.status in ("ok", "everything", "single", "clipped", "none") for ax in axes)
    return RFEstimate(
        layer,
        node,
        tuple(size),
        tuple(stride),
        tuple(center),
        tuple(padding),
        is_global,
        unit,
        probe.size,
        clipped,
        tuple(notes),
        support,
        shift_invariant,
        probe.grid[layer],
    )


def _grow(axes: list[_Axis] | None, grid, prev_grid) -> list[bool]:
    """Per axis: does this layer need a larger input there?"""
    if axes is None:
        return []
    out = []
    for a, ax in enumerate(axes):
        if ax.status == "everything":
            # a grid of one unit that did not grow when the input doubled: a global pool, not a large RF
            out.append(not (grid[a] == 1 and prev_grid is not None and prev_grid[a] == 1))
        else:
            out.append(ax.status in ("clipped", "single") or (ax.status == "irregular" and ax.short))
    return out


def estimate_layers(m: Measurable, layers, max_size: Mapping[str, int] | int) -> RFEstimates:
    """Estimate ``layers`` (default: :func:`rfkit.graph.layers.default_layers`) of the measurable model ``m``;
    ``max_size`` per layer where a mapping (0: never enlarge)."""
    g = m.g
    if layers is None:
        layers = default_layers(g, m.real)
    elif isinstance(layers, str):
        layers = [layers]
    layers = list(dict.fromkeys(layers))
    nodes = {name: g.resolve(name) for name in layers}
    for name, node in nodes.items():
        info = g.records[node].info
        if info.shape is None:
            raise RFKitError(f"layer {name or '<output>'!r} (node {node}) has no tensor output to measure")
    caps = {
        name: (max_size.get(name, DEFAULT_MAX_SIZE) if isinstance(max_size, Mapping) else max_size) for name in layers
    }

    size = tuple(g.input_size)
    pending = list(layers)
    done: dict[str, RFEstimate] = {}
    history: dict[str, list[str]] = {name: [] for name in layers}
    prev_grid: dict[str, tuple | None] = {name: None for name in layers}
    last: dict[str, tuple] = {}
    with torch.enable_grad():
        while pending:
            try:
                probe = _probe(m, size, pending)
            except Exception as e:  # noqa: BLE001 - an enlarged input the model does not take
                if not last:
                    raise
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                for name in pending:
                    old_probe, axes = last[name]
                    history[name][-1] = f"could not enlarge the input to {_fmt(size)}: {type(e).__name__}: {msg}"
                    done[name] = _finish(name, nodes[name], old_probe, axes, history[name], at_cap=False)
                break
            grow_axes = [False] * len(size)
            still = []
            for name in pending:
                axes = _measure_layer(probe, name)
                last[name] = (probe, axes)
                grow = _grow(axes, probe.grid[name], prev_grid[name])
                prev_grid[name] = probe.grid[name]
                room = [s < caps[name] for s in size]
                want = [gr and r for gr, r in zip(grow, room)]
                if any(want):
                    still.append(name)
                    grow_axes = [ga or w for ga, w in zip(grow_axes, want)]
                else:
                    done[name] = _finish(
                        name,
                        nodes[name],
                        probe,
                        axes,
                        history[name],
                        at_cap=any(gr and not r for gr, r in zip(grow, room)),
                    )
            if not still:
                break
            new = tuple(min(2 * s, max(caps[n] for n in still)) if ga else s for s, ga in zip(size, grow_axes))
            for name in still:
                history[name].append(f"input enlarged from {_fmt(size)} to {_fmt(new)}: " + _why(last[name][1]))
            size = new
            pending = still
    return RFEstimates([done[name] for name in layers], notes=m.notes, model=g.model_name)


def _why(axes: list[_Axis] | None) -> str:
    """Why a layer needed a larger input, per axis."""
    if not axes:
        return "no spatial grid"
    names = ("h", "w") if len(axes) == 2 else tuple(f"axis {a}" for a in range(len(axes)))
    parts = []
    for n, ax in zip(names, axes):
        if ax.status == "everything":
            parts.append(f"{n}: every unit sees all it reads")
        elif ax.status == "clipped":
            parts.append(f"{n}: no unit clear of the border")
        elif ax.status == "single":
            parts.append(f"{n}: one unit clear of the border")
        elif ax.status == "irregular":
            parts.append(f"{n}: too few units clear of the border to find the period")
    return ", ".join(parts) or "another layer needed it"


def estimate_rf(
    model: str | nn.Module | Prepared,
    layers: str | Sequence[str] | None = None,
    input_size=None,
    in_chans: int | None = None,
    seed: int = 0,
    max_size: int = DEFAULT_MAX_SIZE,
    *,
    trust: bool = False,
) -> RFEstimates:
    """Estimate the receptive field of chosen layers from input gradients alone, per axis ``(h, w)``.

    Size, stride, centre of unit 0, effective padding and globality are read off the gradient support of
    a few units of each layer, on a float64 copy of the model with positive random weights (see the module
    docstring for why the support is then exact, and how each number is measured). The analytic RF rules
    are not used; the analytic graph only names the layers and says where their grid lives in the tensor.

    Parameters
    ----------
    model : str, nn.Module or Prepared
        A model spec (timm name, ``torchvision:NAME``, ``FILE.py:FACTORY``; built on the CPU with random
        weights), a module, or a model prepared by :func:`rfkit.prepare` (its trace is reused; a module or
        a prepared model is copied, the original is not changed).
    layers : str or list of str, optional
        Module or node names (``""``: the model output). Default: the stage outputs and the output, as
        :func:`rfkit.verify` chooses them. Models that only ``make_fx`` can record take module names only.
    input_size : int or tuple, optional
        Spatial input size to start from (default: the model's own). Enlarged where no unit clear of the
        border exists (the estimate says so in its notes).
    in_chans : int, optional
        Input channels (default: the model's).
    seed : int
        Seed of the positive random weights.
    max_size : int
        Largest input, per axis, the estimate enlarges to (doubling). Default 1024.
    trust : bool
        Build a spec whose file runs code (``FILE.py:FACTORY``: the file is imported; ``ultralytics:PATH.pt``
        or a yaml rfkit did not ship): refused unless you trust the file (:func:`rfkit.prepare`).

    Returns
    -------
    RFEstimates
        A list of :class:`RFEstimate`, one per layer, in order (``est["layer1"]`` looks one up;
        ``est.to_frame()`` is a DataFrame; ``est.notes`` lists the measurement swaps).

    Raises
    ------
    NodeNotFoundError
        A layer name is not in the graph.
    ArgumentError, InputSizeError
        An argument of the wrong type or value (the message names it).
    RFKitError
        A layer has no tensor output, or is not a module output of a model recorded with ``make_fx``.

    Examples
    --------
    A 3×7 kernel with stride (1, 2) and dilation (2, 1): sizes 5 (h) and 7 (w), strides 1 and 2; unit 0
    sees rows -1..3 (centre 1, one padded row) and columns 0..6 (centre 3, no padding).

    >>> import torch.nn as nn
    >>> from rfkit.verification.estimate import estimate_rf
    >>> net = nn.Sequential(nn.Conv2d(3, 4, (3, 7), stride=(1, 2), dilation=(2, 1), padding=(1, 0)))
    >>> e = estimate_rf(net, layers="0", input_size=32)[0]
    >>> e.size, e.stride, e.center, e.padding
    ((5, 7), (1, 2), (1, 3), (1, 0))
    >>> e.clipped, e.is_global
    (False, False)
    """
    check_model(model)
    layers = validate.layer_names(layers)
    seed = validate.seed(seed)
    max_size = validate.count(max_size, "max_size")
    m = Measurable(prepared_for_measuring(model, input_size, in_chans, seed, trust), seed)
    if m.gm is None:
        m.notes.append(
            "recorded with make_fx: functional max pooling and clamping are measured as they are "
            "(only module swaps apply)"
        )
    return estimate_layers(m, layers, max_size)
