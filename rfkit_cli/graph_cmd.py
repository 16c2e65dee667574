"""``rfkit graph``: the analytic RF table of a model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfkit.formatting import MISSING, pair, rf_label, short_op, size
from rfkit_cli.console import stdout_console
from rfkit_cli.options import Model, TrustCheckpoint, UsageError, parse_input_size

STATUS_STYLES = {
    "productive": "green",
    "partially critical": "yellow",
    "critical": "dark_orange",
    "unproductive": "bold red",
    "global": "blue",
    "unknown": "dim",
    "input": "dim",
}


def graph_table(g, console: Console, report=None) -> None:
    title = f"{g.model_name} @ {pair(g.input_size)}"
    if report is not None:
        title += f" · status at {pair(report.input_size)}"
    table = Table(title=title, show_lines=False)
    columns = [
        "node",
        "op",
        "output shape",
        "RF " + "×".join(g.axis_names),
        "min RF",
        "stride",
        "centre",
        "padding",
        "flags",
    ]
    if report is not None:
        columns.insert(5, "status")
    for col in columns:
        table.add_column(col, overflow="fold")
    statuses = {e.node: e.status.value for e in report} if report is not None else {}
    for name, info in g.items():
        rec = g.records[name]
        shape = pair(info.shape[1:]) if info.shape else MISSING
        rf = rf_label(info.size, info.local_size, info.is_global)
        if info.is_global and info.local_size is None and not info.unknown:  # no local path: no grid
            stride = center = padding = MISSING
        else:
            stride, center, padding = pair(info.stride), pair(info.center, ", "), pair(info.padding, ", ")
        row = [
            rec.module or name,
            short_op(rec.op),
            shape,
            rf,
            size(info.size_min),
            stride,
            center,
            padding,
            ",".join(info.flags()),
        ]
        if report is not None:
            status = statuses.get(name, "input")
            row.insert(5, f"[{STATUS_STYLES.get(status, '')}]{status}[/]")
        table.add_row(*row)
    console.print(table)


def productivity_summary(report, console: Console) -> None:
    """Layer counts per status, and the unproductive and critical layers by name."""
    from rfkit.graph.productivity import Status
    from rfkit.report.summary import LAYER_KINDS, productivity_text

    console.print(
        f"Productivity of {report.model or 'the model'} at {pair(report.input_size)}: "
        f"{productivity_text(report.counts())} ({LAYER_KINDS}; min RF over paths)"
    )
    for status in (Status.UNPRODUCTIVE, Status.CRITICAL, Status.PARTIALLY_CRITICAL):
        layers = report.select(status)
        if layers:
            names = ", ".join(e.module or e.node for e in layers[:12]) + (
                f", … (+{len(layers) - 12})" if len(layers) > 12 else ""
            )
            console.print(f"  [{STATUS_STYLES[status.value]}]{status.value}[/]: {names}")


def range_summary(g, console: Console, ignore_global: bool) -> None:
    from rfkit.graph.productivity import input_resolution_range

    r = input_resolution_range(g, ignore_global=ignore_global)

    def where(nodes) -> str:
        names = [g.records[n].module or n for n in dict.fromkeys(nodes) if n]
        return f" (set by {', '.join(names)})" if names else ""

    unbounded = all(v == float("inf") for v in r.max)
    hi = (
        "unbounded (global-context paths: rerun with --ignore-global for the local paths)"
        if unbounded
        else pair(r.max) + where(r.max_nodes)
    )
    console.print(
        f"Input resolution range: min {pair(r.min)}{where(r.min_nodes)}, max {hi}"
        + (" — ignoring global-context paths" if ignore_global else "")
    )
    console.print(
        "  below min some layers with weights are unproductive; above max some input patterns exceed every RF"
    )
    if not r.feasible:
        console.print("  [yellow]min > max: no resolution avoids both[/]")
    if r.skipped:
        console.print(f"  [yellow]{len(r.skipped)} nodes with an unknown RF were left out[/]")


def unsupported_summary(g, console: Console) -> None:
    ops = g.unsupported
    if not ops:
        console.print("[green]All ops have an RF rule.[/green]")
        return
    table = Table(title=f"Unsupported ops ({sum(o.count for o in ops)} nodes): RF after them is unknown")
    for col in ("op", "count", "nodes", "reason"):
        table.add_column(col, overflow="fold")
    for o in ops:
        nodes = ", ".join(o.nodes[:4]) + (f", … (+{len(o.nodes) - 4})" if len(o.nodes) > 4 else "")
        table.add_row(o.op, str(o.count), nodes, "; ".join(o.reasons))
    console.print(table)


def graph_command(
    model: Model,
    input_size: str | None = typer.Option(
        None,
        "--input-size",
        help="Input size: 224, or H W (e.g. 224 192). "
        "Default: the --resolution if given, else the model's own, else 224.",
    ),
    csv: Path | None = typer.Option(None, "--csv", help="Also write the table (every node) as CSV here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary, not every node."),
    resolution: str | None = typer.Option(
        None,
        "--resolution",
        help="Input resolution for the productivity "
        "analysis (32, or H W): adds a status column (productive, "
        "critical, unproductive, ...) and a summary.",
    ),
    dot: Path | None = typer.Option(
        None,
        "--dot",
        help="Write the graph here: .svg, .png or .pdf (needs "
        "GraphViz's dot), or .dot; coloured by status with --resolution.",
    ),
    depth: int | None = typer.Option(
        None, "--depth", help="With --dot: collapse the graph to this module depth (2: a ResNet's blocks)."
    ),
    input_range: bool = typer.Option(
        False,
        "--input-range",
        help="Print the range of input resolutions in which no layer is unproductive and every pattern fits an RF.",
    ),
    ignore_global: bool = typer.Option(
        False,
        "--ignore-global",
        help="With --input-range: leave global-context paths (SE blocks, attention) out of the maximum.",
    ),
    trust_checkpoint: TrustCheckpoint = False,
) -> None:
    import rfkit
    from rfkit.errors import InputTooSmallError
    from rfkit.graph.productivity import productivity

    size = parse_input_size(input_size)
    res = parse_input_size(resolution, "--resolution")
    if dot is not None:
        from rfkit.report.dot import FORMATS

        if dot.suffix.lower().lstrip(".") not in FORMATS:
            raise UsageError(f"--dot {dot}: the file name must end in .svg, .png, .pdf or .dot")
    if depth is not None and depth < 1:
        raise UsageError(f"--depth {depth}: give a module depth of 1 or more")
    if depth is not None and dot is None:
        raise UsageError("--depth applies to the --dot graph; add --dot FILE")
    if ignore_global and not input_range:
        raise UsageError("--ignore-global applies to --input-range")
    console = stdout_console()
    note = ""
    try:
        g = rfkit.trace(model, input_size=size or res, trust=trust_checkpoint)
    except InputTooSmallError as e:
        if size is not None or res is None:
            raise
        g = rfkit.trace(model, trust=trust_checkpoint)
        note = (
            f"note: {model} cannot run at {pair(res)} ({str(e).split('. ')[0]}); its RF geometry "
            f"was traced at {pair(g.input_size)} and analysed at {pair(res)}"
        )
    report = productivity(g, res) if res is not None else None
    if not quiet:
        graph_table(g, console, report)
    out = g.output
    console.print(
        f"{g.model_name}: {len(g)} nodes at input {pair(g.input_size)}; "
        f"output RF {rf_label(out.size, out.local_size, out.is_global)}"
    )
    unsupported_summary(g, console)
    if g.incomplete:  # on stderr, -q or not: the RF above is not the whole model's
        from rfkit_cli.console import print_warnings

        print_warnings([f"incomplete graph: {g.incomplete}"], set())
    if note:
        console.print(f"[yellow]{escape(note)}[/]")  # the model's name and error may hold brackets
    if report is not None:
        productivity_summary(report, console)
    if input_range:
        range_summary(g, console, ignore_global)
    if csv is not None:
        from rfkit.report.files import graph_header
        from rfkit.report.provenance import with_provenance

        frame = g.to_frame()
        if report is not None:
            statuses = {e.node: e.status.value for e in report}
            frame["status"] = [statuses.get(n, "input") for n in frame["node"]]
        frame = with_provenance(frame, graph_header(g, model))
        try:
            from rfkit.io import atomic_write_text

            atomic_write_text(csv, frame.to_csv(index=False))
        except OSError as e:
            raise UsageError(f"cannot write {csv}: {e.strerror or e}") from e
        console.print(f"wrote {csv}")
    if dot is not None:
        from rfkit.report.dot import render

        try:
            written = render(g, dot, input_size=res, depth=depth)
        except OSError as e:
            raise UsageError(f"cannot write {dot}: {e.strerror or e}") from e
        console.print(f"wrote {written}")
