"""``report.md``: one analysis in Markdown, headed by what was run.

Everything that comes from a user or the file system (model spec, weights and images descriptions,
warnings, layer names, titles) goes through :func:`~rfkit.report.escape.md_text` or
:func:`~rfkit.report.escape.md_code`: it shows as text, never as HTML, a link, emphasis, an attribute list or a
table column.
"""

from __future__ import annotations

from rfkit.formatting import pair, rf_label, size
from rfkit.report.escape import md_code, md_table, md_text, warning_block
from rfkit.report.figures.labels import is_random, missing_rf_clause
from rfkit.report.files import layer_filename
from rfkit.report.summary import (
    CI_LEGEND,
    GEOMETRY,
    LAYER,
    LAYER_KINDS,
    LEGEND,
    MEASURED,
    NOTES,
    centre_finding,
    ci_row,
    productivity_text,
    summary_row,
)


def summary_tables(rows: list[dict[str, str]]) -> list[str]:
    """The ERF summary rows (:func:`rfkit.report.summary.summary_row`) as two narrow tables, where each unit
    looks (analytic) and how much of it it uses (measured), then the notes as a list: tables that fit a page."""
    if not rows:
        return []
    lines = []
    for columns in (GEOMETRY, MEASURED):
        header = [c for c in columns if c in rows[0]]
        lines += md_table(header, [[md_code(r[c]) if c == LAYER else r[c] for c in header] for r in rows]) + [""]
    notes = [f"- {md_code(r[LAYER])}: {md_text(r[NOTES])}" for r in rows if r.get(NOTES)]
    return lines + (["Notes:", "", *notes, ""] if notes else [])


CENTRE_NOTE = (
    "Every size is centred on the ERF's own centre, so these offsets do not inflate them; an offset beyond "
    "the stride means the unit's analytic window is lopsided (as after nearest upsampling) or the RF analysis "
    "is off."
)
"""What a centre finding means (closes the block of :func:`centre_section`)."""


def centre_section(rows: list[dict]) -> list[str]:
    """A warning block naming each layer of the ``metrics.json`` ``rows`` whose ERF is centred farther from its
    unit's analytic RF centre than the layer's stride (:func:`rfkit.report.summary.centre_finding`); nothing
    when none is."""
    found = [f for f in map(centre_finding, rows) if f]
    if not found:
        return []
    return warning_block("ERF centred off its unit's analytic RF centre", [md_text(f) for f in found])[:-1] + [
        ">",
        f"> {CENTRE_NOTE}",
        "",
    ]


def ci_section(rows: list[dict], header: dict, files) -> list[str]:
    """How many images are enough: the headline metrics with their 95% intervals
    (:func:`rfkit.report.summary.ci_row`) of the ``metrics.json`` ``rows``, where the run stopped (``header``:
    ``run.json``), or the values and why they have none (``ci_reason``), and the convergence figure when
    ``files`` (relative names) hold it; nothing for a run without intervals asked for."""
    cells = [r for r in map(ci_row, rows) if r is not None]
    if not cells:
        return []
    columns = list(cells[0])
    lines = ["### How many images are enough", ""]
    lines += md_table(columns, [[md_code(r[c]) if c == LAYER else r[c] for c in columns] for r in cells]) + [""]
    reason = next((r["ci_reason"] for r in rows if r.get("ci_reason")), None)
    legend = f"Values over all images; {md_text(reason)}." if reason else CI_LEGEND
    lines += [f"{legend} Stopped: {md_text(header.get('stopped', ''))}.", ""]
    if CONVERGENCE in files:
        lines += [f"![ERF size in pixels against images seen, with 95% bands]({CONVERGENCE})", ""]
    return lines


def _rf_alt(header: dict, layer: str) -> str:
    """What an overlay shows besides the ERF, for its alt text: the analytic RF, or why there is none."""

    why = missing_rf_clause((header.get("rf_missing") or {}).get(layer))
    return "with its analytic RF" if why is None else f"({md_text(why)})"


def _overlay(layer: str) -> str:
    """The overlay figure of a measured layer (``<output>`` is the model's output), relative to the report."""

    return f"figures/overlay_{layer_filename('' if layer == '<output>' else layer)}.png"


CONVERGENCE = "figures/convergence.png"
STAGES = "figures/stages.png"
RF_GROWTH = "figures/rf_growth.png"
GRAPH_SVG = "graph.svg"
DESCRIBED = {
    "layers.csv": "every node of the graph: analytic RF, stride, centre, padding, flags, status",
    "erf.csv": "per analysed layer, the analytic RF and every ERF metric",
    "metrics.json": "the run header and the same per-layer values",
    "graph.dot": "GraphViz source",
    GRAPH_SVG: "GraphViz drawing",
}
"""The files of a report the page links to, with what they hold."""


def report_markdown(header: dict, rows, files, sections=()) -> str:
    """The Markdown text of a report page (``report.md``, and the model's page of a site) from the run
    header (``run.json``) and the per-layer rows (``metrics.json``) alone, every value escaped: the page of a
    report folder is the same whether rfkit writes it after measuring or a site rebuilds it from the JSON.

    Parameters
    ----------
    header : dict
        The run header (:func:`rfkit.analysis.analyze.run_header`, or ``run.json`` read back).
    rows : sequence of dict
        The rows of ``metrics.json``'s ``layers``, in order.
    files : collection of str
        The report's files, relative to its folder (``figures/stages.png``): a figure or file is shown or
        linked only when it is among them.
    sections : list of str
        Lines of further sections (per-image contribution maps), placed before the file list.
    """
    h = header
    rows = list(rows)
    files = set(files)
    config = h.get("data_config") or {}
    lines = [f"# {md_text(h.get('model', ''))}", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| model | {md_code(h.get('model', ''))} |",
        f"| weights | {md_text(h.get('weights', ''))}"
        f"{' **(random: not a trained network)**' if is_random(h.get('weights_kind')) else ''} |",
        f"| images | {md_text(h.get('images', ''))}, {h.get('num_images', '?')} used |",
        f"| input size | {pair(h.get('input_size'))} (h×w) |",
        *([f"| input | {md_text(config['input_note'])} |"] if config.get("input_note") else []),
        f"| ERF method | {md_text(h.get('method', ''))} (raw maps: mean over images of the per-image map) |",
        f"| productivity at | {pair(h.get('resolution'))} |",
        *([f"| figures | {md_text(h['figures'])} |"] if "figures" in h else []),
        f"| device | {md_text(h.get('device', ''))} |",
        f"| rfkit | {md_text(h.get('rfkit_version', ''))} |",
        "",
    ]
    if h.get("warnings"):
        lines += warning_block("Read before using these numbers", [md_text(x) for x in h["warnings"]])
    lines += ["## Summary", "", *_summary(h, rows), ""]

    lines += ["## Effective receptive fields", ""]
    if STAGES in files:
        lines += [f"![ERF of every analysed layer, shared colour scale]({STAGES})", ""]
    lines += summary_tables([summary_row(r) for r in rows])
    lines += [LEGEND + " Full columns: `erf.csv`, `metrics.json`.", ""]
    lines += centre_section(rows)
    lines += ci_section(rows, h, files)
    for row in rows:
        layer = row["layer"]
        if _overlay(layer) in files:
            lines += [
                f"### {md_code(layer)}",
                "",
                f"![ERF of {md_text(layer)} {_rf_alt(h, layer)}]({_overlay(layer)})",
                "",
            ]

    lines += ["## Receptive field growth", ""]
    if RF_GROWTH in files:
        lines += [f"![RF growth]({RF_GROWTH})", ""]
    lines += ["## Architecture", ""]
    if GRAPH_SVG in files:
        lines += [f"![Graph at module depth 2, coloured by productivity]({GRAPH_SVG})", ""]
    else:
        lines += [
            "GraphViz's `dot` is not installed: `graph.dot` holds the graph (render it with "
            "`dot -Tsvg graph.dot -o graph.svg` after `apt-get install graphviz` / `brew install graphviz`).",
            "",
        ]
    lines += [*sections, "## Files", ""]
    lines += [f"- [{name}]({name}): {text}" for name, text in DESCRIBED.items() if name in files]
    maps = [f for f in files if f.startswith("maps/") and f.endswith(".npy") and not f.endswith(".sem.npy")]
    if maps:
        lines += [f"- `maps/*.npy`: the {len(maps)} raw ERF maps (float64, input resolution, no transform)"]
    if any(f.startswith("maps/") and f.endswith(".sem.npy") for f in files):
        lines += ["- `maps/*.sem.npy`: per pixel, the standard error of each map's mean over the images"]
    return "\n".join(lines) + "\n"


def _summary(h: dict, rows: list[dict]) -> list[str]:
    """The summary list: the last analysed layer's RF, the model's output, productivity, the input range."""
    lines = []
    if rows:
        last = rows[-1]
        rf = rf_label((last.get("rf_h"), last.get("rf_w")), _local(last), bool(last.get("is_global")), unit="px")
        stride = pair((last.get("stride_h"), last.get("stride_w")))
        lines += [f"- RF of the last analysed layer ({md_code(last['layer'])}): {rf}, stride {stride}."]
    out = h.get("output")
    if out and out["is_global"]:
        local = out.get("local_size")
        lines += [
            "- The model's output is global (it sees the whole input)"
            + (f"; its local paths see {size(local, 'px')}." if local else ".")
        ]
    elif out:
        lines += [f"- The model's output: RF {size(out['size'], 'px')}, stride {pair(out['stride'])}."]
    lines += [
        f"- Productivity at {pair(h.get('resolution'))}: {productivity_text(h.get('productivity') or {})} "
        f"({LAYER_KINDS})."
    ]
    if h.get("input_range") and h.get("input_range_local"):
        rng, local = h["input_range"], h["input_range_local"]
        lines += [
            f"- Input resolution range (RFA): min {pair(rng['min'])}, max {pair(rng['max'], all_inf='unbounded')}; "
            f"without global-context paths: max {pair(local['max'], all_inf='unbounded')}."
        ]
    if h.get("unsupported"):
        ops = ", ".join(f"{md_text(u['op'])} ×{u['count']}" for u in h["unsupported"])
        lines += [f"- Ops without an RF rule (RF unknown after them): {ops}."]
    return lines


def _local(row: dict):
    """The local paths' RF size of a row (None when it has none)."""
    local = (row.get("rf_local_h"), row.get("rf_local_w"))
    return None if all(v is None for v in local) else local
