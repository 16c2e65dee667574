"""``rfkit atlas build``: the analytic RF of every stage of every model of a zoo, as one tidy table.

Each model is traced once on the meta device (no weights, no memory) at its default input size and again
at each extra size asked for (the same torch.fx graph propagated at the new size; a model built for one size,
a ViT, is built again for it). Its rows go into ``models/<name>.json`` in the atlas folder, written
atomically as soon as the model is done, so an interrupted build resumes where it stopped; a model that fails
is one line with its reason. Under torchrun each process takes every N-th model (as ``rfkit analyze``
batches do) and rank 0 assembles ``atlas.csv`` (and ``atlas.parquet`` with pyarrow) and ``failures.csv``.

A size a model cannot run at by design (its own forward raises there: :mod:`rfkit.atlas.undefined`) is
recorded as ``not-defined``, apart from rfkit's failures; with ``erf_trained`` a model without loadable trained
weights is one ``no-weights`` line, its analytic rows whole.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rfkit.atlas.measured import ERF_COLUMNS, ErfAtInit, ErfTrained, NoTrainedWeights, init_rows, trained_rows
from rfkit.atlas.rows import graph_rows
from rfkit.atlas.table import FAILED, NO_WEIGHTS, NOT_DEFINED, TABLE, write_tables
from rfkit.atlas.undefined import undefined_reason
from rfkit.atlas.zoo import DETECTION_SIZE, ZooModel, build_detection_backbone, time_limit, zoo_models
from rfkit.errors import AtlasError, RFKitError
from rfkit.io import OutputError, atomic_write_text, check_writable, safe_name, short_hash
from rfkit.version import __version__

__all__ = ["ERF_COLUMNS", "ErfAtInit", "ErfTrained", "ModelResult", "analyse_model", "build_atlas"]

#: The file that marks a folder as an atlas written by rfkit (the only kind of folder a build writes into).
MARKER = ".rfkit-atlas"


@dataclass
class ModelResult:
    """What one model gave: its rows (every size that worked) and one failure per size that did not."""

    model: ZooModel
    sizes: list[str]
    rows: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    #: CPU seconds of this process on the model (user + system): what it costs whatever the machine's load
    cpu_seconds: float | None = None

    @property
    def ok(self) -> bool:
        """No failure of rfkit (a size the model cannot take, or no trained weights, is not one)."""
        return not self.failed

    @property
    def failed(self) -> list[dict]:
        return [f for f in self.failures if f.get("status", FAILED) == FAILED]


# --- one model ---------------------------------------------------------------------------------------------
def _size_text(size) -> str:
    return "default" if size is None else "x".join(map(str, size))


def _build(m: ZooModel):
    from rfkit.models.spec import build_model, default_input, parse_spec

    if m.spec is None:
        return build_detection_backbone(m.name), DETECTION_SIZE
    if m.source == "ultralytics":  # a layer that downloads weights, offline: say so instead of trying
        from rfkit.models.ultralytics import unavailable_reason

        if why := unavailable_reason(m.name):
            raise AtlasError(f"{m.name} cannot be built here: {why}")
    module = build_model(m.spec)
    return module, default_input(module, parse_spec(m.spec))[0]


def _graph_at(m: ZooModel, fxm, size):
    """The graph at ``size`` from the torch.fx trace ``fxm``; a model whose source builds it for one input size
    (a timm ViT: position embeddings, asserts) is built again for ``size``."""
    from rfkit.graph.tracing import trace_fx
    from rfkit.models.sources import get_source

    try:
        if fxm is None:
            raise AtlasError("the model was recorded with make_fx at its default size only")
        return fxm.graph(size)
    except RFKitError:
        if not get_source(m.library).builds_for_size:
            raise
        # no real forward pass of a model that cannot be traced at this size: rows of unknown RF are no atlas
        return trace_fx(m.spec, input_size=size, last_resort=False)[0]


def _failure(m: ZooModel, size: str, e: BaseException, status: str = FAILED) -> dict:
    reason = (str(e).strip().splitlines() or [""])[0]
    if not isinstance(e, RFKitError):
        reason = f"{type(e).__name__}: {reason}"
    return {"source": m.source, "model": m.name, "family": m.family, "input_size": size, "status": status,
            "reason": reason[:500]}  # fmt: skip


def _size_failure(m: ZooModel, module, default: tuple, size: tuple, label: str, e: BaseException) -> dict:
    """The failure of ``m`` at the input ``size``: ``not-defined`` with the model's own reason where the model
    itself cannot run there but runs at its ``default`` size, else rfkit's failure."""
    if tuple(size) == tuple(default):
        return _failure(m, label, e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            why = undefined_reason(m.spec, module, tuple(default), tuple(size), e)
    except Exception:  # noqa: BLE001 - the check is not worth losing the failure: rfkit's then
        why = None
    if why is None:
        return _failure(m, label, e)
    return _failure(m, label, AtlasError(f"the model itself cannot run at {_size_text(size)}: {why}"), NOT_DEFINED)


def size_keys(
    name: str, sizes: Sequence[tuple[int, int]], erf_init: ErfAtInit | None, erf_trained: ErfTrained | None
) -> list[str]:
    """What the model ``name`` is analysed at: a stored result is kept by a resumed build only where these are
    the same (the sizes, the ERF options, the trained weights' file)."""
    keys = ["default", *map(_size_text, sizes)]
    keys += [erf_init.key] if erf_init else []
    return keys + ([erf_trained.key(name)] if erf_trained else [])


def analyse_model(
    m: ZooModel,
    sizes: Sequence[tuple[int, int]] = (),
    timeout: int | None = 240,
    erf_init: ErfAtInit | None = None,
    erf_trained: ErfTrained | None = None,
    grids: Callable[[str], Path] | None = None,
) -> ModelResult:
    """The atlas rows of one model at its default input size and at each of ``sizes`` (a size equal to the
    default is not traced twice); with ``erf_init`` the rows at its size with the ERF at initialisation, with
    ``erf_trained`` those with the ERF of trained weights (:mod:`rfkit.atlas.measured`), their stage grids
    written to ``grids(kind)``. Never raises for a model that fails (its failures are recorded)."""
    from rfkit.graph.tracing import trace_fx

    result = ModelResult(m, size_keys(m.name, sizes, erf_init, erf_trained))
    t0, c0 = time.perf_counter(), time.process_time()
    key = {"source": m.source, "model": m.name, "family": m.family}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with time_limit(timeout, m.name):
                module, default = _build(m)
                g, fxm = trace_fx(module, input_size=default, copy=False)  # built here, on meta: no copy
                default_rows = graph_rows(g, module)
                result.rows += [{**key, "input_from": "default", **r} for r in default_rows]
        except Exception as e:  # noqa: BLE001 - a model that fails is a row of failures.csv, the build goes on
            result.failures.append(_failure(m, "default", e))
            result.seconds, result.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
            return result
        own = tuple(g.input_size)

        def rows_at(size) -> list[dict]:
            rows = default_rows if tuple(size) == own else graph_rows(_graph_at(m, fxm, size), module)
            return [{**key, **r} for r in rows]

        for size in dict.fromkeys(tuple(s) for s in sizes):
            if size == own:
                continue
            try:
                with time_limit(timeout, m.name):
                    result.rows += [{**r, "input_from": "requested"} for r in rows_at(size)]
            except Exception as e:  # noqa: BLE001
                result.failures.append(_size_failure(m, module, own, size, _size_text(size), e))
        if erf_init is not None:
            try:
                with time_limit(timeout, m.name):
                    spec = _measurable(m, "the ERF at init")
                    grid = grids("erf_init") if grids else None
                    result.rows += init_rows(spec, rows_at(erf_init.size), erf_init, grid)
            except Exception as e:  # noqa: BLE001
                result.failures.append(_size_failure(m, module, own, erf_init.size, erf_init.key, e))
        if erf_trained is not None:
            size = tuple(erf_trained.size or own)
            label = f"erf-trained {_size_text(size)}"
            try:
                with time_limit(timeout, m.name):
                    spec = _measurable(m, "a trained ERF")
                    grid = grids("erf_trained") if grids else None
                    result.rows += trained_rows(m.name, spec, rows_at(size), erf_trained, grid)
            except NoTrainedWeights as e:
                result.failures.append(_failure(m, label, e, NO_WEIGHTS))
            except Exception as e:  # noqa: BLE001
                result.failures.append(_size_failure(m, module, own, size, label, e))
    result.seconds, result.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return result


def _measurable(m: ZooModel, what: str) -> str:
    """The spec that builds ``m`` with weights, for an ERF."""
    if m.spec is None:
        raise AtlasError(f"{what} is not measured for a detector's backbone (no spec builds it)")
    return m.spec


# --- the folder --------------------------------------------------------------------------------------------
def model_file(out: Path, m: ZooModel) -> Path:
    """Where one model's rows are kept: ``models/<source>-<name>.json`` (a safe file name; the hash of the
    original keeps two names that sanitise alike apart)."""
    text = f"{m.source}:{m.name}"
    return Path(out) / "models" / f"{safe_name(text, max_len=80)}-{short_hash(text)}.json"


#: The kinds of ERF stage grid a model may have beside its rows (``input_from`` of the measured rows).
GRID_KINDS = ("erf_init", "erf_trained")


def grid_file(out: Path, source: str, name: str, kind: str) -> Path:
    """The stage grid figure of the ERF ``kind`` (:data:`GRID_KINDS`) of a model, beside its rows:
    ``models/<source>-<name>-<hash>.<kind>.png``."""
    return model_file(out, ZooModel(source, name, "")).with_suffix(f".{kind}.png")


def _clear(out: Path, m: ZooModel) -> None:
    """Remove what an earlier build stored for ``m`` (rfkit's own files): its rows, its grids and their captions."""
    model_file(out, m).unlink(missing_ok=True)
    for kind in GRID_KINDS:
        png = grid_file(out, m.source, m.name, kind)
        for path in (png, png.with_suffix(".caption.md"), png.with_suffix(".caption.tex")):
            path.unlink(missing_ok=True)


def open_atlas(out) -> Path:
    """Create the atlas folder ``out``, or check that an existing one is an atlas: a folder holding files
    and no :data:`MARKER` was not written by rfkit and is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder; choose a folder for the atlas")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise OutputError(f"{out} holds files rfkit atlas build did not write; choose a new or empty folder for --out")
    check_writable(out)
    if not (out / MARKER).exists():
        atomic_write_text(out / MARKER, json.dumps({"rfkit": __version__}) + "\n")
    return out


def _read_done(path: Path, m: ZooModel, sizes: list[str]) -> ModelResult | None:
    """The result a previous build stored for ``m`` at the same sizes, if any and if it is whole."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if (data["source"], data["model"], data["sizes"]) != (m.source, m.name, sizes):
            return None
        stored = ModelResult(m, sizes, list(data["rows"]), list(data["failures"]), float(data["seconds"]), True)
        stored.cpu_seconds = data.get("cpu_seconds")
        return stored
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(path: Path, r: ModelResult) -> None:
    data = {
        "source": r.model.source,
        "model": r.model.name,
        "sizes": r.sizes,
        "seconds": round(r.seconds, 3),
        "cpu_seconds": None if r.cpu_seconds is None else round(r.cpu_seconds, 3),
        "rfkit": __version__,
        "rows": r.rows,
        "failures": r.failures,
    }
    atomic_write_text(path, json.dumps(data))


@dataclass(frozen=True)
class _Job:
    """What every model of a build is traced with, and where its result goes."""

    out: Path
    sizes: tuple
    timeout: int | None
    erf_init: ErfAtInit | None
    erf_trained: ErfTrained | None

    def keys(self, m: ZooModel) -> list[str]:
        return size_keys(m.name, self.sizes, self.erf_init, self.erf_trained)

    def done(self, m: ZooModel) -> ModelResult | None:
        return _read_done(model_file(self.out, m), m, self.keys(m))

    def run(self, m: ZooModel) -> ModelResult:
        _clear(self.out, m)
        grids = lambda kind: grid_file(self.out, m.source, m.name, kind)  # noqa: E731
        done = analyse_model(m, self.sizes, self.timeout, self.erf_init, self.erf_trained, grids)
        _store(model_file(self.out, m), done)
        return done


def _chunks(items: list, n: int | None) -> list[list]:
    """``items`` in runs of ``n`` (one run of all of them for None).

    >>> _chunks([1, 2, 3], 2), _chunks([1, 2], None)
    ([[1, 2], [3]], [[1, 2]])
    """
    return [items[i : i + n] for i in range(0, len(items), n)] if n else [items] if items else []


def _run_here(job: _Job, chunk: list[ZooModel]) -> list[ModelResult]:
    return [job.run(m) for m in chunk]


def _run_chunk(job: _Job, chunk: list[ZooModel]) -> list[ModelResult]:
    """Trace ``chunk`` in a forked child (each model stored as it is done); a model the child died on is a
    failure, and the models after it get a new child."""
    import multiprocessing as mp

    results: list[ModelResult] = []
    todo = list(chunk)
    for m in todo:  # results of an earlier build of these models (rfkit's own files), replaced now
        _clear(job.out, m)
    while todo:
        child = mp.get_context("fork").Process(target=_child, args=(job, todo), daemon=True)
        child.start()
        child.join()
        stored = [job.done(m) for m in todo]
        finished = list(itertools.takewhile(lambda r: r is not None, stored))
        results += finished
        todo = todo[len(finished) :]
        if todo:  # the child died on the first model it did not store
            why = f"the process tracing it died (exit code {child.exitcode}: killed, out of memory or a crash)"
            dead = ModelResult(todo[0], job.keys(todo[0]), failures=[_failure(todo[0], "default", AtlasError(why))])
            _store(model_file(job.out, todo[0]), dead)
            results.append(dead)
            todo = todo[1:]
    for r in results:
        r.skipped = False
    return results


def _child(job: _Job, chunk: list[ZooModel]) -> None:
    import torch

    torch.set_num_threads(1)
    for m in chunk:
        job.run(m)


def _lost(m: ZooModel, sizes: list[str]) -> ModelResult:
    """A model whose process stopped before storing it (killed, out of memory): a failure, built next time."""
    reason = "no result stored: the process building it stopped; run the build again to resume"
    return ModelResult(m, sizes, failures=[_failure(m, "default", AtlasError(reason))])


def build_atlas(
    out="rfkit-atlas",
    *,
    sources: Sequence[str] = ("timm",),
    models: str = "*",
    sizes: Sequence[tuple[int, int]] = ((640, 640),),
    timeout: int | None = 240,
    resume: bool = True,
    retry_failed: bool = False,
    erf_init: ErfAtInit | None = None,
    erf_trained: ErfTrained | None = None,
    recycle: int | None = 25,
    on_done: Callable[[ModelResult], None] | None = None,
) -> Path:
    """Build (or complete) the atlas of the models of ``sources`` matching ``models`` in the folder ``out``.

    Parameters
    ----------
    out : path
        The atlas folder; created, or an atlas folder (:data:`MARKER`) from an earlier build.
    sources : sequence of str
        From :data:`rfkit.atlas.zoo.SOURCES`.
    models : str
        fnmatch pattern over model names.
    sizes : sequence of (h, w)
        Input sizes besides each model's default.
    timeout : int or None
        Seconds one model may take (per size).
    resume : bool
        Keep the models an earlier build finished at the same sizes and ERF options (a model with a row in
        ``failures.csv``, whatever its status, is run again only with ``retry_failed``).
    erf_init : ErfAtInit, optional
        Also measure the ERF at initialisation per stage (random-safe weights, a few noise images, a small
        input: rows with ``input_from == "erf_init"``, flagged in ``erf_weights``). Off by default: it builds
        each model with weights in memory and runs it.
    erf_trained : ErfTrained, optional
        Also measure each stage's ERF with trained weights (a file given for the model, else its pretrained
        weights where they can be had) on real images (:mod:`rfkit.atlas.measured`): rows with ``input_from ==
        "erf_trained"``, ``erf_weights`` naming the weights (hub tag, or file name and SHA-256). A model without
        loadable weights is a ``no-weights`` row of ``failures.csv``, its analytic rows whole.
    recycle : int or None
        Trace the models in a child process forked for every ``recycle`` models (tracing leaves memory behind:
        fx's generated code, caches; a crashing model takes only its child down and is recorded as a
        failure); None traces them in this process.
    on_done : callable, optional
        Called with each :class:`ModelResult` (this process's models), e.g. to print progress.

    Returns
    -------
    Path
        The table, ``out/atlas.csv`` (every process returns its path; rank 0 writes it).

    Raises
    ------
    OutputError
        ``out`` is a file, or a folder rfkit did not write.
    AtlasError
        No model matches.
    """
    from rfkit.pipeline.distributed import all_reduce_max, current_world, my_share

    world = current_world()
    todo = zoo_models(tuple(sources), models)
    if not todo:
        raise AtlasError(
            f"no model of {', '.join(sources)} matches {models!r}; `rfkit list-models PATTERN` lists names"
        )
    out = open_atlas(out) if world.writes else Path(out)
    all_reduce_max(0, world)  # the folder exists before any rank writes into it
    job = _Job(out, tuple(sizes), timeout, erf_init, erf_trained)
    mine = my_share(todo, world)
    kept = {m: job.done(m) if resume else None for m in mine}
    wanted = [m for m, r in kept.items() if r is None or (retry_failed and r.failures)]
    for m in mine:
        if m not in wanted and on_done is not None:
            on_done(kept[m])
    for chunk in _chunks(wanted, recycle):
        for done in _run_chunk(job, chunk) if recycle else _run_here(job, chunk):
            if on_done is not None:
                on_done(done)
    all_reduce_max(0, world)  # every rank's models are stored
    if world.writes:
        results = [job.done(m) or _lost(m, job.keys(m)) for m in todo]
        write_tables(out, results)
    return out / TABLE
