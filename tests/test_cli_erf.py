"""`rfkit erf` through Typer's test runner: table, files, exit codes and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rfkit_cli.app import app, main, normalise_argv

runner = CliRunner()

NET = (
    "import torch.nn as nn\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))\n"
)


def invoke(*args):
    return runner.invoke(app, normalise_argv(list(args)))


@pytest.fixture
def net(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(NET)
    return f"{f}:build"


def test_erf_table_and_files(net, tmp_path):
    out = tmp_path / "out"
    r = invoke(
        "erf",
        net,
        "--trust",
        "-l",
        "0,2",
        "--images",
        "noise",
        "-n",
        "3",
        "--input-size",
        "20",
        "24",
        "--out",
        str(out),
        "-q",
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "erf.csv", dtype={"layer": str}).set_index("layer")
    # layer 2 sees 3 + 5 - 1 = 7 pixels per axis around the centre unit (10, 12) of a 20x24 input
    assert (df.loc["2", "rf_h"], df.loc["2", "rf_w"]) == (7, 7)
    assert (df.loc["2", "center_y"], df.loc["2", "center_x"]) == (10, 12)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["run"]["num_images"] == 3 and doc["run"]["input_size"] == [20, 24]
    assert doc["run"]["weights_kind"] == "as-given"
    m = np.load(out / "maps" / "2.npy")
    ys, xs = np.nonzero(m)
    assert m.shape == (20, 24) and (ys.min(), ys.max(), xs.min(), xs.max()) == (7, 13, 9, 15)


def test_erf_prints_the_table(net):
    r = invoke("erf", net, "--trust", "--images", "noise", "-n", "2", "--input-size", "16")
    assert r.exit_code == 0, r.output
    assert "ERF of" in r.output and "7×7" in r.output and "as built by" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["-l", "conv9"], "no node or module named 'conv9'"),
        (["--method", "luo"], "--method 'luo'"),
        (["--images", "/nonexistent/folder"], "/nonexistent/folder"),
        (["--unit", "99,0"], "outside"),
        (["--weights", "/no/such.pth"], "/no/such.pth"),
    ],
)
def test_erf_bad_input_is_one_line_and_exit_1(net, args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["erf", net, "--trust", "--images", "noise", "-n", "1", "--input-size", "16", "-q", *args])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message in err, err


def test_erf_empty_image_folder(net, tmp_path, capsys):
    empty = tmp_path / "imgs"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(SystemExit) as exc:
        main(["erf", net, "--trust", "--images", str(empty), "-n", "1", "--input-size", "16", "-q"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and err.startswith("error: no image files") and str(empty) in err


def test_seed_changes_noise_images_and_the_bootstrap(net, tmp_path):
    args = ["erf", net, "--trust", "-l", "2", "--images", "noise", "-n", "4", "--input-size", "16", "-q"]
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "7")):
        r = invoke(*args, "--seed", seed, "-o", str(tmp_path / name))
        assert r.exit_code == 0, r.output
        runs[name] = np.load(tmp_path / name / "maps" / "2.npy")
    assert np.array_equal(runs["a"], runs["b"]) and not np.array_equal(runs["a"], runs["c"])
    header = json.loads((tmp_path / "c" / "metrics.json").read_text())["run"]
    assert header["bootstrap"]["seed"] == 7
    assert invoke(*args, "--seed", "-1").exit_code != 0


def test_the_table_shows_the_intervals_unless_bootstrap_is_off(net):
    args = ["erf", net, "--trust", "-l", "2", "--images", "noise", "-n", "8", "--input-size", "16"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "95% interval" in r.output
    line = next(x for x in r.output.splitlines() if x.strip("│ ").startswith("2 ") and "[" in x)
    assert line.count("[") == 6  # the six headline metrics, each with its interval
    off = invoke(*args, "--bootstrap", "0")
    assert off.exit_code == 0 and "95% interval" not in off.output


SPACED = ["--images", "noise", "-n", "1", "--input-size", "16", "--device", "cpu", "-q", "--trust"]


@pytest.mark.parametrize(
    "layers", [["-l", "0", "2"], ["--layers", "0", "2"], ["-l", "0,2"], ["-l", "0", "-l", "2"], ["-l", "0", "2,"]]
)
def test_a_space_separated_layer_list_is_the_comma_list(net, tmp_path, layers):
    out = tmp_path / "out"
    r = invoke("erf", net, *layers, *SPACED, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert list(json.loads((out / "metrics.json").read_text())["layers"]) == ["0", "2"]


def test_models_come_before_the_layer_list_or_after_a_double_dash(net, tmp_path):
    assert normalise_argv(["analyze", "m1", "m2", "-l", "13", "16", "19", "22", "-n", "2"]) == [
        "analyze", "m1", "m2", "-l", "13,16,19,22", "-n", "2",
    ]  # fmt: skip
    assert normalise_argv(["figure", "a", "--layers", "final", "b"]) == ["figure", "a", "--layers", "final", "b"]
    r = invoke("erf", *SPACED, "-l", "0", "2", "--", net)
    assert r.exit_code == 0, r.output
    r = invoke("erf", *SPACED, "-l", "0", "2", net)  # the model read as a third layer: no model, one line
    assert r.exit_code == 1 and "before -l" in str(r.exception)
