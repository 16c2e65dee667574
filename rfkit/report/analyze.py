"""``rfkit.analyze``: the RF graph, the productivity analysis and the ERF of a model, as one report folder.

``OUT/<model>/`` holds ``report.md`` (what was run, then tables and figures), ``layers.csv`` (every node of
the graph, analytic, with its productivity status), ``erf.csv`` and ``metrics.json`` (per analysed layer:
analytic RF, stride, centre, status, every ERF metric), ``maps/<layer>.npy`` (raw ERF maps),
``graph.dot``/``graph.svg`` (GraphViz, coloured by status) and ``figures/`` (overlays, stage grid, RF
growth). The folder is built under a temporary name and renamed when complete, and ``run.json`` is
written last: a folder with ``run.json`` is a finished analysis (``skip_existing`` relies on it), an
interrupted run leaves no half-written report behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rfkit.errors import RFKitError
from rfkit.io import atomic_write_text

DONE_MARKER = "run.json"
GRAPH_DEPTH = 2


class OutputError(RFKitError, OSError):
    """The output folder cannot be created or written."""


@dataclass(frozen=True)
class Report:
    """A finished analysis: where it is, and the results it was made from.

    Attributes
    ----------
    model : str
    folder : Path
        ``OUT/<model>/``.
    result : ERFResult
        The ERF measurement (its ``graph`` is the analytic RF graph at the same input size).
    productivity : ProductivityReport
        Statuses at ``resolution``.
    resolution : tuple
        Input resolution of the productivity analysis.
    files : dict[str, Path]
        Every file written, by kind.
    warnings : tuple[str, ...]
    """

    model: str
    folder: Path
    result: Any = field(repr=False)
    productivity: Any = field(repr=False)
    resolution: tuple[int, ...] = ()
    files: dict[str, Path] = field(default_factory=dict, repr=False)
    warnings: tuple[str, ...] = ()


def folder_name(model) -> str:
    """The report folder of a model: its spec made file-name safe, or the module's class name.

    >>> folder_name("resnet50.a1_in1k"), folder_name("torchvision:vgg16"), folder_name("nets/my.py:build")
    ('resnet50.a1_in1k', 'torchvision-vgg16', 'my-build')
    """
    if not isinstance(model, str):
        return type(model).__name__
    from rfkit.models.spec import parse_spec

    spec = parse_spec(model)
    text = {"timm": spec.name, "torchvision": f"torchvision-{spec.name}",
            "file": f"{Path(spec.path or '').stem}-{spec.name}"}[spec.source]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def is_complete(folder) -> bool:
    """Whether ``folder`` holds a finished analysis."""
    return (Path(folder) / DONE_MARKER).is_file()


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".rfkit-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {out}: {e.strerror or e}; "
                          "choose another with --out") from None


def analyze(model, layers: str | Sequence[str] | None = None, images="sample", num_images: int = 32,
            weights: str = "auto", input_size=None, resolution=None, device="auto", out="rfkit-reports", *,
            method: str = "replknet", batch_size: int | None = None, threads: int | None = None,
            depth: int = GRAPH_DEPTH, seed: int = 0, progress: Callable[[str, int | None], None] | None = None,
            ) -> Report:
    """Analyse one model: RF graph, productivity at ``resolution``, ERF of ``layers``, all written to
    ``out/<model>/`` (see the module docstring for the files).

    Parameters
    ----------
    model : str or nn.Module
        As :func:`rfkit.trace`.
    layers : str or list of str, optional
        Layers to measure (module or node names). Default ``"stages"``: the stage outputs (timm's
        ``feature_info``, at most six, evenly spaced, the last always kept) and the final feature map.
    images, num_images, weights, input_size, device, method, batch_size, threads, seed
        As :func:`rfkit.erf`.
    resolution : int or (h, w), optional
        Input resolution of the productivity analysis; default: the input size.
    out : str or Path
        Parent folder; the report goes to ``out/<model>/`` (replaced if it exists).
    depth : int
        Module depth of the GraphViz view.
    progress : callable, optional
        ``progress(step, n_images)``: called with a step name, and with a count of images during the ERF.

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile, torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
    >>> rep = rfkit.analyze(net, images="noise", num_images=2, input_size=32, out=tempfile.mkdtemp(),
    ...                     device="cpu")  # doctest: +SKIP
    """
    import rfkit
    from rfkit.graph.productivity import input_resolution_range, productivity

    out = Path(out)
    _writable(out)
    name = folder_name(model)
    step = progress or (lambda *a: None)

    step("measuring the ERF", None)
    result = rfkit.erf(model, layers="stages" if layers is None else layers, images=images, num_images=num_images,
                       weights=weights, method=method, batch_size=batch_size, device=device,
                       input_size=input_size, threads=threads, seed=seed,
                       progress=(lambda n: step("images", n)) if progress else None)
    g = result.graph
    res = tuple(resolution) if isinstance(resolution, (tuple, list)) else \
        (resolution,) * len(g.input_size) if resolution else g.input_size
    prod = productivity(g, res)
    rng = input_resolution_range(g)
    rng_local = input_resolution_range(g, ignore_global=True)

    final = out / name
    tmp = out / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        step("writing the report", None)
        files = write_report(tmp, result, prod, res, rng, rng_local, depth)
        header = run_header(result, res, prod, rng, rng_local)
        atomic_write_text(tmp / DONE_MARKER, json.dumps(header, indent=2) + "\n")
        _replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {k: final / Path(p).relative_to(tmp) for k, p in files.items()}
    return Report(name, final, result, prod, res, files, tuple(result.warnings))


def _replace(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder onto ``final`` (an older report there is replaced)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_header(result, resolution, prod, rng, rng_local) -> dict:
    """What was run and the headline numbers (``run.json``)."""
    from rfkit.report.erf_files import _plain, run_header as erf_header

    header = erf_header(result)
    header.update({
        "resolution": list(resolution),
        "productivity": {s.value: n for s, n in prod.counts().items()},
        "input_range": {"min": _plain(rng.min), "max": _plain(rng.max)},
        "input_range_local": {"min": _plain(rng_local.min), "max": _plain(rng_local.max)},
        "layers": result.layers,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return header


def layer_statuses(result, prod) -> dict[str, str]:
    """Productivity status of each measured layer."""
    out = {}
    for layer in result.layers:
        try:
            out[layer] = prod[result.nodes[layer]].status.value
        except RFKitError:
            out[layer] = ""
    return out


def write_report(folder: Path, result, prod, resolution, rng, rng_local, depth: int) -> dict[str, Path]:
    """Every file of the report, into ``folder``."""
    from rfkit.graph.dot import render, to_dot
    from rfkit.report.erf_files import save_erf
    from rfkit.report.markdown import report_markdown

    g = result.graph
    files: dict[str, Path] = {}
    statuses = layer_statuses(result, prod)
    frame = g.to_frame().merge(prod.to_frame()[["node", "status"]], on="node", how="left")
    files["layers.csv"] = atomic_write_text(folder / "layers.csv", frame.to_csv(index=False))
    files.update(save_erf(result, folder, statuses))
    files["graph.dot"] = atomic_write_text(folder / "graph.dot", to_dot(g, resolution, depth))
    try:
        files["graph.svg"] = render(g, folder / "graph.svg", resolution, depth)
    except RFKitError as e:  # no GraphViz: the .dot file is there, say so in the report
        warnings.warn(str(e), stacklevel=2)
    files.update(write_figures(folder / "figures", result))
    files["report.md"] = atomic_write_text(
        folder / "report.md", report_markdown(result, prod, resolution, rng, rng_local, statuses, files, folder))
    return files


def write_figures(folder: Path, result) -> dict[str, Path]:
    """Overlay per layer, stage grid and RF growth, as PNG."""
    from rfkit.report import figures
    from rfkit.report.erf_files import layer_filename

    files = {}
    for layer in result.layers:
        files[f"overlay:{layer}"] = figures.save_overlay(result, layer,
                                                         folder / f"overlay_{layer_filename(layer)}.png")
    files["stages"] = figures.save_stage_grid(result, folder / "stages.png")
    files["rf_growth"] = figures.save_rf_growth(result.graph, folder / "rf_growth.png", result=result)
    return files
