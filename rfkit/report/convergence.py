"""How many images are enough, as a figure: each layer's ERF/RF ratio against the number of images it was
averaged over, with its 95% bootstrap interval (:attr:`rfkit.erf.result.ERFResult.convergence`,
:func:`rfkit.erf.bootstrap.convergence`).

One small panel per layer (four to a row), sharing the x axis: images seen on a log scale. The h and w
ratios are two lines, each with its interval as a band; a dotted line marks the value over all images. A
curve that has flattened and a band that has narrowed to the width a reader needs mean that more images
would not change the number. Artists carry a ``gid``: ``"ratio-h"``, ``"ratio-w"``, ``"ci-h"``, ``"ci-w"``,
``"final"``.

Examples
--------
>>> import torch.nn as nn, rfkit
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
>>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=6, input_size=16, device="cpu")
>>> fig = convergence_figure(res)
>>> [ax.get_title() for ax in fig.axes]
['0', '2']
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rfkit.report.captions import convergence_drawn, record_drawing
from rfkit.report.formatting import pair
from rfkit.report.labels import footer_lines, is_random, layer_name
from rfkit.report.looks import style_named
from rfkit.report.style import COLORS, DPI, figure_style, mark_figure, new_figure, save_figure, wrap_title

PER_ROW = 4
AXIS_COLORS = {"h": COLORS["rf_max"], "w": COLORS["erf"]}
AXIS_NAMES = {"h": "height (h)", "w": "width (w)"}


def convergence_figure(result, *, style: str = "report"):
    """The ERF/RF ratio (ERF/input for a global layer) of every layer of ``result`` against images seen, with
    95% bands (module docstring). Raises ``ValueError`` when ``result`` has no curve (``bootstrap=0`` or a
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
            f"95% intervals: percentile bootstrap over images ({b.get('group_size', 1)} image(s) per group, "
            f"seed {b.get('seed', 0)}). Stopped: {result.stopped}",
            COLORS["note"],
        ),
        *footer_lines(result, layers),
    ]
    width = fs.width(cols) or 2.6 * cols + 0.6
    fig, body = new_figure((width, 2.2 * rows + 0.9), lines if fs.footer else ())
    axs = body.subplots(rows, cols, squeeze=False)
    for ax, layer in zip(axs.flat, layers):
        _panel(ax, result.convergence[layer], layer)
    for ax in list(axs.flat)[n:]:
        ax.set_visible(False)
    for c in range(cols):  # under the lowest panel of each column
        axs[(n - 1 - c) // cols][c].set_xlabel("images seen (log scale)")
    for r in range(rows):
        of = result.convergence[layers[r * cols]].of
        axs[r][0].set_ylabel("ERF / RF" if of == "RF" else "ERF / input")
    if fs.footer:
        title = f"{result.model}: ERF/RF ratio against images seen, input {pair(result.input_size)}"
        random = is_random(result)
        if random:
            title += " · RANDOM WEIGHTS"
        body.suptitle(wrap_title(title, width), color=COLORS["warning"] if random else "black")
    handles, labels = axs[0][0].get_legend_handles_labels()
    body.legend(handles, labels, loc="outside lower center", ncols=4)
    mark_figure(fig, [text for text, _ in lines], dpi=fs.rc.get("savefig.dpi", DPI), crop=fs.column is None)
    return record_drawing(fig, convergence_drawn(result))


def _panel(ax, curve, layer: str) -> None:
    x = np.asarray(curve.images, dtype=float)
    value, low, high = (np.asarray(v, dtype=float).reshape(-1, 2) for v in (curve.value, curve.low, curve.high))
    for i, axis in enumerate("hw"):
        color = AXIS_COLORS[axis]
        ax.fill_between(
            x, low[:, i], high[:, i], color=color, alpha=0.22, lw=0, gid=f"ci-{axis}", label=f"95% CI, {axis}"
        )
        ax.plot(x, value[:, i], color=color, marker="os"[i], ms=3.5 - i, gid=f"ratio-{axis}", label=AXIS_NAMES[axis])
        ax.axhline(value[-1, i], color=color, ls=":", lw=1.0, gid="final")
    ax.set_xscale("log")
    ax.set_title(layer_name(layer))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xticks(_ticks(int(x[0]), int(x[-1])))
    ax.xaxis.set_major_formatter(_IntegerFormatter())
    ax.minorticks_off()


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
    """:func:`convergence_figure` written to ``path`` (or several paths) by :func:`~rfkit.report.style.save_figure`."""
    return save_figure(convergence_figure(result, **kwargs), path)
