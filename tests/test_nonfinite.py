"""Non-finite numbers are said, never silent (issue 19, item 3): NaN/inf logits and maps in `rfkit attribute`,
NaN in an ERF layer; and interrupted runs leave no mixed folders (item 7): `rfkit attribute -o` and figures
written as a whole, what a killed run left removed by the next one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.attribution.errors import TargetError
from rfkit.errors import NonFiniteWarning
from rfkit_cli.app import main


class Sqrt(nn.Module):
    """NaN where its input is negative."""

    def forward(self, x):
        return x.sqrt()


class SqrtNet(nn.Module):
    """Logits (5 classes) that are NaN exactly for images with a negative pixel (0, 0, 0): ``sqrt`` runs first."""

    def __init__(self):
        super().__init__()
        self.sqrt = Sqrt()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.pool(self.conv(self.sqrt(x))).flatten(1))


def _images() -> torch.Tensor:
    x = torch.full((2, 3, 16, 16), 0.5)
    x[1, 0, 0, 0] = -1.0  # image 1 only: NaN from module 'sqrt' on
    return x


def test_nan_logits_are_named_by_image_and_module_and_flagged_per_row():
    torch.manual_seed(0)
    with pytest.warns(NonFiniteWarning) as record:
        res = rfkit.attribute(SqrtNet(), images=_images(), methods="saliency", target=3, input_size=16, device="cpu")
    said = [str(w.message) for w in record if issubclass(w.category, NonFiniteWarning)]
    assert any(
        "logits of image 1 hold NaN (5 of 5 values), first produced by module 'sqrt'; 1 of 2 image(s)" in s
        for s in said
    ), said
    # d sqrt(x)/dx is NaN at the one negative pixel; every other pixel's gradient is finite
    assert any("map: saliency of image 1 holds NaN (1 of 256 pixels); 1 of 2 image(s)" in s for s in said), said
    assert [t.index for t in res.targets] == [3, 3]  # the class asked for, on every image
    rows = pd.DataFrame(res.rows())
    assert rows.score_finite.tolist() == [True, False] and rows.map_finite.tolist() == [True, False]
    assert np.isfinite(res.maps["saliency"][0]).all()
    assert np.argwhere(np.isnan(res.maps["saliency"][1])).tolist() == [[0, 0]]


def test_predicted_target_is_refused_on_nan_logits_instead_of_class_0():
    with pytest.raises(TargetError, match=r"image 1 holds NaN \(5 of 5 values\), first produced by module 'sqrt'"):
        rfkit.attribute(SqrtNet(), images=_images(), methods="saliency", input_size=16, device="cpu")


class Logits(nn.Module):
    """Fixed logits whatever the image (``values`` per class), through a module of its own."""

    def __init__(self, values):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.register_buffer("values", torch.tensor(values))

    def forward(self, x):
        return self.conv(x).mean(dim=(1, 2, 3))[:, None] * 0 + self.values


def test_predicted_needs_a_finite_largest_logit_not_finite_others():
    with pytest.raises(TargetError, match=r"inf \(1 of 3 values\)"):
        rfkit.attribute(Logits([1.0, float("inf"), 2.0]), images="noise", num_images=1, input_size=8, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWarning)  # -inf on a class that is not the largest: nothing to say
        res = rfkit.attribute(
            Logits([1.0, float("-inf"), 2.0]), images="noise", num_images=1, input_size=8, device="cpu"
        )
    assert res.targets[0].index == 2  # arg-max of 1, -inf, 2, counted by hand


def test_grid_labels_only_the_non_finite_panel():
    from rfkit.report.figures.attribution import attribution_grid
    from rfkit.report.figures.style import NONFINITE_LABEL, close_figure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rfkit.attribute(
            SqrtNet(), images=_images(), methods="saliency,ig", target=3, input_size=16, device="cpu", steps=4
        )
    fig = attribution_grid(res)
    try:
        axes = [ax for ax in fig.axes if ax.get_images()]  # the 2 x 3 panels, row by row
        marked = [i for i, ax in enumerate(axes) if any(t.get_gid() == "nonfinite" for t in ax.texts)]
        assert marked == [4, 5]  # image 1's saliency and ig panels; never its input, never image 0
        assert all(t.get_text() == NONFINITE_LABEL for i in marked for t in axes[i].texts)
    finally:
        close_figure(fig)


NAN_NET = (
    "import torch.nn as nn\n\n"
    "class Poison(nn.Module):\n"
    "    def forward(self, x):\n"
    "        return x * float('nan')\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
    "                         nn.Linear(4, 5), Poison())\n"
)
CLI = ["--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-m", "saliency", "--trust"]


@pytest.fixture
def nan_net(tmp_path):
    (tmp_path / "nan_net.py").write_text(NAN_NET)
    return f"{tmp_path / 'nan_net.py'}:build"


def test_cli_attribute_says_nan_even_quiet_and_flags_the_csv(nan_net, tmp_path, capsys):
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        main(["attribute", nan_net, *CLI, "--target", "2", "-o", str(out), "-q"])
    assert exc.value.code in (0, None)
    err = capsys.readouterr().err
    assert (
        "warning: non-finite model output: the logits of image 0 hold NaN (5 of 5 values), first produced by "
        "module '4'; 2 of 2 image(s)" in err
    ), err
    df = pd.read_csv(out / "attribution.csv")
    assert df.score_finite.tolist() == [False, False] and df.map_finite.tolist() == [False, False]
    assert "non-finite" in (out / "report.md").read_text()

    with pytest.raises(SystemExit) as exc:
        main(["attribute", nan_net, *CLI, "-o", str(tmp_path / "predicted")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1 and not any("Traceback" in line for line in err)
    assert [line for line in err if line.startswith("error:")] == [
        "error: target 'predicted': the model's output (logits) for image 0 holds NaN (5 of 5 values), first "
        "produced by module '4', so no class can be predicted from it: fix the model or its weights, or pass a "
        "class index (--target N) to compute the maps of that class all the same"
    ]
    assert not (tmp_path / "predicted").exists()


class NaNLayer(nn.Module):
    """``a`` is finite; ``c`` (after ``sqrt``) is NaN for an image whose ``a`` is negative."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, padding=1)
        nn.init.constant_(self.a.weight, 0.1)
        nn.init.zeros_(self.a.bias)
        self.sqrt = Sqrt()
        self.c = nn.Conv2d(2, 2, 3, padding=1)
        nn.init.constant_(self.c.weight, 0.1)
        nn.init.zeros_(self.c.bias)

    def forward(self, x):
        return self.c(self.sqrt(self.a(x)))


def test_erf_layer_producing_nan_is_named_with_its_first_image_and_flagged():
    from rfkit.report.erf_files import erf_rows

    x = torch.full((3, 3, 16, 16), 0.5)
    x[2] = -0.5  # image 2: a < 0 everywhere, so sqrt gives NaN
    # the unit of c sees a 5x5 window (two 3x3 convs): 25 pixels of image 2 get a NaN gradient
    with pytest.warns(NonFiniteWarning, match=r"layer 'c': .* holds NaN \(25 of 256 pixels\) on image 2 \(the unit's"):
        res = rfkit.erf(NaNLayer(), layers=["a", "c"], images=x, num_images=3, input_size=16, device="cpu")
    assert list(res.nonfinite) == ["c"] and "1 of 3 image(s)" in res.nonfinite["c"]
    assert np.isfinite(res.maps["a"]).all() and np.isnan(res.maps["c"]).sum() == 25
    assert {r["layer"]: r["finite"] for r in erf_rows(res)} == {"a": True, "c": False}


def test_erf_figures_label_the_non_finite_map():
    from rfkit.report.figures.stage_grid import stage_grid_figure
    from rfkit.report.figures.style import close_figure

    x = torch.full((2, 3, 16, 16), -0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rfkit.erf(NaNLayer(), layers=["a", "c"], images=x, num_images=2, input_size=16, device="cpu")
    fig = stage_grid_figure(res)
    try:
        panels = [ax for ax in fig.axes if any(im.get_gid() == "erf-map" for im in ax.get_images())]
        assert [any(t.get_gid() == "nonfinite" for t in ax.texts) for ax in panels] == [False, True]
    finally:
        close_figure(fig)


# ---------------------------------------------------------------------------------------------------------
# interrupted runs

BASE = ["test_resnet", "-n", "1", "--weights", "random-safe", "--input-size", "32", "--device", "cpu", "-q"]


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_interrupted_attribute_leaves_the_previous_folder_whole(tmp_path, monkeypatch):
    import rfkit.report.figures.attribution as figures

    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, "-m", "saliency", "-o", str(out)])
    assert exc.value.code in (0, None)
    before = _snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the new maps and CSV are written, before the figure and report

    monkeypatch.setattr(figures, "save_grid", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, "-m", "saliency,input_x_gradient", "-o", str(out)])
    assert exc.value.code == 130
    assert _snapshot(out) == before  # old report.md with the old maps, nothing new beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps"]  # no partial folder, no temp file

    monkeypatch.undo()
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, "-m", "input_x_gradient", "-o", str(out)])
    assert exc.value.code in (0, None)
    listed = json.loads((out / "attribution.json").read_text())["files"]
    assert sorted(_snapshot(out)) == sorted([*listed, "attribution.json"])  # the new run whole, saliency gone
    assert "maps/input_x_gradient.npy" in listed and "maps/saliency.npy" not in listed


def test_attribute_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, "-o", str(out)])
    assert exc.value.code == 1 and "not an `rfkit attribute` folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(SystemExit):
        main(["attribute", *BASE, "-o", str(tmp_path / "run")])
    (tmp_path / "run" / "maps" / "extra.npy").write_bytes(b"someone else's")
    with pytest.raises(SystemExit) as exc:
        main(["attribute", *BASE, "-o", str(tmp_path / "run")])
    assert exc.value.code == 1 and "holds maps/extra.npy that rfkit did not write" in capsys.readouterr().err
    assert (tmp_path / "run" / "maps" / "extra.npy").read_bytes() == b"someone else's"


KILLED = (
    "import os, signal, sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import rfkit, torch.nn as nn\n"
    "import rfkit.report.figures.attribution as figures\n"
    "from rfkit.report.attribution_files import save_attribution\n"
    "net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))\n"
    "res = rfkit.attribute(net, images='noise', num_images=1, input_size=8, device='cpu', target=0)\n"
    "save_attribution(res, 'out')\n"
    "figures.save_grid = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "save_attribution(res, 'out')\n"
)


def test_a_killed_attribute_run_is_cleaned_by_the_next_one(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    out = tmp_path / "out"
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert len(left) == 1 and (left[0] / ".rfkit-partial").is_file() and (left[0] / "attribution.csv").is_file()
    listed = json.loads((out / "attribution.json").read_text())["files"]
    assert sorted(_snapshot(out)) == sorted([*listed, "attribution.json"])  # the first run's folder, whole

    alive = tmp_path / f".out.partial-{os.getpid()}-zz"  # a run still writing (this process): kept
    alive.mkdir()
    (alive / ".rfkit-partial").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    from rfkit.report.attribution_files import save_attribution

    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rfkit.attribute(net, images="noise", num_images=1, input_size=8, device="cpu", target=0)
    save_attribution(res, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "out"]


def test_a_killed_writer_leaves_a_temp_file_the_next_run_removes(tmp_path):
    from rfkit.io import remove_abandoned_files

    code = (
        "import os, signal\nfrom rfkit.io import temp_file\n"
        "print(temp_file('fig.png', '.png'), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    dead = tmp_path / stdout.strip()
    assert dead.is_file() and dead.name.startswith(f".fig.png.tmp-{proc.pid}-")
    mine = tmp_path / f".fig.png.tmp-{os.getpid()}-{dead.name.split('-')[2]}-abc.png"  # this live process's
    other = tmp_path / ".fig.png.tmp-1-00000000-abc.png"  # another machine's
    user = tmp_path / ".fig.png.keep"
    for p in (mine, other, user):
        p.write_bytes(b"")
    assert remove_abandoned_files(tmp_path, ["fig.png"]) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, user.name])


def test_an_interrupted_figure_keeps_every_earlier_format(tmp_path):
    from matplotlib.figure import Figure

    from rfkit.report.figures.style import save_figure

    paths = [tmp_path / "fig.png", tmp_path / "fig.svg"]
    save_figure(Figure(), paths)
    before = _snapshot(tmp_path)

    class Interrupted(Figure):
        def savefig(self, fname, **kwargs):
            if kwargs.get("format") == "svg":
                raise KeyboardInterrupt  # after the PNG is rendered
            return super().savefig(fname, **kwargs)

    fig = Interrupted()
    fig.text(0.5, 0.5, "new")
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, paths)
    assert _snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "fig.svg"]


POISONED = (
    "import torch.nn as nn\n\n"
    "class Poison(nn.Module):\n"
    "    def forward(self, x):\n"
    "        return x * float('nan')\n\n"
    "def build():\n"
    "    return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), Poison(), nn.Conv2d(2, 2, 3, padding=1))\n"
)


def test_cli_erf_says_a_nan_layer_even_quiet_and_flags_metrics_json(tmp_path, capsys):
    (tmp_path / "poisoned.py").write_text(POISONED)
    args = ["--layers", "0,2", "--images", "noise", "-n", "2", "--input-size", "12", "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        main(["erf", f"{tmp_path / 'poisoned.py'}:build", "--trust", *args, "-o", str(tmp_path / "erf"), "-q"])
    assert exc.value.code in (0, None)
    err = capsys.readouterr().err
    # x * NaN sends NaN back to every position, even where the unit's gradient is 0 (0 * NaN = NaN): 12 x 12
    assert (
        "warning: non-finite ERF: layer '2': the input gradient of its unit holds NaN (144 of 144 pixels) on "
        "image 0 (the unit's own value is not finite); 2 of 2 image(s)" in err
    ), err
    layers = json.loads((tmp_path / "erf" / "metrics.json").read_text())["layers"]
    assert layers["0"]["finite"] is True and layers["2"]["finite"] is False
