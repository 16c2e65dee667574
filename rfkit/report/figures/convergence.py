"""How many images are enough, as a figure: each layer's ERF size (the centred interval holding 95% of the
map's mass, per axis, in pixels) against the number of images it was averaged over, with its 95% bootstrap
interval (:attr:`rfkit.effective.result.ERFResult.convergence`, :func:`rfkit.effective.bootstrap.convergence`).

One small panel per layer (four to a row), sharing the x axis (images seen, on a log scale) and the y axis
(pixels): every panel has the same y range, so a change of two pixels looks like two pixels, not like a
collapse; over a range of a few dozen pixels the ticks are whole pixels. The h and w sizes are two lines,
each with its interval as a band (from 8 independent images on: no band before); a dotted line marks the
value over all images. A curve that has flattened and a band that has narrowed to the width a reader needs
mean that more images would not change the number. Artists carry a ``gid``: ``"size-h"``, ``"size-w"``,
``"ci-h"``, ``"ci-w"``, ``"final"``.

Examples
--------
>>> import torch.nn as nn, rfkit
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
>>> res = rfkit.erf(net, layers=["0", "2"], images=rfkit.Images("noise", 6, input_size=16), runtime="cpu")
>>> fig = convergence_figure(res)
>>> [ax.get_title() for ax in fig.axes]
['0', '2']
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rfkit.formatting import pair
from rfkit.report.figures.captions import convergence_drawn, record_drawing
from rfkit.report.figures.labels import footer_lines, is_random, layer_name
from rfkit.report.figures.layout import fit_figure, fitted_legend
from rfkit.report.figures.looks import style_named
from rfkit.report.figures.style import (
    COLORS,
    DPI,
    draw_random_tag,
    figure_style,
    mark_figure,
    new_figure,
    save_figure,
    wrap_title,
)

PER_ROW = 4
AXIS_COLORS = {"h": COLORS["rf_max"], "w": COLORS["erf"]}
AXIS_NAMES = {"h": "height (h)", "w": "width (w)"}


def convergence_figure(result, *, style: str = "report"):
    """The ERF size in pixels of every layer of ``result`` against images seen, with 95% bands, on one y
    axis (module docstring). Raises ``ValueError`` when ``result`` has no curve (``bootstrap=0`` or a
    single image)."""
    if not result.convergence:
        raise ValueError("the result has no convergence curves: measure with bootstrap > 0 and 2 or more images")
    fs = style_named(style)
    with figure_style(**fs.rc):
        return _draw(result, fs)


def _draw(result, fs):
    layers = [k for k in result.layers if k in result.convergence]
    n = len(layers)
    cols = min(n, PER_ROW)
    rows = math.ceil(n / cols)
    b = result.bootstrap or {}
    lines = [
        (
            f"95% intervals: percentile bootstrap over {b.get('groups', '?')} independent images (views of one "
            f"photo resampled together; seed {b.get('seed', 0)}). Stopped: {result.stopped}",
            COLORS["note"],
        ),
        *footer_lines(result, layers),
    ]
    width = fs.width(cols) or 2.6 * cols + 0.6
    random = is_random(result)

    def draw(size):
        fig, body = new_figure(size, lines if fs.footer else ())
        axs = body.subplots(rows, cols, squeeze=False, sharey=True)
        for ax, layer in zip(axs.flat, layers):
            _panel(ax, result.convergence[layer], layer)
        for ax in list(axs.flat)[n:]:
            ax.set_visible(False)
        _pixel_axis(axs[0][0], [result.convergence[k] for k in layers])
        if random:  # once the shared y range is set: in a corner the panel's curves leave free
            for ax, layer in zip(axs.flat, layers):
                _tag_free_corner(ax, result.convergence[layer])
        for c in range(cols):  # under the lowest panel of each column
            axs[(n - 1 - c) // cols][c].set_xlabel("images seen (log scale)")
        for r in range(rows):
            axs[r][0].set_ylabel("ERF 95% size (px)")
        if fs.footer:
            title = f"{result.model}: ERF size against images seen, input {pair(result.input_size)}"
            if random:
                title += " · RANDOM WEIGHTS"
            body.suptitle(wrap_title(title, size[0], measured=True), color=COLORS["warning"] if random else "black")
        handles, labels = axs[0][0].get_legend_handles_labels()
        fitted_legend(body, handles, labels, size[0], ncols=4)
        return fig, list(axs.flat)[:n]

    fig = fit_figure(draw, (width, 2.2 * rows + 0.9), width=width, min_panel=1.3)
    mark_figure(fig, [text for text, _ in lines], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, convergence_drawn(result))


def _panel(ax, curve, layer: str) -> None:
    x = np.asarray(curve.images, dtype=float)
    value, low, high = (np.asarray(v, dtype=float).reshape(-1, 2) for v in (curve.value, curve.low, curve.high))
    for i, axis in enumerate("hw"):
        color = AXIS_COLORS[axis]
        if (np.isfinite(low[:, i]) & np.isfinite(high[:, i])).any():  # no band (and no legend entry) before 8 sources
            ax.fill_between(
                x, low[:, i], high[:, i], color=color, alpha=0.22, lw=0, gid=f"ci-{axis}", label=f"95% CI, {axis}"
            )
        ax.plot(x, value[:, i], color=color, marker="os"[i], ms=3.5 - i, gid=f"size-{axis}", label=AXIS_NAMES[axis])
        ax.axhline(value[-1, i], color=color, ls=":", lw=1.0, gid="final")
    ax.set_xscale("log")
    ax.set_title(layer_name(layer))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xticks(_ticks(int(x[0]), int(x[-1])))
    ax.xaxis.set_major_formatter(_IntegerFormatter())
    ax.minorticks_off()


CORNERS = ("upper right", "upper left", "lower right", "lower left")


def _tag_free_corner(ax, curve) -> None:
    """The "random init" tag in the first of :data:`CORNERS` where it covers none of the panel's curves, bands or
    final-value lines (measured on the drawn tag); the upper right when every corner is taken."""
    occupied = _occupied(ax, curve)
    renderer = ax.figure.canvas.get_renderer()
    to_axes = ax.transAxes.inverted()
    for corner in CORNERS:
        tag = draw_random_tag(ax, corner)
        (x0, y0), (x1, y1) = to_axes.transform(tag.get_window_extent(renderer).get_points())
        inside = (occupied[:, 0] >= x0) & (occupied[:, 0] <= x1)
        if not ((occupied[inside, 1] <= y1) & (occupied[inside, 2] >= y0)).any():
            return
        tag.remove()
    draw_random_tag(ax, CORNERS[0])


def _occupied(ax, curve, samples: int = 200) -> np.ndarray:
    """Rows ``(x, y_low, y_high)`` in axes fractions: at ``samples`` points across the panel, the vertical span
    its curves, bands and final-value lines cover (lines interpolated on the log x axis)."""
    x = np.asarray(curve.images, dtype=float)
    series = [np.asarray(v, dtype=float).reshape(-1, 2) for v in (curve.value, curve.low, curve.high)]
    cols = [s[:, i] for s in series for i in range(2)] + [np.full_like(x, v) for v in series[0][-1]]
    xs = np.geomspace(x[0], x[-1], samples) if x[-1] > x[0] > 0 else np.repeat(x[:1], samples)
    lo, hi = np.full(samples, np.inf), np.full(samples, -np.inf)
    for col in cols:
        ok = np.isfinite(col)
        if ok.any():
            y = np.interp(np.log(xs), np.log(x[ok]), col[ok])
            lo, hi = np.minimum(lo, y), np.maximum(hi, y)
    to_axes = ax.transData + ax.transAxes.inverted()
    bottom = to_axes.transform(np.column_stack([xs, np.where(np.isfinite(lo), lo, np.nan)]))
    top = to_axes.transform(np.column_stack([xs, np.where(np.isfinite(hi), hi, np.nan)]))
    return np.column_stack([bottom[:, 0], bottom[:, 1], top[:, 1]])


SMALL_RANGE = 40
"""Pixels: a y range up to this wide gets ticks on whole pixels only (every pixel up to 12 px, else steps of 1,
2 or 5 px)."""


def _pixel_axis(ax, curves) -> None:
    """The shared y axis: every value and band of every panel in view, ticks on whole pixels when the range
    is small (:data:`SMALL_RANGE`)."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    values = np.concatenate([np.asarray(getattr(c, part), dtype=float).ravel() for c in curves
                             for part in ("value", "low", "high")])  # fmt: skip
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    pad = max(1.0, 0.08 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), hi + pad)
    if hi - lo + 2 * pad <= 12:
        ax.yaxis.set_major_locator(MultipleLocator(1))  # every pixel
    elif hi - lo <= SMALL_RANGE:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 5, 10]))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))


def _ticks(first: int, last: int) -> list[int]:
    """Round numbers of images between ``first`` and ``last`` (1-2-5 steps, or decades over a wide range),
    and ``last`` itself, never two labels crowding each other on the log axis.

    >>> _ticks(2, 32), _ticks(512, 50000)
    ([2, 5, 10, 20, 32], [1000, 10000, 50000])
    """
    steps = (1, 2, 5) if last / first <= 30 and last < 1000 else (1,)
    ticks = [m * 10**e for e in range(8) for m in steps if first <= m * 10**e <= last] or [first]
    if last / ticks[-1] < 1.4:
        ticks.pop()
    return [*ticks, last]


def _IntegerFormatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{int(round(v))}")


def save_convergence(result, path, **kwargs) -> list[Path] | Path:
    """:func:`convergence_figure` written to ``path`` (or several paths) by
    :func:`~rfkit.report.figures.style.save_figure`."""
    return save_figure(convergence_figure(result, **kwargs), path)
