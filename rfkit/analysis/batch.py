"""Batch runs: analyse many models, resume where a run stopped, and summarise what happened."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rfkit.analysis.analyze import analyze
from rfkit.errors import RFKitError
from rfkit.report.report_folder import folder_name, is_complete


@dataclass(frozen=True)
class Outcome:
    """What happened to one model of a batch."""

    model: str
    status: str  # "done", "skipped" (already complete), "failed"
    folder: Path | None
    seconds: float
    message: str = ""  # the error, for failures; the output RF and layer count otherwise
    report: object | None = None


def analyze_many(
    models: Sequence[str],
    out="rfkit-reports",
    *,
    skip_existing: bool = False,
    stop_on_error: bool = False,
    on_start: Callable[[int, str], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    **kwargs,
) -> list[Outcome]:
    """Run :func:`~rfkit.analysis.analyze.analyze` on each model.

    With ``skip_existing``, a model is skipped when its report folder (:func:`~rfkit.report.report_folder.folder_name`)
    holds a finished report of the same model (the ``model_id`` in its ``run.json``). A failure (an
    :class:`~rfkit.errors.RFKitError` or any other exception) is recorded and the batch goes on, unless
    ``stop_on_error``. Ctrl-C stops the batch at once: the finished reports are complete, the one being
    written is removed, and ``KeyboardInterrupt`` propagates (rerun with ``skip_existing`` to resume).
    """
    outcomes = []
    for i, model in enumerate(models):
        if on_start is not None:
            on_start(i, model)
        t0 = time.perf_counter()
        try:
            outcome = _run_one(model, out, skip_existing, kwargs, t0)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - every failure is reported, the batch goes on
            if stop_on_error:
                raise
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not isinstance(e, RFKitError):
                msg = f"{type(e).__name__}: {msg}"
            outcome = Outcome(model, "failed", None, time.perf_counter() - t0, msg)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def _run_one(model, out, skip_existing: bool, kwargs: dict, t0: float) -> Outcome:
    """Skip ``model`` when its report is complete (with ``skip_existing``), else analyse it."""
    folder = Path(out) / folder_name(model)
    if skip_existing and is_complete(folder, model):
        return Outcome(model, "skipped", folder, 0.0, "already complete")
    rep = analyze(model, out=out, **kwargs)
    final = rep.result.rf(rep.result.layers[-1])
    rf = "global" if final.is_global else "×".join(str(v) for v in final.size)
    return Outcome(
        model,
        "done",
        rep.folder,
        time.perf_counter() - t0,
        f"{len(rep.result.layers)} layers, RF of {rep.result.layers[-1] or 'the output'}: {rf}",
        rep,
    )
