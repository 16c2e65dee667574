"""``report.md``: one analysis in Markdown, headed by what was run; and the escaping every page uses.

Everything that comes from a user or the file system (model spec, weights and images descriptions,
warnings, layer names, titles) goes through :func:`md_text` or :func:`md_code`: it shows as text, never as
HTML, a link, emphasis, an attribute list or a table column.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

from rfkit.report.erf_files import erf_rows, ratio_label, rf_label


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


def _num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "global"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}f}"
    return str(int(v)) if isinstance(v, (int, float)) else str(v)


def _pair(values, sep: str = "×", digits: int = 2) -> str:
    if values is None:
        return "–"
    values = tuple(values)
    if len(set(values)) == 1 and sep == "×":
        return f"{_num(values[0], digits)}{sep}{_num(values[0], digits)}" if values[0] is not None else "–"
    return sep.join(_num(v, digits) for v in values)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table of cells that are already Markdown (escaped with :func:`md_text` / :func:`md_code`)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _rel(path, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix()


def report_markdown(result, prod, resolution, rng, rng_local, statuses: dict, files: dict, folder: Path) -> str:
    """The Markdown text of ``report.md`` (links relative to the report folder)."""
    import rfkit

    g = result.graph
    size = "×".join(map(str, result.input_size))
    w = result.weights
    random = getattr(w, "kind", "") in ("random", "random-safe")
    lines = [f"# {md_text(result.model)}", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| model | {md_code(result.model)} |",
        f"| weights | {md_text(getattr(w, 'description', w))}"
        f"{' **(random: not a trained network)**' if random else ''} |",
        f"| images | {md_text(getattr(result.images, 'source', result.images))}, {result.num_images} used |",
        f"| input size | {size} (h×w) |",
        f"| ERF method | {result.method} (raw maps: mean over images of the per-image map) |",
        f"| productivity at | {'×'.join(map(str, resolution))} |",
        f"| device | {result.device} |",
        f"| rfkit | {rfkit.__version__} |",
        "",
    ]
    if result.warnings:
        lines += ['!!! warning "Read before using these numbers"', ""]
        lines += [f"    - {md_text(x)}" for x in result.warnings]
        lines += [""]

    out = g.output
    final = result.layers[-1]
    info = result.rf(final)
    lines += ["## Summary", ""]
    lines += [
        f"- RF of the last analysed layer ({md_code(final or '<output>')}): "
        + (
            f"global; local paths {_pair(info.local_size)} px"
            if info.is_global and info.local_size
            else f"{_pair(info.size)} px"
        )
        + f", stride {_pair(info.stride)}."
    ]
    if out.is_global:
        lines += [
            "- The model's output is global (it sees the whole input)"
            + (f"; its local paths see {_pair(out.local_size)} px." if out.local_size else ".")
        ]
    else:
        lines += [f"- The model's output: RF {_pair(out.size)} px, stride {_pair(out.stride)}."]
    lines += [f"- Productivity at {'×'.join(map(str, resolution))}: {prod.summary().split(': ', 1)[-1]}."]
    lines += [
        f"- Input resolution range (RFA): min {_pair(rng.min, '×')}, max {_pair(rng.max, '×')}; "
        f"without global-context paths: max {_pair(rng_local.max, '×')}."
    ]
    if g.unsupported:
        ops = ", ".join(f"{md_text(u.op)} ×{u.count}" for u in g.unsupported)
        lines += [f"- Ops without an RF rule (RF unknown after them): {ops}."]
    lines += [""]

    lines += ["## Effective receptive fields", ""]
    if "stages" in files:
        lines += [f"![ERF of every analysed layer, shared colour scale]({_rel(files['stages'], folder)})", ""]
    header = [
        "layer",
        "status",
        "unit",
        "centre (y, x)",
        "RF h×w",
        "stride",
        "ERF 95% h×w",
        "ERF/RF",
        "area ratio 0.5 (RepLKNet)",
        "Gaussian σ y×x",
        "R²",
        "notes",
    ]
    rows = []
    for layer, row in zip(result.layers, erf_rows(result, statuses)):
        info = result.rf(layer)
        m = result.metrics.get(layer)
        d = m.as_dict() if m is not None else {}
        notes = "; ".join(getattr(m, "warnings", ()) or ()) if m is not None else ""
        if d and not d.get("gauss_like"):
            notes = "; ".join(x for x in (notes, f"not Gaussian-like ({d.get('gauss_reason')})") if x)
        rows.append(
            [
                md_code(layer or "<output>"),
                statuses.get(layer, ""),
                _pair(result.unit[layer], ", "),
                _pair(result.center[layer], ", ", 1),
                rf_label(row),
                _pair(info.stride),
                f"{_num(d.get('erf_side_h'))}×{_num(d.get('erf_side_w'))}",
                ratio_label(row),
                _num(d.get("area_ratio_0.5"), 4),
                f"{_num(d.get('gauss_sigma_y'), 1)}×{_num(d.get('gauss_sigma_x'), 1)}",
                _num(d.get("gauss_r2"), 3),
                notes.replace("|", "\\|"),
            ]
        )
    lines += _table(header, rows) + [""]
    lines += [
        "Metrics are centred on the measured unit's analytic RF centre. ERF 95%: the centred interval "
        "per axis holding 95% of the map's mass; ERF/RF: that over the analytic RF size (over the input size for "
        "global layers, whose RF is the whole input). Area ratio: "
        "RepLKNet's high-contribution area at threshold 0.5 of log10(map + 1) / max, on a box around "
        "the unit's centre. Full columns: `erf.csv`, `metrics.json`.",
        "",
    ]
    for layer in result.layers:
        key = f"overlay:{layer}"
        if key in files:
            lines += [
                f"### {md_code(layer or '<output>')}",
                "",
                f"![ERF of {md_text(layer)} with its analytic RF]({_rel(files[key], folder)})",
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
    lines += ["## Files", ""]
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
    return "\n".join(lines) + "\n"
