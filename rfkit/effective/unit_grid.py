"""A grid of units of one layer: their analytic RF windows and centres, and the ERF of each on one image.

The RF grid figure (:mod:`rfkit.report.figures.rf_grid`) draws what :func:`unit_grid` returns. Each unit's ERF is
measured by the ERF engine (:func:`rfkit.effective.engine.erf` with ``unit=``) on the same prepared model: one
forward and one backward per unit, the map of that unit alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch.nn as nn

from rfkit.errors import ArgumentError, LayerError
from rfkit.graph.layers import missing_rf, resolve_layers, unit_layout
from rfkit.graph.units import centre_unit, grid_shape
from rfkit.pipeline.prepare import Prepared, check_model, prepare

#: Largest lattice side ``units=N`` accepts (N×N backward passes).
MAX_LATTICE = 16


def grid_units(grid: Sequence[int], units: str | int = "corners") -> list[tuple[int, ...]]:
    """The units of a ``grid`` (units per axis) drawn by the RF grid figure, each once.

    Parameters
    ----------
    grid : (int, int)
        Units per spatial axis of the layer.
    units : "corners" or int
        ``"corners"``: the four corner units and the centre unit (``n // 2`` per axis, the ERF's unit), row by row;
        ``N``: an N×N lattice, evenly spaced from the first to the last unit of each axis (``N = 1``: the
        centre unit).

    Examples
    --------
    >>> grid_units((4, 4))
    [(0, 0), (0, 3), (2, 2), (3, 0), (3, 3)]
    >>> grid_units((7, 5), 3)
    [(0, 0), (0, 2), (0, 4), (3, 0), (3, 2), (3, 4), (6, 0), (6, 2), (6, 4)]
    >>> grid_units((1, 6))
    [(0, 0), (0, 3), (0, 5)]
    """
    if units == "corners":
        corners = [(0, 0), (0, grid[1] - 1), centre_unit(grid), (grid[0] - 1, 0), (grid[0] - 1, grid[1] - 1)]
        return sorted({tuple(int(v) for v in u) for u in corners})
    n = lattice_size(units)
    if n == 1:
        return [centre_unit(grid)]
    per_axis = [sorted({round(i * (g - 1) / (n - 1)) for i in range(n)}) for g in grid]
    return [(a, b) for a in per_axis[0] for b in per_axis[1]]


def lattice_size(units) -> int:
    """``units`` as a lattice side, checked (an int from 1 to :data:`MAX_LATTICE`, or its digits)."""
    text = str(units).strip()
    if isinstance(units, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_LATTICE:
        raise ArgumentError(
            f"units must be 'corners' or a lattice side from 1 to {MAX_LATTICE} (N×N units), got {units!r}"
        )
    return int(text)


@dataclass(frozen=True)
class UnitGrid:
    """The analytic RF and (optionally) the measured ERF of a grid of units of one layer.

    Attributes
    ----------
    model, layer : str
        The model's display name and the layer's name.
    input_size : (int, int)
        The input the windows are in (pixel centres at 0..H-1, 0..W-1).
    grid : (int, int)
        Units per axis of the layer.
    units : tuple of (int, int)
        The units drawn (:func:`grid_units`).
    windows : tuple of ((int, int), (int, int))
        Each unit's analytic ``(first, last)`` input pixel per axis, unclipped (may extend beyond the input).
    centers : tuple of (float, float)
        Each unit's analytic RF centre ``(y, x)``.
    size, stride : tuple
        The layer's RF size and stride per axis.
    maps : tuple of ndarray, or None
        Each unit's raw ERF map ``(H, W)`` on :attr:`image` (None: not measured).
    image : ndarray or None
        The model-ready image ``(C, H, W)`` the ERFs were measured on.
    data_config : dict
        Its preprocessing (to show it as a picture).
    weights : str
        Which weights the model carries.
    weights_kind : str
        Their kind (``"pretrained"``, ``"random"``, ...: :class:`~rfkit.models.weights.WeightsInfo`).
    is_global : bool
        The layer's RF is the whole input; the windows are those of its local paths.
    warnings : tuple of str
        What the measurement warned about, each once.
    """

    model: str
    layer: str
    input_size: tuple[int, int]
    grid: tuple[int, int]
    units: tuple[tuple[int, int], ...]
    windows: tuple
    centers: tuple
    size: tuple
    stride: tuple
    maps: tuple | None = field(default=None, repr=False)
    image: np.ndarray | None = field(default=None, repr=False)
    data_config: dict = field(default_factory=dict, repr=False)
    weights: str = ""
    weights_kind: str = ""
    is_global: bool = False
    warnings: tuple[str, ...] = ()


def unit_grid(
    model: str | nn.Module | Prepared,
    layer: str,
    image="sample",
    units: str | int = "corners",
    *,
    measure: bool = True,
    weights: str = "auto",
    input_size=None,
    device="auto",
    seed: int = 0,
    trust: bool = False,
) -> UnitGrid:
    """The analytic RF windows and centres of a grid of units of ``layer``, and each unit's ERF on one image.

    Parameters
    ----------
    model : str, nn.Module or Prepared
        As :func:`rfkit.erf`; prepared once, used for every unit.
    layer : str
        A module or graph node name with a spatial grid and a known RF.
    image : str, path or Tensor
        One image: ``"sample"`` (the first sample photograph), an image file, or a model-ready tensor
        ``(1, C, H, W)`` (:mod:`rfkit.pipeline.images`).
    units : "corners" or int
        Which units (:func:`grid_units`).
    measure : bool
        Measure each unit's ERF (one backward pass per unit); False: the analytic RF only.
    weights, input_size, device, seed, trust
        As :func:`rfkit.erf`.

    Returns
    -------
    UnitGrid

    Raises
    ------
    ArgumentError
        ``units`` or ``layer`` is not usable.
    LayerError, NodeNotFoundError
        The layer has no spatial grid or no analytic RF, or is not in the graph.

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1))
    >>> ug = unit_grid(net, "1", image="noise", input_size=16, measure=False)
    >>> ug.units, ug.windows[0], ug.centers[-1]
    (((0, 0), (0, 3), (2, 2), (3, 0), (3, 3)), ((-3, 3), (-3, 3)), (12.0, 12.0))
    """
    check_model(model)
    if not isinstance(layer, str) or not layer:
        raise ArgumentError(f"layer must be one module or node name, got {layer!r}")
    prepared = prepare(model, weights, input_size, seed=seed, trust=trust)
    g = prepared.graph
    if len(g.input_size) != 2:
        raise ArgumentError(f"the RF grid is drawn on images; {prepared.name} takes {len(g.input_size)}-D inputs")
    (node,) = resolve_layers(g, prepared.model, [layer])[0].values()
    why = missing_rf(g, node)
    if why:
        raise LayerError(f"layer {layer!r} has no analytic RF to draw: {why}")
    info = g[node]
    if info.windows is None:
        raise LayerError(f"layer {layer!r} has no local RF window (global): draw an earlier layer")
    grid = grid_shape(unit_layout(g.records[node], 2), 2)
    chosen = tuple(grid_units(grid, units))
    maps, picture, notes = None, None, ()
    if measure:
        maps, picture, notes = _measure(prepared, layer, chosen, image, device, seed)
    return UnitGrid(
        model=prepared.name,
        layer=layer,
        input_size=tuple(g.input_size),
        grid=tuple(grid),
        units=chosen,
        windows=tuple(info.window_of(u) for u in chosen),
        centers=tuple(tuple(float(c) for c in info.center_of(u)) for u in chosen),
        size=tuple(info.size),
        stride=tuple(info.stride),
        maps=maps,
        image=picture,
        data_config=dict(prepared.data_config or {}),
        weights=str(getattr(prepared.weights, "description", prepared.weights)),
        weights_kind=str(getattr(prepared.weights, "kind", "")),
        is_global=bool(info.is_global),
        warnings=notes,
    )


def _measure(prepared: Prepared, layer: str, units, image, device, seed: int) -> tuple:
    """Each unit's raw ERF map on the first image of ``image``, that image, and the warnings raised."""
    from rfkit.effective.engine import erf

    (x,) = list(prepared.images(image, num_images=1, batch_size=1, seed=seed))
    maps = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for unit in units:
            res = erf(
                prepared,
                layers=[layer],
                images=x,
                num_images=1,
                device=device,
                unit=unit,
                seed=seed,
                metrics=False,
                bootstrap=0,
                distributed=False,
            )
            maps.append(res.maps[layer])
    notes = tuple(dict.fromkeys(str(w.message) for w in caught))
    return tuple(maps), x[0].double().cpu().numpy(), notes
