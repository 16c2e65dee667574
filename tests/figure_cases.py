"""The figure matrix: every figure type rfkit draws x style x hostile case, each as a function that builds the
figure. ``tests/test_figure_matrix.py`` checks the layout of every entry; ``docs/build_gallery.py --only matrix``
draws every entry into ``docs/gallery/matrix/`` for the gallery page, so what the page shows is what is tested.

Inputs are built by hand (maps of known Gaussians under RFs of known windows: ``test_figures.make_result``,
labelled "synthetic") or measured on tiny nets and timm's ``test_vit`` at random init, so the whole matrix draws
in seconds. Measured inputs are computed once per process, on first use (:func:`functools.cache`).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from test_figures import gaussian_map, make_result, rf_info

from rfkit.models.weights_info import WeightsInfo

STYLES = ("report", "paper")
LONG = "a_rather_long_model_name_patch16_224.augreg2_in21k_ft_in1k"
SYNTHETIC = "synthetic: Gaussian maps drawn by hand under known RF windows, no network"
S = 48  # input side of the hand-built CNN cases


# ------------------------------------------------------------------------------------------ hand-built inputs


def _blob(shape, cy, cx, sigma, peak=1.0):
    return peak * gaussian_map(cy, cx, sigma, sigma, 0.0, shape=shape)


def synthetic(maps, infos, units, *, kind="pretrained", fit=True, model="synthetic"):
    """An ERFResult of hand-built maps, saying in its weights (footer, caption) that it is synthetic."""
    res = make_result(maps, infos, units, kind=kind, fit=fit)
    desc = "random init (synthetic maps)" if kind == "random" else SYNTHETIC
    return dataclasses.replace(res, model=model, weights=WeightsInfo(kind, desc))


def hand_cases() -> dict:
    """Results built by hand, one layer each: name -> (result, layer)."""
    shape = (S, S)
    # each map lies within its unit's RF window as a real one would (no "mass outside the RF" flag), unless
    # the case is about the RF reaching beyond the input
    tiny = synthetic({"t": _blob(shape, 24, 24, 0.6)}, {"t": rf_info(3, 1, -1, 1)}, {"t": (24, 24)}, fit=False)
    huge = synthetic({"h": _blob(shape, 24, 24, 12)}, {"h": rf_info(435, 32, -193, 241)}, {"h": (0, 0)})
    glob = synthetic(
        {"g": _blob(shape, 24, 24, 20)}, {"g": rf_info(21, 4, -10, 10, is_global=True, local=21)}, {"g": (6, 6)}
    )
    off = synthetic({"o": _blob(shape, 3, 44, 1.5)}, {"o": rf_info(7, 1, -3, 3)}, {"o": (3, 44)}, fit=False)
    yolo_shape = (640, 640)  # YOLO-like: a 40 px ERF blob in a 640 px frame under a 900 px RF
    yolo = synthetic(
        {"y": _blob(yolo_shape, 320, 320, 9)}, {"y": rf_info(901, 32, -450, 450)}, {"y": (10, 10)}, fit=False
    )
    neck = synthetic(  # a YOLO neck layer after nearest upsampling: global, its ERF 16 px off the analytic centre
        {"n": _blob(yolo_shape, 320, 320, 4)},
        {"n": rf_info(1039, 8, -215, 823, is_global=True, local=1039)},
        {"n": (0, 0)},
        fit=False,
        kind="random",
    )
    long = dataclasses.replace(huge, model=LONG)
    random = synthetic(
        {"t": _blob(shape, 24, 24, 0.6)}, {"t": rf_info(3, 1, -1, 1)}, {"t": (24, 24)}, fit=False, kind="random"
    )
    return {
        "tiny": (tiny, "t"),
        "huge": (huge, "h"),
        "global": (glob, "g"),
        "off-centre": (off, "o"),
        "yolo640": (yolo, "y"),
        "yolo-neck": (neck, "n"),
        "long-name": (long, "h"),
        "random": (random, "t"),
    }


CASES = hand_cases()


def yolo_grid(kind="pretrained"):
    """Four YOLO-like stage maps at 640 px whose peaks differ 1, 60, 600 and 6000 times (as measured)."""
    shape = (640, 640)
    peaks = {"16": 1.0, "19": 1 / 60, "22": 1 / 600, "13": 1 / 6000}
    maps = {k: _blob(shape, 320, 320, 6 + 4 * i, p) for i, (k, p) in enumerate(peaks.items())}
    infos = {k: rf_info(301 + 200 * i, 8 * 2**i, -150 - 100 * i, 150 + 100 * i) for i, k in enumerate(maps)}
    units = {k: (320 // (8 * 2**i), 320 // (8 * 2**i)) for i, k in enumerate(maps)}
    return synthetic(maps, infos, units, kind=kind, fit=False)


def many_layers(n=12):
    """``n`` layers with RFs from 3 px (tiny) to far beyond the 48 px input, long layer names."""
    shape = (S, S)
    names = [f"stages.{i // 3}.blocks.{i % 3}.conv_pwl" for i in range(n)]
    maps = {k: _blob(shape, 24, 24, 0.6 + 2.5 * i) for i, k in enumerate(names)}
    strides = [2 ** min(i, 5) for i in range(n)]
    units = {k: (24 // s, 24 // s) for k, s in zip(names, strides)}
    shift = [24 - (24 // s) * s for s in strides]  # the unit's RF centred on pixel 24, where its map peaks
    infos = {
        k: rf_info(3 + 16 * i, s, -(1 + 8 * i) + d, 1 + 8 * i + d)
        for i, (k, s, d) in enumerate(zip(names, strides, shift))
    }
    return synthetic(maps, infos, units, fit=False)


def mixed(model="synthetic"):
    """One panel of each one-layer case: a tiny RF, an RF far beyond the input, a global layer, an off-centre
    unit."""
    keys = ("tiny", "huge", "global", "off-centre")
    maps = {k: CASES[k][0].maps[CASES[k][1]] for k in keys}
    infos = {k: CASES[k][0].graph[CASES[k][1]] for k in keys}
    units = {k: CASES[k][0].unit[CASES[k][1]] for k in keys}
    return synthetic(maps, infos, units, fit=False, model=model)


# ------------------------------------------------------------------------------------------- measured inputs


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights, few images: said in every figure's footer and caption
        return fn(*args, **kwargs)


@functools.cache
def vit():
    """timm's ``test_vit`` at random init, its stage outputs, one noise image."""
    import rfkit

    return _quiet(
        rfkit.erf, "test_vit", layers="stages", images=rfkit.Images("noise", 1), weights="random", runtime="cpu"
    )


def dilated_net():
    """Five 3x3 convs (stride 2 in the second, then dilations 4, 8, 16), positive weights and biases: RF 3 px at
    layer 0, 117 px at layer 4."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=4, dilation=4),
        nn.Conv2d(4, 4, 3, padding=8, dilation=8),
        nn.Conv2d(4, 4, 3, padding=16, dilation=16),
    )
    with torch.no_grad():
        for conv in net:  # positive weights and a bias larger than any input can pull a unit below: every unit
            conv.weight.abs_()  # fires on every image, no ERF is all zero
            conv.bias.fill_(10.0)
    return net


@functools.cache
def tiny_net():
    """:func:`dilated_net` measured at 48 px on 12 noise images, with bootstrap curves and their intervals (from 8
    independent images on; the growth and convergence figures need a graph and curves), under the long model
    name."""
    import rfkit

    images = rfkit.Images("noise", 12, input_size=S)
    res = _quiet(rfkit.erf, dilated_net(), layers=["0", "4"], images=images, runtime="cpu")
    return dataclasses.replace(res, model=LONG)


def _analysis(folder: Path, model: str, kind: str, cells: list[tuple[str, np.ndarray, dict]]):
    """An analysis folder written by hand (maps/*.npy) and its :class:`~rfkit.report.site.Analysis`."""
    import json

    from rfkit.report.site import Analysis

    (folder / "maps").mkdir(parents=True)
    rows = []
    for layer, m, row in cells:
        np.save(folder / "maps" / f"{layer}.npy", m)
        rows.append({"layer": layer, **row})
    h, w = cells[0][1].shape
    weights = "random init (synthetic maps)" if kind == "random" else SYNTHETIC
    header = {"model": model, "weights": weights, "weights_kind": kind, "input_size": [h, w], "num_images": 1}
    (folder / "header.json").write_text(json.dumps(header))
    return Analysis(folder, header, tuple(rows))


def _row(first, last, centre, side, fraction, is_global=False):
    return {
        "rf_first_y": first,
        "rf_last_y": last,
        "rf_first_x": first,
        "rf_last_x": last,
        "rf_h": last - first + 1,
        "rf_w": last - first + 1,
        "center_y": centre,
        "center_x": centre,
        "centroid_y": centre,
        "centroid_x": centre,
        "erf_side_h": side,
        "erf_side_w": side,
        "depth_fraction": fraction,
        "is_global": is_global,
    }


def write_analyses(folder) -> list:
    """A ViT-like row at 224 px (its patch: RF 16, ERF 16, then global) and a CNN row at 48 px of random
    weights with a long name, written under ``folder``: the ``rfkit figure`` grid's hostile cases."""
    out = Path(folder)
    v = 224
    vit_cells = [
        ("patch_embed", _blob((v, v), 104, 104, 3), _row(96, 111, 103.5, 16, 0.1)),
        ("blocks.2", _blob((v, v), 112, 112, 40, 0.01), _row(0, 223, 111.5, 150, 0.5, True)),
        ("blocks.5", _blob((v, v), 112, 112, 50, 0.01), _row(0, 223, 111.5, 180, 0.75, True)),
        ("norm", _blob((v, v), 112, 112, 60, 0.01), _row(0, 223, 111.5, 200, 1.0, True)),
    ]
    cnn_cells = [
        ("0", _blob((S, S), 24, 24, 0.8), _row(23, 25, 24, 3, 0.25)),
        ("2", _blob((S, S), 24, 24, 3), _row(19, 29, 24, 9, 0.5)),
        ("3", _blob((S, S), 24, 24, 8), _row(-10, 58, 24, 25, 0.75)),
        ("4", _blob((S, S), 24, 24, 12), _row(-34, 82, 24, 40, 1.0)),
    ]
    return [
        _analysis(out / "vit", "vit_tiny_patch16_224", "pretrained", vit_cells),
        _analysis(out / "cnn", LONG, "random", cnn_cells),
    ]


@functools.cache
def analyses():
    """:func:`write_analyses` in a temporary folder that lives as long as the process."""
    folder = tempfile.TemporaryDirectory(prefix="rfkit-matrix-")
    found = write_analyses(folder.name)
    analyses.folder = folder  # kept alive with the cache
    return found


@functools.cache
def rf_grid(layer: str = "4", measure: bool = True):
    """The corner and centre units of :func:`dilated_net`'s ``layer`` on the first sample photograph at 48 px:
    layer 4's RF (117 px) runs far beyond the input, layer 1's (5 px) is small."""
    from rfkit.effective.unit_grid import unit_grid

    return _quiet(unit_grid, dilated_net(), layer, image="sample", input_size=S, device="cpu", measure=measure)


def classifier():
    """A tiny classifier at 32 px: two convs (``conv1``, ``conv2``), global pooling, a linear head."""
    from collections import OrderedDict

    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    layers = OrderedDict(
        conv1=nn.Conv2d(3, 6, 3, padding=1),
        act1=nn.ReLU(),
        conv2=nn.Conv2d(6, 6, 3, stride=2, padding=1),
        act2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        head=nn.Linear(6, 4),
    )
    return nn.Sequential(layers)


@functools.cache
def attribution(methods: str = "saliency,ig,gradcam", target="predicted"):
    """Contribution maps of :func:`classifier` on two sample photographs at 32 px."""
    import rfkit

    return _quiet(
        rfkit.attribute,
        classifier(),
        images=rfkit.Images("sample", 2, input_size=32),
        methods=methods,
        target=target,
        runtime="cpu",
    )


# ------------------------------------------------------------------------------------------------ the matrix


@dataclass(frozen=True)
class Entry:
    """One figure of the matrix, drawn in either style by ``draw(style)``.

    Attributes
    ----------
    kind : str
        The figure type (``overlay``, ``stages``, ``growth``, ``convergence``, ``compare``, ``rf-grid``,
        ``attribution``).
    case : str
        What makes it hard.
    about : str
        That, in a phrase, for the gallery page.
    paper_width : float
        Its width in paper style, inches: one column (3.3) or two (6.9).
    """

    kind: str
    case: str
    about: str
    paper_width: float
    draw: Callable = dataclasses.field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.case}"


def _overlay(case):
    from rfkit.report.figures.overlay import overlay_figure

    def draw(style):
        if case == "vit":
            res = vit()
            return overlay_figure(res, res.layers[0], style=style)
        result, layer = CASES[case]
        return overlay_figure(result, layer, style=style)

    return draw


def _stages(build):
    from rfkit.report.figures.stage_grid import stage_grid_figure

    return lambda style: stage_grid_figure(build(), style=style)


def _growth(build):
    from rfkit.report.figures.growth import rf_growth_figure

    return lambda style: rf_growth_figure(build().graph, build(), style=style)


def _convergence(style):
    from rfkit.report.figures.convergence import convergence_figure

    return convergence_figure(tiny_net(), style=style)


def _compare(layers):
    from rfkit.report.figures.compare import comparison_figure

    return lambda style: comparison_figure(analyses(), layers, style=style)


def _rf_grid(layer, measure=True):
    from rfkit.report.figures.rf_grid import rf_grid_figure

    return lambda style: rf_grid_figure(rf_grid(layer, measure), style=style)


def _attribution(methods, target="predicted"):
    from rfkit.report.figures.attribution import attribution_grid

    return lambda style: attribution_grid(attribution(methods, target), style=style)


OVERLAY_CASES = {
    "tiny": "an RF of 3 px in a 48 px input: a zoomed panel with a scale bar",
    "huge": "an RF of 435 px over a 48 px input: arrows give how far it goes on, per side",
    "global": "a global layer: the frame is the RF, its local paths dashed",
    "off-centre": "a unit in the top-right corner: four different overhangs",
    "yolo640": "a 40 px ERF in a 640 px frame under a 901 px RF",
    "yolo-neck": "a global YOLO neck layer, random init: its 20 px ERF 16 px off the analytic centre",
    "long-name": "a long model name",
    "random": "random weights: the panel is tagged",
    "vit": "timm's test_vit at random init: its own patch",
}

MATRIX: tuple[Entry, ...] = (
    *(Entry("overlay", case, about, 3.3, _overlay(case)) for case, about in OVERLAY_CASES.items()),
    Entry("stages", "one", "one layer whose RF is far larger than the input", 6.9, _stages(lambda: CASES["huge"][0])),
    Entry("stages", "twelve", "12 layers, RFs from 3 px to 179 px, long layer names", 6.9, _stages(many_layers)),
    Entry("stages", "yolo", "four YOLO stages, peaks 6000x apart: each on its own scale", 6.9, _stages(yolo_grid)),
    Entry("stages", "mixed", "a tiny RF, a huge one, a global layer, an off-centre unit", 6.9, _stages(mixed)),
    Entry("stages", "long-name", "the mixed grid under a long model name", 6.9, _stages(lambda: mixed(LONG))),
    Entry("stages", "vit", "timm's test_vit at random init", 6.9, _stages(vit)),
    Entry("growth", "cnn", "a dilated 5-layer CNN at 48 px, a long model name", 3.3, _growth(tiny_net)),
    Entry("growth", "vit", "timm's test_vit: global from the first block", 3.3, _growth(vit)),
    Entry("convergence", "cnn", "ERF size against images seen, with 95% bootstrap bands", 6.9, _convergence),
    Entry("compare", "final", "rfkit figure, final layers: a ViT, a random CNN of other size", 3.3, _compare("final")),
    Entry("compare", "stages", "rfkit figure --layers stages: ¼, ½, ¾ depth and final", 6.9, _compare("stages")),
    Entry("rf-grid", "beyond", "corner and centre units whose RFs run far beyond the input", 3.3, _rf_grid("4")),
    Entry("rf-grid", "small", "the same units of an early layer: small RFs", 3.3, _rf_grid("1")),
    Entry("rf-grid", "analytic", "analytic boxes only (nothing measured)", 3.3, _rf_grid("4", False)),
    Entry("attribution", "two-methods", "two methods: one column wide", 3.3, _attribution("saliency,gradcam")),
    Entry("attribution", "three-methods", "three methods: two columns wide", 6.9, _attribution("saliency,ig,gradcam")),
    Entry("attribution", "unit", "a layer's unit as target: its RF window", 3.3, _attribution("saliency,ig", "conv2")),
)
"""Every entry of the matrix, in the gallery's order."""

KINDS = tuple(dict.fromkeys(e.kind for e in MATRIX))


def entry(name: str) -> Entry:
    """The entry named ``kind-case``."""
    return next(e for e in MATRIX if e.name == name)
