"""``rfkit.collect`` / ``rfkit collect DIR... -o all.csv``: the rows of many report folders as one tidy table.

A row per model × measured layer: the provenance columns of its run (:mod:`rfkit.report.provenance`), the
report folder's name (``report``), then the row of the report's ``erf.csv`` (the analytic RF of the measured
unit and every ERF metric) joined with the columns of the layer's node in ``layers.csv`` that ``erf.csv``
lacks (op, module, shape, minimum RF, centre, effective padding, period, flags). Nothing is left out
silently: a folder that is not a report, or whose files cannot be read as rfkit's, is listed with its reason
(:class:`Skipped`), and the others are collected.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import rfkit.validate as validate
from rfkit.errors import CollectError, CollectWarning
from rfkit.formatting import one_line
from rfkit.io import OutputError, atomic_write_text
from rfkit.report.provenance import COLUMNS as PROVENANCE
from rfkit.report.provenance import with_provenance
from rfkit.report.report_folder import DONE_MARKER
from rfkit.report.transaction import temp_folders

if TYPE_CHECKING:
    import pandas as pd

REPORT = "report"
"""The column naming each row's report folder (its name, not its path), after the provenance columns."""


@dataclass(frozen=True)
class Skipped:
    """A folder :func:`collect` left out, and why (one line)."""

    folder: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.folder}: {self.reason}"


def collect(dirs, on_skip: Callable[[Skipped], None] | None = None):
    """The rows of every report folder among ``dirs`` as one :class:`pandas.DataFrame`.

    Parameters
    ----------
    dirs : path or iterable of paths
        Report folders written by ``rfkit analyze`` (holding ``run.json``), or folders searched for them
        (subfolders, recursively; symbolic links and hidden folders are not followed).
    on_skip : callable, optional
        Called with each :class:`Skipped` folder; default: a :class:`CollectWarning` each.

    Returns
    -------
    pandas.DataFrame
        A row per model × measured layer (module docstring); ``frame.attrs["skipped"]`` lists the
        :class:`Skipped` folders, ``frame.attrs["reports"]`` counts the reports collected.

    Raises
    ------
    CollectError
        None of ``dirs`` holds a report that can be read (one line listing why each folder was skipped).
    ArgumentError
        ``dirs`` is not a path or a list of paths.

    Examples
    --------
    >>> import rfkit
    >>> frame = rfkit.collect(["rfkit-reports"])  # doctest: +SKIP
    >>> frame.groupby(["model_name", "weights", "weights_source"])["erf_rf_ratio_h"].mean()  # doctest: +SKIP
    """
    import pandas as pd

    reports, skipped = find_reports(validate.paths(dirs, "dirs"))
    frames = []
    for folder, label in reports.items():
        try:
            frames.append(report_frame(folder, label))
        except ValueError as e:
            skipped.append(Skipped(folder, one_line(e)))
    if not frames:
        raise CollectError(f"no report to collect: {_listed(skipped) or 'no folder given'}; {_HINT}")
    for s in skipped:
        if on_skip is None:
            warnings.warn(str(s), CollectWarning, stacklevel=2)
        else:
            on_skip(s)
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["skipped"] = skipped
    frame.attrs["reports"] = len(frames)
    return frame


_HINT = f"give report folders written by `rfkit analyze` (holding {DONE_MARKER}), or folders holding them"
_LISTED = 5


def _listed(skipped: list[Skipped]) -> str:
    """The first :data:`_LISTED` skipped folders and their reasons, on one line."""
    more = len(skipped) - _LISTED
    return "; ".join(one_line(s) for s in skipped[:_LISTED]) + (f"; and {more} more" if more > 0 else "")


def find_reports(dirs: Iterable) -> tuple[dict[Path, str], list[Skipped]]:
    """The report folders among ``dirs`` and below them, each once, in the order found, with their labels
    (:func:`report_label`); and the folders left out: a path that does not exist or is not a folder, a
    folder holding no report, a symbolic link (not followed), a report rfkit is still writing or that a
    killed run left (``.NAME.partial-…``)."""
    found: dict[Path, str] = {}
    skipped: list[Skipped] = []
    for d in map(Path, dirs):
        if not os.path.lexists(d):
            skipped.append(Skipped(d, "does not exist"))
        elif not d.is_dir():
            skipped.append(Skipped(d, "is not a folder"))
        else:
            reports, missed = _search(d)
            for p in reports:
                found.setdefault(p.resolve(), report_label(d, p))
            skipped += missed
    return found, skipped


def report_label(given: Path, folder: Path) -> str:
    """The ``report`` column of the rows of ``folder``, found in the folder ``given``: the path from
    ``given``'s parent (``runs/random/resnet50`` given ``runs``), so that two reports of one model in two
    folders are told apart, and no absolute path is written.

    >>> report_label(Path("/data/runs"), Path("/data/runs/random/resnet50")), report_label(Path("r50"), Path("r50"))
    ('runs/random/resnet50', 'r50')
    """
    top = given.name or given.resolve().name
    rest = folder.relative_to(given).as_posix()
    return top if rest == "." else f"{top}/{rest}"


def _search(folder: Path) -> tuple[list[Path], list[Skipped]]:
    """The reports in and below ``folder``, and the folders below it left out (the folder itself, once,
    when nothing below it is a report)."""
    if os.path.lexists(folder / DONE_MARKER):
        return [folder], []
    try:
        children = sorted(c for c in folder.iterdir() if c.is_dir())
    except OSError as e:
        return [], [Skipped(folder, f"cannot be read: {e.strerror or e}")]
    partial = {p.name for p, *_ in temp_folders(folder)}
    reports: list[Path] = []
    skipped: list[Skipped] = []
    for c in children:
        if c.name in partial:
            skipped.append(Skipped(c, "a report rfkit is still writing, or one a killed run left unfinished"))
        elif c.name.startswith("."):
            continue  # hidden: not rfkit's (.git, caches)
        elif c.is_symlink():
            skipped.append(Skipped(c, "a symbolic link, not followed: give the folder it points to"))
        else:
            r, s = _search(c)
            reports += r
            skipped += s
    if reports:
        return reports, skipped
    return [], skipped or [Skipped(folder, f"not a report folder (no {DONE_MARKER} in it or below)")]


def run_record(folder) -> dict:
    """The run record of the report in ``folder``: its ``run.json``, read and checked as the site reads it
    (:func:`rfkit.report.site.load_analysis`, :mod:`rfkit.report.schema`: the keys the provenance columns read
    among them).

    Raises ``ValueError`` (one line) when it cannot be read as rfkit's.
    """
    from rfkit.report.site import load_analysis

    return load_analysis(folder).header


def _read_csv(path: Path, **kwargs):
    """A CSV file of a report as a DataFrame; ``ValueError`` (one line) when it is missing, not a regular
    file, or not CSV."""
    import pandas as pd

    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path.name} {'is not a regular file' if os.path.lexists(path) else 'is missing'}")
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as e:  # pandas' parser and decoding errors are ValueErrors
        raise ValueError(f"cannot read {path.name}: {one_line(e) or type(e).__name__}") from None


def report_frame(folder, label: str | None = None) -> pd.DataFrame:
    """The rows of one report folder (see the module docstring), ``label`` in the ``report`` column
    (default: the folder's name); ``ValueError`` (one line) when its ``run.json``, ``erf.csv`` or
    ``layers.csv`` cannot be read as rfkit's."""
    import pandas as pd

    folder = Path(folder)
    header = run_record(folder)
    erf = _read_csv(folder / "erf.csv", dtype={"layer": str, "node": str}, keep_default_na=False, na_values=[""])
    layers = _read_csv(folder / "layers.csv", dtype={"node": str}, keep_default_na=False, na_values=[""])
    for name, frame in (("erf.csv", erf), ("layers.csv", layers)):
        if "node" not in frame.columns:
            raise ValueError(f"{name} has no 'node' column")
    if erf.empty:
        raise ValueError("erf.csv has no rows")
    erf = erf.drop(columns=[c for c in PROVENANCE if c in erf.columns])
    extra = [c for c in layers.columns if c not in erf.columns and c not in PROVENANCE]
    joined = erf.merge(layers[["node", *extra]], on="node", how="left", validate="many_to_one")
    report = pd.DataFrame({REPORT: label or folder.name}, index=joined.index)
    return with_provenance(pd.concat([report, joined], axis=1), header)


def collected_by_rfkit(path) -> bool:
    """Whether ``path`` is a CSV file that ``rfkit collect`` wrote: a regular file whose first line starts
    with the provenance columns and the report column."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except (OSError, ValueError):
        return False
    return first.startswith(",".join([*PROVENANCE, REPORT]) + ",")


def write_collected(frame, path) -> Path:
    """Write a :func:`collect` frame to the CSV file ``path`` atomically; returns ``path``.

    Raises
    ------
    OutputError
        ``path`` exists and is not a CSV file ``rfkit collect`` wrote (rfkit never replaces it), or cannot
        be written.
    """
    path = Path(path)
    if os.path.lexists(path) and not collected_by_rfkit(path):
        raise OutputError(
            f"{path} exists and rfkit collect did not write it; rfkit does not replace it: choose another "
            "-o, or move it away"
        )
    try:
        return atomic_write_text(path, frame.to_csv(index=False))
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose another -o") from None


def describe(frame: pd.DataFrame) -> str:
    """One line: how many rows, models and reports a :func:`collect` frame holds."""
    return f"{len(frame)} row(s) of {frame[REPORT].nunique()} report(s), {frame['model_name'].nunique()} model(s)"
