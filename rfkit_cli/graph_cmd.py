"""``rfkit graph``: the analytic RF table of a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rfkit.errors import RFKitError
from rfkit_cli.format import fmt_pair, short_op


class UsageError(RFKitError):
    pass


def parse_input_size(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"224"`` → (224, 224); ``"224x192"``, ``"224,192"`` or ``"224 192"`` → (224, 192).

    >>> parse_input_size("224"), parse_input_size("256x192")
    ((224, 224), (256, 192))
    """
    if text is None:
        return None
    parts = [p for p in re.split(r"[x×, ]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"--input-size {text!r}: give one integer (square) or H W, e.g. --input-size 224 192")
    size = tuple(int(p) for p in parts)
    return size * 2 if len(size) == 1 else size


def graph_table(g, console: Console) -> None:
    table = Table(title=f"{g.model_name} @ {'×'.join(map(str, g.input_size))}", show_lines=False)
    for col in ("node", "op", "output shape", "RF " + "×".join(g.axis_names), "min RF", "stride", "centre",
                "padding", "flags"):
        table.add_column(col, overflow="fold")
    for name, info in g.items():
        rec = g.records[name]
        shape = "×".join(map(str, info.shape[1:])) if info.shape else "-"
        rf = fmt_pair(info.size)
        if info.is_global and info.local_size is not None:
            rf += f" (local {fmt_pair(info.local_size)})"
        if info.is_global and info.local_size is None and not info.unknown:  # no local path: no grid
            stride = center = padding = "-"
        else:
            stride, center, padding = fmt_pair(info.stride), fmt_pair(info.center, ", "), fmt_pair(info.padding, ", ")
        table.add_row(rec.module or name, short_op(rec.op), shape, rf, fmt_pair(info.size_min), stride, center,
                      padding, ",".join(info.flags()))
    console.print(table)


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
    model: str = typer.Argument(..., help="timm name (resnet50.a1_in1k), torchvision:NAME, or FILE.py:FACTORY."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="Input size: 224, or H W (e.g. 224 192). "
                                             "Default: the model's own, else 224."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the table (every node) as CSV here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary, not every node."),
) -> None:
    import rfkit

    size = parse_input_size(input_size)
    g = rfkit.trace(model, input_size=size)
    console = Console(width=None if Console().is_terminal else 200)
    if not quiet:
        graph_table(g, console)
    out = g.output
    console.print(f"{g.model_name}: {len(g)} nodes at input {'×'.join(map(str, g.input_size))}; "
                  f"output RF {fmt_pair(out.size)}" + (f" (local {fmt_pair(out.local_size)})"
                                                       if out.is_global and out.local_size else ""))
    unsupported_summary(g, console)
    if csv is not None:
        try:
            g.to_csv(csv)
        except OSError as e:
            raise UsageError(f"cannot write {csv}: {e.strerror or e}") from e
        console.print(f"wrote {csv}")
