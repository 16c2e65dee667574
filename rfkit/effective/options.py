"""What an ERF measurement computes beyond the maps (:class:`ERFOptions`): ``options=`` of :func:`rfkit.erf` and
:func:`rfkit.analyze` (the command line's ``--bootstrap`` and ``--until-stable``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rfkit.errors import ArgumentError
from rfkit.pipeline.options import OptionObject

RESAMPLES = 200
"""Bootstrap resamples of the reported intervals (``bootstrap=``)."""


@dataclass(frozen=True)
class ERFOptions(OptionObject):
    """The metrics of the ERF maps and their intervals.

    Attributes
    ----------
    metrics : bool
        Compute :func:`rfkit.effective.metrics.compute_metrics` per layer (:func:`rfkit.analyze` needs them).
    crop : bool
        Measure local layers with a small RF on a crop of the input around the unit's RF window (exact: kept only
        where the first batch gives the same map as the whole input; :mod:`rfkit.effective.crop`).
    bootstrap : int
        Resamples of the bootstrap over independent images (views of one photo resampled together) that gives
        every metric a 95% confidence interval (:mod:`rfkit.effective.bootstrap`); 0: none.
    until_stable : float, optional
        Stop as soon as the 95% interval of the ERF/RF ratio is narrower than ``±until_stable`` on every layer
        and axis (:class:`rfkit.effective.bootstrap.StopRule`), or after all the images asked for.

    Examples
    --------
    >>> ERFOptions(bootstrap=0).replace(crop=False)
    ERFOptions(metrics=True, crop=False, bootstrap=0, until_stable=None)
    """

    metrics: bool = True
    crop: bool = True
    bootstrap: int = RESAMPLES
    until_stable: float | None = None

    @classmethod
    def of(cls, value: Any) -> ERFOptions:
        """``value`` as :class:`ERFOptions` (None: the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        raise ArgumentError(f"options={value!r}: give rfkit.ERFOptions(...) or leave it out")
