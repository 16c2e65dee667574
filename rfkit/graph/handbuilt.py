"""Hand-built graphs: describe an architecture layer by layer, without a PyTorch model, and get the same
:class:`~rfkit.graph.rfgraph.RFGraph` as :func:`rfkit.trace` — for networks from other frameworks or
from a paper's table.

Each layer's RF is computed by the code the tracer uses: the exact ``Fraction`` arithmetic of
:class:`~rfkit.graph.state.AxisRF` (sliding windows, resampling with periodic patterns) and
:func:`~rfkit.graph.state.merge` for joins, and the tracer's own rules for interpolation taps, transposed
convolutions, TF 'SAME' padding and adaptive pooling. Feature-map sizes follow PyTorch's formulas, so a
layer that would shrink a map to nothing is reported, as ``rfkit.trace`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rfkit.errors import ArchitectureError, InputTooSmallError
from rfkit.graph import layout as lay
from rfkit.graph.info import RFInfo
from rfkit.graph.rfgraph import NodeRecord, RFGraph
from rfkit.graph.state import EmptyWindow, PeriodTooLong, RFState, merge


@dataclass(frozen=True)
class LayerRecord(NodeRecord):
    """A node of a hand-built graph: a :class:`NodeRecord` with the layer's parameters in words."""

    detail: str = ""


@dataclass
class _Node:
    record: LayerRecord
    state: RFState
    shape: tuple[int, ...]  # (1, channels, *spatial)


def _per_axis(value, n: int, what: str, layer: str, minimum: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    if len(values) == 1 and n > 1:
        values = values * n
    if len(values) != n:
        raise ArchitectureError(f"layer {layer!r}: {what} {value!r} has {len(values)} values for {n} axes")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ArchitectureError(f"layer {layer!r}: {what} must be an integer >= {minimum} per axis, not {value!r}")
    return values


def _sides(padding, n: int, layer: str, minimum: int | None = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(before, after) padding per axis from an int (every side), one int per axis (both sides), or one
    ``(before, after)`` pair per axis (asymmetric: ZeroPadding, causal convolutions). Values below
    ``minimum`` are refused (None: any int, negative ones crop)."""
    pairs = isinstance(padding, (list, tuple)) and any(isinstance(p, (list, tuple)) for p in padding)
    if not pairs:
        low = -(2**31) if minimum is None else minimum
        values = _per_axis(padding, n, "padding", layer, low)
        return values, values
    if len(padding) != n or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in padding):
        raise ArchitectureError(f"layer {layer!r}: padding {padding!r} must be one (before, after) pair per axis")
    flat = [v for p in padding for v in p]
    if any(isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum) for v in flat):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ArchitectureError(f"layer {layer!r}: padding must be integers{bound}, not {padding!r}")
    return tuple(p[0] for p in padding), tuple(p[1] for p in padding)


def _fmt(values: Sequence) -> str:
    return "×".join(str(v) for v in values) if len(set(values)) > 1 else str(values[0])


class GraphBuilder:
    """Describe a network layer by layer and build its :class:`~rfkit.graph.rfgraph.RFGraph`.

    Every method adds one layer named ``name`` and returns that name. ``input`` names the layer it reads
    (default: the layer added last); merges take a list of ``inputs``. Kernel, stride, padding and dilation
    are an int (every axis) or one value per axis. The input node is named ``"input"``.

    Parameters
    ----------
    input_size : int or tuple
        Spatial input size, ``(h, w)`` for images (an int means square); 1 to 3 axes.
    name : str
        Model name shown in tables and graphs.
    in_chans : int
        Input channels (only shown in shapes).

    Examples
    --------
    A stem and a residual block, as in a ResNet:

    >>> from rfkit.graph.handbuilt import GraphBuilder
    >>> b = GraphBuilder(32, name="tiny")
    >>> b.conv("stem", kernel=7, stride=2, padding=3, channels=16)
    'stem'
    >>> b.pool("pool", kernel=3, stride=2, padding=1)
    'pool'
    >>> b.conv("block.conv1", kernel=3, padding=1)
    'block.conv1'
    >>> b.conv("block.conv2", kernel=3, padding=1)
    'block.conv2'
    >>> b.add("block", ["block.conv2", "pool"])
    'block'
    >>> g = b.build()
    >>> g["block"].size, g["block"].size_min, g["block"].stride, g["block"].shape
    ((27, 27), (11, 11), (4, 4), (1, 16, 8, 8))
    """

    def __init__(self, input_size: int | Sequence[int] = 224, *, name: str = "handbuilt", in_chans: int = 3) -> None:
        size = (input_size,) * 2 if isinstance(input_size, int) else tuple(input_size)
        if not 1 <= len(size) <= 3 or any(isinstance(s, bool) or not isinstance(s, int) for s in size):
            raise ArchitectureError(f"input_size must be an int or 1 to 3 ints, not {input_size!r}")
        if any(s < 1 for s in size):
            raise InputTooSmallError(f"input size {size} must be positive on every axis")
        self.input_size = size
        self.ndim = len(size)
        self.name = name
        self.in_chans = in_chans
        self._nodes: dict[str, _Node] = {}
        self._unsupported: list = []
        self._last = "input"
        shape = (1, in_chans, *size)
        state = RFState.input(self.ndim, shape)
        info = RFInfo.from_state(state, self.ndim, shape)
        record = LayerRecord(
            name="input",
            op="input",
            kind="placeholder",
            module=None,
            scope="",
            inputs=(),
            info=info,
            layout=state.layout,
            detail="image",
        )
        self._nodes["input"] = _Node(record, state, shape)

    # --- bookkeeping ------------------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def shape(self, name: str) -> tuple[int, ...]:
        """The output shape of layer ``name`` (batch 1, channels second for a map)."""
        return self._nodes[name].shape

    @property
    def unsupported_nodes(self) -> list:
        """The layers added with :meth:`opaque` (``UnsupportedNode`` records: node, op, reason)."""
        return list(self._unsupported)

    @property
    def last(self) -> str:
        """Name of the layer added last (the default input of the next one)."""
        return self._last

    def _source(self, name: str, input: str | None) -> _Node:
        src = self._last if input is None else input
        if not isinstance(src, str):
            raise ArchitectureError(f"layer {name!r}: input must be a layer name, not {src!r} (merges take a list)")
        if src not in self._nodes:
            raise ArchitectureError(f"layer {name!r}: unknown input {src!r}; layers so far: {', '.join(self._nodes)}")
        return self._nodes[src]

    def _spatial_source(self, name: str, input: str | None) -> _Node:
        src = self._source(name, input)
        if len(src.shape) != 2 + self.ndim:
            raise ArchitectureError(
                f"layer {name!r}: its input {src.record.name!r} has no spatial axes left (a dense layer flattened them)"
            )
        return src

    def _add(
        self, name: str, op: str, inputs: Sequence[str], state: RFState, shape: tuple[int, ...], detail: str
    ) -> str:
        if not isinstance(name, str) or not name:
            raise ArchitectureError(f"a layer name must be a non-empty string, not {name!r}")
        if name in self._nodes:
            raise ArchitectureError(f"layer name {name!r} is used twice")
        if any(s < 1 for s in shape[2:]):
            raise InputTooSmallError(
                f"input too small for this network: layer {name!r} ({op} {detail}) would "
                f"output a {'×'.join(map(str, shape[2:]))} map at input "
                f"{'×'.join(map(str, self.input_size))}. Use a larger input size."
            )
        if len(shape) == 2 + self.ndim:
            state = state.with_layout(lay.plain(shape, tuple(range(2, 2 + self.ndim)))).narrowed(shape)
        else:  # (batch, features): a vector per image, as after flatten + linear
            state = state.with_layout(tuple(lay.DimLayout.other(n) for n in shape))
        info = RFInfo.from_state(state, self.ndim, shape)
        record = LayerRecord(
            name=name,
            op=op,
            kind="layer",
            module=name,
            scope=name,
            inputs=tuple(inputs),
            info=info,
            layout=state.layout,
            detail=detail,
        )
        self._nodes[name] = _Node(record, state, shape)
        self._last = name
        return name

    # --- sliding windows -----------------------------------------------------------------------------
    def _window(
        self,
        name: str,
        op: str,
        input,
        kernel,
        stride,
        padding,
        dilation,
        channels,
        ceil_mode: bool,
        detail_prefix: str = "",
    ) -> str:
        from rfkit.graph.handlers.conv import same_pad_left

        src = self._spatial_source(name, input)
        n = self.ndim
        k = _per_axis(kernel, n, "kernel", name, 1)
        s = _per_axis(stride, n, "stride", name, 1)
        d = _per_axis(dilation, n, "dilation", name, 1)
        sizes = src.shape[2:]
        if padding == "valid":
            left = right = (0,) * n
        elif padding == "same":  # TensorFlow/Keras 'SAME' (torch's 'same' where the stride is 1)
            totals = [
                max((math.ceil(i / st) - 1) * st + (kk - 1) * dd + 1 - i, 0) for i, kk, st, dd in zip(sizes, k, s, d)
            ]
            left = tuple(same_pad_left(i, kk, st, dd) for i, kk, st, dd in zip(sizes, k, s, d))
            right = tuple(t - lft for t, lft in zip(totals, left))
        elif isinstance(padding, str):
            raise ArchitectureError(
                f"layer {name!r}: padding must be an int, one int per axis, 'same' or 'valid', not {padding!r}"
            )
        else:
            left, right = _sides(padding, n, name)
        out = []
        for i, kk, st, dd, pl, pr in zip(sizes, k, s, d, left, right):
            span = dd * (kk - 1) + 1
            num = i + pl + pr - span
            o = (-(-num // st) if ceil_mode else num // st) + 1
            if ceil_mode and (o - 1) * st >= i + pl:  # PyTorch: the last window must start inside the input
                o -= 1
            out.append(o)
        state = src.state
        if state.axes is not None and not all(kk == 1 and st == 1 and pl == 0 for kk, st, pl in zip(k, s, left)):
            axes = list(state.axes)
            for a in range(n):
                if k[a] == 1 and s[a] == 1 and left[a] == 0:
                    continue
                axes[a] = axes[a].local(k[a], s[a], left[a], d[a])
            state = state.with_axes(axes)
        detail = f"{detail_prefix}{_fmt(k)}"
        if any(x > 1 for x in s):
            detail += f" /{_fmt(s)}"
        if any(x > 1 for x in d):
            detail += f" d{_fmt(d)}"
        chans = src.shape[1] if channels is None else int(channels)
        return self._add(name, op, [src.record.name], state, (1, chans, *out), detail)

    def conv(
        self,
        name: str,
        kernel,
        stride=1,
        padding=0,
        dilation=1,
        *,
        input: str | None = None,
        channels: int | None = None,
    ) -> str:
        """A convolution. ``padding``: pixels per side (PyTorch), one ``(before, after)`` pair per axis
        (asymmetric, e.g. a causal convolution), ``"valid"`` (0), or ``"same"`` (TensorFlow/Keras 'SAME': output
        ``ceil(size / stride)``, the odd pixel padded on the right, so it depends on the map size).
        """
        return self._window(name, "conv", input, kernel, stride, padding, dilation, channels, False)

    def pool(
        self,
        name: str,
        kernel,
        stride=None,
        padding=0,
        dilation=1,
        *,
        input: str | None = None,
        mode: str = "max",
        ceil_mode: bool = False,
    ) -> str:
        """Max or average pooling (``mode``); the stride defaults to the kernel, as in PyTorch."""
        if mode not in ("max", "avg"):
            raise ArchitectureError(f"layer {name!r}: pooling mode must be 'max' or 'avg', not {mode!r}")
        return self._window(
            name,
            "pool",
            input,
            kernel,
            kernel if stride is None else stride,
            padding,
            dilation,
            None,
            ceil_mode,
            f"{mode} ",
        )

    # --- resampling -----------------------------------------------------------------------------------
    def conv_transpose(
        self,
        name: str,
        kernel,
        stride=1,
        padding=0,
        dilation=1,
        output_padding=0,
        *,
        input: str | None = None,
        channels: int | None = None,
    ) -> str:
        """A transposed convolution (PyTorch's ``ConvTranspose``: output ``(size - 1) * stride - 2 * padding
        + dilation * (kernel - 1) + output_padding + 1``). ``padding`` may also be one ``(before, after)`` pair
        per axis: the full output cropped by ``before`` and ``after`` pixels (a negative value adds zeros), as
        Keras' 'same' transposed convolutions do."""
        from rfkit.graph.handlers.resample import transposed_axis

        src = self._spatial_source(name, input)
        n = self.ndim
        k = _per_axis(kernel, n, "kernel", name, 1)
        s = _per_axis(stride, n, "stride", name, 1)
        pairs = isinstance(padding, (list, tuple)) and any(isinstance(x, (list, tuple)) for x in padding)
        p, p_after = _sides(padding, n, name, None if pairs else 0)
        d = _per_axis(dilation, n, "dilation", name, 1)
        op_ = _per_axis(output_padding, n, "output_padding", name, 0)
        out = tuple(
            (i - 1) * st - pp - pa + dd * (kk - 1) + o + 1
            for i, kk, st, pp, pa, dd, o in zip(src.shape[2:], k, s, p, p_after, d, op_)
        )
        state = src.state
        if state.axes is not None:
            try:
                state = state.with_axes(transposed_axis(state.axes[a], k[a], s[a], p[a], d[a]) for a in range(n))
            except (EmptyWindow, PeriodTooLong) as e:
                raise ArchitectureError(f"layer {name!r}: {e}") from e
        detail = f"{_fmt(k)} ×{_fmt(s)}" + (f" d{_fmt(d)}" if any(x > 1 for x in d) else "")
        chans = src.shape[1] if channels is None else int(channels)
        return self._add(name, "conv_transpose", [src.record.name], state, (1, chans, *out), detail)

    def upsample(
        self,
        name: str,
        scale=None,
        *,
        size=None,
        mode: str = "nearest",
        align_corners: bool = False,
        input: str | None = None,
    ) -> str:
        """Upsampling by ``scale`` (per axis, may be fractional) or to ``size``, as ``nn.Upsample``:
        ``nearest``, ``nearest-exact``, ``linear``/``bilinear``/``trilinear`` or ``bicubic``. Its units do
        not all see the same window: the RF pattern repeats with a period, kept exactly."""
        from rfkit.graph.handlers.resample import interpolation_taps

        src = self._spatial_source(name, input)
        n = self.ndim
        if (scale is None) == (size is None):
            raise ArchitectureError(f"layer {name!r}: give either scale or size")
        sizes_in = src.shape[2:]
        if scale is not None:
            scales = tuple(scale) if isinstance(scale, (list, tuple)) else (scale,) * n
            if len(scales) != n or any(not isinstance(x, (int, float, Fraction)) or x <= 0 for x in scales):
                raise ArchitectureError(f"layer {name!r}: scale must be positive, one per axis, not {scale!r}")
            out = tuple(math.floor(i * float(x)) for i, x in zip(sizes_in, scales))
        else:
            out = _per_axis(size, n, "size", name, 1)
            scales = (None,) * n
        state = src.state
        if state.axes is not None:
            axes = list(state.axes)
            for a in range(n):
                sc = Fraction(scales[a]).limit_denominator(10_000) if scales[a] else None
                if out[a] < 1:
                    break
                try:
                    taps, period, advance = interpolation_taps(mode, sizes_in[a], out[a], sc, bool(align_corners))
                    axes[a] = axes[a].resample(taps, Fraction(advance, period), period, advance)
                except (EmptyWindow, PeriodTooLong) as e:
                    raise ArchitectureError(f"layer {name!r}: {e}") from e
                except Exception as e:  # noqa: BLE001 - the tracer's rule rejects the mode
                    raise ArchitectureError(f"layer {name!r}: unsupported upsampling: {e}") from e
            state = state.with_axes(axes)
        factor = _fmt(tuple(scales)) if scale is not None else "→" + _fmt(out)
        detail = f"{mode} ×{factor}" if scale is not None else f"{mode} {factor}"
        return self._add(name, "upsample", [src.record.name], state, (1, src.shape[1], *out), detail)

    # --- global ops ---------------------------------------------------------------------------------------
    def adaptive_pool(self, name: str, output_size, *, input: str | None = None, mode: str = "avg") -> str:
        """Adaptive pooling to ``output_size`` (PyTorch's bins); global when the output is one cell and the
        input more than one."""
        from rfkit.graph.handlers.pool import adaptive_axis

        src = self._spatial_source(name, input)
        n = self.ndim
        out = _per_axis(output_size, n, "output_size", name, 1)
        sizes_in = src.shape[2:]
        state = src.state
        if state.axes is not None:
            if any(o == 1 and i > 1 for i, o in zip(sizes_in, out)):
                state = state.made_global()
            else:
                try:
                    state = state.with_axes(adaptive_axis(state.axes[a], sizes_in[a], out[a]) for a in range(n))
                except (EmptyWindow, PeriodTooLong) as e:
                    raise ArchitectureError(f"layer {name!r}: {e}") from e
        op = "global_pool" if all(o == 1 for o in out) else "adaptive_pool"
        return self._add(name, op, [src.record.name], state, (1, src.shape[1], *out), f"{mode} →{_fmt(out)}")

    def global_pool(self, name: str, *, input: str | None = None, mode: str = "avg") -> str:
        """Global average (or max) pooling to one cell: every output sees the whole input."""
        return self.adaptive_pool(name, 1, input=input, mode=mode)

    def linear(self, name: str, units: int | None = None, *, input: str | None = None, pointwise: bool = False) -> str:
        """A fully connected layer. By default it flattens its input map: global unless the map is a single
        cell. ``pointwise=True`` applies it at every position instead (a token MLP, a 1×1 convolution)."""
        src = self._source(name, input)
        if pointwise:
            chans = src.shape[1] if units is None else int(units)
            return self._add(name, "linear", [src.record.name], src.state, (1, chans, *src.shape[2:]), "per position")
        state = src.state
        if state.axes is not None and any(i > 1 for i in src.shape[2:]):
            state = state.made_global()
        units = src.shape[1] * math.prod(src.shape[2:]) if units is None else int(units)
        return self._add(name, "linear", [src.record.name], state, (1, units), f"{units} units")

    def attention(self, name: str, *, input: str | None = None, context: Sequence[str] = ()) -> str:
        """Self-attention over every position (a ViT block's attention): each output sees the whole input
        through the keys and values, and its own position through the query (kept as the local RF).
        ``context`` names other inputs (keys and values of cross-attention): what they carry (an unknown RF,
        misalignment) carries over. For a sliding-window attention use :meth:`conv` with the window as kernel."""
        return self.mix(name, "attention", input=input, context=context)

    def mix(self, name: str, op: str = "mix", *, input: str | None = None, context: Sequence[str] = ()) -> str:
        """An op whose output at a position also depends on every other position, and still on its own:
        attention, a normalisation whose statistics span the grid (GroupNorm, InstanceNorm), a softmax over
        positions. Global where the map has more than one cell; the local RF is kept. ``context``: further
        inputs whose flags (unknown, misaligned) carry over.

        >>> b = GraphBuilder(8)
        >>> _ = b.conv("conv", kernel=3, padding=1)
        >>> _ = b.mix("norm", "group_norm")
        >>> g = b.build()
        >>> g["norm"].is_global, g["norm"].local_size
        (True, (3, 3))
        """
        src = self._spatial_source(name, input)
        others = [self._source(name, c) for c in context]
        state = src.state
        if others:
            flags = merge([src.state, *(o.state for o in others)], None)
            state = state.replace(unknown=flags.unknown, misaligned=flags.misaligned, approximate=flags.approximate)
        if math.prod(src.shape[2:]) > 1:
            state = state.replace(is_global=True)
        inputs = [src.record.name, *(o.record.name for o in others)]
        return self._add(name, op, list(dict.fromkeys(inputs)), state, src.shape, "all positions")

    def pad(self, name: str, padding, *, input: str | None = None) -> str:
        """Explicit padding: pixels per side, one int per axis, or one ``(before, after)`` pair per axis;
        negative values crop. The RF of every unit is the same; the units are re-indexed.

        >>> b = GraphBuilder(8)
        >>> _ = b.pad("pad", ((1, 2), (0, 0)))
        >>> _ = b.conv("conv", kernel=3)
        >>> g = b.build()
        >>> g["pad"].shape, g["conv"].center
        ((1, 3, 11, 8), (0, 1))
        """
        src = self._spatial_source(name, input)
        before, after = _sides(padding, self.ndim, name, None)
        out = tuple(i + b + a for i, b, a in zip(src.shape[2:], before, after))
        state = src.state
        if state.axes is not None:
            state = state.with_axes(ax.shifted(-b) if b else ax for ax, b in zip(state.axes, before))
        detail = "×".join(f"{b:+d}/{a:+d}" for b, a in zip(before, after))
        return self._add(name, "pad", [src.record.name], state, (1, src.shape[1], *out), detail)

    def crop(self, name: str, cropping, *, input: str | None = None) -> str:
        """Cropping: pixels per side, one int per axis, or one ``(before, after)`` pair per axis removed."""
        before, after = _sides(cropping, self.ndim, name, 0)
        return self.pad(name, tuple((-b, -a) for b, a in zip(before, after)), input=input)

    def reshape(self, name: str, shape: Sequence[int], *, input: str | None = None) -> str:
        """A reshape that moves no position: a one-cell map to a vector or back (``(1, C, 1, 1)`` ↔ ``(1, C)``, as
        in squeeze-and-excitation). ``shape`` is the output shape, batch first. A reshape that would fold grid
        positions into channels or tokens has no rule here: it raises."""
        src = self._source(name, input)
        shape = tuple(int(v) for v in shape)
        if len(shape) not in (2, 2 + self.ndim) or any(v < 1 for v in shape):
            raise ArchitectureError(f"layer {name!r}: cannot reshape to {shape}: (batch, channels[, grid]) expected")
        cells_in, cells_out = math.prod(src.shape[2:]), math.prod(shape[2:])
        if cells_in != 1 or cells_out != 1 or math.prod(src.shape[1:]) != math.prod(shape[1:]):
            raise ArchitectureError(
                f"layer {name!r}: a reshape from {src.shape} to {shape} moves grid positions; only one-cell maps "
                "and vectors can be reshaped"
            )
        return self._add(name, "reshape", [src.record.name], src.state, (1, *shape[1:]), "")

    def opaque(self, name: str, inputs: Sequence[str], shape: Sequence[int], reason: str, op: str = "opaque") -> str:
        """A layer rfkit has no rule for: its output (of ``shape``, batch first, channels second where it is a
        map) gets an unknown RF, and so does everything after it; :attr:`RFGraph.unsupported` lists it with
        ``reason``. Never passed through as if it were the identity."""
        from rfkit.graph.propagate import UnsupportedNode

        srcs = [self._source(name, i) for i in inputs]
        flags = merge([s.state for s in srcs], None) if srcs else RFState(axes=None, layout=None)
        state = RFState(axes=None, layout=None, is_global=flags.is_global, misaligned=flags.misaligned, unknown=True)
        self._unsupported.append(UnsupportedNode(name, op, reason))
        return self._add(name, op, [s.record.name for s in srcs], state, (1, *tuple(shape)[1:]), "RF unknown")

    def pointwise(
        self, name: str, op: str = "pointwise", *, input: str | None = None, channels: int | None = None
    ) -> str:
        """An op that works on one position at a time (activation, batch norm, 1×1 projection): the RF is
        unchanged. ``op`` names it (``"relu"``, ``"bn"``...)."""
        src = self._source(name, input)
        chans = src.shape[1] if channels is None else int(channels)
        return self._add(name, op, [src.record.name], src.state, (1, chans, *src.shape[2:]), "")

    # --- merges ----------------------------------------------------------------------------------------
    def merge(self, name: str, inputs: Iterable[str], op: str = "add") -> str:
        """Join feature maps: ``add`` and ``mul`` (elementwise, broadcasting one-cell maps such as an SE
        gate) or ``concat`` (channels). Each unit sees the union of its inputs' windows; inputs whose
        strides or centres differ make the node ``misaligned``."""
        if op not in ("add", "mul", "concat"):
            raise ArchitectureError(f"layer {name!r}: merge op must be 'add', 'mul' or 'concat', not {op!r}")
        if isinstance(inputs, str):
            raise ArchitectureError(f"layer {name!r}: a merge takes a list of input names, not {inputs!r}")
        srcs = [self._source(name, i) for i in inputs]
        if len(srcs) < 2:
            raise ArchitectureError(f"layer {name!r}: a merge needs at least two inputs")
        ranks = {len(s.shape) for s in srcs}
        if len(ranks) > 1:
            raise ArchitectureError(
                f"layer {name!r}: cannot merge feature maps with vectors (inputs "
                f"{', '.join(s.record.name for s in srcs)})"
            )
        spatial = []
        for a in range(self.ndim if ranks == {2 + self.ndim} else 0):
            sizes = {s.shape[2 + a] for s in srcs}
            big = sizes - {1}
            if len(big) > 1 or (op == "concat" and len(sizes) > 1):
                shapes = ", ".join(f"{s.record.name} {'×'.join(map(str, s.shape[2:]))}" for s in srcs)
                raise ArchitectureError(f"layer {name!r}: feature maps of different sizes cannot be merged ({shapes})")
            spatial.append(max(sizes))
        chans = sum(s.shape[1] for s in srcs) if op == "concat" else max(s.shape[1] for s in srcs)
        state = merge([s.state for s in srcs], None)
        return self._add(name, op, [s.record.name for s in srcs], state, (1, chans, *spatial), f"{len(srcs)} inputs")

    def add(self, name: str, inputs: Iterable[str]) -> str:
        """Elementwise sum (a residual connection)."""
        return self.merge(name, inputs, "add")

    def mul(self, name: str, inputs: Iterable[str]) -> str:
        """Elementwise product (a gate, e.g. squeeze-and-excitation)."""
        return self.merge(name, inputs, "mul")

    def concat(self, name: str, inputs: Iterable[str]) -> str:
        """Concatenation along channels (Inception, DenseNet)."""
        return self.merge(name, inputs, "concat")

    # --- spec-driven construction ------------------------------------------------------------------------
    def layer(self, spec: dict[str, Any]) -> str:
        """Add one layer from a dict: ``{"name": ..., "op": ..., "input"/"inputs": ..., **parameters}``,
        ``op`` being a method name (``conv``, ``pool``, ``conv_transpose``, ``upsample``, ``adaptive_pool``,
        ``global_pool``, ``linear``, ``attention``, ``pointwise``, ``add``, ``mul``, ``concat``)."""
        spec = dict(spec)
        try:
            name, op = spec.pop("name"), spec.pop("op")
        except KeyError as e:
            raise ArchitectureError(f"layer spec {spec!r} lacks {e.args[0]!r}") from e
        methods = {
            "conv",
            "pool",
            "conv_transpose",
            "upsample",
            "adaptive_pool",
            "global_pool",
            "linear",
            "attention",
            "mix",
            "pad",
            "crop",
            "pointwise",
            "add",
            "mul",
            "concat",
        }
        if op not in methods:
            raise ArchitectureError(f"layer {name!r}: unknown op {op!r}; one of {', '.join(sorted(methods))}")
        if op in ("add", "mul", "concat"):
            if "inputs" not in spec:
                raise ArchitectureError(f"layer {name!r}: {op} needs 'inputs'")
            inputs = spec.pop("inputs")
            if spec:
                raise ArchitectureError(f"layer {name!r}: unexpected parameters {sorted(spec)}")
            return self.merge(name, inputs, op)
        if "inputs" in spec:
            inputs = spec.pop("inputs")
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                spec["input"] = inputs[0]
            else:
                raise ArchitectureError(f"layer {name!r}: {op} takes one input, not {inputs!r}")
        try:
            return getattr(self, op)(name, **spec)
        except TypeError as e:
            raise ArchitectureError(f"layer {name!r}: {e}") from e

    def build(self) -> RFGraph:
        """The :class:`RFGraph` of the layers added so far (the builder can go on afterwards).

        Layer names are module names: ``g["layer1.0.conv1"]`` is that layer; a dotted prefix that is not a
        layer itself (``"layer1"``) names the output of the last layer added under it, as a PyTorch
        container's name gives its last module's output.
        """
        records = [n.record for n in self._nodes.values()]
        modules = {n: n for n in self._nodes if n != "input"}
        for n in self._nodes:
            parts = n.split(".")
            for i in range(1, len(parts)):
                prefix = ".".join(parts[:i])
                if prefix not in self._nodes:
                    modules[prefix] = n  # later layers overwrite: the last one under the prefix
        return RFGraph(
            records, modules, list(self._unsupported), self.input_size, self.name, self.in_chans, method="handbuilt"
        )


def graph_from_layers(
    layers: Iterable[dict[str, Any]],
    input_size: int | Sequence[int] = 224,
    *,
    name: str = "handbuilt",
    in_chans: int = 3,
) -> RFGraph:
    """Build an :class:`RFGraph` from a list of layer dicts (e.g. loaded from JSON or YAML).

    Each dict has ``name``, ``op`` (a :class:`GraphBuilder` method), ``input`` (default: the previous layer)
    or ``inputs`` (merges), and the op's parameters.

    Examples
    --------
    >>> from rfkit.graph.handbuilt import graph_from_layers
    >>> g = graph_from_layers([
    ...     {"name": "conv1", "op": "conv", "kernel": 3},
    ...     {"name": "conv2", "op": "conv", "kernel": 3, "dilation": 2},
    ...     {"name": "pool", "op": "global_pool"},
    ...     {"name": "fc", "op": "linear", "units": 10},
    ... ], input_size=32)
    >>> g["conv2"].size, g["fc"].is_global
    ((7, 7), True)
    """
    builder = GraphBuilder(input_size, name=name, in_chans=in_chans)
    for spec in layers:
        builder.layer(spec)
    return builder.build()
