"""A caption beside every figure rfkit writes: ``<figure>.caption.md`` and ``<figure>.caption.tex``, one
paragraph ready to paste under the figure in a paper or a page.

The caption is not a second guess at what the figure shows. A figure function attaches a :class:`Drawn`
record to the figure it built (:func:`record_drawing`): the heat map's look as it drew it (transform, colour
floor, normalisation), and the runs it shows (model, weights, images, input size, ERF method). Which markers
it says are drawn is read from the figure itself, from the ``gid`` of each artist it holds (centre cross,
analytic RF box, Gaussian ellipses, arrows for an RF beyond the input, ...), so a marker the figure did not
draw is never described. :func:`~rfkit.report.figures.style.save_figure` writes both files beside the figure, in the
same atomic step as the figure's formats (PNG, PDF and SVG share one caption pair named after the stem).

Markdown text is escaped with :func:`rfkit.report.markdown.md_text`; LaTeX text with :func:`latex_text`.
Each file starts with a line saying rfkit wrote it (:data:`MD_MARK`, :data:`TEX_MARK`), so that rfkit
replaces its own captions and nothing else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rfkit.report.escape import md_text
from rfkit.report.figures.labels import is_random, layer_name, rf_beyond

CAPTION = "rfkit_caption"
"""Attribute of a figure holding its :class:`Drawn` record (set by :func:`record_drawing`)."""
SUFFIXES = (".caption.md", ".caption.tex")
MD_MARK = "<!-- caption written by rfkit -->"
TEX_MARK = "% caption written by rfkit"


@dataclass(frozen=True)
class Run:
    """The provenance of one model's maps in a figure, as the figure's footer states it."""

    model: str
    weights: str
    random: bool = False
    images: str = ""
    num_images: int | None = None
    input_size: tuple = ()
    method: str | None = None

    @classmethod
    def of(cls, result) -> Run:
        """The run of an :class:`~rfkit.effective.result.ERFResult` or
        :class:`~rfkit.attribution.result.AttributionResult`."""
        w = result.weights
        source = getattr(getattr(result, "images", None), "source", None) or getattr(result, "source", "")
        size = getattr(result, "input_size", None) or ()
        return cls(
            model=str(result.model),
            weights=str(getattr(w, "description", w)),
            random=is_random(w),
            images=str(source or ""),
            num_images=getattr(result, "num_images", None),
            input_size=tuple(size),
            method=getattr(result, "method", None),
        )

    @classmethod
    def of_header(cls, header) -> Run:
        """The run of a finished report's ``run.json`` header."""
        return cls(
            model=str(header.get("model", "?")),
            weights=str(header.get("weights", "?")),
            random=is_random(header.get("weights_kind")),
            images=str(header.get("images") or ""),
            num_images=header.get("num_images"),
            input_size=tuple(header.get("input_size") or ()),
            method=header.get("method"),
        )


@dataclass(frozen=True)
class Drawn:
    """What a figure drew, from the options and data its figure function used.

    Attributes
    ----------
    title : str
        What the figure is, one phrase ("ERF of layer4 of resnet18, unit (3, 3)").
    runs : tuple of Run
        The model run(s) whose maps or sizes it shows, one per row for a multi-model figure.
    look : str or None
        The heat map's look (``rfkit``, ``replknet``, ``openerf``); None for a figure without a heat map.
    log : bool
        rfkit's look: log scale (True) or linear ``ERF / max``.
    floor : float or None
        rfkit's log look: the colour floor, as a fraction of the maximum.
    normalised : str or None
        ``"own"`` (each map by its own maximum), ``"shared"`` (every panel by the largest over all panels),
        ``"column"`` (attribution: each method column by its own scale), or None.
    notes : tuple of str
        Further sentences about what is drawn (scales, axes), in plain words.
    """

    title: str
    runs: tuple[Run, ...] = ()
    look: str | None = None
    log: bool = True
    floor: float | None = None
    normalised: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def record_drawing(fig, drawn: Drawn):
    """Attach ``drawn`` to ``fig`` (for :func:`~rfkit.report.figures.style.save_figure`); returns ``fig``."""
    setattr(fig, CAPTION, drawn)
    return fig


def heat_record(heat, title: str, runs: Sequence[Run], normalised: str, notes: Sequence[str] = ()) -> Drawn:
    """The :class:`Drawn` of a heat-map figure drawn with ``heat``
    (a :class:`~rfkit.report.figures.looks.HeatScale`)."""
    name = heat.look.name
    return Drawn(
        title,
        tuple(runs),
        name,
        heat.log,
        heat.floor if name == "rfkit" and heat.log else None,
        normalised,
        tuple(notes),
    )


# ------------------------------------------------------------------------------------------------ words

#: What each artist (by ``gid``) of a figure shows, in the order the caption names them; a phrase is used
#: only when an artist with one of its gids is in the figure.
MARKERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("global-frame",), "a frame in the RF colour marks a global layer (its RF is the whole input)"),
    (("rf-box",), "the solid box is the analytic receptive field (RF) of the measured unit"),
    (("local-rf-box",), "the dashed box is the RF of the local paths of a global layer"),
    (("rf-extent",), "arrows at the edges give how many pixels the RF extends beyond the input"),
    (
        ("rf-extent-text",),
        "beside a map too small for arrows, ↑N ↓N ←N →N give how many pixels the RF extends beyond its top, "
        "bottom, left and right edge",
    ),
    (("outside-input",), "the hatched area lies outside the input"),
    (("rf-center",), "the cross marks the unit's analytic RF centre"),
    (("rf-centres",), "dots mark the units' analytic RF centres"),
    (("gauss-1sigma",), "ellipses are the 1σ (solid) and 2σ (dashed) contours of a Gaussian fit to the ERF"),
    (("zoom-inset", "zoom-area"), "a zoomed view enlarges a small RF (outlined in white; scale bar in pixels)"),
    (("rf-max",), "lines give the analytic RF size, max over paths (circles)"),
    (("rf-min",), "and min over paths (squares, dashed) at the nodes every path passes through"),
    (("rf-local",), "a pale band the RF of the local paths of global nodes"),
    (("erf-size",), "diamonds the measured ERF size (95% of the map's mass)"),
    (("input-size",), "the dashed horizontal line is the input size"),
    (("measured-layer",), "vertical lines mark the measured layers"),
    (("stride-change",), "dotted verticals mark changes of the output stride"),
    (("ratio-h", "ratio-w"), "lines give the ERF/RF ratio of height and width against the number of images"),
    (("ci-h", "ci-w"), "bands their 95% bootstrap intervals"),
    (("final",), "dotted lines the value over all images"),
)


def drawn_gids(fig) -> set[str]:
    """The ``gid`` of every artist in ``fig`` (what it actually drew)."""
    return {g for a in fig.findobj(lambda a: bool(getattr(a, "get_gid", lambda: None)())) if (g := a.get_gid())}


def marker_text(gids: set[str]) -> str:
    """The markers present among ``gids``, as one sentence ('' when none).

    >>> print(marker_text({"rf-box", "rf-center", "erf-map"}))  # doctest: +NORMALIZE_WHITESPACE
    Markers: the solid box is the analytic receptive field (RF) of the measured unit;
    the cross marks the unit's analytic RF centre.
    >>> marker_text({"erf-map"})
    ''
    """
    parts = [text for keys, text in MARKERS if any(k in gids for k in keys)]
    return f"Markers: {'; '.join(parts)}." if parts else ""


def map_text(d: Drawn) -> str:
    """The heat map's transform, colour floor and normalisation in words ('' without a heat map).

    >>> print(map_text(Drawn("x", look="rfkit", floor=1e-3, normalised="own")))  # doctest: +NORMALIZE_WHITESPACE
    Colour: log10(ERF / max) of the raw ERF map (ReLU of the input gradient summed over colour channels,
    averaged over images), each map divided by its own maximum; colour floor 0.001 of the maximum (lower
    values drawn at the floor).
    >>> print(map_text(Drawn("x", look="replknet", normalised="shared")))  # doctest: +NORMALIZE_WHITESPACE
    Colour: log10(ERF + 1) / max (RepLKNet), all panels divided by the largest value over all panels (one
    colour scale).
    """
    if d.look is None:
        return ""
    transform = {
        "rfkit": "log10(ERF / max)" if d.log else "ERF / max on a linear scale",
        "replknet": "log10(ERF + 1) / max (RepLKNet)",
        "openerf": "(ERF − min) / (max − min) (OpenERF)",
        "attribution": "signed contribution maps (blue negative, red positive; CAM maps 0 to 1)",
    }[d.look]
    if d.look in ("rfkit",):
        transform += (
            " of the raw ERF map (ReLU of the input gradient summed over colour channels, averaged over images)"
        )
    scale = {
        "own": "each map divided by its own maximum",
        "shared": "all panels divided by the largest value over all panels (one colour scale)",
        "column": "each method column divided by the 99th percentile of |map| over its images; opacity follows |value|",
        "image": "each map divided by the 99th percentile of its own |map|; opacity follows |value|",
        None: "",
    }[d.normalised]
    if d.look == "openerf":
        scale = "each map min-max normalised on its own"
    text = f"Colour: {transform}" + (f", {scale}" if scale else "")
    if d.floor is not None and math.isfinite(d.floor):
        text += f"; colour floor {d.floor:g} of the maximum (lower values drawn at the floor)"
    return text + "."


def run_text(runs: Sequence[Run]) -> str:
    """The model(s), weights, images, input size and ERF method, one sentence per run."""
    sentences = []
    for r in runs:
        weights = r.weights + (" — random init, not a trained network" if r.random else "")
        parts = [f"Model {r.model}, weights: {weights}"]
        if r.num_images is not None:
            parts.append(f"{r.num_images} image(s)" + (f" ({r.images})" if r.images else ""))
        if r.input_size:
            parts.append(f"input {'×'.join(str(int(v)) for v in r.input_size)} px (h×w)")
        if r.method:
            parts.append(f"ERF method {r.method}")
        sentences.append("; ".join(parts) + ".")
    return " ".join(sentences)


def caption_text(drawn: Drawn, gids: set[str]) -> str:
    """The caption paragraph, plain text.

    >>> d = Drawn("ERF of layer1 of net", (Run("net", "random init (timm default)", True, "noise (seed 0)", 2,
    ...           (32, 32), "replknet"),), "rfkit", True, 1e-3, "own")
    >>> print(caption_text(d, {"rf-box"}))  # doctest: +NORMALIZE_WHITESPACE
    ERF of layer1 of net. Colour: log10(ERF / max) of the raw ERF map (ReLU of the input gradient summed over
    colour channels, averaged over images), each map divided by its own maximum; colour floor 0.001 of the
    maximum (lower values drawn at the floor). Markers: the solid box is the analytic receptive field (RF) of
    the measured unit. Model net, weights: random init (timm default) — random init, not a trained network;
    2 image(s) (noise (seed 0)); input 32×32 px (h×w); ERF method replknet.
    """
    title = drawn.title.rstrip(".")
    parts = [f"{title[:1].upper()}{title[1:]}.", map_text(drawn), marker_text(gids), *drawn.notes, run_text(drawn.runs)]
    return " ".join(p for p in parts if p)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "×": r"$\times$",
    "σ": r"$\sigma$",
    "−": "--",
    "—": "---",
    "–": "--",
    "≈": r"$\approx$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "←": r"$\leftarrow$",
    "→": r"$\rightarrow$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "·": r"$\cdot$",
    "°": r"$^\circ$",
    "²": r"$^2$",
    "₁₀": r"$_{10}$",
    "¼": r"$\frac{1}{4}$",
    "½": r"$\frac{1}{2}$",
    "¾": r"$\frac{3}{4}$",
}
_TEX_RE = re.compile("|".join(re.escape(k) for k in sorted(_TEX_SPECIAL, key=len, reverse=True)))


def latex_text(text) -> str:
    """``text`` as LaTeX text mode: LaTeX's special characters escaped, the symbols rfkit's words use written
    as LaTeX (so the caption compiles with pdflatex), control characters and line breaks as spaces.

    >>> print(latex_text(r"100% of x_1 & {y} $5 #2"))
    100\\% of x\\_1 \\& \\{y\\} \\$5 \\#2
    >>> print(latex_text(r"~a^b \\ 7×7, σ"))
    \\textasciitilde{}a\\textasciicircum{}b \\textbackslash{} 7$\\times$7, $\\sigma$
    """
    flat = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    return _TEX_RE.sub(lambda m: _TEX_SPECIAL[m.group(0)], flat)


def caption_markdown(drawn: Drawn, gids: set[str]) -> str:
    """The ``.caption.md`` file's text: :data:`MD_MARK`, then the escaped paragraph."""

    return f"{MD_MARK}\n{md_text(caption_text(drawn, gids))}\n"


def caption_latex(drawn: Drawn, gids: set[str]) -> str:
    """The ``.caption.tex`` file's text: :data:`TEX_MARK`, then ``\\caption{...}``."""
    return f"{TEX_MARK}\n\\caption{{{latex_text(caption_text(drawn, gids))}}}\n"


def caption_paths(figure) -> list[Path]:
    """The caption pair of a figure file (any of its formats): ``stages.png`` -> ``stages.caption.md``,
    ``stages.caption.tex``.

    >>> [p.name for p in caption_paths("out/overlay_layer1.0.pdf")]
    ['overlay_layer1.0.caption.md', 'overlay_layer1.0.caption.tex']
    """
    path = Path(figure)
    return [path.with_suffix(s) for s in SUFFIXES]


def caption_texts(fig) -> list[str] | None:
    """The texts of the caption pair of ``fig`` (Markdown, LaTeX), or None when it carries no record."""
    drawn = getattr(fig, CAPTION, None)
    if drawn is None:
        return None
    gids = drawn_gids(fig)
    return [caption_markdown(drawn, gids), caption_latex(drawn, gids)]


def owned_caption(path) -> bool:
    """Whether the file at ``path`` is a caption rfkit wrote (its first line is rfkit's mark)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(64)
    return head.startswith((MD_MARK.encode(), TEX_MARK.encode()))


def written_captions(figure) -> list[Path]:
    """The caption pair beside the figure file ``figure`` that :func:`~rfkit.report.figures.style.save_figure` wrote
    (empty for a figure saved without a record)."""
    return [p for p in caption_paths(figure) if owned_caption(p)]


def layer_phrase(layer: str) -> str:
    """``layer layer4`` or ``the model's output``."""
    return f"layer {layer}" if layer else f"the model's output ({layer_name(layer)})"


# ------------------------------------------------------------------------------ the records of rfkit's figures


def overlay_drawn(result, layer: str, unit, heat) -> Drawn:
    """The record of :func:`rfkit.report.figures.overlay.overlay_figure`: one layer, its map divided by its own max."""
    title = f"Effective receptive field (ERF) of {layer_phrase(layer)} of {result.model}, centre unit {tuple(unit)}"
    return heat_record(heat, title, [Run.of(result)], "own")


def stage_grid_drawn(result, layers: Sequence[str], heat) -> Drawn:
    """The record of :func:`rfkit.report.figures.stage_grid.stage_grid_figure` (shared or per-panel scale, as ``heat``
    says: a ``top`` is the maximum over all panels), with every panel's overhang in numbers (a small panel
    numbers one side of its arrows only)."""
    names = ", ".join(layer_name(x) for x in layers)
    title = f"ERF of {len(layers)} layer(s) of {result.model} ({names}), the centre unit of each"
    beyond = []
    for layer in layers:
        info = result.rf(layer)
        if info.unknown or info.is_global or info.windows is None:
            continue
        sides = rf_beyond(info.window_of(tuple(result.unit[layer])), tuple(result.maps[layer].shape))
        if sides:
            beyond.append((layer_name(layer), sides))
    notes = [overhang_text(beyond)] if beyond else []
    return heat_record(heat, title, [Run.of(result)], "shared" if heat.top is not None else "own", notes)


def overhang_text(beyond: Sequence[tuple[str, dict]]) -> str:
    """How far each panel's RF extends beyond the input, per side, in one sentence.

    >>> print(overhang_text([("layer3", {"top": 9, "left": 9}), ("layer4", {"top": 121, "bottom": 90,
    ...       "left": 121, "right": 90})]))  # doctest: +NORMALIZE_WHITESPACE
    RF beyond the input (px at the top, bottom, left, right): layer3 9, 0, 9, 0; layer4 121, 90, 121, 90.
    """
    from rfkit.formatting import num

    sides = ("top", "bottom", "left", "right")
    parts = [f"{name} {', '.join(num(b.get(side, 0)) for side in sides)}" for name, b in beyond]
    return f"RF beyond the input (px at the top, bottom, left, right): {'; '.join(parts)}."


def growth_drawn(graph, result=None) -> Drawn:
    """The record of :func:`rfkit.report.figures.growth.rf_growth_figure`."""
    model = graph.model_name or "model"
    size = "×".join(str(int(v)) for v in graph.input_size)
    note = (
        "x: depth in spatial layers (conv, pooling, attention) on the longest path from the input; "
        "y: RF size in input pixels, log scale."
    )
    runs = [Run.of(result)] if result is not None else [Run(model, "none (analytic RF only)", input_size=())]
    return Drawn(f"Receptive field growth with depth of {model}, {size} px input", tuple(runs), notes=(note,))


def convergence_drawn(result) -> Drawn:
    """The record of :func:`rfkit.report.figures.convergence.convergence_figure`."""
    b = result.bootstrap or {}
    note = (
        f"Intervals: percentile bootstrap over {b.get('groups', '?')} independent source(s) (views of one photo "
        f"resampled together; seed {b.get('seed', 0)}), none where fewer than 8 sources had been seen; "
        "x: images seen, log scale; y: the ERF's 95%-mass side in pixels, one axis for every panel."
    )
    return Drawn(
        f"Convergence of the ERF size of {result.model} with the number of images", (Run.of(result),), notes=(note,)
    )


def attribution_drawn(result, n_images: int, record=None) -> Drawn:
    """The record of :func:`rfkit.report.figures.attribution.attribution_grid` (``n_images`` rows; ``record``:
    its :class:`~rfkit.report.figures.attribution.GridRecord`, for the method names and the normalisation)."""
    target = result.targets[0]
    score = "softmax probability" if getattr(result.settings, "score", "logit") == "probability" else "logit"
    what = f"unit {target.label} (channel sum)" if target.kind == "unit" else f"the class {score} named per row"
    names = record.titles if record is not None else result.methods
    title = (
        f"Per-image contribution maps of {result.model} for {what}: rows are {n_images} image(s), columns the input "
        f"and the methods {', '.join(names)}"
    )
    run = Run.of(result)
    normalised = "column" if record is None or record.normalise == "column" else "image"
    return Drawn(title, (run,), "attribution", normalised=normalised)


def comparison_drawn(analyses, heat, layers: str, shared: bool = False, beyond=()) -> Drawn:
    """The record of :func:`rfkit.report.figures.compare.comparison_figure`: one row per analysis, one spatial scale,
    each map divided by its own maximum or (``shared``) all by the largest peak; ``beyond``: ``(panel name,
    overhang per side)`` of the panels whose RF extends beyond their input (:func:`overhang_text`)."""
    cols = "each model's final measured layer" if layers == "final" else "layers at ¼, ½ and ¾ depth and the final one"
    title = f"ERF of {len(analyses)} model(s), one row each; columns: {cols}; one spatial scale (input pixels)"
    notes = [overhang_text(beyond)] if beyond else []
    runs = [Run.of_header(a.header) for a in analyses]
    return heat_record(heat, title, runs, "shared" if shared else "own", notes)


def rf_grid_drawn(grid, heat) -> Drawn:
    """The record of :func:`rfkit.report.figures.rf_grid.rf_grid_figure`: the units' boxes over the image and, when
    measured, their ERFs, each divided by its own maximum and drawn together as the largest per pixel."""
    grid_size = "×".join(str(int(v)) for v in grid.grid)
    rf = "×".join(f"{v:g}" for v in grid.size)
    stride = "×".join(f"{v:g}" for v in grid.stride)
    title = (
        f"Analytic receptive fields (RF) of {len(grid.units)} units of {layer_phrase(grid.layer)} of {grid.model} "
        f"(a {grid_size} grid of units; RF {rf} px, stride {stride} px"
        + ("; the RF of the local paths of a global layer" if grid.is_global else "")
        + ")"
    )
    notes = [
        "Each coloured box is the analytic RF of one unit (the legend names the unit and the input rows and columns "
        "it sees); a box that extends beyond the input is dashed, its part inside the input solid."
    ]
    measured = grid.maps is not None
    if measured:
        notes.append("The units' ERFs, each measured on the one image shown, drawn together, per pixel the largest.")
    run = Run(
        str(grid.model),
        str(grid.weights),
        is_random(grid.weights_kind),
        "the image shown" if grid.image is not None else "",
        1 if measured else None,
        tuple(grid.input_size),
    )
    if not measured:
        return Drawn(title, (run,), notes=tuple(notes))
    return heat_record(heat, title, [run], "own", notes)
