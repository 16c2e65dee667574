"""An :class:`~rfkit.attribution.result.AttributionResult` as files in a folder:

- ``maps/<method>.npy``: the raw maps, ``(N, H, W)`` float32 (:func:`method_filename` names the file:
  ``gradcam++`` -> ``gradcam_pp``, ``gradcam*saliency`` -> ``gradcam_x_saliency``);
- ``attribution.csv``: one row per image and method: the provenance columns (:mod:`rfkit.report.provenance`),
  then image, label, target, method, score, completeness error, share outside the RF window,
  deletion/insertion AUC, sanity rank correlation;
- ``figures/grid.png``: rows = images, columns = input + methods (:mod:`rfkit.report.figures.attribution`),
  in the report or the paper style (then also ``grid.pdf`` and ``grid.svg``), maps normalised per image or per
  column;
- ``report.md``: what was run, the figure, per-method summaries and warnings, all user text escaped;
- ``attribution.json``: what was run, what the grid drew (``figure``: a
  :class:`~rfkit.report.figures.attribution.GridRecord`) and the list of files this run wrote, written last.

:func:`save_attribution` writes the folder as one transaction (:mod:`rfkit.report.transaction`): built beside
it under a hidden partial name and renamed into place when complete, so an interrupted run leaves the earlier
folder whole (its report.md with its own maps), and the next run removes what a killed one left. It replaces
only a folder it wrote itself: an ``attribution.json`` listing every file there. Any other folder, or one
holding a file the manifest does not list, is refused, as is a folder inside a finished ``rfkit analyze``
report.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from rfkit.formatting import MISSING, fixed, mean
from rfkit.io import OutputError, atomic_path, atomic_write_text, check_writable, safe_name
from rfkit.report.erf_files import with_captions
from rfkit.report.escape import md_code, md_table, md_text
from rfkit.report.figures import attribution as figures
from rfkit.report.figures.attribution import grid_record
from rfkit.report.figures.labels import is_random
from rfkit.report.files import plain, read_manifest, refuse_finished_report
from rfkit.report.files import run_header as base_header
from rfkit.report.provenance import with_provenance
from rfkit.report.report_folder import folder_name
from rfkit.report.transaction import folder_transaction, remove_abandoned_folders

MANIFEST = "attribution.json"
SUBFOLDERS = ("maps", "figures")
_OWN_NAME = re.compile(
    r"attribution\.csv|report\.md|figures/grid(\.png|\.pdf|\.svg|\.caption\.md|\.caption\.tex)|maps/[A-Za-z0-9_.-]+\.npy"
)


def method_filename(method: str) -> str:
    """A file-name-safe stem for a method name.

    >>> method_filename("gradcam++"), method_filename("gradcam*saliency"), method_filename("ig")
    ('gradcam_pp', 'gradcam_x_saliency', 'ig')
    """
    return safe_name(method.replace("++", "_pp").replace("*", "_x_"), fallback="method")


#: The folder ``rfkit attribute`` writes to without ``--out``: beside the analyze reports, not inside one.
DEFAULT_PARENT = "rfkit-reports"
SUFFIX = "-attribution"


def default_folder(model, parent=DEFAULT_PARENT) -> Path:
    """Where ``rfkit attribute MODEL`` writes without ``--out``: ``rfkit-reports/<model>-attribution/``, the
    model's name as its ``rfkit analyze`` report folder has it (:func:`rfkit.report.report_folder.folder_name`) plus
    ``-attribution``. A finished analyze report is a transaction of its own and is never written into; its
    ``attribution/`` section comes from ``rfkit analyze --attribution``.

    >>> default_folder("resnet50.a1_in1k").as_posix(), default_folder("torchvision:vgg16", "out").as_posix()
    ('rfkit-reports/resnet50.a1_in1k-attribution', 'out/torchvision-vgg16-attribution')
    """

    return Path(parent) / f"{folder_name(model)}{SUFFIX}"


def check_attribution_folder(folder) -> Path:
    """Make sure :func:`save_attribution` may write ``folder``: it does not exist, is empty, or is a folder
    ``rfkit attribute`` wrote (its ``attribution.json`` lists every file in it), which is then replaced as a
    whole; returns it. Its parent is created and probed.

    Raises
    ------
    OutputError
        One line: the folder lies in a finished ``rfkit analyze`` report, its parent cannot be written, or it
        holds anything rfkit did not write there (named).
    """
    folder = Path(folder)
    refuse_finished_report(folder, "rfkit attribute")
    check_writable(folder.parent)
    if not os.path.lexists(folder):
        return folder
    if folder.is_symlink() or not folder.is_dir():
        raise OutputError(f"{folder} is not a folder rfkit wrote; rfkit does not replace it: choose another --out")
    if not any(folder.iterdir()):
        return folder
    listed = read_manifest(folder / MANIFEST, _OWN_NAME) if (folder / MANIFEST).is_file() else None
    if listed is None:
        raise OutputError(
            f"{folder} exists and is not an `rfkit attribute` folder (no {MANIFEST}); rfkit does not replace "
            "it: choose another --out, or move it away"
        )
    foreign = _unlisted(folder, listed | {MANIFEST})
    if foreign:
        raise OutputError(
            f"{folder} holds {', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''} that rfkit did not write "
            f"({MANIFEST} does not list them); rfkit replaces its folder as a whole and never removes what it "
            "did not write: choose another --out, or move them away"
        )
    return folder


def _unlisted(folder: Path, listed: set[str]) -> list[str]:
    """The entries under ``folder`` (relative paths) that are not ``listed`` files or their two subfolders;
    a symlink is never rfkit's."""
    out = []
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not (rel in SUBFOLDERS and path.is_dir() or rel in listed and path.is_file()):
                out.append(rel)
        dirs[:] = [d for d in dirs if (Path(root) / d).relative_to(folder).as_posix() in SUBFOLDERS]
    return out


def _finished(folder: Path) -> bool:
    """Whether ``folder`` holds the manifest of a complete ``rfkit attribute`` run."""
    return (folder / MANIFEST).is_file() and read_manifest(folder / MANIFEST, _OWN_NAME) is not None


def run_header(result) -> dict:
    """What was run: model, weights, images, input size, targets, methods, CAM layer, settings, RF window."""
    return {
        **base_header(result, source=result.source),
        "targets": [t.label for t in result.targets],
        "methods": result.methods,
        "cam_layer": result.cam_layer,
        "cam_note": result.cam_note,
        "settings": plain(result.settings.as_dict()),
        "rf_window": plain(result.window),
    }


def save_attribution(
    result, folder, *, figure: bool = True, style: str = "report", normalise: str = "image"
) -> dict[str, Path]:
    """Write the maps, ``attribution.csv``, ``figures/grid.png``, ``report.md`` and ``attribution.json`` as the
    folder ``folder`` (checked with :func:`check_attribution_folder`), in one transaction: built beside it
    and renamed into place when complete (an earlier folder of rfkit's there is replaced whole). What runs
    killed while writing it left is removed first.

    Parameters
    ----------
    result : AttributionResult
    folder : str or Path
    figure : bool
        Draw the grid.
    style : {"report", "paper"}
        The grid's style (:data:`rfkit.report.figures.looks.STYLES`; paper: also ``grid.pdf`` and ``grid.svg``).
    normalise : {"image", "column"}
        Each map by its own scale, or each method's column by one
        (:func:`rfkit.report.figures.attribution.attribution_grid`).

    Returns
    -------
    dict
        The paths written, by kind: ``"csv"``, ``"report"``, ``"figure"`` (and ``"figure.pdf"``,
        ``"figure.svg"`` in the paper style), ``"manifest"``, ``"map:<method>"``.
    """
    folder = check_attribution_folder(folder)
    remove_abandoned_folders(folder.parent, _finished, folder.name)
    with folder_transaction(folder, check_attribution_folder) as tmp:
        written = write_attribution(result, tmp, figure=figure, style=style, normalise=normalise)
    return {kind: folder / path.relative_to(tmp) for kind, path in written.items()}


def write_attribution(
    result, folder, *, figure: bool = True, style: str = "report", normalise: str = "image"
) -> dict[str, Path]:
    """Write the files of :func:`save_attribution` into ``folder``, a new folder rfkit builds (a report's
    ``attribution/``, a partial folder); ``attribution.json`` last. Returns the paths written, by kind."""
    import pandas as pd

    folder = Path(folder)
    header = run_header(result)
    record = grid_record(result, normalise=normalise, style=style) if figure else None
    written: dict[str, Path] = {}
    for m in result.methods:
        path = folder / "maps" / f"{method_filename(m)}.npy"
        with atomic_path(path) as tmp:
            np.save(tmp, np.asarray(result.maps[m], dtype=np.float32))
        written[f"map:{m}"] = path
    frame = pd.DataFrame(result.rows())
    frame["steps"] = frame["steps"].astype("Int64")  # whole numbers, empty but for the path methods
    frame = with_provenance(frame, header)
    written["csv"] = atomic_write_text(folder / "attribution.csv", frame.to_csv(index=False))
    if record is not None:
        written.update(_write_grid(result, folder / "figures" / "grid.png", record))
    written["report"] = atomic_write_text(folder / "report.md", report_markdown(result, written, folder, record))
    doc = {"run": header, "figure": record.as_dict() if record else None}
    doc["files"] = sorted(p.relative_to(folder).as_posix() for p in written.values())
    written["manifest"] = atomic_write_text(folder / MANIFEST, json.dumps(doc, indent=2) + "\n")
    return written


def _write_grid(result, png: Path, record) -> dict[str, Path]:
    """The grid drawn as ``record`` says, at ``png`` and in its style's other formats, and its caption pair:
    ``{"figure": PNG, "figure.pdf": ..., "figure.svg": ..., "figure.caption.md": ..., "figure.caption.tex": ...}``."""

    paths = figures.save_grid(result, figures.grid_paths(png, record.style), record=record)
    out = {"figure" if p.suffix == ".png" else f"figure{p.suffix}": p for p in paths}
    return out | with_captions("figure", paths[0])


METHOD_COLUMNS = (
    "method",
    "steps",
    "completeness error (max)",
    "outside RF window (max)",
    "deletion AUC",
    "insertion AUC",
    "sanity rank corr.",
    "model-sensitive",
)
"""The columns of :func:`method_summary`."""


def steps_text(steps) -> str:
    """The path steps the images got: one number, or the least and the most.

    >>> steps_text([50, 50]), steps_text([50, 200, 100]), steps_text([])
    ('50', '50–200', '–')
    """
    a = np.asarray(steps, dtype=np.int64).ravel()
    if not a.size:
        return MISSING
    lo, hi = int(a.min()), int(a.max())
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def largest(values, digits: int = 3) -> str:
    """The largest of the finite ``values`` with ``digits`` significant digits, ``–`` when there are none.

    >>> largest([0.01, 0.2, float("nan")]), largest([float("nan")])
    ('0.2', '–')
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    return f"{a.max():.{digits}g}" if a.size else MISSING


def method_summary(result) -> list[dict[str, str]]:
    """One row of plain-text cells per method (:data:`METHOD_COLUMNS`): the method's name in the literature
    (:func:`rfkit.attribution.methods.display_name`), the path steps the images got and their largest
    completeness error (IG, Blur IG), largest share outside the RF window, mean deletion and insertion AUCs,
    sanity rank correlation and whether the maps depend on the model; ``–`` where not computed.
    ``rfkit attribute`` prints these rows and ``report.md`` tabulates them."""
    from rfkit.attribution.methods import display_name

    rows = []
    for m in result.methods:
        aucs = result.faithfulness.get(m)
        check = result.sanity.get(m)
        outside = result.outside_rf.get(m)
        cells = [
            display_name(m),
            steps_text(result.steps[m]) if m in result.steps else MISSING,
            largest(result.completeness[m]) if m in result.completeness else MISSING,
            f"{np.max(outside):.3g}" if outside is not None else MISSING,
            mean(aucs[:, 0]) if aucs is not None else MISSING,
            mean(aucs[:, 1]) if aucs is not None else MISSING,
            fixed(check.mean) if check is not None and math.isfinite(check.mean) else MISSING,
            ("yes" if check.model_sensitive else "no") if check is not None else MISSING,
        ]
        rows.append(dict(zip(METHOD_COLUMNS, cells)))
    return rows


def _md_method_cells(row: dict[str, str], method: str) -> list[str]:
    """A :func:`method_summary` row as Markdown cells: the method's name with its id (as in the files)."""
    cells = list(row.values())
    cells[0] = f"{md_text(cells[0])} ({md_code(method)})"
    cells[-1] = "**no**" if cells[-1] == "no" else cells[-1]
    return cells


def steps_setting(result) -> str:
    """How the IG and Blur IG steps were chosen and what the images got, in plain words (report.md, the CLI).

    >>> from types import SimpleNamespace as NS
    >>> from rfkit.attribution.methods import Settings
    >>> steps_setting(NS(settings=Settings(auto_steps=True), steps={"ig": [50, 200]}))[-43:]
    'error is under 5%, at most 512 (ig: 50–200)'
    >>> steps_setting(NS(settings=Settings(steps=8), steps={}))
    'path steps 8, as given'
    """
    from rfkit.attribution.methods import MAX_AUTO_STEPS, STEPS_TARGET_ERROR

    s = result.settings
    if not s.auto_steps:
        text = f"path steps {s.steps}, as given"
    else:
        text = (
            f"path steps automatic: from {s.steps}, doubled per image until the completeness error is under "
            f"{STEPS_TARGET_ERROR:.0%}, at most {MAX_AUTO_STEPS}"
        )
        if result.steps:
            text += " (" + ", ".join(f"{m}: {steps_text(v)}" for m, v in result.steps.items()) + ")"
    return text


def report_markdown(result, files: dict, folder: Path, record=None) -> str:
    """The Markdown text of ``report.md`` (links relative to ``folder``; ``record``: the grid's
    :class:`~rfkit.report.figures.attribution.GridRecord`, which says how its maps were scaled)."""
    from rfkit.attribution.methods import display_name

    w = result.weights
    H, W = result.input_size
    s = result.settings
    lines = [
        f"# Per-image contribution maps: {md_text(result.model)}",
        "",
        f"- weights: {md_text(getattr(w, 'description', w))}",
        f"- images: {md_text(result.source)} ({result.num_images} used), input {H}×{W} (h×w)",
        f"- methods: {', '.join(f'{md_text(display_name(m))} ({md_code(m)})' for m in result.methods)}",
    ]
    if result.targets and result.targets[0].kind == "unit":
        t = result.targets[0]
        window = " × ".join(f"{a}..{b}" for a, b in result.window) if result.window else "none (global unit)"
        lines.append(
            f"- target: unit {md_code(t.label)} (channel sum, signed); analytic RF window (rows × columns): {window}"
        )
    else:
        lines.append(f"- target: the class {s.class_score} of each image")
    if result.cam_layer:
        lines.append(f"- CAM layer: {md_text(result.cam_note)}")
    lines.append(
        f"- settings: IG and Blur IG {steps_setting(result)}; IG rule {s.ig_method}, baseline "
        f"{md_text(s.as_dict()['baseline'])}; "
        f"SmoothGrad noise {s.noise:g} of the input range, {s.samples} samples; Blur IG up to sigma "
        f"{md_text(s.blur_sigma or 'default')}; batch {s.batch_size}; device {md_text(result.device)}"
    )
    lines.append(f"- {md_text(s.channels_text)}")
    if any(s.options.values()):
        shown = "; ".join(f"{m}: {', '.join(f'{k}={v}' for k, v in o.items())}" for m, o in s.options.items() if o)
        lines.append(f"- method options: {md_text(shown)}")
    if is_random(w):
        lines += ["", "> **Random weights**: not a trained model; maps of trained weights differ."]
    if "figure" in files:
        lines += ["", f"![Contribution maps]({files['figure'].relative_to(folder).as_posix()})"]
        if record is not None:
            lines += ["", f"Figure: {record.style} style; {md_text(record.scaling_text())}."]
    lines += ["", "## Methods", ""]
    lines += md_table(
        list(METHOD_COLUMNS), [_md_method_cells(r, m) for r, m in zip(method_summary(result), result.methods)]
    )
    lines += ["", "## Images", ""]
    lines += md_table(
        ["image", "label", "target", "score"],
        [
            [str(i), md_text(result.labels[i]), md_text(t.label), f"{result.scores[i]:.4g}"]
            for i, t in enumerate(result.targets)
        ],
    )
    if result.warnings:
        lines += ["", "## Warnings", ""] + [f"- {md_text(x)}" for x in result.warnings]
    lines += ["", "## Files", ""] + [
        f"- [{md_text(p.relative_to(folder).as_posix())}]({p.relative_to(folder).as_posix()})" for p in files.values()
    ]
    return "\n".join(lines) + "\n"


def analysis_section(result, files: dict, folder: Path, sub: str = "attribution") -> list[str]:
    """The lines of the "Per-image contribution maps" section that ``rfkit analyze --attribution`` adds to a
    model's ``report.md``: what was explained, the grid figure and the per-method summary, with a link to the
    full page ``<sub>/report.md`` (``files``: what :func:`save_attribution` wrote into ``folder / sub``)."""
    base = Path(folder)
    targets = sorted({t.label for t in result.targets})
    lines = [
        "## Per-image contribution maps",
        "",
        f"{result.num_images} image(s), methods {', '.join(md_code(m) for m in result.methods)}, target "
        + (
            ", ".join(md_code(t) for t in targets)
            if result.targets and result.targets[0].kind == "unit"
            else f"the class {result.settings.class_score} of each image"
        )
        + f"; the full page, with the settings and every image: [{sub}/report.md]({sub}/report.md).",
        "",
    ]
    if "figure" in files:
        lines += [f"![Per-image contribution maps]({files['figure'].relative_to(base).as_posix()})", ""]
    lines += md_table(
        list(METHOD_COLUMNS), [_md_method_cells(r, m) for r, m in zip(method_summary(result), result.methods)]
    )
    return [*lines, ""]
