"""``rfkit.analyze``: the RF graph, the productivity analysis and the ERF of a model, as one report folder.

``OUT/<model>/`` holds ``report.md`` (what was run, then tables and figures), ``layers.csv`` (every node of
the graph, analytic, with its productivity status), ``erf.csv`` and ``metrics.json`` (per analysed layer:
analytic RF, stride, centre, status, every ERF metric), ``maps/<layer>.npy`` (raw ERF maps),
``graph.dot``/``graph.svg`` (GraphViz, coloured by status) and ``figures/`` (overlays, stage grid, RF
growth). The folder is built under a temporary name (``.<model>.partial-<PID>-…``) and renamed when
complete, and ``run.json`` is written last: a folder with ``run.json`` is a finished analysis
(``skip_existing`` relies on it), an interrupted run leaves no half-written report behind, and the next run
removes the temporary folders of runs that were killed.

``run.json`` records the model (``model``, and ``model_id``: :func:`model_id`) and every file written
(``files``). Only a finished report of the same model is ever replaced: a folder that is not rfkit's, or
holds another model's report, is left alone with an :class:`OutputError`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfkit.validate as validate
from rfkit.analysis.options import Output, ReportAttribution
from rfkit.effective.options import ERFOptions
from rfkit.errors import ArgumentError, RFKitError
from rfkit.io import atomic_write_text, check_writable
from rfkit.pipeline.options import Images, Runtime
from rfkit.report.report_folder import (
    DONE_MARKER,
    check_target,
    folder_name,
    model_id,
    remove_stale,
)
from rfkit.report.transaction import folder_transaction

ATTRIBUTION = "attribution"  # the sub-folder of the per-image contribution maps


@dataclass(frozen=True)
class AnalyzeResult:
    """A finished analysis: where it is, and the results it was made from.

    Attributes
    ----------
    model : str
    folder : Path
        ``OUT/<model>/``.
    result : ERFResult
        The ERF measurement (its ``graph`` is the analytic RF graph at the same input size).
    productivity : ProductivityResult
        Statuses at ``resolution``.
    resolution : tuple
        Input resolution of the productivity analysis.
    files : dict[str, Path]
        Every file written, by kind.
    warnings : tuple[str, ...]
    attribution : AttributionResult or None
        The per-image contribution maps, with ``attribution=``.
    """

    model: str
    folder: Path
    result: Any = field(repr=False)
    productivity: Any = field(repr=False)
    resolution: tuple[int, ...] = ()
    files: dict[str, Path] = field(default_factory=dict, repr=False)
    warnings: tuple[str, ...] = ()
    attribution: Any = field(default=None, repr=False)

    def to_frame(self):
        """The rows of the report's ``erf.csv`` without its provenance columns, as a :class:`pandas.DataFrame`:
        one row per measured layer (:meth:`rfkit.effective.result.ERFResult.rows` with the layer's depth and its
        productivity ``status`` at :attr:`resolution`; :func:`rfkit.report.erf_files.erf_rows`)."""
        import pandas as pd

        from rfkit.report.erf_files import erf_rows

        return pd.DataFrame(erf_rows(self.result, layer_statuses(self.result, self.productivity)))


def analyze(
    model,
    *,
    layers: str | Sequence[str] | None = None,
    images: Images | str | Path | Sequence | Any = "sample",
    weights: str = "auto",
    method: str = "replknet",
    resolution=None,
    options: ERFOptions | None = None,
    attribution: ReportAttribution | str | Sequence[str] | None = None,
    out: Output | str | Path = "rfkit-reports",
    runtime: Runtime | str | None = None,
    progress: Callable[[str, int | None], None] | None = None,
    trust: bool = False,
) -> AnalyzeResult:
    """Analyse one model: RF graph, productivity at ``resolution``, ERF of ``layers``, all written to
    ``out/<model>/`` (see the module docstring for the files).

    Parameters
    ----------
    model : str, nn.Module or Prepared
        As :func:`rfkit.trace`, or a model prepared by :func:`rfkit.prepare` (then ``weights``, the input
        size and the seed of the weights are its own). Either way the model is built and traced once, and every
        part of the report uses that one graph.
    layers : str or list of str, optional
        Layers to measure (module or node names). Default ``"stages"``: the stage outputs (timm's
        ``feature_info``, at most six, evenly spaced, the last always kept) and the final feature map.
    images, weights, method
        As :func:`rfkit.erf` (:class:`~rfkit.pipeline.options.Images`: 32 images unless it says otherwise).
    resolution : int or (h, w), optional
        Input resolution of the productivity analysis (positive integers); default: the input size.
    options : ERFOptions, optional
        As :func:`rfkit.erf`; a report needs the metrics (``metrics=False`` is an :class:`ArgumentError`).
    attribution : ReportAttribution, str or list of str, optional
        Per-image contribution maps to add (:class:`~rfkit.analysis.options.ReportAttribution`, or its methods
        as :func:`rfkit.attribute` reads them, e.g. ``"saliency,ig,gradcam"``): of the predicted class, on the
        first ``num_images`` images (default 4), with the same model, images, device and seed; written to
        ``attribution/`` and summarised in report.md.
    out : Output, str or Path
        Where and how (:class:`~rfkit.analysis.options.Output`: the parent folder, the figures' look and style
        and the attribution grid's normalisation, the GraphViz depth); a plain value is the folder. The report goes
        to ``folder/<model>/`` (:func:`~rfkit.report.report_folder.folder_name`). An earlier report of the same
        model there is replaced; anything else there is left alone (:class:`OutputError`).
    runtime : Runtime or str, optional
        As :func:`rfkit.erf` (a plain value is the device). Both measurements run in this process
        (``distributed`` is not used: under torchrun, ``rfkit analyze`` gives each process its own models).
    progress : callable, optional
        ``progress(step, n_images)``: called with a step name, and with a count of images during the ERF.
    trust : bool
        Build a spec whose file runs code (``FILE.py:FACTORY``: importing it runs it; ``ultralytics:best.pt``:
        unpickling runs the code it names): refused unless you trust the file (as :func:`rfkit.prepare`).

    Returns
    -------
    AnalyzeResult

    Raises
    ------
    OutputError
        ``out`` cannot be written, or ``out/<model>/`` exists and is not a finished report of this model
        (checked before measuring, and again before the rename).
    InputSizeError, InputTooSmallError
        ``resolution`` is not one integer or one per spatial axis, or not positive.

    Examples
    --------
    >>> import tempfile, torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
    >>> rep = rfkit.analyze(net, images=rfkit.Images("noise", 2, input_size=32), out=tempfile.mkdtemp(),
    ...                     runtime="cpu")  # doctest: +SKIP
    """
    from rfkit.effective.bootstrap import checked_options
    from rfkit.effective.engine import DEFAULT_IMAGES, checked_arguments, erf
    from rfkit.graph.productivity import input_resolution_range, productivity
    from rfkit.pipeline.prepare import Prepared, prepare

    images, run, opts = Images.of(images), Runtime.of(runtime), ERFOptions.of(options)
    output, attribution = Output.of(out), ReportAttribution.of(attribution)
    input_size, seed = images.input_size, run.seed
    if not opts.metrics:
        raise ArgumentError("a report holds every ERF metric: leave ERFOptions.metrics True (False is for rfkit.erf)")
    source = model.source if isinstance(model, Prepared) else model  # names the folder
    checked_arguments(
        model, layers, images.count(DEFAULT_IMAGES), run.batch_size, run.threads, seed, input_size, method, run.device
    )
    checked_options(opts.bootstrap, opts.until_stable)
    depth = validate.count(output.depth, "depth", minimum=0)
    methods = None
    if attribution is not None:  # checked before any measurement
        from rfkit.attribution.methods import parse_methods

        methods = parse_methods(attribution.methods)
        validate.count(attribution.num_images, "attribution num_images")
    if resolution is not None:  # before the measurement; the number of axes again once the graph is known
        validate.input_size(
            resolution, len(input_size) if isinstance(input_size, (tuple, list)) else None, "resolution"
        )
    figures = output.figures
    out = check_writable(output.folder)
    name = folder_name(source)
    final = out / name
    check_target(final, source)
    remove_stale(out)
    step = progress or (lambda *a: None)

    step("measuring the ERF", None)
    prepared = prepare(model, weights, input_size, seed=seed, trust=trust)  # built and traced once, for every stage
    alone = run.replace(distributed=False)  # under torchrun, a batch gives each process its own models (analyze)
    result = erf(
        prepared,
        layers="stages" if layers is None else layers,
        images=images.replace(input_size=None),  # the prepared model's own
        method=method,
        options=opts,
        runtime=alone,
        progress=(lambda n: step("images", n)) if progress else None,
    )
    g = result.graph
    res = tuple(g.input_size) if resolution is None else validate.resolution(resolution, len(g.input_size))
    prod = productivity(g, res)
    rng = input_resolution_range(g)
    rng_local = input_resolution_range(g, ignore_global=True)
    contributions = None
    if methods:
        from rfkit.attribution.engine import attribute

        step("per-image contribution maps", None)
        contributions = attribute(
            prepared,
            images=images.replace(num_images=attribution.num_images, input_size=None),
            methods=methods,
            runtime=Runtime(alone.device, alone.batch_size, alone.threads, alone.workers, seed, distributed=False),
        )

    notes: list[str] = []
    with folder_transaction(final, lambda folder: check_target(folder, source)) as tmp:
        step("writing the report", None)
        # one record: run.json and every CSV's provenance
        header = run_header(result, res, prod, rng, rng_local, figures)
        files = write_report(
            tmp,
            result,
            prod,
            res,
            rng,
            rng_local,
            depth,
            notes=notes,
            attribution=contributions,
            figures=figures,
            progress=step,
            header=header,
        )
        header["model_id"] = model_id(source)
        header["files"] = sorted(Path(p).relative_to(tmp).as_posix() for p in files.values())
        atomic_write_text(tmp / DONE_MARKER, json.dumps(header, indent=2) + "\n")
    files = {k: final / Path(p).relative_to(tmp) for k, p in files.items()}
    notes = [n.replace(str(tmp), str(final)) for n in notes]  # the files are in final now
    more = contributions.warnings if contributions is not None else ()
    return AnalyzeResult(
        name, final, result, prod, res, files, tuple(dict.fromkeys([*result.warnings, *more, *notes])), contributions
    )


def run_header(result, resolution, prod, rng, rng_local, figures=None) -> dict:
    """What was run and the headline numbers (``run.json``), as JSON values: with the model's output RF, the
    ops without an RF rule, why a measured layer has no analytic RF and how the figures were drawn, it holds
    everything ``report.md`` says besides the per-layer rows (:func:`rfkit.report.markdown.report_markdown`)."""
    from rfkit.report.erf_files import run_header as erf_header
    from rfkit.report.figures.looks import FigureOptions
    from rfkit.report.files import plain as _plain

    out = result.graph.output
    header = erf_header(result)
    header.update(
        {
            "resolution": list(resolution),
            "productivity": {s.value: n for s, n in prod.counts().items()},
            "input_range": {"min": _plain(rng.min), "max": _plain(rng.max)},
            "input_range_local": {"min": _plain(rng_local.min), "max": _plain(rng_local.max)},
            "output": {
                "size": _plain(out.size),
                "local_size": _plain(out.local_size) if out.local_size else None,
                "stride": _plain(out.stride),
                "is_global": bool(out.is_global),
            },
            "unsupported": [{"op": u.op, "count": u.count} for u in result.graph.unsupported],
            "rf_missing": {k or "<output>": str(v) for k, v in (getattr(result, "rf_missing", None) or {}).items()},
            "figures": (figures or FigureOptions()).record(),
            "layers": result.layers,
        }
    )
    return _plain(header)


def layer_statuses(result, prod) -> dict[str, str]:
    """Productivity status of each measured layer."""
    out = {}
    for layer in result.layers:
        try:
            out[layer] = prod[result.nodes[layer]].status.value
        except RFKitError:
            out[layer] = ""
    return out


def write_report(
    folder: Path,
    result,
    prod,
    resolution,
    rng,
    rng_local,
    depth: int,
    notes: list[str] | None = None,
    attribution=None,
    figures=None,
    progress=None,
    header: dict | None = None,
) -> dict[str, Path]:
    """Every file of the report, into ``folder`` (a new, empty one). What the report lacks (no GraphViz) is
    warned about and appended to ``notes``. An :class:`~rfkit.attribution.result.AttributionResult` is
    written to ``attribution/`` and gets a section in report.md. ``header`` is the run record
    (:func:`run_header`), whose provenance columns start every row of ``layers.csv`` and ``erf.csv``."""
    from rfkit.report.dot import render_dot, to_dot
    from rfkit.report.erf_files import erf_rows, write_erf_files
    from rfkit.report.files import plain
    from rfkit.report.markdown import report_markdown
    from rfkit.report.provenance import with_provenance

    g = result.graph
    header = run_header(result, resolution, prod, rng, rng_local, figures) if header is None else header
    files: dict[str, Path] = {}
    statuses = layer_statuses(result, prod)
    frame = g.to_frame().merge(prod.to_frame()[["node", "status"]], on="node", how="left")
    frame = with_provenance(frame, header)
    files["layers.csv"] = atomic_write_text(folder / "layers.csv", frame.to_csv(index=False))
    files.update(write_erf_files(result, folder, statuses, header))
    source = to_dot(g, resolution, depth)
    files["graph.dot"] = atomic_write_text(folder / "graph.dot", source)
    try:
        files["graph.svg"] = render_dot(source, folder / "graph.svg")
    except RFKitError as e:  # no GraphViz: the .dot file is there, say so in the report
        warnings.warn(str(e), stacklevel=2)
        if notes is not None:
            notes.append(str(e))
    files.update(write_figures(folder / "figures", result, figures, progress))
    sections: list[str] = []
    if attribution is not None:
        from rfkit.report.attribution_files import analysis_section, write_attribution
        from rfkit.report.figures.looks import FigureOptions

        figures = figures or FigureOptions()  # the grid in the report's figure style and normalisation
        written = write_attribution(
            attribution, folder / ATTRIBUTION, style=figures.style, normalise=figures.attribution_normalise
        )
        sections = analysis_section(attribution, written, folder, ATTRIBUTION)
        files.update({f"attribution:{k}": p for k, p in written.items()})
    rows = [plain(r) for r in erf_rows(result, statuses)]  # as metrics.json holds them
    names = [Path(p).relative_to(folder).as_posix() for p in files.values()]
    files["report.md"] = atomic_write_text(folder / "report.md", report_markdown(header, rows, names, sections))
    return files


def write_figures(folder: Path, result, options=None, progress=None) -> dict[str, Path]:
    """Overlay per layer, stage grid and RF growth (:func:`rfkit.report.figures.write_figures`); each figure is
    a ``progress`` step."""
    from rfkit.report import figures

    return figures.write_figures(folder, result, options, (lambda text: progress(text, None)) if progress else None)
