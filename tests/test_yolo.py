"""Ultralytics YOLO (the ``rfkit[yolo]`` extra): yolo11n built from its bundled yaml, offline, at 640 px.

The analytic RF of the backbone layers is compared with the gradient support measured here, independently of
rfkit's own verification: a float64 copy with positive weights (every path from a pixel to the unit then adds a
positive term, so the support is exactly the set of pixels the unit can see), max pooling as average pooling.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.errors import CheckpointError, ModelNotFoundError, NodeNotFoundError
from rfkit.models.ultralytics import kept_global_state

with kept_global_state():  # importing ultralytics changes print options and PIL.Image.open; rfkit undoes it too
    pytest.importorskip("ultralytics")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SPEC = "ultralytics:yolo11n.yaml"


@pytest.fixture(scope="module")
def graph():
    return rfkit.trace(SPEC)


def _measurable(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).double().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            fan_in = p[0].numel() if p.dim() >= 2 else 1
            scale = 0.01 if name.endswith("bias") else 1.0
            p.copy_(scale * (0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype)) / fan_in)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)
    for parent in list(m.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):  # SPPF: the gradient of a max reaches one pixel per window
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    return m


def _supports(model: nn.Module, layers: range, size: int) -> dict[int, tuple]:
    """The gradient support ((first, last) row, (first, last) column) of the centre unit of each backbone
    layer (layers 0..9 of yolo11n each take the previous one's output)."""
    m = _measurable(model)
    gen = torch.Generator().manual_seed(1)
    x = (0.5 + torch.rand((1, 3, size, size), generator=gen, dtype=torch.float64)).requires_grad_(True)
    outs, y = {}, x
    for i in range(max(layers) + 1):
        y = m.model[i](y)
        outs[i] = y
    found = {}
    for i in layers:
        out = outs[i]
        unit = (out.shape[2] // 2, out.shape[3] // 2)
        (grad,) = torch.autograd.grad(out[0, :, unit[0], unit[1]].sum(), x, retain_graph=True)
        mask = grad[0].abs().sum(0) > 0
        rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
        found[i] = (unit, ((int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))))
    return found


def test_backbone_rf_equals_the_measured_gradient_support(graph):
    from rfkit.models.spec import build_model

    assert graph.input_size == (640, 640) and graph.method == "torch.fx"
    assert list(graph.untraced) == ["model.23"] and not graph.opaque  # only the Detect head is kept whole
    measured = _supports(build_model(SPEC, device="cpu"), range(2, 10), 640)
    for i, (unit, support) in measured.items():
        info = graph[f"model.{i}"]
        window = tuple((max(lo, 0), min(hi, 639)) for lo, hi in info.window_of(unit))
        assert not info.unknown and not info.is_global
        assert window == support, f"model.{i}: analytic {window} (RF {info.size}), measured {support}"
    assert measured[2][1] == ((309, 331), (309, 331))  # model.2: 23 px around the centre unit


def test_layers_after_the_c2psa_attention_are_global(graph):
    for layer in ("10", "13", "16", "19", "22"):
        assert graph[layer].is_global, layer
    assert [graph[k].stride for k in ("16", "19", "22")] == [(8, 8), (16, 16), (32, 32)]


def test_erf_of_the_neck_layers_in_one_forward_with_letterbox_preprocessing(monkeypatch):
    from ultralytics.nn.tasks import DetectionModel

    prepared = rfkit.prepare(SPEC, input_size=128)  # built (random init) and traced once, here
    calls = []
    forward = DetectionModel.forward
    monkeypatch.setattr(
        DetectionModel, "forward", lambda self, x, *a, **k: calls.append(1) or forward(self, x, *a, **k)
    )
    res = rfkit.erf(
        prepared,
        layers=["13", "16", "19", "22"],
        images=rfkit.Images("sample", 2),
        runtime="cpu",
    )
    assert len(calls) == 1  # one batch, one forward for the four layers
    assert res.unit == {"13": (4, 4), "16": (8, 8), "19": (4, 4), "22": (2, 2)}
    assert all(res.maps[k].sum() > 0 for k in res.layers)
    cfg = res.data_config
    assert cfg["crop_mode"] == "letterbox" and cfg["mean"] == (0.0,) * 3 and cfg["std"] == (1.0,) * 3
    assert "letterbox" in cfg["input_note"] and res.weights.kind == "random-safe"
    assert [a.threshold for a in res.metrics["13"].area_ratios] == [0.2, 0.3, 0.5, 0.99]


def test_a_broken_image_stays_a_skipped_file_after_ultralytics_is_used(tmp_path):
    from PIL import Image

    from rfkit.pipeline.images import ImageStats, image_batches

    rfkit.trace(SPEC, input_size=64)  # imports and builds ultralytics
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "fine.png")
    cfg = {"input_size": (3, 8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}
    stats = ImageStats(source="", requested=2)
    assert len(list(image_batches(tmp_path, cfg, 2, 2, stats=stats))) == 1
    assert stats.skipped[0][1].startswith("UnidentifiedImageError")  # not pi_heif's ModuleNotFoundError


def test_letterbox_keeps_the_aspect_ratio_on_grey():
    from PIL import Image

    from rfkit.pipeline.images import letterbox

    x = letterbox(Image.new("RGB", (64, 32), (0, 0, 255)), (64, 64), (0.0,) * 3, (1.0,) * 3)
    # 64x32 fits 64x64 unscaled: rows 16..47 hold the image, the rest is ultralytics' grey 114
    assert np.allclose(x[:, :16].numpy(), 114 / 255) and np.allclose(x[:, 48:].numpy(), 114 / 255)
    assert x[2, 16:48].min() == 1.0 and x[0, 16:48].max() == 0.0


def test_bad_input_is_one_line(graph):
    with pytest.raises(ModelNotFoundError, match="Close matches: .*yolo11n.yaml"):
        rfkit.trace("ultralytics:yolo11q.yaml")
    with pytest.raises(CheckpointError, match="runs whatever code it names"):
        rfkit.trace("ultralytics:best.pt")
    with pytest.raises(NodeNotFoundError, match=r"layer 40 is out of range: .* numbered 0\.\.23"):
        graph.resolve("40")
    with pytest.raises(NodeNotFoundError, match="layer 9 has one output: write 9"):
        graph.resolve("9-1")


class Triple(nn.Module):
    def forward(self, x):
        return x * 1.0, x * 2.0, x * 3.0


class YoloLike(nn.Module):
    """Layers in ``model`` as ultralytics numbers them; layer 1 returns three tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.ModuleList([nn.Conv2d(3, 4, 3), Triple(), nn.Conv2d(4, 4, 3)])

    def forward(self, x):
        a, b, c = self.model[1](self.model[0](x))
        return self.model[2](a + b + c)


def test_layer_syntax_takes_an_element_of_a_tuple_output():
    g = rfkit.trace(YoloLike(), input_size=16)
    assert g.resolve("1-2") == g.resolve("model.1[2]") and g["1-2"].size == (3, 3) and g["2"].size == (5, 5)
    with pytest.raises(NodeNotFoundError, match=r"layer 1 has 3 tensor outputs: 1-7 is not one of 1-0 \.\. 1-2"):
        g.resolve("1-7")
    with pytest.raises(
        NodeNotFoundError, match=r"layer 1 returns a tuple with 3 tensor outputs: pick one, 1-0 \.\. 1-2"
    ):
        g.resolve("1")
    with pytest.raises(NodeNotFoundError, match=r"model\.1 has 3 tensor outputs: model\.1\[0\], .*; model\.1\[7\] is"):
        g.resolve("model.1[7]")


class DataDependentPair(nn.Module):
    """A module torch.fx cannot follow (a branch on the data) and make_fx cannot record on meta tensors:
    kept whole, its RF unknown; it returns (x, 2 y) with y = x shifted by one row, so element 0 is the
    identity and element 1 a 2-row vertical box at each pixel."""

    def forward(self, x):
        if float(x.detach().abs().sum()) >= 0:  # always true, but only known from the data
            y = torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)
            return x, x + y
        return x, x


class OpaquePairNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), DataDependentPair(), nn.Conv2d(4, 4, 3, padding=1)])

    def forward(self, x):
        a, b = self.model[1](self.model[0](x))
        return self.model[2](a), b


def test_elements_of_a_module_kept_whole_are_measured_through_hooks():
    net = OpaquePairNet().eval()
    with torch.no_grad():
        net.model[0].weight.fill_(1.0)  # every output channel sees the 3x3 window of every input channel
        net.model[0].bias.fill_(100.0)  # positive outputs: RepLKNet's ReLU on the unit lets the gradient through
    g = rfkit.trace(net, input_size=16)
    assert "model.1" in g.untraced and g["1-0"].unknown and g["model.1[1]"].unknown
    assert g["model.0"].size == (3, 3) and not g["model.0"].unknown  # before the opaque node: exact
    with pytest.raises(NodeNotFoundError, match=r"layer 1 has 2 tensor outputs: 1-5 is not one of 1-0 \.\. 1-1"):
        g.resolve("1-5")
    res = rfkit.erf(
        net,
        layers=["1-0", "model.1[1]"],
        images=rfkit.Images("noise", 1, input_size=16),
        runtime="cpu",
    )
    assert set(res.rf_missing) == {"1-0", "model.1[1]"}
    # measured on the unit at the centre of each element's grid (8, 8): element 0 sees conv 0's 3x3 window,
    # element 1 that window and the one a row above (rows 6..9); the gradients of a conv of ones are positive
    assert tuple(res.unit["1-0"]) == (8, 8)
    for layer, rows in (("1-0", (7, 9)), ("model.1[1]", (6, 9))):
        ys, xs = np.nonzero(res.maps[layer])
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (*rows, 7, 9), layer


def test_the_detect_head_s_tensor_output_is_measurable(graph):
    assert "model.23" in graph.untraced and graph.resolve("23-0") == graph.resolve("model.23[0]")
    assert graph.record("23-0").info.shape[1] == 84  # (batch, 4 box + 80 class scores, anchors)
    with pytest.raises(NodeNotFoundError, match=r"layer 23 has 1 tensor output: 23-1 is not one of 23-0"):
        graph.resolve("23-1")
    res = rfkit.erf(SPEC, layers=["23-0"], images=rfkit.Images("noise", 1, input_size=64), runtime="cpu")
    assert "23-0" in res.rf_missing and "model_23" in res.rf_missing["23-0"]
    assert res.maps["23-0"].shape == (64, 64) and res.maps["23-0"].max() > 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("graph", "ultralytics:yolo11q.yaml"), ("unknown ultralytics model", "yolo11n.yaml")),
        (("graph", "ultralytics:best.pt"), ("pickled model", "runs whatever code")),
        (("erf", "ultralytics:yolo11n.yaml", "--layers", "40", "--images", "noise", "-n", "1"), ("layer 40",)),
    ],
)
def test_cli_bad_input_is_one_line_exit_1(args, words, tmp_path, capsys):
    from rfkit_cli.app import main

    out = ["--out", str(tmp_path / "o")] if "erf" in args else []
    with pytest.raises(SystemExit) as exc:
        main([*args, *out])
    text = capsys.readouterr()
    lines = [ln for ln in (text.out + text.err).splitlines() if ln.startswith("error:")]
    assert exc.value.code == 1 and len(lines) == 1 and all(w in lines[0] for w in words), text.err
    assert "Traceback" not in text.err


def test_list_models_lists_the_bundled_yaml_files():
    from typer.testing import CliRunner

    from rfkit_cli.app import app

    r = CliRunner().invoke(app, ["list-models", "yolo11n*", "--ultralytics"])
    assert r.exit_code == 0 and "ultralytics:yolo11n.yaml" in r.output.split()
    assert "ultralytics:yolo11n-seg.yaml" in r.output.split()


def test_a_trained_checkpoint_loads_only_when_trusted(tmp_path):
    from rfkit.models.spec import build_model

    model = build_model(SPEC, device="cpu")
    with torch.no_grad():
        model.model[0].conv.weight.fill_(0.25)  # "trained": a value random init does not give
    torch.save({"model": model, "epoch": 3}, tmp_path / "best.pt")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "other.pt")
    spec = f"ultralytics:{tmp_path / 'best.pt'}"
    with pytest.raises(CheckpointError, match="only when told to trust it"):
        rfkit.prepare(spec, input_size=64)
    p = rfkit.prepare(spec, input_size=64, trust=True)
    assert p.weights.kind == "checkpoint" and p.weights.description == "ultralytics checkpoint best.pt"
    assert p.weights.path == str(tmp_path / "best.pt") and str(tmp_path) not in p.name
    assert float(p.model.model[0].conv.weight.min()) == 0.25 and p.data_config["crop_mode"] == "letterbox"
    with pytest.raises(CheckpointError, match=r"not an ultralytics YOLO checkpoint: .* \(found: epoch, optimizer\)"):
        rfkit.prepare(f"ultralytics:{tmp_path / 'other.pt'}", trust=True)


def test_building_a_yolo_model_leaves_the_process_print_options_and_pillow_alone():
    import subprocess
    import sys

    code = (
        "import numpy as np, torch, PIL.Image, rfkit\n"
        "rfkit.trace('ultralytics:yolo11n.yaml', input_size=64)\n"
        "print(repr(np.array([1.5, -2.0])), repr(torch.tensor([0.123456789])), PIL.Image.open.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "array([ 1.5, -2. ]) tensor([0.1235]) PIL.Image"
