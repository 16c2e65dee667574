"""`rfkit graph` through Typer's test runner: output, CSV, exit codes and one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from rfkit_cli.app import app, main, normalise_argv

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, normalise_argv(list(args)))


def test_graph_table_and_summary():
    r = invoke("graph", "torchvision:resnet18", "--input-size", "64")
    assert r.exit_code == 0, r.output
    assert "layer4.1.conv2" in r.output and "435×435" in r.output and "32×32" in r.output
    assert "All ops have an RF rule" in r.output


def test_non_square_input_and_csv(tmp_path):
    csv = tmp_path / "rf.csv"
    r = invoke("graph", "torchvision:alexnet", "--input-size", "227", "195", "--csv", str(csv), "-q")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(csv).set_index("node")
    assert df.loc["x", "rf_h"] == 1
    first = df.iloc[1]
    assert (first.rf_h, first.rf_w, first.stride_h) == (11, 11, 4)
    assert "227×195" in r.output


def test_unsupported_ops_are_summarised(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(
        "import torch, torch.nn as nn\n\n"
        "class Cum(nn.Module):\n    def forward(self, x):\n        return torch.cumsum(x, 3)\n\n"
        "def build():\n    return nn.Sequential(nn.Conv2d(3, 3, 3), Cum(), nn.Conv2d(3, 3, 3))\n"
    )
    r = invoke("graph", f"{f}:build", "--trust", "-q", "--input-size", "16")
    assert r.exit_code == 0, r.output
    assert "Unsupported ops (1 nodes)" in r.output and "cumsum" in r.output and "?×?" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (("graph", "resnet5O"), "Close matches"),
        (("graph", "torchvision:vgg16", "--input-size", "16"), "input too small"),
        (("graph", "resnet18", "--input-size", "abc"), "--input-size"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_unwritable_csv_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["graph", "torchvision:resnet18", "--input-size", "32", "-q", "--csv", str(blocker / "rf.csv")])
    assert exc.value.code == 1
    assert "cannot write" in capsys.readouterr().err


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "rfkit" in r.output


def test_help_texts_keep_their_square_brackets():
    """Rich reads ``[demo]`` as a style and would drop it from ``pip install "rfkit[demo]"``."""
    for command in ("erf", "analyze"):
        out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "rfkit[demo]" in out and "name[.tag]" in out, out
