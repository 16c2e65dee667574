"""Presets with settings: the ``yolo`` preset (get_model_erf.py's recipe) through ``rfkit analyze`` and
``rfkit erf``, the area-ratio table they print, and ``rfkit analyze --trust-checkpoint``.

The preset's own model (YOLO11-L at 640 px, 100 images) takes minutes on a CPU: the tests name yolo11n, which
a preset with settings lets the user do, at 64 px on one noise image. The printed area ratios are checked
against erf.csv and against the seed's table (get_model_erf.py's get_rectangle) written here from its
definition.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rfkit.models.ultralytics import kept_global_state
from rfkit.report.presets import apply_preset, get_preset
from rfkit_cli.app import app, main, normalise_argv

with kept_global_state():
    pytest.importorskip("ultralytics")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

runner = CliRunner()
SMALL = ["--input-size", "64", "-n", "1", "--images", "noise", "--device", "cpu"]
YOLO_LAYERS = ["13", "16", "19", "22"]


def invoke(*args):
    return runner.invoke(app, normalise_argv(list(args)))


def get_rectangle(data: np.ndarray, thresh: float):
    """The seed's table entry, from its definition: the first square around pixel (h // 2, w // 2) of
    half-width i = 1, 2, ... below h // 2 whose sum is more than ``thresh`` of the map's; its side and area
    ratio, or None when there is none."""
    h, w = data.shape
    total = np.sum(data)
    for i in range(1, h // 2):
        if np.sum(data[h // 2 - i : h // 2 + 1 + i, w // 2 - i : w // 2 + 1 + i]) / total > thresh:
            return i * 2 + 1, (i * 2 + 1) / h * (i * 2 + 1) / w
    return None


def seed_table(m: np.ndarray) -> dict[float, tuple | None]:
    """The seed's table of a raw map: ``log10(m + 1) / max``, then :func:`get_rectangle` per threshold."""
    data = np.log10(m + 1)
    data = data / np.max(data)
    return {t: get_rectangle(data, t) for t in (0.2, 0.3, 0.5, 0.99)}


def table_rows(output: str) -> dict[str, list[str]]:
    """The area table's body rows as printed (layer -> cells), from rich's box drawing."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 9 and re.fullmatch(r"\d+(-\d+)?", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def check_table_against(rows: dict[str, list[str]], folder, layers) -> None:
    """Every printed side and ratio equals erf.csv's and metrics.json's, and the seed's own table on the raw
    map, in float64."""
    csv = pd.read_csv(folder / "erf.csv", dtype={"layer": str}).set_index("layer")
    saved = json.loads((folder / "metrics.json").read_text())["layers"]
    assert list(rows) == layers
    for layer in layers:
        m = np.load(folder / "maps" / f"{layer}.npy")
        assert m.dtype == np.float64
        for i, (t, want) in enumerate(seed_table(m).items()):
            printed_side, printed_ratio = rows[layer][2 * i], rows[layer][2 * i + 1]
            if want is None:
                assert (printed_side, printed_ratio) == ("—", "—")
                assert math.isnan(csv.loc[layer, f"area_ratio_{t}"])
                continue
            side, ratio = want
            assert printed_side == str(side) and printed_ratio == f"{ratio:.4f}"
            assert (csv.loc[layer, f"area_side_h_{t}"], csv.loc[layer, f"area_side_w_{t}"]) == (side, side)
            assert saved[layer][f"area_ratio_{t}"] == ratio  # exactly: the seed's float64 arithmetic
            assert csv.loc[layer, f"area_ratio_{t}"] == pytest.approx(ratio, rel=1e-15)


def test_a_preset_s_settings_are_defaults_that_options_override():
    yolo = get_preset("yolo")
    assert yolo.models == ("ultralytics:yolo11l.yaml",) and yolo.layers == tuple(YOLO_LAYERS)
    assert yolo.num_images == 100 and yolo.area_table
    run = apply_preset("yolo", [], ["13"], 3)
    assert (run.models, run.layers, run.num_images, run.area_table) == (yolo.models, ("13",), 3, True)
    own = apply_preset("yolo", ["ultralytics:runs/best.pt"])  # a named model replaces the preset's
    assert own.models == ("ultralytics:runs/best.pt",) and own.num_images == 100
    listed = apply_preset("cnn-vs-vit", ["resnet18"], None, None, default_images=32)  # a model list adds
    assert listed.models[0] == "resnet18" and len(listed.models) == 5
    assert (listed.layers, listed.num_images, listed.area_table) == (None, 32, False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An ultralytics checkpoint as ultralytics saves one (a pickled model under 'model'), of yolo11n with a
    first convolution random init does not give."""
    from rfkit.models.spec import build_model

    model = build_model("ultralytics:yolo11n.yaml", device="cpu")
    with torch.no_grad():
        model.model[0].conv.weight.fill_(0.25)
    path = tmp_path_factory.mktemp("runs") / "best.pt"
    torch.save({"model": model}, path)
    return path


def test_analyze_refuses_a_pickled_checkpoint_without_trust(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", f"ultralytics:{checkpoint}", *SMALL, "-l", "13", "--out", str(tmp_path), "-q"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs whatever code it names" in err[0] and "--trust-checkpoint" in err[0], err
    assert not list(tmp_path.iterdir())


def test_analyze_runs_a_trusted_checkpoint_with_the_yolo_preset(checkpoint, tmp_path):
    r = invoke("analyze", f"ultralytics:{checkpoint}", "--trust-checkpoint", "--preset", "yolo", *SMALL, "-o", tmp_path)
    assert r.exit_code == 0, r.output
    folder = next(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    header = json.loads((folder / "run.json").read_text())
    assert header["layers"] == YOLO_LAYERS  # the preset's layers
    assert header["num_images"] == 1  # -n wins over the preset's 100
    assert "checkpoint" in json.dumps(header["weights"]) and checkpoint.name in json.dumps(header["weights"])
    assert str(checkpoint.parent) not in json.dumps(header["weights"])  # no absolute local path
    assert "area ratios of" in r.output
    check_table_against(table_rows(r.output), folder, YOLO_LAYERS)
    # the one figure with a panel per layer
    assert (folder / "figures" / "stages.png").is_file()
    report = (folder / "report.md").read_text()
    note = next(line for line in report.splitlines() if line.startswith("| input |"))
    assert "letterbox to the input size" in note and "/255" in note


def test_erf_preset_with_layers_given_and_area_table(tmp_path):
    at_128 = [*SMALL[2:], "--input-size", "128"]  # the neck's grids 16, 8, 4: the seed's boxes have room
    r = invoke("erf", "ultralytics:yolo11n.yaml", "--preset", "yolo", *at_128, "-l", "16", "22", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    check_table_against(table_rows(r.output), tmp_path, ["16", "22"])
    csv = pd.read_csv(tmp_path / "erf.csv", dtype={"layer": str}).set_index("layer")
    assert csv.loc["16", "area_side_h_0.2"] < csv.loc["16", "area_side_h_0.99"]  # not a degenerate table
    # the upsampled neck's unit (8, 8) of layer 16 has its analytic centre at 8 * 8 - 16 = 48, its ERF near
    # the image's middle: more than a stride (8) apart, which the run says
    assert (csv.loc["16", "center_y"], csv.loc["16", "center_x"]) == (48, 48)
    assert abs(csv.loc["16", "centroid_dy"]) > 8 and "the ERF of 16 is centred at" in r.output
    # the one figure with a panel per layer, each on its own scale as get_model_erf.py draws them
    from PIL import Image

    width, height = Image.open(tmp_path / "figures" / "panels.png").size
    assert width > height  # two panels side by side
    assert "figures/panels.png" in json.loads((tmp_path / ".rfkit-erf.json").read_text())["files"]


def test_erf_area_table_without_a_preset(tmp_path):
    r = invoke("erf", "ultralytics:yolo11n.yaml", *SMALL, "-l", "13", "-o", tmp_path, "--area-table")
    assert r.exit_code == 0, r.output
    check_table_against(table_rows(r.output), tmp_path, ["13"])
    plain = invoke("erf", "ultralytics:yolo11n.yaml", *SMALL, "-l", "13")
    assert plain.exit_code == 0 and "area ratios of" not in plain.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--preset", "tiny"], "rfkit erf measures one model"),
        ([], "no model given"),
        (["--preset", "nope"], "unknown preset 'nope'"),
    ],
)
def test_erf_preset_bad_input_is_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["erf", *args, "-q"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err


def test_list_models_shows_the_yolo_preset():
    r = invoke("list-models", "--presets")
    assert r.exit_code == 0
    line = next(x for x in r.output.splitlines() if x.startswith("yolo "))
    assert "1 model)" in line and "13, 16, 19, 22" in line
    assert invoke("list-models", "--preset", "yolo").output.split() == ["ultralytics:yolo11l.yaml"]
