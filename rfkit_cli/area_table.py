"""The area-ratio table (``--area-table``, and the ``yolo`` preset): for each measured layer, the side length
and area ratio of the smallest square on the map's centre pixel holding more than 20%, 30%, 50% and 99% of
``log10(map + 1) / max``, by the rule of RepLKNet and the get_model_erf.py script, so the numbers equal theirs
on the same map (:func:`rfkit.effective.metrics.seed_area_ratios`; erf.csv's ``area_side_h_t``, ``area_side_w_t``,
``area_ratio_t``). The ERF-centred sizes are in the summary and erf.csv."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def side_text(side) -> str:
    """A box side: one number for a square box, ``h×w`` otherwise, ``—`` for an empty map.

    >>> side_text((97, 97)), side_text((96, 128)), side_text((None, None))
    ('97', '96×128', '—')
    """
    h, w = side
    if h is None or w is None:
        return "—"
    return str(h) if h == w else f"{h}×{w}"


def ratio_text(ratio: float) -> str:
    """An area ratio with four decimals, as the seed script prints it; ``—`` for NaN (an all-zero map).

    >>> ratio_text(0.02301), ratio_text(float("nan"))
    ('0.0230', '—')
    """
    return "—" if ratio != ratio else f"{ratio:.4f}"


def area_table(result) -> Table:
    """The rich table of an :class:`~rfkit.effective.result.ERFResult`: one row per layer, side (px) and area ratio
    per threshold."""
    layers = [x for x in result.layers if getattr(result.metrics.get(x), "seed_table", None)]
    thresholds = [r.threshold for r in result.metrics[layers[0]].seed_table] if layers else []
    table = Table(
        title=f"area ratios of {result.model}, {result.num_images} images (get_model_erf.py's and RepLKNet's "
        "table: squares on the map's centre pixel, of log10(ERF + 1) / max; — where no square up to the map's "
        "side holds the threshold)"
    )
    table.add_column("layer", overflow="fold")
    for t in thresholds:
        table.add_column(f"side @ {t:g} (px)", justify="right")
        table.add_column(f"ratio @ {t:g}", justify="right")
    for layer in layers:
        cells = []
        for r in result.metrics[layer].seed_table:
            cells += [side_text(r.side), ratio_text(r.area_ratio)]
        table.add_row(escape(layer or "<output>"), *cells)
    return table


def print_area_table(result, console: Console) -> None:
    """Print :func:`area_table` of ``result`` on ``console``."""
    console.print(area_table(result))
