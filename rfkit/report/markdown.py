"""``report.md``: one analysis in Markdown, headed by what was run; and the escaping every page uses.

Everything that comes from a user or the file system (model spec, weights and images descriptions,
warnings, layer names, titles) goes through :func:`md_text` or :func:`md_code`: it shows as text, never as
HTML, a link, emphasis, an attribute list or a table column.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from rfkit.report.formatting import pair, rf_label, size
from rfkit.report.labels import is_random
from rfkit.report.summary import (
    CI_LEGEND,
    GEOMETRY,
    LAYER,
    LAYER_KINDS,
    LEGEND,
    MEASURED,
    NOTES,
    ci_row,
    productivity_text,
    summary_rows,
)
from rfkit.version import __version__


def one_line(text, limit: int | None = None) -> str:
    """``str(text)`` on one line: control characters (newlines, tabs, ...) as spaces, lone surrogates (file
    names that are not UTF-8) as ``?``; cut to ``limit`` characters when given.

    >>> one_line("a\\nb\\tc"), one_line("x" * 10, limit=4)
    ('a b c', 'xxx…')
    """
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


# Markdown's inline syntax: backslash, code, emphasis, links/images, attribute lists ({: ...}), table
# cells, headings; "_" only at a word boundary (Python-Markdown ignores it inside words).
_MD_SPECIAL = re.compile(r"[\\`*{}\[\]|#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_text(text) -> str:
    """``text`` escaped for Markdown inline text (a table cell, link text, a list item, a heading): HTML
    escaped (``html.escape``, so ``<img ...>`` stays text), Markdown-significant characters backslash-escaped,
    on one line.

    >>> md_text("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    >>> md_text("[a](javascript:x) | *b* {: onclick=y} _c_ resnet50.a1_in1k")
    '\\\\[a\\\\](javascript:x) \\\\| \\\\*b\\\\* \\\\{: onclick=y\\\\} \\\\_c\\\\_ resnet50.a1_in1k'
    """
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), html.escape(one_line(text), quote=False))


def md_code(text) -> str:
    """``text`` as a Markdown code span: shown verbatim (Markdown escapes ``<`` and ``&`` inside code),
    fenced with more backticks than it holds, on one line. Safe in table cells (a ``|`` inside a code span
    does not split the cell).

    >>> md_code("layer1.0"), md_code("a`b"), md_code("")
    ('`layer1.0`', '`` a`b ``', '')
    """
    text = one_line(text)
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if len(fence) > 1 or text.startswith(" ") or text.endswith(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table of cells that are already Markdown (escaped with :func:`md_text` /
    :func:`md_code`).

    >>> md_table(["a", "b"], [["1", "`x`"]])
    ['| a | b |', '|---|---|', '| 1 | `x` |']
    """
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def warning_block(title: str, items: list[str]) -> list[str]:
    """A warning as a Markdown block quote (it reads the same on GitHub, in editors and in mkdocs, unlike an
    admonition): a bold title, then one item per line; ``items`` are Markdown already.

    >>> warning_block("Random weights", ["not trained"])
    ['> **Warning: Random weights**', '>', '> - not trained', '']
    """
    return [f"> **Warning: {title}**", ">", *(f"> - {item}" for item in items), ""]


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


def ci_section(result, files: dict, folder: Path) -> list[str]:
    """How many images are enough: the headline metrics with their 95% intervals
    (:func:`rfkit.report.summary.ci_row`), or the values and why they have none, where the run stopped, and the
    convergence figure; nothing for a run without intervals asked for."""
    from rfkit.report.erf_files import erf_rows

    rows = [r for r in map(ci_row, erf_rows(result)) if r is not None]
    if not rows:
        return []
    header = list(rows[0])
    lines = ["### How many images are enough", ""]
    lines += md_table(header, [[md_code(r[c]) if c == LAYER else r[c] for c in header] for r in rows]) + [""]
    reason = (getattr(result, "bootstrap", None) or {}).get("reason")
    legend = f"Values over all images; {md_text(reason)}." if reason else CI_LEGEND
    lines += [f"{legend} Stopped: {md_text(result.stopped)}.", ""]
    if "convergence" in files:
        lines += [
            f"![ERF size in pixels against images seen, with 95% bands]({_rel(files['convergence'], folder)})",
            "",
        ]
    return lines


def _rel(path, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix()


def _rf_alt(result, layer: str) -> str:
    """What an overlay shows besides the ERF, for its alt text: the analytic RF, or why there is none."""
    from rfkit.report.labels import missing_rf_text

    why = missing_rf_text(result, layer)
    return "with its analytic RF" if why is None else f"({md_text(why)})"


def report_markdown(
    result, prod, resolution, rng, rng_local, statuses: dict, files: dict, folder: Path, sections=(), figures=None
) -> str:
    """The Markdown text of ``report.md`` (links relative to the report folder); ``sections``: lines of
    further sections (per-image contribution maps), placed before the file list; ``figures``: the
    :class:`~rfkit.report.looks.FigureOptions` the figures were drawn with (recorded in the header)."""
    from rfkit.report.looks import FigureOptions

    g = result.graph
    input_size = pair(result.input_size)
    w = result.weights
    random = is_random(w)
    lines = [f"# {md_text(result.model)}", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| model | {md_code(result.model)} |",
        f"| weights | {md_text(getattr(w, 'description', w))}"
        f"{' **(random: not a trained network)**' if random else ''} |",
        f"| images | {md_text(getattr(result.images, 'source', result.images))}, {result.num_images} used |",
        f"| input size | {input_size} (h×w) |",
        *([f"| input | {md_text(result.data_config['input_note'])} |"] if result.data_config.get("input_note") else []),
        f"| ERF method | {result.method} (raw maps: mean over images of the per-image map) |",
        f"| productivity at | {pair(resolution)} |",
        f"| figures | {(figures or FigureOptions()).record()} |",
        f"| device | {result.device} |",
        f"| rfkit | {__version__} |",
        "",
    ]
    if result.warnings:
        lines += warning_block("Read before using these numbers", [md_text(x) for x in result.warnings])

    out = g.output
    final = result.layers[-1]
    info = result.rf(final)
    lines += ["## Summary", ""]
    lines += [
        f"- RF of the last analysed layer ({md_code(final or '<output>')}): "
        + rf_label(info.size, info.local_size, info.is_global, unit="px")
        + f", stride {pair(info.stride)}."
    ]
    if out.is_global:
        lines += [
            "- The model's output is global (it sees the whole input)"
            + (f"; its local paths see {size(out.local_size, 'px')}." if out.local_size else ".")
        ]
    else:
        lines += [f"- The model's output: RF {size(out.size, 'px')}, stride {pair(out.stride)}."]
    lines += [f"- Productivity at {pair(resolution)}: {productivity_text(prod.counts())} ({LAYER_KINDS})."]
    lines += [
        f"- Input resolution range (RFA): min {pair(rng.min)}, max {pair(rng.max, all_inf='unbounded')}; "
        f"without global-context paths: max {pair(rng_local.max, all_inf='unbounded')}."
    ]
    if g.unsupported:
        ops = ", ".join(f"{md_text(u.op)} ×{u.count}" for u in g.unsupported)
        lines += [f"- Ops without an RF rule (RF unknown after them): {ops}."]
    lines += [""]

    lines += ["## Effective receptive fields", ""]
    if "stages" in files:
        lines += [f"![ERF of every analysed layer, shared colour scale]({_rel(files['stages'], folder)})", ""]
    lines += summary_tables(summary_rows(result, statuses))
    lines += [LEGEND + " Full columns: `erf.csv`, `metrics.json`.", ""]
    lines += ci_section(result, files, folder)
    for layer in result.layers:
        key = f"overlay:{layer}"
        if key in files:
            lines += [
                f"### {md_code(layer or '<output>')}",
                "",
                f"![ERF of {md_text(layer)} {_rf_alt(result, layer)}]({_rel(files[key], folder)})",
                "",
            ]

    lines += ["## Receptive field growth", ""]
    if "rf_growth" in files:
        lines += [f"![RF growth]({_rel(files['rf_growth'], folder)})", ""]
    lines += ["## Architecture", ""]
    if "graph.svg" in files:
        lines += [f"![Graph at module depth 2, coloured by productivity]({_rel(files['graph.svg'], folder)})", ""]
    else:
        lines += [
            "GraphViz's `dot` is not installed: `graph.dot` holds the graph (render it with "
            "`dot -Tsvg graph.dot -o graph.svg` after `apt-get install graphviz` / `brew install graphviz`).",
            "",
        ]
    lines += [*sections, "## Files", ""]
    described = {
        "layers.csv": "every node of the graph: analytic RF, stride, centre, padding, flags, status",
        "csv": "per analysed layer, the analytic RF and every ERF metric",
        "json": "the run header and the same per-layer values",
        "graph.dot": "GraphViz source",
        "graph.svg": "GraphViz drawing",
    }
    for key, text in described.items():
        if key in files:
            name = _rel(files[key], folder)
            lines += [f"- [{name}]({name}): {text}"]
    maps = [k for k in files if k.startswith("map:")]
    if maps:
        lines += [f"- `maps/*.npy`: the {len(maps)} raw ERF maps (float64, input resolution, no transform)"]
    if any(k.startswith("sem:") for k in files):
        lines += ["- `maps/*.sem.npy`: per pixel, the standard error of each map's mean over the images"]
    return "\n".join(lines) + "\n"
