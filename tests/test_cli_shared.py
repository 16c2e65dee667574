"""Options the commands share are defined once (rfkit_cli/options.py): the same name means the same thing,
with the same help, in every command that has it."""

from __future__ import annotations

import pytest
import typer

from rfkit_cli.app import app
from rfkit_cli.options import UsageError, check_method, parse_input_size, split_names

SHARED = ("--images", "--weights", "--input-size", "--device", "--batch-size", "--threads", "--method")


def _options() -> dict[str, dict[str, object]]:
    """command -> option name -> click parameter."""
    group = typer.main.get_command(app)
    return {name: {o: p for p in cmd.params for o in p.opts} for name, cmd in group.commands.items()}


def test_a_shared_option_reads_the_same_in_every_command():
    options = _options()
    del options["graph"]["--input-size"]  # graph's defaults to its --resolution: its own help says so
    for name in SHARED:
        having = {cmd: opts[name] for cmd, opts in options.items() if name in opts}
        helps = {p.help for p in having.values()}
        assert len(having) >= 2 and len(helps) == 1, (name, sorted(having), helps)
    for cmd in ("erf", "analyze", "attribute"):  # one --quiet for the commands that measure
        assert options[cmd]["-q"].help == options["erf"]["--quiet"].help
    assert options["erf"]["-n"].default == 32 and options["attribute"]["-n"].default == 4  # defaults stay per command


def test_parsing_of_shared_values():
    assert parse_input_size("224") == (224, 224) and parse_input_size("256 192") == (256, 192)
    assert split_names(["a,b", "", "c"]) == ["a", "b", "c"]
    with pytest.raises(UsageError, match="--resolution '0.5'"):
        parse_input_size("0.5", "--resolution")
    with pytest.raises(UsageError, match="--method 'luo': unknown ERF method 'luo'; use one of replknet, openerf"):
        check_method("luo")
