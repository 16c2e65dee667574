"""A rotated, anisotropic 2-D Gaussian fitted to an ERF map with lmfit: :func:`fit_gaussian`.

lmfit's own ``Gaussian2dModel`` has neither a rotation nor a constant offset, so the model here is an
``lmfit.Model`` of its own::

    f(y, x) = offset + amplitude * exp(-u**2 / (2 * sigma1**2) - v**2 / (2 * sigma2**2))
    u =  cos(theta) * (x - centerx) + sin(theta) * (y - centery)
    v = -sin(theta) * (x - centerx) + cos(theta) * (y - centery)

with x, y input pixel coordinates (pixel centres at integers, as everywhere in rfkit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rfkit.errors import ERFMapError

#: R² below which a fit is not called Gaussian-like.
R2_MIN = 0.9
#: Fits are made on at most about this many pixels: larger maps are block-averaged first.
MAX_FIT_PIXELS = 256 * 256
#: A Gaussian narrower than this (pixels, minor axis) is a point, not a Gaussian-like ERF.
SIGMA_MIN = 0.5


def check_map(m) -> np.ndarray:
    """Return ``m`` as a 2-D float64 array, or raise :class:`ERFMapError` (values are not checked)."""
    if isinstance(m, np.ndarray) and np.iscomplexobj(m):
        raise ERFMapError("the ERF map is complex; pass a real-valued 2-D array")
    try:
        arr = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ERFMapError(f"the ERF map is not a numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ERFMapError(f"the ERF map must be 2-D (H, W); got shape {arr.shape}: sum over channels/images first")
    if arr.size == 0:
        raise ERFMapError(f"the ERF map is empty (shape {arr.shape})")
    return arr


def clean_map(arr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The non-negative finite part of a map: NaN/inf become 0, negatives are clipped to 0.

    Returns the cleaned copy, the number of non-finite values and the number of negative values.
    """
    finite = np.isfinite(arr)
    n_nonfinite = int(arr.size - np.count_nonzero(finite))
    out = np.where(finite, arr, 0.0)
    n_negative = int(np.count_nonzero(out < 0))
    if n_negative:
        out = np.maximum(out, 0.0)
    return out, n_nonfinite, n_negative


def check_pair(value, name: str, *, allow_inf: bool = False, positive: bool = False) -> tuple[float, float]:
    """Validate a per-axis ``(h, w)`` pair of real numbers."""
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ERFMapError(f"{name} must be a pair (h, w) of numbers; got {value!r}") from None
    if len(pair) != 2:
        raise ERFMapError(f"{name} must be a pair (h, w) of numbers; got {value!r}")
    for v in pair:
        if math.isnan(v) or (math.isinf(v) and not allow_inf):
            raise ERFMapError(f"{name} must be finite; got {value!r}")
        if positive and v <= 0:
            raise ERFMapError(f"{name} must be positive; got {value!r}")
    return pair


def _gauss2d(x, y, amplitude=1.0, centerx=0.0, centery=0.0, sigma1=1.0, sigma2=1.0, theta=0.0, offset=0.0):
    dx = x - centerx
    dy = y - centery
    c, s = math.cos(theta), math.sin(theta)
    u = (c * dx + s * dy) / sigma1
    v = (c * dy - s * dx) / sigma2
    return offset + amplitude * np.exp(-0.5 * (u * u + v * v))


@dataclass(frozen=True)
class GaussianFit:
    """A 2-D Gaussian fitted to an ERF map (see :func:`fit_gaussian`). Lengths are input pixels.

    Attributes
    ----------
    center : tuple
        Centre ``(y, x)`` in input pixel coordinates.
    sigma : tuple
        Standard deviations ``(sigma_y, sigma_x)`` of the fitted Gaussian's marginals along the image
        axes (``sqrt`` of the covariance diagonal). They do not depend on the major/minor labelling,
        and equal the fitted axis widths when ``rotation`` is 0 or pi/2: ``sigma[0]`` is *always* the
        vertical (height) spread.
    sigma_major, sigma_minor : float
        Principal standard deviations, ``sigma_major >= sigma_minor``.
    rotation : float
        Angle of the major axis in radians, in ``(-pi/2, pi/2]``, measured from the +x axis towards
        +y. The image y axis points down, so a positive angle is clockwise on screen; a map elongated
        along y has ``rotation == pi/2``. Meaningless when the two sigmas are equal (a circle).
    amplitude, offset : float
        Peak height above the offset, and the constant offset, both in units of the map's maximum
        (the fit is made on ``map / map.max()``).
    r2 : float
        Coefficient of determination of the model on the full-resolution ``map / map.max()``.
    center_stderr, sigma_stderr : tuple
        Standard errors of ``center`` and ``sigma``, per axis (y, x); None when lmfit cannot estimate
        them (singular covariance, failed fit).
    sigma_major_stderr, sigma_minor_stderr, rotation_stderr, amplitude_stderr, offset_stderr : float or None
        Standard errors of the other parameters; None when unavailable.
    gaussian_like : bool
        Whether the map is well described by one Gaussian (rules in :func:`fit_gaussian`).
    reason : str or None
        Why not, when ``gaussian_like`` is False ("; "-joined when several rules fire).
    bin_factor : int
        The map was block-averaged by this factor per axis before fitting (1: no binning).
    success : bool
        Whether the optimiser reported convergence.
    """

    center: tuple[float, float]
    sigma: tuple[float, float]
    sigma_major: float
    sigma_minor: float
    rotation: float
    amplitude: float
    offset: float
    r2: float
    center_stderr: tuple[float | None, float | None]
    sigma_stderr: tuple[float | None, float | None]
    sigma_major_stderr: float | None
    sigma_minor_stderr: float | None
    rotation_stderr: float | None
    amplitude_stderr: float | None
    offset_stderr: float | None
    gaussian_like: bool
    reason: str | None
    bin_factor: int = 1
    success: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def model(self, shape: tuple[int, int]) -> np.ndarray:
        """The fitted surface evaluated on a ``shape`` grid of pixel centres (in units of the map's max).

        >>> fit = fit_gaussian(np.exp(-0.5 * ((np.arange(21.0) - 10) / 3) ** 2)[:, None]
        ...                    * np.exp(-0.5 * ((np.arange(21.0) - 10) / 3) ** 2)[None, :])
        >>> round(float(fit.model((21, 21))[10, 10]), 3)
        1.0
        """
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
        if not math.isfinite(self.sigma_major):
            return np.full(shape, np.nan)
        return _gauss2d(
            xx,
            yy,
            self.amplitude,
            self.center[1],
            self.center[0],
            self.sigma_major,
            max(self.sigma_minor, 1e-12),
            self.rotation,
            self.offset,
        )


def _degenerate(reason: str, bin_factor: int = 1) -> GaussianFit:
    nan = math.nan
    return GaussianFit(
        (nan, nan),
        (nan, nan),
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        (None, None),
        (None, None),
        None,
        None,
        None,
        None,
        None,
        False,
        reason,
        bin_factor,
        False,
    )


def _bin(arr: np.ndarray, f: int, anchor: tuple[float, float] = (0.0, 0.0)):
    """Block-average by ``f``, on a block grid anchored on the pixel nearest ``anchor`` (the ERF's centre
    estimate: a shifted ERF is binned the same way); the rows/columns at either edge that do not fill a block
    are dropped.

    Returns the binned map and the input-pixel coordinates (y, x) of the block centres.
    """
    y0, x0 = (math.floor(round(a, 6) + 0.5) % f if math.isfinite(a) else 0 for a in anchor)
    h, w = (arr.shape[0] - y0) // f, (arr.shape[1] - x0) // f
    binned = arr[y0 : y0 + h * f, x0 : x0 + w * f].reshape(h, f, w, f).mean(axis=(1, 3))
    ys = y0 + np.arange(h) * f + (f - 1) / 2
    xs = x0 + np.arange(w) * f + (f - 1) / 2
    return binned, ys, xs


def _moments(z: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float, float, float]:
    """Initial guesses (cy, cx, sigma1, sigma2, theta) from the pixels above half maximum.

    For a Gaussian, the pixels above ``median + (max - median) / 2`` fill the ellipse of Mahalanobis
    radius ``sqrt(2 ln 2)``, whose uniform covariance is ``Sigma * ln(2) / 2``. That core is robust to
    a noisy background, which would inflate plain second moments of the whole map.
    """
    base = float(np.median(z))
    w = (z > base + 0.5 * (float(z.max()) - base)).astype(np.float64)
    scale = math.log(2) / 2
    if w.sum() < 3:  # a very narrow peak: weighted moments of everything above the median
        w, scale = np.clip(z - base, 0.0, None), 1.0
    total = w.sum()
    py, px = w.sum(axis=1) / total, w.sum(axis=0) / total
    cy, cx = float(py @ ys), float(px @ xs)
    dy, dx = ys - cy, xs - cx
    syy = float(py @ dy**2)
    sxx = float(px @ dx**2)
    sxy = float(dy @ w @ dx) / total
    evals, evecs = np.linalg.eigh(np.array([[sxx, sxy], [sxy, syy]]) / scale)
    s1, s2 = math.sqrt(max(evals[1], 0.25)), math.sqrt(max(evals[0], 0.25))
    theta = math.atan2(evecs[1, 1], evecs[0, 1])  # direction (x, y) of the major eigenvector
    return cy, cx, s1, s2, theta


def _wrap(theta: float) -> float:
    """Map an axis angle to (-pi/2, pi/2]."""
    t = math.fmod(theta, math.pi)
    if t <= -math.pi / 2:
        t += math.pi
    elif t > math.pi / 2:
        t -= math.pi
    return t


def _se(v) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def fit_gaussian(m, *, max_pixels: int | None = MAX_FIT_PIXELS, r2_min: float = R2_MIN) -> GaussianFit:
    """Fit a rotated anisotropic 2-D Gaussian plus a constant offset to an ERF map.

    The map fitted is the raw map divided by its maximum (NaN/inf count as 0; negative values, which a
    ReLU'd gradient map has not, are kept: clipping zero-mean noise would bias the offset and shrink
    the sigmas), so ``amplitude`` and ``offset`` are fractions of the peak. No log transform is
    applied: a log would turn a Gaussian into a paraboloid.

    Speed: a map with more than ``max_pixels`` pixels is block-averaged by the smallest integer factor
    ``f`` per axis that brings it under the limit (224 px: no binning, 384 px: f = 2), but never
    coarser than a third of the peak's minor sigma estimated from the map, so a narrow ERF keeps its
    resolution (trailing rows and columns that do not fill a block are dropped). The binned map is
    fitted at the block centres (coordinates stay in input pixels; the block grid is anchored on the
    start's centre, so a shifted ERF is binned alike) and the result corrected: averaging
    over ``f x f`` pixels adds ``(f**2 - 1) / 12`` to the variance along both axes, which leaves the
    principal directions alone; it is subtracted from both principal variances, and the amplitude is
    scaled up by the matching ratio of areas. Initial values come from the pixels above half maximum
    (:func:`_moments`), so the fit converges in a few dozen evaluations (about 0.05-0.3 s for 224 to
    384 px maps).

    ``gaussian_like`` is False, with every rule that fired in ``reason``, when:

    - the map is degenerate (maximum not positive, constant, under 4 non-zero pixels, fewer than 16
      pixels): not fitted, every value NaN;
    - the optimiser failed or did not converge;
    - ``r2 < r2_min`` (default 0.9), with R² computed on the full-resolution ``map / max``;
    - ``sigma_minor < 0.5`` px (a point, not a Gaussian) or ``sigma_major`` larger than the map's
      larger side (a ramp or a plateau, not a peak);
    - the fitted centre lies outside the image (more than half a pixel beyond the edge pixels);
    - the amplitude is not positive.

    Parameters
    ----------
    m : array_like, shape (H, W)
        Raw ERF map.
    max_pixels : int or None
        Bin the map above this many pixels; None never bins.
    r2_min : float
        R² threshold of ``gaussian_like``.

    Returns
    -------
    GaussianFit

    Raises
    ------
    ERFMapError
        When ``m`` is not a non-empty 2-D numeric array.

    Examples
    --------
    A Gaussian twice as tall as wide, not rotated: ``sigma`` is ``(sigma_y, sigma_x)`` and the major
    axis is vertical.

    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> m = np.exp(-0.5 * (((yy - 30) / 8.0) ** 2 + ((xx - 34) / 4.0) ** 2))
    >>> fit = fit_gaussian(m)
    >>> [round(v, 3) for v in fit.center], [round(v, 3) for v in fit.sigma]
    ([30.0, 34.0], [8.0, 4.0])
    >>> round(fit.rotation, 4), fit.gaussian_like, round(fit.r2, 6)
    (1.5708, True, 1.0)
    >>> fit_gaussian(np.zeros((32, 32))).reason
    'degenerate: the map is all zero'
    """
    arr = check_map(m)
    arr = np.where(np.isfinite(arr), arr, 0.0)
    why = _degenerate_reason(arr)
    if why:
        return _degenerate(why)
    H, W = arr.shape
    z_full = arr / float(arr.max())
    ys, xs = np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64)
    start = _moments(z_full, ys, xs)
    f = _bin_factor(H, W, start[3], max_pixels)
    z = z_full
    if f > 1:
        z, ys, xs = _bin(z_full, f, start[:2])
    try:
        result = _least_squares(z, ys, xs, start, f, (H, W))
    except Exception as exc:  # noqa: BLE001 - a failed fit is a result, not a crash
        return _degenerate(f"fit failed: {type(exc).__name__}: {exc}", f)
    fitted = _Fitted.unbinned(result.params, f)
    r2 = _r2(z_full, fitted)
    errors = _Stderrs(result, fitted)
    # canonical labelling: major >= minor, rotation of the major axis in (-pi/2, pi/2]
    if fitted.s1 >= fitted.s2:
        major, minor, se_major, se_minor, rot = fitted.s1, fitted.s2, errors.s1, errors.s2, _wrap(fitted.theta)
    else:
        major, minor = fitted.s2, fitted.s1
        se_major, se_minor, rot = errors.s2, errors.s1, _wrap(fitted.theta + math.pi / 2)
    reasons = _reasons(result, fitted, r2, r2_min, major, minor, (H, W))
    return GaussianFit(
        center=(float(fitted.cy), float(fitted.cx)),
        sigma=(float(fitted.sig_y), float(fitted.sig_x)),
        sigma_major=float(major),
        sigma_minor=float(minor),
        rotation=float(rot),
        amplitude=float(fitted.amplitude),
        offset=float(fitted.offset),
        r2=float(r2),
        center_stderr=(_se(errors.sd("centery")), _se(errors.sd("centerx"))),
        sigma_stderr=(_se(errors.sig_y), _se(errors.sig_x)),
        sigma_major_stderr=_se(se_major),
        sigma_minor_stderr=_se(se_minor),
        rotation_stderr=_se(errors.sd("theta")),
        amplitude_stderr=_se(errors.amplitude),
        offset_stderr=_se(errors.sd("offset")),
        gaussian_like=not reasons,
        reason="; ".join(reasons) if reasons else None,
        bin_factor=f,
        success=bool(result.success),
    )


def _degenerate_reason(arr: np.ndarray) -> str | None:
    """Why a map (NaN/inf already zeroed) is not fitted at all, or None."""
    H, W = arr.shape
    if H * W < 16:
        return f"degenerate: a {H}x{W} map is too small to fit"
    peak = float(arr.max())
    if peak <= 0:
        if peak == 0 and float(arr.min()) == 0:
            return "degenerate: the map is all zero"
        return "degenerate: the map has no positive value"
    z = arr / peak
    if float(z.min()) == 1.0:  # every pixel equals the maximum
        return "degenerate: the map is constant"
    if np.count_nonzero(z) < 4:
        return "degenerate: fewer than 4 non-zero pixels"
    return None


def _bin_factor(H: int, W: int, sigma_minor: float, max_pixels: int | None) -> int:
    """The block size that brings an H x W map under ``max_pixels``, never coarser than a third of the
    peak's minor sigma nor leaving fewer than 4 blocks per axis."""
    f = 1
    if max_pixels is not None and H * W > max_pixels:
        f = math.ceil(math.sqrt(H * W / max_pixels))
        f = min(f, max(1, int(sigma_minor // 3)))  # keep at least 3 bins per sigma of a narrow peak
        while f > 1 and (H // f < 4 or W // f < 4):
            f -= 1
    return f


def _least_squares(z: np.ndarray, ys: np.ndarray, xs: np.ndarray, start: tuple, f: int, shape: tuple[int, int]):
    """lmfit's least-squares fit of :func:`_gauss2d` to the map ``z`` (binned by ``f`` from a map of
    ``shape``) at pixel coordinates ``ys``, ``xs``, started from the half-maximum moments ``start`` of the
    full map."""
    import lmfit  # deferred: lmfit pulls in asteval/uncertainties

    cy0, cx0, s10, s20, th0 = start
    H, W = shape
    k = (f * f - 1) / 12.0  # variance added by the f x f block average
    # the binned peak is wider by k along every direction
    s10, s20 = math.sqrt(s10 * s10 + k), math.sqrt(s20 * s20 + k)
    off0 = float(np.median(z))
    amp0 = max(float(z.max()) - off0, 1e-3)
    big = float(max(H, W))
    smin = max(0.2, math.sqrt(k) + 0.05) if f > 1 else 0.2

    model = lmfit.Model(_gauss2d, independent_vars=["x", "y"])
    params = model.make_params()
    params["amplitude"].set(value=amp0, min=0.0, max=10.0)
    params["offset"].set(value=off0, min=-1.0, max=1.0)
    params["centerx"].set(value=cx0, min=-0.5 * W, max=1.5 * W)
    params["centery"].set(value=cy0, min=-0.5 * H, max=1.5 * H)
    params["sigma1"].set(value=min(max(s10, smin * 1.5), 3 * big), min=smin, max=4 * big)
    params["sigma2"].set(value=min(max(s20, smin * 1.5), 3 * big), min=smin, max=4 * big)
    params["theta"].set(value=th0)  # unbounded: the model is pi-periodic, canonicalised below

    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return model.fit(z.ravel(), params, x=xx.ravel(), y=yy.ravel(), method="leastsq")


@dataclass(frozen=True)
class _Fitted:
    """The fitted parameters with the binning undone: principal variances ``v1``, ``v2`` minus k (the box is
    isotropic, directions unchanged), the amplitude scaled up by the matching ratio of areas; ``s1b``,
    ``s2b`` are the fitted (binned) principal sigmas."""

    amplitude: float
    offset: float
    cx: float
    cy: float
    v1: float
    v2: float
    theta: float
    s1b: float
    s2b: float

    @classmethod
    def unbinned(cls, p, f: int) -> _Fitted:
        k = (f * f - 1) / 12.0
        s1b, s2b = p["sigma1"].value, p["sigma2"].value
        v1, v2 = max(s1b * s1b - k, 0.0), max(s2b * s2b - k, 0.0)
        s1, s2 = math.sqrt(v1), math.sqrt(v2)
        amp = p["amplitude"].value
        amp_c = amp * (s1b * s2b / (s1 * s2)) if s1 > 0 and s2 > 0 else amp
        return cls(amp_c, p["offset"].value, p["centerx"].value, p["centery"].value, v1, v2, p["theta"].value, s1b, s2b)

    @property
    def s1(self) -> float:
        return math.sqrt(self.v1)

    @property
    def s2(self) -> float:
        return math.sqrt(self.v2)

    @property
    def sig_x(self) -> float:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return math.sqrt(self.v1 * c * c + self.v2 * s * s)

    @property
    def sig_y(self) -> float:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return math.sqrt(self.v1 * s * s + self.v2 * c * c)

    def model(self, H: int, W: int) -> np.ndarray:
        yf, xf = np.mgrid[0:H, 0:W].astype(np.float64)
        s1, s2 = max(self.s1, 1e-12), max(self.s2, 1e-12)
        return _gauss2d(xf, yf, self.amplitude, self.cx, self.cy, s1, s2, self.theta, self.offset)


def _r2(z_full: np.ndarray, fitted: _Fitted) -> float:
    """R² of the unbinned fit on the full-resolution ``map / max``."""
    ss_res = float(np.sum((z_full - fitted.model(*z_full.shape)) ** 2))
    ss_tot = float(np.sum((z_full - z_full.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan


class _Stderrs:
    """Standard errors of the unbinned quantities: the delta method on lmfit's covariance."""

    def __init__(self, result, fitted: _Fitted) -> None:
        self.cov, self.names = result.covar, list(result.var_names)
        keys = ("sigma1", "sigma2", "theta")
        self.sub = None
        if all(self.var(a, b) is not None for a in keys for b in keys):
            self.sub = np.array([[self.var(a, b) for b in keys] for a in keys])
        s1, s2, s1b, s2b, theta = fitted.s1, fitted.s2, fitted.s1b, fitted.s2b, fitted.theta
        v1, v2 = fitted.v1, fitted.v2
        c, s = math.cos(theta), math.sin(theta)
        sig_x, sig_y = fitted.sig_x, fitted.sig_y
        # gradients of the corrected quantities with respect to (sigma1, sigma2, theta)
        self.s1 = self.prop(np.array([s1b / s1 if s1 > 0 else math.nan, 0.0, 0.0]))
        self.s2 = self.prop(np.array([0.0, s2b / s2 if s2 > 0 else math.nan, 0.0]))
        self.sig_x = self.prop(np.array([s1b * c * c, s2b * s * s, (v2 - v1) * s * c]) / sig_x if sig_x > 0 else None)
        self.sig_y = self.prop(np.array([s1b * s * s, s2b * c * c, (v1 - v2) * s * c]) / sig_y if sig_y > 0 else None)
        self.amplitude = self.sd("amplitude")
        if self.amplitude is not None and s1 > 0 and s2 > 0:
            self.amplitude *= s1b * s2b / (s1 * s2)

    def var(self, a: str, b: str | None = None) -> float | None:
        if self.cov is None or a not in self.names or (b or a) not in self.names:
            return None
        val = float(self.cov[self.names.index(a), self.names.index(b or a)])
        return val if math.isfinite(val) else None

    def sd(self, a: str) -> float | None:
        v = self.var(a)
        return math.sqrt(v) if v is not None and v >= 0 else None

    def prop(self, g) -> float | None:
        if self.sub is None or g is None or not np.all(np.isfinite(g)):
            return None
        v = float(g @ self.sub @ g)
        return math.sqrt(v) if v >= 0 and math.isfinite(v) else None


def _reasons(result, fitted: _Fitted, r2: float, r2_min: float, major: float, minor: float, shape) -> list[str]:
    """Every rule that makes a fit not ``gaussian_like``."""
    H, W = shape
    big = float(max(H, W))
    cy, cx = fitted.cy, fitted.cx
    reasons = []
    if not result.success:
        reasons.append(f"fit did not converge ({result.message})")
    if not r2 >= r2_min:
        reasons.append(f"R² {r2:.3f} < {r2_min}")
    if minor < SIGMA_MIN:
        reasons.append(f"sigma_minor {minor:.3g} px < {SIGMA_MIN} px: a point, not a Gaussian")
    if major > big:
        reasons.append(f"sigma_major {major:.4g} px exceeds the map size {int(big)} px: no peak")
    if not (-0.5 <= cy <= H - 0.5 and -0.5 <= cx <= W - 0.5):
        reasons.append(f"fitted centre ({cy:.1f}, {cx:.1f}) lies outside the {H}x{W} map")
    if not fitted.amplitude > 0:
        reasons.append("amplitude is not positive: no peak")
    return reasons
