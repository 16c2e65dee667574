"""GraphViz views of an :class:`~rfkit.graph.rfgraph.RFGraph`: one box per node (or per module at a chosen
depth), labelled with its op, RF and stride, and coloured by its productivity status at an input size.

:func:`to_dot` returns DOT source; :func:`render` writes SVG, PNG or PDF with GraphViz's ``dot`` program,
or the DOT source itself (``.dot``/``.gv``). Without ``dot`` installed, :func:`render` writes the ``.dot``
file and raises :class:`~rfkit.errors.GraphvizNotFoundError` saying how to install GraphViz.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from rfkit.errors import GraphvizNotFoundError, RenderError
from rfkit.formatting import pair, rf_label, short_op, size
from rfkit.graph.productivity import SEVERITY, ProductivityReport, Status, op_category, productivity
from rfkit.graph.rfgraph import NodeRecord, RFGraph
from rfkit.io import atomic_write_bytes, atomic_write_text
from rfkit.report.summary import productivity_text

STATUS_COLOURS = {
    Status.PRODUCTIVE: "#c7e9c0",
    Status.PARTIALLY_CRITICAL: "#fff2a8",
    Status.CRITICAL: "#fdb863",
    Status.UNPRODUCTIVE: "#f08080",
    Status.GLOBAL: "#b3d4ee",
    Status.UNKNOWN: "#d9d9d9",
    Status.INPUT: "#ffffff",
}
"""Fill colour of each status (ColorBrewer-like, dark text stays readable on every one)."""

NEUTRAL_COLOUR = "#f4f4f4"
"""Fill colour when no input size is given (no status)."""

GLOBAL_BORDER = "#2b6cb0"
"""Border of a collapsed box that holds global layers (attention, an SE gate) besides local ones."""

FORMATS = ("svg", "png", "pdf", "dot", "gv")
INSTALL_HINT = (
    "install GraphViz (apt-get install graphviz / brew install graphviz / conda install graphviz) "
    "and rerun, or render the .dot file yourself: dot -Tsvg {dot} -o {out}"
)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _module_path(rec: NodeRecord) -> str:
    return rec.module or rec.scope or ""


@dataclass
class _Group:
    key: str
    members: list[str] = field(default_factory=list)


def _groups(g: RFGraph, depth: int | None) -> tuple[dict[str, _Group], dict[str, str]]:
    """Nodes grouped by their module path cut to ``depth`` parts (each node alone when ``depth`` is None).
    Returns the groups in topological order of their first member and the node → group key map."""
    groups: dict[str, _Group] = {}
    owner: dict[str, str] = {}
    for name, rec in g.records.items():
        path = _module_path(rec)
        key = name if depth is None or not path or rec.kind == "placeholder" else ".".join(path.split(".")[:depth])
        groups.setdefault(key, _Group(key)).members.append(name)
        owner[name] = key
    return groups, owner


def _cluster_path(g: RFGraph, group: _Group, depth: int | None) -> list[str]:
    """Module prefixes enclosing a group, outermost first (the clusters it is drawn in)."""
    rec = g.records[group.members[0]]
    path = _module_path(rec)
    if not path or rec.kind == "placeholder":
        return []
    parts = path.split(".")
    if depth is None:
        # a node is drawn inside its module's ancestors; a call_module node's own module is the node itself
        upto = len(parts) - 1 if rec.module else len(parts)
    else:
        upto = min(depth, len(parts)) - 1
    return [".".join(parts[:i]) for i in range(1, upto + 1)]


def _group_output(g: RFGraph, group: _Group) -> str:
    key = group.key
    out = g.module_outputs.get(key)
    return out if out in group.members else group.members[-1]


def _label(
    g: RFGraph, group: _Group, report: ProductivityReport | None, depth: int | None
) -> tuple[str, Status | None, bool]:
    members = group.members
    out_name = _group_output(g, group)
    rec = g.records[out_name]
    info = rec.info
    entries = {}
    if report is not None:
        by_node = {e.node: e for e in report.layers}
        entries = {m: by_node[m] for m in members if m in by_node}
    single = len(members) == 1
    title = group.key if depth is not None or not single else (rec.module or rec.name)
    lines = [f"<B>{escape(title)}</B>"]
    if single:
        op = short_op(rec.op)
        detail = getattr(rec, "detail", "")
        lines.append(escape(op + (f" {detail}" if detail else "")))
    else:
        cats = Counter(op_category(g.records[m].op) for m in members)
        shown = [
            f"{n} {c.replace('_', ' ')}"
            for c, n in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))
            if c != "other"
        ]
        if not shown:  # only reshapes, activations, norms: name them
            ops = list(dict.fromkeys(short_op(g.records[m].op) for m in members))
            shown = [", ".join(ops[:3]) + (f" +{len(ops) - 3}" if len(ops) > 3 else "")]
        lines.append(escape(", ".join(shown)))
    if rec.kind == "placeholder":
        lines.append(escape(pair(g.input_size)) + " input")
    elif info.unknown:
        lines.append("RF unknown")
    else:
        rf = f"RF {rf_label(info.size, info.local_size, info.is_global)}"
        if not info.is_global and info.size_min != info.size:
            rf += f", min {size(info.size_min)}"
        elif info.is_global and info.local_size is not None and info.size_min != info.local_size:
            rf += f", min {size(info.size_min)}"
        if info.local_size is not None:
            rf += f" · stride {pair(info.stride)}"
        lines.append(escape(rf))
        if info.shape is not None and info.dims:
            lines.append(escape("map " + pair([info.shape[d] for d in info.dims if d < len(info.shape)])))
    status, has_global = None, False
    if report is not None:
        has_global = any(e.status is Status.GLOBAL and e.is_layer for e in entries.values())
        if rec.kind == "placeholder":
            status = Status.INPUT
        elif entries:
            layer_entries = [e for e in entries.values() if e.is_layer] or list(entries.values())
            status = min((e.status for e in layer_entries), key=SEVERITY.index)
            if not single:
                counts = Counter(e.status for e in layer_entries if e.is_layer)
                if counts:
                    lines.append(
                        escape(
                            " · ".join(
                                f"{n} {s.value}"
                                for s, n in sorted(counts.items(), key=lambda kv: SEVERITY.index(kv[0]))
                            )
                        )
                    )
                    status = min(counts, key=SEVERITY.index)
    label = "<" + '<BR/><FONT POINT-SIZE="9">'.join([lines[0]] + [ln + "</FONT>" for ln in lines[1:]]) + ">"
    return label, status, has_global and status is not Status.GLOBAL


def to_dot(
    g: RFGraph,
    input_size=None,
    depth: int | None = None,
    *,
    path: str = "min",
    rankdir: str = "TB",
    title: str | None = None,
    legend: bool = True,
    clusters: bool = True,
) -> str:
    """DOT source of the graph: a box per node, or per module at ``depth``, coloured by productivity.

    Parameters
    ----------
    g : RFGraph
    input_size : int or tuple, optional
        Colour nodes by their status at this input resolution (:func:`~rfkit.graph.productivity.productivity`);
        without it nodes are not coloured.
    depth : int, optional
        Collapse the graph to module depth ``depth``: every node whose module path starts with the same
        ``depth`` parts becomes one box (``depth=2`` gives a ResNet's blocks, ``layer1.0``, ``layer1.1``...),
        labelled with its ops per category, the RF and stride of its output and, with ``input_size``, the
        statuses of its layers; it is coloured by its most severe layer status, and outlined in blue when
        it also holds global layers (attention, a squeeze-and-excitation gate). Default: every node.
    path : {"min", "max"}
        RF path measure of the productivity analysis.
    rankdir : str
        GraphViz layout direction (``TB`` top to bottom, ``LR`` left to right).
    title : str, optional
        Graph title (default: the model, input size and layer counts per status).
    legend : bool
        Draw the colour legend (with ``input_size``).
    clusters : bool
        Draw enclosing modules as labelled boxes (``layer1`` around ``layer1.0`` and ``layer1.1``).

    Returns
    -------
    str

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> from rfkit.report.dot import to_dot
    >>> g = rfkit.trace(nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(4)]), input_size=6)
    >>> src = to_dot(g, input_size=6, legend=False)
    >>> src.startswith("digraph"), src.count('fillcolor="#f08080"')  # the fourth conv is unproductive
    (True, 1)
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be TB, LR, BT or RL, not {rankdir!r}")
    report = productivity(g, input_size, path=path) if input_size is not None else None
    groups, owner = _groups(g, depth)
    ids = {key: f"n{i}" for i, key in enumerate(groups)}
    size_text = pair(report.input_size if report else g.input_size)
    if title is None:
        title = f"{g.model_name or 'model'}"
        if report is not None:
            title += f" at {size_text}: " + productivity_text(report.counts())
        else:
            title += f" (traced at {size_text})"
        if depth is not None:
            title += f" · module depth {depth}"
    out = [
        "digraph rfkit {",
        f'  graph [rankdir={rankdir}, label={_quote(title)}, labelloc=t, fontname="Helvetica", fontsize=14, '
        "nodesep=0.25, ranksep=0.35, newrank=true];",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, margin="0.12,0.05", '
        "penwidth=0.8];",
        '  edge [color="#555555", arrowsize=0.6];',
    ]
    # nested clusters from the groups' module paths
    tree: dict = {}
    for key, group in groups.items():
        node = tree
        for prefix in _cluster_path(g, group, depth) if clusters else []:
            node = node.setdefault(prefix, {})
        node.setdefault(None, []).append(key)
    counter = [0]

    def emit(node: dict, indent: str) -> None:
        for key in node.get(None, []):
            label, status, mixed = _label(g, groups[key], report, depth)
            colour = STATUS_COLOURS[status] if status is not None else NEUTRAL_COLOUR
            extra = ", shape=ellipse" if g.records[groups[key].members[0]].kind == "placeholder" else ""
            if mixed:  # holds a global layer (attention, an SE gate) besides local ones
                extra += f', color="{GLOBAL_BORDER}", penwidth=2.2'
            out.append(f'{indent}{ids[key]} [label={label}, fillcolor="{colour}"{extra}];')
        for prefix, child in node.items():
            if prefix is None:
                continue
            counter[0] += 1
            out.append(f"{indent}subgraph cluster_{counter[0]} {{")
            out.append(
                f'{indent}  label={_quote(prefix)}; style="rounded,dashed"; color="#999999"; '
                'fontname="Helvetica"; fontsize=10; labeljust=l;'
            )
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit(tree, "  ")
    seen = set()
    for name, rec in g.records.items():
        for src in rec.inputs:
            a, b = owner.get(src), owner[name]
            if a is None or a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            out.append(f"  {ids[a]} -> {ids[b]};")
    if legend and report is not None:
        out.append("  subgraph cluster_legend {")
        out.append('    label="status"; style="rounded"; color="#999999"; fontname="Helvetica"; fontsize=10;')
        shown = [s for s in SEVERITY if s is not Status.INPUT]
        for i, s in enumerate(shown):
            out.append(f'    legend{i} [label={_quote(s.value)}, fillcolor="{STATUS_COLOURS[s]}", fontsize=9];')
        if depth is not None:
            out.append(
                f'    legend{len(shown)} [label="holds global layers", fillcolor="{NEUTRAL_COLOUR}", '
                f'color="{GLOBAL_BORDER}", penwidth=2.2, fontsize=9];'
            )
            shown.append(None)
        out.append("    {rank=same; " + "; ".join(f"legend{i}" for i in range(len(shown))) + ";}")
        out.append("    " + " -> ".join(f"legend{i}" for i in range(len(shown))) + " [style=invis];")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def render(g: RFGraph, path, input_size=None, depth: int | None = None, *, format: str | None = None, **kwargs) -> Path:
    """Write the graph as SVG, PNG or PDF (GraphViz's ``dot`` program), or as DOT source:
    :func:`to_dot` then :func:`render_dot`.

    Parameters
    ----------
    g : RFGraph
    path : str or Path
        Output file; its extension picks the format unless ``format`` is given.
    input_size, depth, **kwargs
        As :func:`to_dot`.
    format : {"svg", "png", "pdf", "dot", "gv"}, optional

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    GraphvizNotFoundError
        ``dot`` is not installed: the DOT source was written next to ``path`` (``.dot``) and the message
        says how to install GraphViz.
    RenderError
        Unknown format, or ``dot`` failed.
    """
    check_format(path, format)
    return render_dot(to_dot(g, input_size, depth, **kwargs), path, format=format)


def check_format(path, format: str | None = None) -> str:
    """The output format of ``path`` (its extension, unless ``format`` is given), one of :data:`FORMATS`.

    Raises :class:`~rfkit.errors.RenderError` (one line) for any other.

    >>> check_format("net.svg"), check_format("net.out", "pdf")
    ('svg', 'pdf')
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RenderError(
            f"cannot write {path.name}: the format {fmt or '(none)'!r} is not one of "
            f"{', '.join(FORMATS)}; use a .svg, .png, .pdf or .dot file name"
        )
    return fmt


def render_dot(source: str, path, *, format: str | None = None) -> Path:
    """Write DOT ``source`` (from :func:`to_dot`) to ``path``: rendered by GraphViz's ``dot`` program as SVG,
    PNG or PDF, or as the source itself (``.dot``, ``.gv``), atomically.

    Use it to render a source computed once (``rfkit analyze`` writes ``graph.dot`` and draws ``graph.svg``
    from the same text).

    Parameters
    ----------
    source : str
        DOT source.
    path : str or Path
        Output file; its extension picks the format unless ``format`` is given.
    format : {"svg", "png", "pdf", "dot", "gv"}, optional

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    GraphvizNotFoundError
        ``dot`` is not installed: ``source`` was written next to ``path`` (``.dot``) and the message says
        how to install GraphViz.
    RenderError
        Unknown format, or ``dot`` failed.

    Examples
    --------
    >>> import tempfile
    >>> out = render_dot("digraph { a -> b }", Path(tempfile.mkdtemp()) / "ab.dot")
    >>> out.name, out.read_text()
    ('ab.dot', 'digraph { a -> b }')
    """
    path = Path(path)
    fmt = check_format(path, format)
    if fmt in ("dot", "gv"):
        return atomic_write_text(path, source)
    dot = shutil.which("dot")
    if dot is None:
        dot_path = atomic_write_text(path.with_suffix(".dot"), source)
        raise GraphvizNotFoundError(
            f"GraphViz's `dot` program is not installed, so {path.name} was not "
            f"rendered; wrote the graph as {dot_path}. " + INSTALL_HINT.format(dot=dot_path, out=path)
        )
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RenderError(f"running {dot} failed: {e}") from e
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise RenderError(f"dot failed to render {path.name} (exit {done.returncode}): {first}")
    if fmt == "svg":
        return atomic_write_text(path, done.stdout.decode())
    return atomic_write_bytes(path, done.stdout)
