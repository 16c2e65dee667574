"""An :class:`~rfkit.erf.result.ERFResult` as files: one row per layer (CSV), everything (JSON), raw maps
(NPY). Every file is written atomically; :func:`save_erf` writes only its own files into a folder
(listed in ``.rfkit-erf.json``)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from rfkit.io import OutputError, atomic_path, atomic_write_text, check_writable


def layer_filename(layer: str) -> str:
    """A file-name-safe stem for a layer name (``""`` is the model's output).

    >>> layer_filename("stages.3.blocks.2"), layer_filename(""), layer_filename("a/b c")
    ('stages.3.blocks.2', 'output', 'a_b_c')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", layer) or "output"


def _plain(v):
    """JSON-friendly: tuples to lists, numpy scalars to Python, non-finite floats to None."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def run_header(result) -> dict:
    """What was run: model, weights actually used, images, input size, method, rfkit version."""
    import rfkit

    w = result.weights
    return {
        "model": result.model,
        "weights": getattr(w, "description", str(w)),
        "weights_kind": getattr(w, "kind", None),
        "method": result.method,
        "images": getattr(result.images, "source", str(result.images)),
        "num_images": result.num_images,
        "input_size": list(result.input_size),
        "data_config": _plain(result.data_config),
        "device": result.device,
        "rfkit_version": rfkit.__version__,
        "warnings": list(result.warnings),
    }


def erf_rows(result, statuses: dict | None = None) -> list[dict]:
    """One flat row per measured layer: the analytic RF of the measured unit and every ERF metric."""
    rows = []
    for layer in result.layers:
        info = result.rf(layer)
        row = {
            "model": result.model,
            "layer": layer or "<output>",
            "node": result.nodes[layer],
            "unit_h": result.unit[layer][0],
            "unit_w": result.unit[layer][-1],
            "grid_h": result.grid[layer][0],
            "grid_w": result.grid[layer][-1],
            "center_y": result.center[layer][0],
            "center_x": result.center[layer][-1],
            "rf_h": info.size[0],
            "rf_w": info.size[-1],
            "rf_local_h": (info.local_size or (math.nan,))[0],
            "rf_local_w": (info.local_size or (math.nan,))[-1],
            "stride_h": info.stride[0],
            "stride_w": info.stride[-1],
            "is_global": info.is_global,
        }
        if statuses is not None:
            row["status"] = statuses.get(layer, "")
        metrics = result.metrics.get(layer)
        if metrics is not None:
            row.update(metrics.as_dict())
        rows.append(row)
    return rows


def write_erf_files(result, folder, statuses: dict | None = None) -> dict[str, Path]:
    """Write ``erf.csv``, ``metrics.json`` and ``maps/<layer>.npy`` (raw maps) into ``folder``, a folder
    rfkit owns (``rfkit analyze`` builds its report in a new one; in any other folder use :func:`save_erf`).

    Returns the paths written, by kind (``"csv"``, ``"json"``, ``"map:<layer>"``).
    """
    import pandas as pd

    folder = Path(folder)
    written = {}
    rows = erf_rows(result, statuses)
    written["csv"] = atomic_write_text(folder / "erf.csv", pd.DataFrame(rows).to_csv(index=False))
    doc = {"run": run_header(result), "layers": {r["layer"]: _plain(r) for r in rows}}
    written["json"] = atomic_write_text(folder / "metrics.json", json.dumps(doc, indent=2) + "\n")
    for layer in result.layers:
        path = folder / "maps" / f"{layer_filename(layer)}.npy"
        with atomic_path(path) as tmp:
            np.save(tmp, result.maps[layer])
        written[f"map:{layer}"] = path
    return written


MANIFEST = ".rfkit-erf.json"
_OWN_NAME = re.compile(r"erf\.csv|metrics\.json|maps/[A-Za-z0-9_.-]+\.npy")


def _manifest(folder: Path) -> set[str]:
    """The files an earlier :func:`save_erf` wrote in ``folder`` (relative paths of rfkit's own names)."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return set()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = doc.get("files") if isinstance(doc, dict) else None
    return {f for f in files if isinstance(f, str) and _OWN_NAME.fullmatch(f)} if isinstance(files, list) else set()


def _foreign(folder: Path, names, mine: set[str]) -> list[str]:
    """Those of ``names`` that exist in ``folder`` but rfkit did not write (or that are not plain files)."""
    return [
        n
        for n in names
        if os.path.lexists(folder / n) and (n not in mine or (folder / n).is_symlink() or not (folder / n).is_file())
    ]


def check_erf_folder(folder, layers=()) -> Path:
    """Make sure :func:`save_erf` can write into ``folder`` without touching what it did not write; returns it.

    Call it before measuring: the folder is created and probed, and refused (:class:`~rfkit.io.OutputError`,
    one line) when it cannot be written, holds a finished ``rfkit analyze`` report (``run.json``), or already
    holds an ``erf.csv``, ``metrics.json`` or ``maps/<layer>.npy`` that rfkit did not write there.
    """
    from rfkit.report.analyze import DONE_MARKER

    folder = Path(folder)
    for f in (folder, folder.parent):
        if os.path.lexists(f / DONE_MARKER):
            raise OutputError(
                f"{f} holds a finished `rfkit analyze` report ({DONE_MARKER}); rfkit erf does not write "
                "into it: choose another --out"
            )
    check_writable(folder)
    maps = folder / "maps"
    if os.path.lexists(maps) and (maps.is_symlink() or not maps.is_dir()):
        raise OutputError(f"{maps} is not a folder rfkit wrote; choose another --out, or move it away")
    names = ["erf.csv", "metrics.json", *(f"maps/{layer_filename(x)}.npy" for x in layers)]
    foreign = _foreign(folder, names, _manifest(folder))
    if foreign:
        raise OutputError(
            f"{folder} already holds {', '.join(foreign)} that rfkit did not write (no {MANIFEST} lists "
            "them); rfkit does not overwrite them: choose another --out, or move them away"
        )
    return folder


def save_erf(result, folder, statuses: dict | None = None) -> dict[str, Path]:
    """Write ``erf.csv``, ``metrics.json`` and ``maps/<layer>.npy`` (raw maps) into ``folder``, each
    atomically, and list them in ``folder/.rfkit-erf.json``.

    Rerun into the same folder, it replaces its own files and removes the maps of layers the earlier run
    measured and this one did not (only those the manifest lists). It never overwrites or removes a file it
    did not write, and never writes into a finished ``rfkit analyze`` report (:func:`check_erf_folder`).

    Returns the paths written, by kind.
    """
    folder = check_erf_folder(folder, result.layers)
    before = _manifest(folder)
    planned = {"erf.csv", "metrics.json", *(f"maps/{layer_filename(x)}.npy" for x in result.layers)}
    _write_manifest(folder, before | planned)  # first: a run killed while writing still owns its files
    written = write_erf_files(result, folder, statuses)
    mine = {p.relative_to(folder).as_posix() for p in written.values()}
    for stale in sorted(before - mine):  # maps of an earlier run into the same folder
        path = folder / stale
        if path.is_file() and not path.is_symlink():
            path.unlink()
    _write_manifest(folder, mine)
    return written


def _write_manifest(folder: Path, files) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps({"files": sorted(files)}, indent=2) + "\n")
