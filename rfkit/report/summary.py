"""The ERF summary row: one measured layer as the cells ``rfkit erf`` prints, ``report.md`` tabulates and the
site shows, built in one place from the numeric row of :func:`rfkit.report.erf_files.erf_rows` (or the same
row read back from ``metrics.json``)."""

from __future__ import annotations

from rfkit.formatting import MISSING, fixed, pair, ratio, rf_label

LAYER = "layer"
STATUS = "status"
UNIT = "unit"
CENTRE = "centre (y, x)"
ERF_CENTRE = "ERF centre (y, x)"
RF = "RF h×w"
STRIDE = "stride"
ERF = "ERF 95% h×w"
ERF_RF = "ERF/RF (h, w)"
AREA = "area ratio 0.5"
SIGMA = "Gaussian σ along y, x (px)"
R2 = "R²"
NOTES = "notes"

COLUMNS = (LAYER, STATUS, UNIT, CENTRE, RF, STRIDE, ERF_CENTRE, ERF, ERF_RF, AREA, SIGMA, R2, NOTES)
"""Every column of the summary, in order (``status`` only when the row has one)."""
GEOMETRY = (LAYER, STATUS, UNIT, CENTRE, RF, STRIDE)
"""The columns that say where each measured unit looks (the analytic side)."""
MEASURED = (LAYER, ERF_CENTRE, ERF, ERF_RF, AREA, SIGMA, R2)
"""The columns that say how much of its RF it uses (the measured side)."""

LEGEND = (
    "Centre (y, x): the analytic RF centre of the measured unit. ERF centre: the map's centre of mass, the "
    "centre of every size. ERF 95%: the interval per axis around it holding 95% of the map's mass; ERF/RF: "
    "that over the analytic RF size, per axis (over the input size for global layers, whose RF is the whole "
    "input). Area ratio: the share of the input covered by the smallest square around the ERF centre holding "
    "50% of log10(map + 1) / max (RepLKNet's transform; their table, squares on the map's centre pixel, is "
    "`area_ratio_*` in `erf.csv`). Gaussian σ: the standard deviations of a 2-D Gaussian fitted to the map, "
    "along the image's y and x axes (the overlays draw its principal axes); R²: how well it fits."
)
"""What the metric columns mean (printed under the table)."""


def rf_cell(row: dict) -> str:
    """The analytic RF of a row: ``7×7``, ``global (local 16×16)``, ``?×?`` when unknown.

    >>> rf_cell({"rf_h": 7, "rf_w": 5}), rf_cell({"is_global": True, "rf_local_h": 16, "rf_local_w": 16})
    ('7×5', 'global (local 16×16)')
    """
    local = (row.get("rf_local_h"), row.get("rf_local_w"))
    return rf_label((row.get("rf_h"), row.get("rf_w")), local, bool(row.get("is_global")))


def ratio_cell(row: dict) -> str:
    """ERF/RF per axis, or for a global layer (whose RF is the input) ERF/input, labelled.

    >>> ratio_cell({"erf_rf_ratio_h": 0.5, "erf_rf_ratio_w": 0.25})
    '0.50, 0.25'
    >>> ratio_cell({"is_global": True, "erf_input_ratio_h": 0.9, "erf_input_ratio_w": 0.9})
    '0.90, 0.90 of the input'
    """
    if row.get("is_global") or row.get("erf_rf_ratio_h") is None:
        return ratio((row.get("erf_input_ratio_h"), row.get("erf_input_ratio_w")), of="of the input")
    return ratio((row.get("erf_rf_ratio_h"), row.get("erf_rf_ratio_w")))


def notes_cell(row: dict) -> str:
    """The map's warnings and, when the Gaussian fit is not Gaussian-like, why; ``; ``-separated.

    >>> notes_cell({"warnings": "off centre | collapsed", "gauss_like": False, "gauss_reason": "R² 0.5 < 0.9"})
    'off centre; collapsed; not Gaussian-like (R² 0.5 < 0.9)'
    """
    notes = [w for w in str(row.get("warnings") or "").split(" | ") if w]
    if row.get("gauss_like") is False:
        notes.append(f"not Gaussian-like ({row.get('gauss_reason')})")
    return "; ".join(notes)


def summary_row(row: dict) -> dict[str, str]:
    """The cells of one measured layer, by column (:data:`COLUMNS`; ``status`` only when ``row`` has one).

    Parameters
    ----------
    row : dict
        A row of :func:`~rfkit.report.erf_files.erf_rows`, or of ``metrics.json``'s ``layers``.

    Returns
    -------
    dict[str, str]
        Plain text: escape it for Markdown or a terminal where it is shown.

    Examples
    --------
    >>> row = {"layer": "2", "unit_h": 4, "unit_w": 4, "center_y": 8.0, "center_x": 8.0, "rf_h": 7, "rf_w": 7,
    ...        "stride_h": 2, "stride_w": 2, "centroid_y": 8.04, "centroid_x": 7.5, "erf_side_h": 7, "erf_side_w": 7,
    ...        "erf_rf_ratio_h": 1.0, "erf_rf_ratio_w": 1.0, "erf_area_ratio_0.5": 0.09765625, "gauss_sigma_y": 2.21,
    ...        "gauss_sigma_x": 2.19, "gauss_r2": 0.76, "gauss_like": False, "gauss_reason": "R² 0.760 < 0.9"}
    >>> list(summary_row(row).values())  # doctest: +NORMALIZE_WHITESPACE
    ['2', '4, 4', '8, 8', '7×7', '2×2', '8, 7.5', '7×7', '1.00, 1.00', '0.0977', '2.2, 2.2', '0.760',
     'not Gaussian-like (R² 0.760 < 0.9)']
    """
    cells = {LAYER: str(row.get("layer", MISSING))}
    if "status" in row:
        cells[STATUS] = str(row.get("status") or "")
    cells |= {
        UNIT: pair((row.get("unit_h"), row.get("unit_w")), ", "),
        CENTRE: pair((row.get("center_y"), row.get("center_x")), ", "),
        RF: rf_cell(row),
        STRIDE: pair((row.get("stride_h"), row.get("stride_w"))),
        ERF_CENTRE: pair((row.get("centroid_y"), row.get("centroid_x")), ", ", digits=1),
        ERF: pair((row.get("erf_side_h"), row.get("erf_side_w"))),
        ERF_RF: ratio_cell(row),
        AREA: fixed(row.get("erf_area_ratio_0.5"), 4),
        SIGMA: f"{fixed(row.get('gauss_sigma_y'), 1)}, {fixed(row.get('gauss_sigma_x'), 1)}",
        R2: fixed(row.get("gauss_r2"), 3),
        NOTES: notes_cell(row),
    }
    return cells


CI_COLUMNS = {
    "ERF/RF h": ("erf_rf_ratio_h", 2),
    "ERF/RF w": ("erf_rf_ratio_w", 2),
    "area ratio 0.5": ("erf_area_ratio_0.5", 4),
    "mass area ratio 0.5": ("mass_area_ratio_0.5", 4),
    "r50 (px)": ("r50", 1),
    "r95 (px)": ("r95", 1),
}
"""The headline metrics shown with their 95% confidence intervals: column title -> (metric column, decimals)."""
CI_LEGEND = (
    "Value over all images [95% confidence interval]: percentile cluster bootstrap over independent images "
    "(a photo and its crop/flip views are resampled together; on long runs, groups of them; `*_ci_low`, "
    "`*_ci_high` in `erf.csv` for every metric). For a global layer the ERF/RF columns are ERF/input."
)
"""What the confidence-interval table shows (printed under it)."""


def ci_cell(row: dict, column: str, digits: int = 2) -> str:
    """A metric and its confidence interval: ``0.52 [0.47, 0.58]``; the value alone without an interval.

    >>> ci_cell({"r50": 3.0, "r50_ci_low": 2.83, "r50_ci_high": 3.16}, "r50", 1), ci_cell({"r50": 3.0}, "r50", 1)
    ('3.0 [2.8, 3.2]', '3.0')
    """
    value = fixed(row.get(column), digits)
    if f"{column}_ci_low" not in row:
        return value
    return f"{value} [{fixed(row.get(f'{column}_ci_low'), digits)}, {fixed(row.get(f'{column}_ci_high'), digits)}]"


def ci_row(row: dict) -> dict[str, str] | None:
    """The headline metrics of a row (of :func:`~rfkit.report.erf_files.erf_rows` or ``metrics.json``) with
    their intervals, by column (:data:`CI_COLUMNS`, after ``layer``): the values alone where the row says why
    it has no interval (``ci_reason``); None when the row has neither. A global layer's ERF/RF columns hold
    its ERF/input ratio, as :func:`ratio_cell` does.

    >>> ci_row({"layer": "2", "r50": 3.0, "ci_reason": "no 95% intervals: ..."})["r50 (px)"]
    '3.0'
    """
    if "erf_rf_ratio_h_ci_low" not in row and not row.get("ci_reason"):
        return None
    ratio = "erf_input_ratio" if row.get("is_global") or row.get("erf_rf_ratio_h") is None else "erf_rf_ratio"
    cells = {LAYER: str(row.get("layer", MISSING))}
    for title, (column, digits) in CI_COLUMNS.items():
        cells[title] = ci_cell(row, column.replace("erf_rf_ratio", ratio), digits)
    return cells


LAYER_KINDS = "convolution, pooling, linear, attention and resampling ops"
"""What counts as a layer in the productivity analysis (RFA-Toolbox's definition)."""


def productivity_text(counts: dict) -> str:
    """Layer counts per status, saying of how many layers (statuses as :class:`~rfkit.graph.productivity.Status`
    or their values; zeros left out).

    >>> productivity_text({"productive": 45, "unproductive": 6, "critical": 2, "global": 0})
    '45 productive, 6 unproductive, 2 critical, of 53 layers'
    >>> productivity_text({"productive": 1}), productivity_text({})
    ('1 productive, of 1 layer', 'no layers')
    """
    total = sum(counts.values())
    parts = [f"{n} {getattr(status, 'value', status)}" for status, n in counts.items() if n]
    if not parts:
        return "no layers"
    return ", ".join(parts) + f", of {total} layer{'s' * (total != 1)}"


def centre_finding(row: dict) -> str | None:
    """A sentence when the ERF's centre lies farther from the unit's analytic RF centre than the layer's
    stride along an axis (the analytic window is lopsided, as after nearest upsampling, or the RF analysis
    is off); None otherwise, or when the offset or the stride is unknown. Plain text.

    >>> row = {"layer": "16", "center_y": 304, "center_x": 304, "centroid_y": 319.73, "centroid_x": 320.2,
    ...        "centroid_dy": 15.73, "centroid_dx": 16.2, "stride_h": 8, "stride_w": 8}
    >>> print(centre_finding(row))  # doctest: +NORMALIZE_WHITESPACE
    the ERF of 16 is centred at (319.7, 320.2), 15.7, 16.2 px (dy, dx) from its unit's analytic RF centre
    (304, 304): more than the layer's stride 8×8
    >>> centre_finding({**row, "centroid_dy": 3.0, "centroid_dx": -2.5}) is None
    True
    """
    offsets = (row.get("centroid_dy"), row.get("centroid_dx"))
    strides = (row.get("stride_h"), row.get("stride_w"))
    if not any(_beyond(d, s) for d, s in zip(offsets, strides)):
        return None
    return (
        f"the ERF of {row.get('layer', MISSING)} is centred at "
        f"({pair((row.get('centroid_y'), row.get('centroid_x')), ', ', digits=1)}), "
        f"{pair(offsets, ', ', digits=1)} px (dy, dx) from its unit's analytic RF centre "
        f"({pair((row.get('center_y'), row.get('center_x')), ', ')}): more than the layer's stride {pair(strides)}"
    )


def _beyond(offset, stride) -> bool:
    """Whether ``|offset| > stride``, both known numbers."""
    try:
        return abs(float(offset)) > float(stride)
    except (TypeError, ValueError):
        return False
