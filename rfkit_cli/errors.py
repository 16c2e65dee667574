"""Turn errors into one-line messages and non-zero exit codes: users never see a bare traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer

from rfkit.errors import RFKitError
from rfkit_cli.console import terminal_text

EXIT_ERROR = 1
EXIT_INTERNAL = 3


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print ``error: message`` on stderr (made safe for a terminal) and exit with ``code``."""
    typer.echo(f"error: {terminal_text(message)}", err=True)
    raise typer.Exit(code)


def run_guarded(fn: Callable[[], object]) -> None:
    """Run ``fn``; map rfkit errors and running out of memory to exit 1 and anything unexpected to exit 3,
    one line each, made safe for a terminal (``RFKIT_DEBUG=1`` shows the traceback)."""
    try:
        fn()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except RFKitError as e:
        if os.environ.get("RFKIT_DEBUG"):
            raise
        typer.echo(f"error: {terminal_text(e)}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("RFKIT_DEBUG"):
            raise
        if _out_of_memory(e):
            typer.echo("error: out of memory: use a smaller --batch-size or --input-size", err=True)
            sys.exit(EXIT_ERROR)
        first = (str(e).strip().splitlines() or [""])[0]  # not a native backtrace of 45 lines
        typer.echo(
            f"internal error: {type(e).__name__}: {terminal_text(first)} (rerun with RFKIT_DEBUG=1 for the "
            "traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


def _out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    if "torch" not in sys.modules:  # only torch raises the other kinds; --help never imports it
        return False
    from rfkit.pipeline.devices import is_out_of_memory

    return is_out_of_memory(e)
