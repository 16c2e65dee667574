"""Where the commands print: tables on stdout (as wide as the terminal, or 200 columns into a pipe or file),
warnings on stderr, each once."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console


def stdout_console() -> Console:
    """A console for tables on stdout: the terminal's width, or 200 columns when stdout is not a terminal
    (so a pipe or a log file gets whole rows)."""
    return Console(width=None if Console().is_terminal else 200)


def print_warnings(messages, seen: set[str], write: Callable[[str], None] | None = None) -> None:
    """Print each of ``messages`` as one line ``warning: ...`` (on stderr unless ``write`` says otherwise),
    skipping those already in ``seen`` (which collects them). Warnings print with ``-q`` too."""
    from rfkit.report.markdown import one_line

    for message in messages:
        line = one_line(message)
        if line not in seen:
            seen.add(line)
            (write or (lambda text: typer.echo(text, err=True)))(f"warning: {line}")
