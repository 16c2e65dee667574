"""``rfkit`` command-line entry point: the commands, one :class:`Command` line each in :data:`COMMANDS`.

A command is a function in its own module (``rfkit_cli/NAME_cmd.py``) taking Typer-annotated options
(:mod:`rfkit_cli.options`), or a :class:`typer.Typer` of sub-commands (``rfkit atlas ...``).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import typer
from rich.console import Console

from rfkit_cli.errors import run_guarded


@dataclass(frozen=True)
class Command:
    """One ``rfkit`` command.

    Attributes
    ----------
    name : str
        What follows ``rfkit`` on the command line.
    target : str or callable or typer.Typer
        ``"module:attribute"`` of the command's function (or of a Typer of sub-commands), or the object.
    help : str, optional
        The one-line help of ``rfkit --help``; default the function's docstring.
    """

    name: str
    target: str | Callable | typer.Typer
    help: str | None = None

    def resolve(self) -> Callable | typer.Typer:
        """The function (or Typer) the target names."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


COMMANDS: tuple[Command, ...] = (
    Command(
        "analyze",
        "rfkit_cli.analyze_cmd:analyze_command",
        "Analyse MODEL(s): RF graph, productivity and ERF of the stage outputs, as a report "
        "folder with figures, CSV/JSON/NPY and GraphViz.",
    ),
    Command(
        "graph",
        "rfkit_cli.graph_cmd:graph_command",
        "Trace MODEL and print the analytic receptive field of every node; with --resolution, "
        "which layers are unproductive; --dot draws the graph.",
    ),
    Command(
        "erf",
        "rfkit_cli.erf_cmd:erf_command",
        "Measure the effective receptive field of MODEL's layers from input gradients.",
    ),
    Command(
        "report",
        "rfkit_cli.report_cmd:report_command",
        "Build an mkdocs site from analysis folders (one page per model and a comparison page).",
    ),
    Command(
        "figure",
        "rfkit_cli.figure_cmd:figure_command",
        "Draw the ERFs of several analysed models as one grid (rows: models, columns: layers at the same "
        "depth; one spatial and one colour scale), as a paper uses it.",
    ),
    Command(
        "rf-grid",
        "rfkit_cli.rf_grid_cmd:rf_grid_command",
        "Draw the analytic RF boxes and centres of a grid of units of one layer (the corners and the centre, "
        "or an N×N lattice) over an image, with each unit's ERF.",
    ),
    Command(
        "collect",
        "rfkit_cli.collect_cmd:collect_command",
        "Collect report folders into one CSV table: a row per model and layer, provenance columns first, "
        "ERF metrics and analytic RF; unreadable folders are listed on stderr.",
    ),
    Command(
        "list-models", "rfkit_cli.analyze_cmd:list_models_command", "List the models rfkit can analyse, or a preset's."
    ),
    Command(
        "verify",
        "rfkit_cli.verify_cmd:verify_command",
        "Check the analytic RF of MODEL's layers against measured gradient support.",
    ),
    Command(
        "attribute",
        "rfkit_cli.attribute_cmd:attribute_command",
        "Per-image contribution maps of a class or a unit (saliency, IG, SmoothGrad, "
        "Grad-CAM, ...), as maps, CSV, a figure and report.md.",
    ),
    Command("atlas", "rfkit_cli.atlas_cmd:atlas_app"),
)
"""Every ``rfkit`` command, in the order ``rfkit --help`` lists them."""


def build_app(commands: Iterable[Command] = COMMANDS) -> typer.Typer:
    """The ``rfkit`` Typer app of ``commands``.

    >>> from typer.testing import CliRunner
    >>> def hello(name: str) -> None:
    ...     print(f"hello {name}")
    >>> print(CliRunner().invoke(build_app([Command("hello", hello, "Say hello.")]), ["hello", "rfkit"]).output)
    hello rfkit
    <BLANKLINE>
    """
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        help="Theoretical (RF) and effective (ERF) receptive fields of vision models.",
    )
    for command in commands:
        target = command.resolve()
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=command.name, **({"help": command.help} if command.help else {}))
        else:
            app.command(command.name, help=command.help)(target)
    app.callback(invoke_without_command=True)(_root)
    return app


def _root(
    ctx: typer.Context, version: bool = typer.Option(False, "--version", help="Print the rfkit version and exit.")
) -> None:
    if version:
        import rfkit

        Console().print(f"rfkit {rfkit.__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


app = build_app()

_INT = re.compile(r"^\d+$")


#: Commands whose ``--layers`` / ``-l`` takes a space-separated list (``rfkit figure --layers`` takes one word).
LAYER_LIST_COMMANDS = ("analyze", "erf", "verify")
_LAYERS = ("--layers", "-l")


def normalise_argv(argv: list[str]) -> list[str]:
    """Let ``--input-size H W``, ``--resolution H W`` and ``--layers 13 16 19 22`` through: Typer options take
    a fixed number of values, so two integers after either size option are joined into ``HxW``, and the
    words after ``--layers`` / ``-l`` of ``rfkit analyze``, ``erf`` and ``verify``, up to the next option (a
    word starting with ``-``, ``--`` included) or the end, into one comma-separated value. So the models come
    before ``-l`` (or after the list and ``--``): ``rfkit analyze m1 m2 -l 13 16`` measures layers 13 and 16
    of m1 and m2.

    >>> normalise_argv(["graph", "m", "--input-size", "224", "192", "--csv", "a.csv"])
    ['graph', 'm', '--input-size', '224x192', '--csv', 'a.csv']
    >>> normalise_argv(["analyze", "m1", "m2", "-l", "13", "16", "-n", "2"])
    ['analyze', 'm1', 'm2', '-l', '13,16', '-n', '2']
    >>> normalise_argv(["erf", "--layers", "13", "16,19", "--", "m"])
    ['erf', '--layers', '13,16,19', '--', 'm']
    """
    lists = bool(argv) and argv[0] in LAYER_LIST_COMMANDS
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if (
            a in ("--input-size", "--resolution")
            and i + 2 < len(argv)
            and _INT.match(argv[i + 1])
            and _INT.match(argv[i + 2])
        ):
            out += [a, f"{argv[i + 1]}x{argv[i + 2]}"]
            i += 3
            continue
        if lists and a in _LAYERS and i + 1 < len(argv):
            words = _words_until_option(argv, i + 1)
            out += [a, ",".join(words)] if words else [a]
            i += 1 + len(words)
            continue
        out.append(a)
        i += 1
    return out


def _words_until_option(argv: list[str], start: int) -> list[str]:
    """The words of ``argv`` from ``start`` up to the next option (a word starting with ``-``)."""
    end = start
    while end < len(argv) and not argv[end].startswith("-"):
        end += 1
    return argv[start:end]


def main(argv: list[str] | None = None) -> None:
    args = normalise_argv(list(sys.argv[1:] if argv is None else argv))
    run_guarded(lambda: app(args=args, prog_name="rfkit"))


if __name__ == "__main__":
    main()
