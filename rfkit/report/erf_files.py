"""An :class:`~rfkit.effective.result.ERFResult` as files: one row per layer (CSV), everything (JSON), raw maps
(NPY). Every file is written atomically; :func:`save_erf` writes only its own files into a folder
(listed in ``.rfkit-erf.json``)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import numpy as np

from rfkit.io import atomic_path, atomic_write_text
from rfkit.report.files import check_output_folder, layer_filename, plain, read_manifest, remove_stale
from rfkit.report.files import run_header as base_header
from rfkit.report.summary import summary_row


def run_header(result) -> dict:
    """What was run: model, weights actually used, images, input size, method, rfkit version, and how many
    processes measured how many images each (``world_size``, ``images_per_rank``: a torchrun run)."""
    per_rank = list(getattr(result, "images_per_rank", ()) or (result.num_images,))
    header = {**base_header(result), "method": result.method, "world_size": len(per_rank), "images_per_rank": per_rank}
    if getattr(result, "bootstrap", None):  # how the confidence intervals were made, where the run stopped
        header["bootstrap"] = {
            **result.bootstrap,
            "level": 0.95,
            "ci_method": "percentile cluster bootstrap over independent images (views of one photo resampled together)",
        }
    if getattr(result, "stopped", ""):
        header["stopped"] = result.stopped
    return header


def erf_rows(result, statuses: dict | None = None) -> list[dict]:
    """One flat row per measured layer (:meth:`~rfkit.effective.result.ERFResult.rows` with the layer's depth and
    ``status``): the analytic RF of the measured unit (size, stride, its pixel window
    ``rf_first_y`` .. ``rf_last_x``), the layer's depth (spatial layers from the input, and as a fraction
    of the model's, :func:`rfkit.report.figures.growth.growth_series`), whether its map is finite (``finite``: False
    when it holds NaN/inf, :attr:`~rfkit.effective.result.ERFResult.nonfinite`), every ERF metric and, where the run
    has them,
    the bounds of each metric's 95% confidence interval (``<column>_ci_low``, ``<column>_ci_high``;
    :attr:`~rfkit.effective.result.ERFResult.ci`), or, where intervals were asked for and the run had too few
    independent images, ``ci_reason`` instead of the bounds."""
    depth, deepest = _depths(result.graph)
    rows = []
    for layer in result.layers:
        node_depth = depth.get(result.nodes[layer])
        row = {
            **result.rf_columns(layer),
            "depth": node_depth,
            "depth_fraction": node_depth / deepest if node_depth is not None and deepest else None,
            "finite": layer not in result.nonfinite,
        }
        if statuses is not None:
            row["status"] = statuses.get(layer, "")
        rows.append(row | result.metric_columns(layer))
    return rows


def _depths(graph) -> tuple[dict, int]:
    """Depth of every node of ``graph`` in spatial layers and the deepest one; empty for a graph the growth
    analysis cannot walk (not an :class:`~rfkit.graph.rfgraph.RFGraph`)."""
    from rfkit.report.figures.growth import growth_series

    if not hasattr(graph, "records") or not graph.records:
        return {}, 0
    depth = growth_series(graph)["depth"]
    return depth, max(depth.values(), default=0)


def write_erf_files(result, folder, statuses: dict | None = None, header: dict | None = None) -> dict[str, Path]:
    """Write ``erf.csv``, ``metrics.json``, ``maps/<layer>.npy`` (raw maps) and ``maps/<layer>.sem.npy`` (the
    per-pixel standard error of each map) into ``folder``, a folder rfkit owns (``rfkit analyze`` builds its
    report in a new one; in any other folder use :func:`save_erf`).

    ``header`` is the run record (default :func:`run_header`): ``metrics.json``'s ``run``, and the source of
    the provenance columns that start every row of ``erf.csv`` (:mod:`rfkit.report.provenance`).

    Returns the paths written, by kind (``"csv"``, ``"json"``, ``"map:<layer>"``, ``"sem:<layer>"``).
    """
    import pandas as pd

    from rfkit.report.provenance import with_provenance

    folder = Path(folder)
    header = run_header(result) if header is None else header
    written = {}
    rows = erf_rows(result, statuses)
    frame = with_provenance(pd.DataFrame(rows), header)
    written["csv"] = atomic_write_text(folder / "erf.csv", frame.to_csv(index=False))
    doc = {"run": header, "layers": {r["layer"]: plain(r) for r in rows}}
    written["json"] = atomic_write_text(folder / "metrics.json", json.dumps(doc, indent=2) + "\n")
    for layer in result.layers:
        path = folder / "maps" / f"{layer_filename(layer)}.npy"
        with atomic_path(path) as tmp:
            np.save(tmp, result.maps[layer])
        written[f"map:{layer}"] = path
        if layer in getattr(result, "sem", {}):
            path = folder / "maps" / f"{layer_filename(layer)}.sem.npy"
            with atomic_path(path) as tmp:
                np.save(tmp, result.sem[layer])
            written[f"sem:{layer}"] = path
    return written


CONVERGENCE = "figures/convergence.png"
"""The figure of the ERF size in pixels against images seen (:mod:`rfkit.report.figures.convergence`)."""


def write_convergence(result, folder) -> dict[str, Path]:
    """``figures/convergence.png`` in ``folder`` when the run has convergence curves (``{"convergence": path}``;
    empty otherwise)."""
    if not getattr(result, "convergence", None):
        return {}
    from rfkit.report.figures.convergence import save_convergence

    return with_captions("convergence", save_convergence(result, Path(folder) / CONVERGENCE))


PANELS = "figures/panels.png"
"""The figure with a heat-map panel per measured layer, each divided by its own maximum (shapes, as in
RepLKNet's Fig. 1 and get_model_erf.py; :mod:`rfkit.report.figures.stage_grid`)."""


def write_panels(result, folder) -> dict[str, Path]:
    """``figures/panels.png`` in ``folder``: one panel per layer, each on its own scale (``{"panels": path}``);
    ``rfkit analyze``'s ``stages.png`` puts them on one scale instead."""
    from rfkit.report.figures.stage_grid import save_stage_grid

    return with_captions("panels", save_stage_grid(result, Path(folder) / PANELS, shared=False))


def with_captions(key: str, figure: Path) -> dict[str, Path]:
    """``{key: figure}`` and the figure's caption pair under ``key.caption.md`` and ``key.caption.tex``."""
    from rfkit.report.figures.captions import written_captions

    return {key: figure, **{f"{key}{p.name[len(figure.stem) :]}": p for p in written_captions(figure)}}


MANIFEST = ".rfkit-erf.json"
_OWN_NAME = re.compile(
    r"erf\.csv|metrics\.json|maps/[A-Za-z0-9_.-]+\.npy|figures/(convergence|panels)(\.png|\.caption\.md|\.caption\.tex)"
)


def _manifest(folder: Path) -> set[str]:
    """The files an earlier :func:`save_erf` wrote in ``folder`` (relative paths of rfkit's own names); an
    unreadable manifest lists none."""
    return read_manifest(folder / MANIFEST, _OWN_NAME) or set()


def check_erf_folder(folder, layers=()) -> Path:
    """Make sure :func:`save_erf` can write into ``folder`` without touching what it did not write; returns it.

    Call it before measuring: the folder is created and probed, and refused (:class:`~rfkit.io.OutputError`,
    one line) when it cannot be written, holds a finished ``rfkit analyze`` report (``run.json``), or already
    holds an ``erf.csv``, ``metrics.json`` or ``maps/<layer>.npy`` that rfkit did not write there.
    """
    folder = Path(folder)
    return check_output_folder(
        folder, "rfkit erf", _names(layers), _manifest(folder), MANIFEST, subfolders=("maps", "figures")
    )


def _names(layers) -> set[str]:
    """The files :func:`save_erf` may write for ``layers``."""
    from rfkit.report.figures.captions import caption_paths

    stems = [layer_filename(x) for x in layers]
    return {
        "erf.csv",
        "metrics.json",
        CONVERGENCE,
        PANELS,
        *(str(p) for figure in (CONVERGENCE, PANELS) for p in caption_paths(PurePosixPath(figure))),
        *(f"maps/{s}.npy" for s in stems),
        *(f"maps/{s}.sem.npy" for s in stems),
    }


def save_erf(result, folder, statuses: dict | None = None) -> dict[str, Path]:
    """Write ``erf.csv``, ``metrics.json``, ``maps/<layer>.npy`` (raw maps), ``maps/<layer>.sem.npy`` (their
    standard errors), ``figures/panels.png`` (a panel per layer: :func:`write_panels`) and
    ``figures/convergence.png`` (:func:`write_convergence`) into ``folder``, each atomically, and list them
    in ``folder/.rfkit-erf.json``.

    Rerun into the same folder, it replaces its own files and removes the maps of layers the earlier run
    measured and this one did not (only those the manifest lists). It never overwrites or removes a file it
    did not write, and never writes into a finished ``rfkit analyze`` report (:func:`check_erf_folder`).

    Returns the paths written, by kind.
    """
    folder = check_erf_folder(folder, result.layers)
    before = _manifest(folder)
    _write_manifest(folder, before | _names(result.layers))  # first: a run killed while writing still owns its files
    written = (
        write_erf_files(result, folder, statuses) | write_panels(result, folder) | write_convergence(result, folder)
    )
    mine = {p.relative_to(folder).as_posix() for p in written.values()}
    remove_stale(folder, before, mine)  # maps of an earlier run into the same folder
    _write_manifest(folder, mine)
    return written


def _write_manifest(folder: Path, files) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps({"files": sorted(files)}, indent=2) + "\n")


def summary_rows(result, statuses: dict | None = None) -> list[dict[str, str]]:
    """:func:`summary_row` of every measured layer of an :class:`~rfkit.effective.result.ERFResult`."""
    return [summary_row(row) for row in erf_rows(result, statuses)]
