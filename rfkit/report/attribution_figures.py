"""The grid figure of an :class:`~rfkit.attribution.result.AttributionResult`: rows are images, columns the
input and one column per method, each map overlaid on its image.

Display conventions (the maps themselves stay raw):

- each method column is divided by one **column scale**, the 99th percentile of ``|map|`` over all its
  images, so the images of a column are comparable and one hot pixel does not wash the rest out;
- **signed** maps (gradient methods, combinations) share one diverging colour scale, blue negative, red
  positive, -1..1 of the column scale; CAM maps (non-negative) one sequential scale 0..1;
- the opacity of the overlay follows ``|value|``, so near-zero pixels show the image;
- for a unit target the unit's analytic RF window is drawn on every panel;
- a map holding NaN or inf is labelled "non-finite" across its panel (its finite values are drawn, the others
  as 0), and the column scale is taken from the finite values.
"""

from __future__ import annotations

import numpy as np

from rfkit.report.captions import attribution_drawn, record_drawing
from rfkit.report.labels import is_random
from rfkit.report.style import (
    COLORS,
    image_gray,
    mark_nonfinite,
    new_figure,
    outline,
    rf_rectangle,
    save_figure,
    styled,
)
from rfkit.version import __version__

#: Percentile of ``|map|`` over a column that the column is divided by.
SCALE_PERCENTILE = 99.0
#: The image under a map is drawn light and low in contrast, ``offset + gain * grey``, so the colours stand out.
UNDERLAY = (0.55, 0.45)
SIGNED_CMAP = "RdBu_r"
CAM_CMAP = "inferno"
PANEL_IN = 1.45


def column_scale(maps: np.ndarray) -> float:
    """The column scale of ``(N, H, W)`` maps: the :data:`SCALE_PERCENTILE` percentile of the finite values of
    ``|map|`` (their max if that is 0, 1 for all-zero or all-non-finite maps).

    >>> column_scale(np.array([[[0.0, 2.0], [0.0, -4.0]]])) > 3.9, column_scale(np.zeros((1, 2, 2)))
    (True, 1.0)
    >>> column_scale(np.array([[[np.inf, 2.0], [np.nan, 2.0]]]))
    2.0
    """
    a = np.abs(np.asarray(maps, dtype=np.float64))
    a = a[np.isfinite(a)]
    scale = float(np.percentile(a, SCALE_PERCENTILE)) if a.size else 0.0
    return scale if scale > 0 else (float(a.max()) if a.size and a.max() > 0 else 1.0)


def overlay_rgba(m: np.ndarray, scale: float, signed: bool) -> np.ndarray:
    """``m / scale`` clipped to the colour range, as RGBA whose alpha grows with ``|value|`` (0 at 0, and at
    NaN or inf)."""
    from matplotlib import colormaps

    m = np.asarray(m, dtype=np.float64)
    v = np.clip(np.where(np.isfinite(m), m, 0.0) / scale, -1 if signed else 0, 1)
    rgba = colormaps[SIGNED_CMAP if signed else CAM_CMAP]((v + 1) / 2 if signed else v)
    rgba[..., 3] = 0.9 * np.sqrt(np.abs(v))
    return rgba


def display_image(image: np.ndarray, data_config: dict) -> np.ndarray:
    """A model-ready ``(C, H, W)`` image as the picture it came from: ``x * std + mean``, clipped to [0, 1],
    ``(H, W, 3)`` (a one-channel image repeated)."""
    c = image.shape[0]
    mean = np.asarray(data_config.get("mean", (0.0,) * c), dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(data_config.get("std", (1.0,) * c), dtype=np.float64).reshape(-1, 1, 1)
    pic = np.clip(np.nan_to_num(image * std + mean), 0, 1)
    pic = np.repeat(pic, 3, axis=0) if c == 1 else pic[:3]
    return np.moveaxis(pic, 0, -1)


def _footer(result, scales: dict) -> list[tuple[str, str]]:
    from rfkit.attribution.methods import is_cam

    w = result.weights
    H, W = result.input_size
    target = result.targets[0]
    what = (
        f"target: unit {target.label} (channel sum, signed)"
        if target.kind == "unit"
        else "target: the class logit shown per row"
    )
    lines = [
        (
            f"weights: {getattr(w, 'description', w)} · {result.num_images} image(s) · input {H}×{W} (h×w) · "
            f"{what} · rfkit {__version__}",
            COLORS["note"],
        )
    ]
    lines.append(
        (
            f"each column divided by its scale, the {SCALE_PERCENTILE:g}th percentile of |map| over its images: "
            + ", ".join(f"{m} {s:.3g}" for m, s in scales.items()),
            COLORS["note"],
        )
    )
    if result.cam_layer and any(is_cam(p) for m in result.methods for p in m.split("*")):
        lines.append((f"CAM layer {result.cam_note}", COLORS["note"]))
    if result.window is not None:
        lines.append(
            ("blue box: the unit's analytic RF window (gradient maps must be zero outside it)", COLORS["note"])
        )
    if is_random(w):
        lines.append(
            (f"RANDOM WEIGHTS ({w.kind}): not a trained model; maps of trained weights differ", COLORS["warning"])
        )
    lines += [(f"warning: {x}", COLORS["warning"]) for x in result.warnings]
    return lines


def _row_label(result, i: int) -> str:
    t = result.targets[i]
    label = result.labels[i]
    if t.kind == "unit":
        return f"{label}\nunit {t.label}: {result.scores[i]:.3g}"
    name = f" {t.name.split(',')[0]}" if t.name else ""
    return f"{label}\nclass {t.index}{name}\nlogit {result.scores[i]:.3g}"


def _colorbars(body, axes, signed: bool, cam: bool) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bars = []  # the bar added last sits next to the panels
    if cam:
        bars.append((CAM_CMAP, Normalize(0, 1), "CAM maps / column scale"))
    if signed:
        bars.append((SIGNED_CMAP, Normalize(-1, 1), "signed maps / column scale"))
    for cmap, norm, label in bars:
        bar = body.colorbar(
            ScalarMappable(norm=norm, cmap=cmap), ax=axes, location="bottom", shrink=0.45, aspect=30, pad=0.02
        )
        bar.set_label(label)


@styled
def attribution_grid(result, *, max_images: int | None = None):
    """The grid figure of ``result`` (a :class:`matplotlib.figure.Figure`; save it with
    :func:`rfkit.report.style.save_figure`).

    Parameters
    ----------
    result : AttributionResult
    max_images : int, optional
        Show only the first images (rows).
    """
    from rfkit.attribution.methods import is_cam

    n = result.num_images if max_images is None else min(max_images, result.num_images)
    methods = result.methods
    scales = {m: column_scale(result.maps[m][:n]) for m in methods}
    H, W = result.input_size
    cols = 1 + len(methods)
    footer = _footer(result, scales)
    fig, body = new_figure((PANEL_IN * cols + 0.9, PANEL_IN * n * H / W + 1.2), footer)
    axes = np.atleast_2d(body.subplots(n, cols, squeeze=False))
    for i in range(n):
        picture = display_image(result.images[i], result.data_config)
        grey = image_gray(result.images[i], (H, W))
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.imshow(picture, interpolation="nearest")
                ax.set_ylabel(_row_label(result, i), rotation=0, ha="right", va="center", labelpad=4)
            else:
                m = methods[j - 1]
                ax.imshow(UNDERLAY[0] + UNDERLAY[1] * grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.imshow(overlay_rgba(result.maps[m][i], scales[m], not is_cam(m)), interpolation="nearest")
                if not np.isfinite(result.maps[m][i]).all():
                    mark_nonfinite(ax)
            if result.window is not None:
                ax.add_patch(
                    rf_rectangle(
                        result.window,
                        fill=False,
                        edgecolor=COLORS["rf"],
                        linewidth=1.2,
                        path_effects=outline(2.2),
                        gid="rf-box",
                    )
                )
                ax.set_xlim(-0.5, W - 0.5)
                ax.set_ylim(H - 0.5, -0.5)
            if i == 0:
                ax.set_title("input" if j == 0 else methods[j - 1])
    _colorbars(body, axes, any(not is_cam(m) for m in methods), any(is_cam(m) for m in methods))
    body.suptitle(f"Per-image contribution maps of {result.model}")
    return record_drawing(fig, attribution_drawn(result, n))


def save_grid(result, path, **kwargs):
    """Draw :func:`attribution_grid` and save it atomically to ``path`` (format by extension)."""
    return save_figure(attribution_grid(result, **kwargs), path)


__all__ = ["attribution_grid", "column_scale", "display_image", "overlay_rgba", "save_grid"]
