"""What every writer of rfkit's output folders shares: JSON-friendly values, the run header of a result,
manifests of the files rfkit wrote, and the checks that keep it from overwriting anything else
(``rfkit erf --out``, ``rfkit attribute --out``)."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from rfkit.io import OutputError, check_writable, file_sha256
from rfkit.models.spec import shown_spec
from rfkit.report.report_folder import DONE_MARKER
from rfkit.version import __version__


def layer_filename(layer: str) -> str:
    """A file-name-safe stem for a layer name (``""`` is the model's output).

    >>> layer_filename("stages.3.blocks.2"), layer_filename(""), layer_filename("a/b c")
    ('stages.3.blocks.2', 'output', 'a_b_c')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", layer) or "output"


def plain(v):
    """``v`` made JSON-friendly: tuples to lists, numpy scalars to Python, NaN to None, infinities to the
    strings ``"inf"``/``"-inf"`` (which :mod:`rfkit.formatting` reads back as infinities), anything
    else that JSON cannot hold to its ``str``.

    >>> plain({"a": (1, np.float64(2.5)), "b": float("inf"), "c": float("nan"), 3: Path("x")})
    {'a': [1, 2.5], 'b': 'inf', 'c': None, '3': 'x'}
    """
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def run_header(result, source: str | None = None) -> dict:
    """What was run, as every output's header records it: model, the weights actually used (description,
    kind, pretrained tag, the checkpoint's file name and SHA-256), images (``source``, default
    ``result.images.source``) and how many, input size, data config, device, rfkit version, the run's seed,
    when it finished (UTC) and its warnings. :func:`rfkit.report.provenance.provenance` makes the CSV
    columns of every row from it."""
    w = result.weights
    path = getattr(w, "path", None)
    return {
        "model": result.model,
        "weights": getattr(w, "description", str(w)),
        "weights_kind": getattr(w, "kind", None),
        "weights_tag": getattr(w, "tag", None),
        "weights_file": Path(path).name if path else None,
        "weights_sha256": checkpoint_sha256(path) if path else None,
        "images": source if source is not None else getattr(result.images, "source", str(result.images)),
        "num_images": result.num_images,
        "input_size": list(result.input_size),
        "data_config": plain(result.data_config),
        "device": result.device,
        "rfkit_version": __version__,
        "seed": run_seed(result),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "warnings": list(result.warnings),
    }


def graph_header(graph, model) -> dict:
    """The run record of an analytic RF graph alone (``rfkit graph --csv``): the model, the input size it
    was traced at, rfkit's version and the time; no weights (the trace runs on the meta device) and no
    images."""
    return {
        "model": shown_spec(model) if isinstance(model, str) else type(model).__name__,
        "weights": "none (analytic RF, traced without weights)",
        "weights_kind": None,
        "input_size": list(graph.input_size),
        "rfkit_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_seed(result) -> int | None:
    """The seed a result was measured with: an ERF run's (kept with its bootstrap settings) or a
    contribution-map run's (its settings); None when it records none."""
    seed = (getattr(result, "bootstrap", None) or {}).get("seed")
    return seed if seed is not None else getattr(getattr(result, "settings", None), "seed", None)


def checkpoint_sha256(path) -> str | None:
    """The SHA-256 of the checkpoint file ``path`` (hex), computed once per file version; None when the
    file cannot be read any more."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def read_manifest(path, own_name: re.Pattern) -> set[str] | None:
    """The files an earlier run listed in the manifest ``path`` (a JSON object whose ``files`` is a list of
    relative paths), keeping only those matching ``own_name`` (rfkit's own file names).

    Returns
    -------
    set of str, or None
        The empty set when there is no manifest; None when a file is there but is not rfkit's (a symlink,
        not JSON, no ``files`` list).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return set()
    try:
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError):
        doc = None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str) and own_name.fullmatch(f)}


def foreign_files(folder, names, mine: set[str]) -> list[str]:
    """Those of ``names`` (relative paths) that exist in ``folder`` but are not among ``mine`` (the files
    rfkit wrote there), or are not plain files (a symlink, a folder)."""
    folder = Path(folder)
    return [
        n
        for n in names
        if os.path.lexists(folder / n) and (n not in mine or (folder / n).is_symlink() or not (folder / n).is_file())
    ]


def refuse_finished_report(folder, command: str) -> None:
    """Raise :class:`~rfkit.io.OutputError` when ``folder`` or its parent holds a finished ``rfkit analyze``
    report: ``command`` (``"rfkit erf"``) never writes into one."""

    folder = Path(folder)
    for f in (folder, folder.parent):
        if os.path.lexists(f / DONE_MARKER):
            raise OutputError(
                f"{f} holds a finished `rfkit analyze` report ({DONE_MARKER}); {command} does not write "
                "into it: choose another --out"
            )


def check_output_folder(folder, command: str, names, listed: set[str] | None, manifest: str, subfolders=()) -> Path:
    """Make sure ``command`` can write ``names`` into ``folder`` without touching what it did not write;
    returns the folder (created and probed).

    Parameters
    ----------
    folder : str or Path
    command : str
        The writer, named in the messages (``"rfkit attribute"``).
    names : iterable of str
        The relative paths it will write.
    listed : set of str, or None
        What the folder's manifest lists (:func:`read_manifest`); None: the manifest is not rfkit's.
    manifest : str
        The manifest's file name.
    subfolders : iterable of str
        Folders it writes into, which must be real folders if they exist.

    Raises
    ------
    OutputError
        One line: ``folder`` holds a finished ``rfkit analyze`` report, cannot be written, has a subfolder
        that is not a folder, a manifest that is not rfkit's, or one of ``names`` that rfkit did not write.
    """
    folder = Path(folder)
    refuse_finished_report(folder, command)
    check_writable(folder)
    for sub in subfolders:
        if os.path.lexists(folder / sub) and ((folder / sub).is_symlink() or not (folder / sub).is_dir()):
            raise OutputError(f"{folder / sub} is not a folder rfkit wrote; choose another --out, or move it away")
    if listed is None:
        raise OutputError(f"{folder / manifest} was not written by {command}; choose another --out, or move it away")
    foreign = foreign_files(folder, names, listed)
    if foreign:
        raise OutputError(
            f"{folder} already holds {', '.join(foreign)} that rfkit did not write (no {manifest} lists "
            "them); rfkit does not overwrite them: choose another --out, or move them away"
        )
    return folder


def remove_stale(folder, before: set[str], mine: set[str]) -> None:
    """Remove the files an earlier run listed (``before``) that this run did not write (``mine``): plain
    files only."""
    folder = Path(folder)
    for stale in sorted(before - mine):
        path = folder / stale
        if path.is_file() and not path.is_symlink():
            path.unlink()
