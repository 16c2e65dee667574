"""Where the commands print: tables on stdout (as wide as the terminal, or 200 columns into a pipe or file),
warnings on stderr, each once, and every message made safe for a terminal (:func:`terminal_text`)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console


class SafeConsole(Console):
    """A rich console that renders every string made safe for a terminal (:func:`terminal_text`, line breaks
    kept): table cells, titles and printed lines alike, so a layer, file or model name holding ``ESC[2J``
    prints as text instead of clearing the screen. rich's own colour codes are not strings it renders, and
    stay."""

    def render_str(self, text: str, **kwargs):
        return super().render_str("\n".join(map(terminal_text, text.split("\n"))), **kwargs)


def stdout_console() -> Console:
    """A console for tables on stdout: the terminal's width, or 200 columns when stdout is not a terminal
    (so a pipe or a log file gets whole rows)."""
    return SafeConsole(width=None if Console().is_terminal else 200)


def stderr_console() -> Console:
    """A console on stderr (progress, failures), made safe for a terminal as :class:`SafeConsole`."""
    return SafeConsole(stderr=True)


_LINE_BREAKS = frozenset("\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def terminal_text(text) -> str:
    r"""``str(text)`` safe to print on a terminal, on one line: line breaks and tabs as spaces, every other
    character that is not printable (C0 and C1 controls such as ESC and the CSI/OSC sequences it starts,
    DEL, bidirectional overrides) as its escape (``\x1b``), lone surrogates (file names that are not UTF-8)
    as ``?``. A file named ``ESC[2J`` can then neither clear the screen nor set the window's title.

    >>> terminal_text("a\x1b[2Jb\x1b]0;title\x07 c\x9bd\x7f\nnext")
    'a\\x1b[2Jb\\x1b]0;title\\x07 c\\x9bd\\x7f next'
    """
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    return "".join(
        c if c.isprintable() else " " if c in _LINE_BREAKS else c.encode("unicode_escape").decode("ascii") for c in text
    )


def print_warnings(messages, seen: set[str], write: Callable[[str], None] | None = None) -> None:
    """Print each of ``messages`` as one line ``warning: ...`` (on stderr unless ``write`` says otherwise),
    skipping those already in ``seen`` (which collects them), made safe for a terminal (:func:`terminal_text`).
    Warnings print with ``-q`` too."""
    for message in messages:
        line = terminal_text(message)
        if line not in seen:
            seen.add(line)
            (write or (lambda text: typer.echo(text, err=True)))(f"warning: {line}")
