"""An :class:`~rfkit.erf.result.ERFResult` as files: one row per layer (CSV), everything (JSON), raw maps
(NPY). Every file is written atomically."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from rfkit.io import atomic_path, atomic_write_text


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


def _short(v, digits: int = 2) -> str:
    if v is None or v == "inf" or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}f}"
    return str(int(v)) if isinstance(v, (int, float)) else str(v)


def rf_label(row: dict) -> str:
    """``"427×427"``, or ``"global (local 16×16)"`` for a layer that sees the whole input, from an
    :func:`erf_rows` row (or its JSON form).

    >>> rf_label({"is_global": True, "rf_local_h": 16, "rf_local_w": 16}), rf_label({"rf_h": 7, "rf_w": 5})
    ('global (local 16×16)', '7×5')
    """
    if row.get("is_global"):
        local = row.get("rf_local_h")
        return "global" + (f" (local {_short(local)}×{_short(row.get('rf_local_w'))})" if local is not None else "")
    return f"{_short(row.get('rf_h'))}×{_short(row.get('rf_w'))}"


def ratio_label(row: dict) -> str:
    """ERF/RF per axis, or for a global layer (whose RF is the input) ERF/input, labelled.

    >>> ratio_label({"erf_rf_ratio_h": 0.5, "erf_rf_ratio_w": 0.25})
    '0.50×0.25'
    >>> ratio_label({"is_global": True, "erf_input_ratio_h": 0.9, "erf_input_ratio_w": 0.9})
    '0.90×0.90 of the input'
    """
    if row.get("is_global") or row.get("erf_rf_ratio_h") is None:
        if row.get("erf_input_ratio_h") is None:
            return "–"
        return f"{_short(row.get('erf_input_ratio_h'))}×{_short(row.get('erf_input_ratio_w'))} of the input"
    return f"{_short(row.get('erf_rf_ratio_h'))}×{_short(row.get('erf_rf_ratio_w'))}"


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
        row = {"model": result.model, "layer": layer or "<output>", "node": result.nodes[layer],
               "unit_h": result.unit[layer][0], "unit_w": result.unit[layer][-1],
               "grid_h": result.grid[layer][0], "grid_w": result.grid[layer][-1],
               "center_y": result.center[layer][0], "center_x": result.center[layer][-1],
               "rf_h": info.size[0], "rf_w": info.size[-1],
               "rf_local_h": (info.local_size or (math.nan,))[0], "rf_local_w": (info.local_size or (math.nan,))[-1],
               "stride_h": info.stride[0], "stride_w": info.stride[-1], "is_global": info.is_global}
        if statuses is not None:
            row["status"] = statuses.get(layer, "")
        metrics = result.metrics.get(layer)
        if metrics is not None:
            row.update(metrics.as_dict())
        rows.append(row)
    return rows


def save_erf(result, folder, statuses: dict | None = None) -> dict[str, Path]:
    """Write ``erf.csv``, ``metrics.json`` and ``maps/<layer>.npy`` (raw maps) into ``folder``.

    Returns the paths written, by kind.
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
    mine = {p.name for k, p in written.items() if k.startswith("map:")}
    for stale in (folder / "maps").glob("*.npy"):  # maps of an earlier run into the same folder
        if stale.name not in mine:
            stale.unlink()
    return written
