"""``rfkit report``: an mkdocs site from analysis folders."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.console import Console


def report_command(
    folders: List[Path] = typer.Argument(..., help="Analysis folders written by `rfkit analyze`, or their parent."),
    site: Path = typer.Option(Path("rfkit-site"), "--site", "-s", help="Folder for the mkdocs project."),
    title: str = typer.Option("rfkit reports", "--title", help="Site title."),
) -> None:
    """Build a self-contained mkdocs project (mkdocs.yml + docs/) from one or many analyses: a page per
    model and a comparison page. Build it with `mkdocs build --strict` inside SITE."""
    from rfkit.report.site import build_site, find_analyses

    n = len(find_analyses(folders))
    out = build_site(folders, site, title=title)
    Console(highlight=False).print(f"wrote an mkdocs project for {n} model(s) in {out}: run "
                                   f"`cd {out} && mkdocs build --strict` (or `mkdocs serve`); needs "
                                   "pip install \"rfkit\\[docs]\"")
