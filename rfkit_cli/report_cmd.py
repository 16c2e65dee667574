"""``rfkit report``: an mkdocs site from analysis folders."""

from __future__ import annotations

from pathlib import Path

import typer

from rfkit_cli.console import terminal_text


def report_command(
    folders: list[Path] = typer.Argument(..., help="Analysis folders written by `rfkit analyze`, or their parent."),
    site: Path = typer.Option(Path("rfkit-site"), "--site", "-s", help="Folder for the mkdocs project."),
    title: str = typer.Option("rfkit reports", "--title", help="Site title."),
) -> None:
    """Build a self-contained mkdocs project (mkdocs.yml + docs/) from one or many analyses: a page per
    model and a comparison page. Build it with `mkdocs build --strict` inside SITE. A folder SITE whose
    docs/ or mkdocs.yml rfkit did not write is left alone (error); a report folder whose run.json or
    metrics.json is not rfkit's is skipped with a warning."""
    from rfkit.report.site import find_analyses, write_site

    analyses = find_analyses(folders, on_skip=lambda line: typer.echo(f"warning: {terminal_text(line)}", err=True))
    out = write_site(analyses, site, title=title)
    typer.echo(
        f"wrote an mkdocs project for {len(analyses)} model(s) in {out}: run "
        f'`cd {out} && mkdocs build --strict` (or `mkdocs serve`); needs pip install "rfkit[docs]"'
    )
