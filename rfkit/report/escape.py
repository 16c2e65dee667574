"""The escaping every page rfkit writes uses: anything that comes from a user or the file system (model spec,
weights and images descriptions, warnings, layer names, titles) goes through :func:`md_text` or :func:`md_code`,
so it shows as text, never as HTML, a link, emphasis, an attribute list or a table column."""

from __future__ import annotations

import html
import re

from rfkit.formatting import one_line

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
