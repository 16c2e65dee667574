"""A FILE.py:FACTORY spec is Python code (issue 19): rfkit imports and runs the file only with ``trust=True``
(``--trust``, or its older name ``--trust-checkpoint``), like every other spec that runs code; a module passed
to the API needs no trust (its caller already ran the code)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.nn as nn

import rfkit
from rfkit.errors import UntrustedFileError
from rfkit.models.spec import build_model
from rfkit.models.weights import load_model
from rfkit.verification.estimate import estimate_rf
from rfkit_cli.app import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NET = """
import pathlib
import torch.nn as nn

pathlib.Path({marker!r}).write_text("ran")


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def build():
    return Net()
"""


@pytest.fixture
def marked(tmp_path) -> tuple[str, Path]:
    """A FILE.py:FACTORY spec whose file writes a marker file when imported, and that marker."""
    marker = tmp_path / "marker"
    (tmp_path / "net.py").write_text(NET.format(marker=str(marker)), encoding="utf-8")
    return f"{tmp_path / 'net.py'}:build", marker


API = {
    "build_model": lambda spec, **kw: build_model(spec, **kw),
    "load_model": lambda spec, **kw: load_model(spec, **kw),
    "trace": lambda spec, **kw: rfkit.trace(spec, input_size=16, **kw),
    "prepare": lambda spec, **kw: rfkit.prepare(spec, input_size=16, **kw),
    "erf": lambda spec, **kw: rfkit.erf(
        spec, layers=["2"], images=rfkit.Images("noise", 1, input_size=16), runtime="cpu", **kw
    ),
    "attribute": lambda spec, **kw: rfkit.attribute(
        spec, images=rfkit.Images("noise", 1, input_size=16), runtime="cpu", **kw
    ),
    "verify": lambda spec, **kw: rfkit.verify(spec, layers=["2"], input_size=16, estimate=False, **kw),
    "estimate_rf": lambda spec, **kw: estimate_rf(spec, layers="2", input_size=16, **kw),
}


@pytest.mark.parametrize("name", list(API))
def test_the_api_refuses_a_python_file_without_trust_and_runs_nothing(name, marked):
    spec, marker = marked
    with pytest.raises(UntrustedFileError) as exc:
        API[name](spec)
    assert not marker.exists()
    msg = str(exc.value)
    assert "\n" not in msg and "net.py" in msg and "Python code" in msg and "trust=True" in msg and "--trust" in msg


@pytest.mark.parametrize("name", ["trace", "verify", "attribute"])
def test_with_trust_the_file_is_imported_and_built(name, marked):
    spec, marker = marked
    API[name](spec, trust=True)
    assert marker.read_text() == "ran"


def test_the_trusted_graph_is_the_factorys(marked):
    g = rfkit.trace(marked[0], input_size=16, trust=True)
    assert g["2"].size == (5, 5)  # two 3x3 convolutions: 3 + 2


def test_analyze_refuses_and_writes_no_report(marked, tmp_path):
    with pytest.raises(UntrustedFileError):
        rfkit.analyze(marked[0], images=rfkit.Images("noise", 1, input_size=16), out=tmp_path / "reports")
    assert not marked[1].exists() and not list((tmp_path / "reports").glob("*/*"))


def test_a_module_needs_no_trust():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    assert rfkit.trace(net, input_size=16)["1"].size == (5, 5)


def _cli(capsys, *args) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    err = capsys.readouterr().err
    return exc.value.code, [ln for ln in err.splitlines() if ln.strip()], err


COMMANDS = {
    "graph": ["--input-size", "16", "-q"],
    "erf": ["-l", "2", "--images", "noise", "-n", "1", "--input-size", "16", "-q"],
    "analyze": ["-l", "2", "--images", "noise", "-n", "1", "--input-size", "16", "-q"],
    "attribute": ["--images", "noise", "-n", "1", "--input-size", "16", "-q"],
    "verify": ["-l", "2", "--input-size", "16", "--no-estimate"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_python_file_without_trust(command, marked, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, marker = marked
    code, lines, err = _cli(capsys, command, spec, *COMMANDS[command])
    assert code == 1 and not marker.exists()
    prefix = "failed " if command == "analyze" else "error: "  # analyze names each failed model of its batch
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    assert "net.py" in lines[0] and "Python code" in lines[0] and "--trust" in lines[0]


@pytest.mark.parametrize(
    ("command", "flag"), [("graph", "--trust"), ("verify", "--trust"), ("graph", "--trust-checkpoint")]
)
def test_with_the_flag_every_command_builds(command, flag, marked, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, marker = marked
    code, _, err = _cli(capsys, command, spec, *COMMANDS[command], flag)
    assert code == 0, err
    assert marker.read_text() == "ran"
