"""Metrics of an effective-receptive-field map, centred on the ERF itself.

Each metric lives in a module named for it: :mod:`rfkit.effective.centres` (the inputs and the ERF's own
centre, ``erf_center``, ``half_pixel``), :mod:`rfkit.effective.boxes` (centred boxes),
:mod:`rfkit.effective.area_ratios`, :mod:`rfkit.effective.seed_table` (the peer's table,
``seed_area_ratios``), :mod:`rfkit.effective.erf_rf` (``erf_rf_ratio``), :mod:`rfkit.effective.radial_mass`,
:mod:`rfkit.effective.centroid` and :mod:`rfkit.effective.diagnose`; this module computes them all at once
(:func:`compute_metrics` -> :class:`ERFMetrics`). What follows holds for every one of them.

Every function takes the **raw** accumulated ERF map ``m`` (shape ``(H, W)``; for the RepLKNet method the
ReLU'd input gradient summed over channels and averaged over images, so non-negative). Per-axis values are
``(h, w)`` = ``(y, x)`` pairs; pixel centres sit at integer coordinates.

Centres. :func:`compute_metrics` takes the analytic RF centre of the measured unit and reports it, but every
size metric (the area ratios, the 95%-mass ERF side and the ERF/RF ratio, r50/r90/r95) is centred on **the
ERF's own centre**: the centre of mass of the map's non-negative finite part (:func:`erf_center`), so that
an ERF shifted by a few pixels keeps its sizes. Not on the analytic centre: after nearest upsampling (YOLO
necks) the analytic window is lopsided and its midpoint lies pixels away from the ERF. Not on the peak: one
pixel of a noisy, often checkerboarded gradient. The offset between the two centres is a metric of its own
(:func:`centroid`). The low-level functions take the box centre as ``center``; None means the map's own
centre of mass (of the raw map, whatever transform the metric sums).

The one exception is the peer's table, :func:`seed_area_ratios`: RepLKNet's and get_model_erf.py's boxes,
centred on the map's centre pixel ``(H // 2, W // 2)``, reproduced exactly for comparisons.

Which map each metric uses:

- **mass** metrics (:func:`erf_rf_ratio`, :func:`radial_mass`, :func:`centroid`, the ``"mass"`` area
  ratios) use the non-negative finite part of the raw map: NaN/inf count as 0 and negative values are
  clipped to 0 (a ReLU'd gradient has none). They are invariant to multiplying ``m`` by any positive
  constant.
- the ``"replknet"`` area ratios use RepLKNet's ``log10(m + 1) / max`` (see :func:`area_ratios`),
  which depends on the gradient's scale.
- the Gaussian fit (:func:`fit_gaussian`) uses ``m / m.max()``.

Centred boxes. All "smallest centred square" searches grow a box around the centre one pixel per side at a
time. The centre is first rounded to 1e-6 px (so that float noise in a centre of mass cannot flip a tie) and
snapped to the nearest half pixel (``floor(2c + 0.5) / 2``, ties upward). Along an axis whose snapped centre
is an integer ``k`` the box at step ``n`` covers pixels ``k - n .. k + n`` (odd side ``2n + 1``, as in
RepLKNet); along an axis whose centre is a half pixel ``k + 0.5`` it covers ``k - n .. k + 1 + n`` (even side
``2n + 2``), so the box is exactly centred. The box is therefore square up to one pixel when one axis is
centred on a pixel and the other between two. Boxes are clipped to the image (mass outside it does not
exist): ``side`` is the clipped side per axis, ``nominal_side`` the unclipped one. :func:`erf_rf_ratio` grows
1-D intervals along each axis by the same rule.

>>> m = np.zeros((9, 9)); m[4, 4] = 1.0
>>> res = compute_metrics(m, center=(4, 4), rf_size=(3, 3), fit=False)
>>> res.area_ratios[0].side, res.area_ratios[0].area_ratio == 1 / 81
((1, 1), True)
>>> res.as_dict()["erf_rf_ratio_h"]
0.3333333333333333

The same delta two pixels off the analytic centre: the same sizes, and the offset reported.

>>> res = compute_metrics(np.roll(m, 2, axis=1), center=(4, 4), rf_size=(3, 3), fit=False)
>>> res.erf_rf.side, res.centroid.position, res.centroid.offset
((1, 1), (4.0, 6.0), (0.0, 2.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rfkit.effective.area_ratios import THRESHOLDS, AreaRatio, area_ratios
from rfkit.effective.centres import _box_center, _center, _fraction, _rf
from rfkit.effective.centroid import Centroid, centroid
from rfkit.effective.diagnose import diagnose
from rfkit.effective.erf_rf import MASS, ERFRFRatio, erf_rf_ratio
from rfkit.effective.gaussian import GaussianFit, check_map, clean_map, fit_gaussian
from rfkit.effective.metric_registry import metric_columns
from rfkit.effective.radial_mass import RadialMass, radial_mass
from rfkit.effective.seed_table import seed_area_ratios
from rfkit.errors import ERFMetricError


def _scalar(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


_GAUSS_KEYS = (
    "center_y",
    "center_x",
    "sigma_y",
    "sigma_x",
    "sigma_major",
    "sigma_minor",
    "rotation",
    "amplitude",
    "offset",
    "r2",
)


@dataclass(frozen=True)
class ERFMetrics:
    """Every metric of one ERF map (see :func:`compute_metrics`).

    Attributes
    ----------
    shape : tuple
        ``(H, W)`` of the map.
    center : tuple
        Analytic RF centre ``(cy, cx)``.
    rf_size : tuple or None
        Analytic RF size ``(h, w)`` as floats, ``inf`` when global (a NaN given reads as ``inf``).
    total_mass : float
        Sum of the non-negative finite part of the raw map.
    area_ratios : tuple of AreaRatio
        RepLKNet transform ``log10(m + 1) / max`` (scale dependent), boxes centred on the ERF.
    area_ratios_mass : tuple of AreaRatio
        Mass transform ``m / sum`` (scale invariant), boxes centred on the ERF.
    erf_rf : ERFRFRatio
        Centred on the ERF.
    radial : RadialMass
        Centred on the ERF.
    centroid : Centroid
        The ERF's own centre, the centre of all the above, and its offset from ``center``.
    gaussian : GaussianFit or None
        None when ``fit=False``.
    warnings : tuple of str
        From :func:`diagnose`.
    seed_table : tuple of AreaRatio
        The peer's table (:func:`seed_area_ratios`: RepLKNet's and get_model_erf.py's boxes, centred on the
        map's centre pixel), for comparisons with numbers they print.
    extra : dict
        The columns of the metrics registered in :data:`rfkit.effective.metric_registry.ERF_METRICS` (empty when
        none is), in their order.
    """

    shape: tuple[int, int]
    center: tuple[float, float]
    rf_size: tuple[float, float] | None
    total_mass: float
    area_ratios: tuple[AreaRatio, ...]
    area_ratios_mass: tuple[AreaRatio, ...]
    erf_rf: ERFRFRatio
    radial: RadialMass
    centroid: Centroid
    gaussian: GaussianFit | None
    warnings: tuple[str, ...]
    seed_table: tuple[AreaRatio, ...] = ()
    extra: dict[str, float] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        """Flat ``{column: scalar}`` row for a CSV/DataFrame; JSON-serialisable.

        Values are Python ``int``/``float``/``bool``/``str`` or None; NaN and inf become None (so
        ``json.dumps(..., allow_nan=False)`` works). Per-threshold keys use ``f"{t:g}"``:
        ``area_side_h_0.2`` / ``area_side_w_0.2`` / ``area_ratio_0.2`` hold the seed's table (RepLKNet's
        rule, boxes on the map's centre pixel: :attr:`seed_table`), ``erf_area_*`` the RepLKNet transform on
        boxes centred on the ERF (:attr:`area_ratios`), ``mass_area_*`` the mass transform centred on the ERF.
        ``center_y/x`` is the analytic RF centre, ``centroid_y/x`` the ERF's own centre (that of every size),
        ``centroid_dy/dx`` and ``centroid_distance`` their offset. Gaussian keys are ``gauss_*`` (present,
        None, when no fit was made); ``warnings`` is a " | "-joined string. The columns of registered metrics
        (:attr:`extra`) come last.

        Raises
        ------
        ERFMetricError
            A registered metric's column has the name of one of rfkit's own.
        """
        d: dict = {
            "height": self.shape[0],
            "width": self.shape[1],
            "center_y": self.center[0],
            "center_x": self.center[1],
            "rf_h": None if self.rf_size is None else self.rf_size[0],
            "rf_w": None if self.rf_size is None else self.rf_size[1],
            "total_mass": self.total_mass,
        }
        tables = (("", self.seed_table), ("erf_", self.area_ratios), ("mass_", self.area_ratios_mass))
        for prefix, ratios in tables:
            for r in ratios:
                t = f"{r.threshold:g}"
                d[f"{prefix}area_side_h_{t}"] = r.side[0]
                d[f"{prefix}area_side_w_{t}"] = r.side[1]
                d[f"{prefix}area_ratio_{t}"] = r.area_ratio
        e = self.erf_rf
        d.update(
            {
                "erf_mass": e.mass,
                "erf_side_h": e.side[0],
                "erf_side_w": e.side[1],
                "erf_side_clipped_h": e.side_clipped[0],
                "erf_side_clipped_w": e.side_clipped[1],
                "erf_rf_ratio_h": e.ratio[0],
                "erf_rf_ratio_w": e.ratio[1],
                "erf_input_ratio_h": e.input_ratio[0],
                "erf_input_ratio_w": e.input_ratio[1],
                "r50": self.radial.r50,
                "r90": self.radial.r90,
                "r95": self.radial.r95,
                "centroid_y": self.centroid.position[0],
                "centroid_x": self.centroid.position[1],
                "centroid_dy": self.centroid.offset[0],
                "centroid_dx": self.centroid.offset[1],
                "centroid_distance": self.centroid.distance,
            }
        )
        g = self.gaussian
        vals = dict.fromkeys(_GAUSS_KEYS)
        errs = dict.fromkeys(_GAUSS_KEYS[:-1])
        if g is not None:
            vals.update(
                center_y=g.center[0],
                center_x=g.center[1],
                sigma_y=g.sigma[0],
                sigma_x=g.sigma[1],
                sigma_major=g.sigma_major,
                sigma_minor=g.sigma_minor,
                rotation=g.rotation,
                amplitude=g.amplitude,
                offset=g.offset,
                r2=g.r2,
            )
            errs.update(
                center_y=g.center_stderr[0],
                center_x=g.center_stderr[1],
                sigma_y=g.sigma_stderr[0],
                sigma_x=g.sigma_stderr[1],
                sigma_major=g.sigma_major_stderr,
                sigma_minor=g.sigma_minor_stderr,
                rotation=g.rotation_stderr,
                amplitude=g.amplitude_stderr,
                offset=g.offset_stderr,
            )
        d.update({f"gauss_{k}": v for k, v in vals.items()})
        d.update({f"gauss_{k}_stderr": v for k, v in errs.items()})
        d["gauss_like"] = None if g is None else g.gaussian_like
        d["gauss_reason"] = None if g is None else g.reason
        d["n_warnings"] = len(self.warnings)
        d["warnings"] = " | ".join(self.warnings)
        taken = sorted(set(self.extra) & set(d))
        if taken:
            raise ERFMetricError(f"a registered ERF metric's column {taken[0]!r} is one of rfkit's own: rename it")
        d.update(self.extra)
        return {k: _scalar(v) for k, v in d.items()}


def compute_metrics(m, center, rf_size=None, thresholds=THRESHOLDS, mass: float = MASS, fit: bool = True) -> ERFMetrics:
    """All ERF metrics of one raw map: the sizes centred on the ERF's own centre (:func:`erf_center`), its
    offset from the unit's analytic RF centre ``center``, and the seed's table (:func:`seed_area_ratios`).

    Never raises for degenerate *values* (zeros, NaN, a single pixel): the metrics come back NaN and
    ``warnings`` says why. Raises :class:`ERFMapError` (a ``ValueError``) for malformed input.

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw accumulated ERF map.
    center : pair of float
        Analytic RF centre ``(cy, cx)`` of the measured unit, input pixel coordinates.
    rf_size : pair of float, optional
        Analytic RF size ``(h, w)``; ``math.inf`` for a global layer; None when unknown.
    thresholds : sequence of float
        Area-ratio thresholds (RepLKNet's by default).
    mass : float
        Mass fraction of the ERF/RF box (:func:`erf_rf_ratio`).
    fit : bool
        Fit a Gaussian (:func:`fit_gaussian`).

    Returns
    -------
    ERFMetrics

    Raises
    ------
    ERFMapError
        ``m`` is not a non-empty real 2-D array; ``center`` is not a finite pair (or lies more than 1e9
        px away); ``rf_size`` is not None or a positive pair; a threshold or ``mass`` is outside (0, 1].

    Examples
    --------
    >>> yy, xx = np.mgrid[0:48, 0:48]
    >>> m = np.exp(-0.5 * (((yy - 20) / 4.0) ** 2 + ((xx - 24) / 2.0) ** 2))
    >>> res = compute_metrics(m, center=(20, 24), rf_size=(31, 31))
    >>> res.erf_rf.side, res.warnings, res.gaussian.gaussian_like
    ((17, 9), (), True)
    >>> compute_metrics(np.roll(m, 3, axis=1), center=(20, 24), rf_size=(31, 31), fit=False).erf_rf.side
    (17, 9)
    >>> row = res.as_dict()
    >>> row["area_ratio_0.2"] is not None, round(row["gauss_sigma_y"], 3), round(row["gauss_sigma_x"], 3)
    (True, 4.0, 2.0)
    """
    raw = check_map(m)
    c = _center(center)
    rf = _rf(rf_size)
    ts = tuple(_fraction(t, "threshold") for t in thresholds)
    q = _fraction(mass, "mass")
    warnings = diagnose(raw, c, rf)
    arr, _, _ = clean_map(raw)
    with np.errstate(over="ignore"):
        total_mass = float(arr.sum())
    own = _box_center(arr, None)
    return ERFMetrics(
        shape=(int(arr.shape[0]), int(arr.shape[1])),
        center=c,
        rf_size=rf,
        total_mass=total_mass,
        area_ratios=area_ratios(arr, own, ts, "replknet"),
        area_ratios_mass=area_ratios(arr, own, ts, "mass"),
        erf_rf=erf_rf_ratio(arr, own, rf, q),
        radial=radial_mass(arr, own),
        centroid=centroid(arr, c),
        gaussian=fit_gaussian(raw) if fit else None,
        warnings=warnings,
        seed_table=seed_area_ratios(arr, ts),
        extra=metric_columns(arr, c, own, rf),
    )
