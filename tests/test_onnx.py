"""ONNX models end to end: torchvision's resnet18 (random weights, 64×64) exported in the test by torch's default
exporter (dynamo) and its legacy one, read by rfkit straight from the ONNX graph and measured through the
converted module; and the one-line errors of ONNX files."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
pytest.importorskip("onnxruntime")

import rfkit  # noqa: E402
from rfkit.errors import (  # noqa: E402
    ConversionError,
    InputSizeError,
    MissingExtraError,
    ModelBuildError,
    ModelNotFoundError,
    NodeNotFoundError,
    WeightsError,
)
from rfkit_cli.app import app, main, normalise_argv  # noqa: E402

SIZE = 64
TORCH_STAGES = ["relu", "layer1", "layer2", "layer3", "layer4"]


def invoke(*args):
    return CliRunner().invoke(app, normalise_argv([str(a) for a in args]))


def cli_error(capsys, *args) -> str:
    """The one line ``rfkit ARGS`` prints on stderr, failing with exit code 1."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


@pytest.fixture(scope="module")
def exports(resnet18, tmp_path_factory):
    """Path per exporter: ``dynamo`` (torch 2.x's default) and ``legacy`` (TorchScript-based, without
    keep_initializers_as_inputs: the export onnx2torch fails on unaided)."""
    folder = tmp_path_factory.mktemp("onnx")
    x = torch.randn(1, 3, SIZE, SIZE)
    paths = {"dynamo": folder / "resnet18_dynamo.onnx", "legacy": folder / "resnet18_legacy.onnx"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(resnet18, (x,), str(paths["dynamo"]))
        torch.onnx.export(resnet18, (x,), str(paths["legacy"]), dynamo=False)
    return paths


@pytest.fixture(scope="module")
def torch_graph():
    return rfkit.trace("torchvision:resnet18", input_size=SIZE)


def torch_module_of(node) -> str:
    """The torchvision module an exported Conv node came from: the dynamo export keeps the weight's name
    (``layer1.0.conv1.weight``; BatchNorm is folded into it), the legacy one names the node after its module
    path (``/layer2/layer2.0/downsample/downsample.0/Conv``)."""
    weight = node.input[1]
    if weight.endswith(".weight"):
        return weight[: -len(".weight")]
    path = []
    for part in node.name.strip("/").split("/")[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_graph_equals_torchvision_on_every_conv(exporter, exports, torch_graph):
    proto = onnx.load(str(exports[exporter]))
    g = rfkit.trace(str(exports[exporter]))
    assert g.method == "onnx" and not g.unsupported and g.incomplete is None
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 20
    for node in convs:
        ours, theirs = g[node.name], torch_graph[torch_module_of(node)]
        assert (ours.size, ours.stride, ours.center, ours.padding) == (
            theirs.size,
            theirs.stride,
            theirs.center,
            theirs.padding,
        ), node.name
    last = g[[n.name for n in convs][-1]]
    assert last.size == (435, 435) and last.stride == (32, 32)  # resnet18's published RF
    assert g.output.is_global  # after the global pool and the classifier


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_erf_equals_the_torch_models(exporter, exports, resnet18):
    """The stage outputs rfkit picks in the ONNX graph (the last layer at each stride) are torchvision's
    stages, and their ERFs through the converted module equal the torch model's."""
    p = rfkit.prepare(str(exports[exporter]))
    assert p.weights.kind == "as-given" and "onnxruntime" in p.weights.description
    ours = rfkit.erf(p, layers="stages", images="noise", num_images=2, batch_size=2, device="cpu")
    theirs = rfkit.erf(
        resnet18, layers=TORCH_STAGES, images="noise", num_images=2, batch_size=2, input_size=SIZE, device="cpu"
    )
    assert len(ours.layers) == len(TORCH_STAGES)
    for a, b in zip(ours.layers, TORCH_STAGES):
        assert ours.unit[a] == theirs.unit[b]
        corr = np.corrcoef(ours.maps[a].ravel(), theirs.maps[b].ravel())[0, 1]
        assert corr > 0.999, (a, b, corr)


def test_layers_by_onnx_node_output_or_module_name(exports):
    """One node, three names: the ONNX node's, its output's, and the converted module's."""
    path = exports["legacy"]
    g = rfkit.trace(path)
    node = "/layer2/layer2.1/relu_1/Relu"
    assert g.resolve(node) == g.resolve(f"{node}_output_0") == g.resolve("layer2/layer2/1/relu_1/Relu")
    assert g.record(node).op == "onnx.Relu" and g[node].stride == (8, 8)
    with pytest.raises(NodeNotFoundError, match="Close matches: .*layer2") as e:
        g.resolve("/layer2/layer2.1/relu_2/Relu")
    assert "\n" not in str(e.value)


def test_cli_graph_and_unknown_layer(exports, capsys):
    r = invoke("graph", exports["dynamo"], "-q")
    assert r.exit_code == 0, r.output
    assert "resnet18_dynamo.onnx: 50 nodes at input 64×64" in r.output and "All ops have an RF rule" in r.output
    err = cli_error(
        capsys, "erf", exports["legacy"], "--layers", "layer9", "--images", "noise", "--num-images", "1", "-q"
    )
    assert "no node or module named 'layer9' in the graph of resnet18_legacy.onnx" in err


def test_model_proto_in_the_api(exports):
    proto = onnx.load(str(exports["legacy"]))
    g = rfkit.trace(proto)
    assert g.model_name == proto.graph.name and g["conv1/Conv"].size == (7, 7)


def test_fixed_input_size_is_kept_and_other_sizes_refused(exports):
    with pytest.raises(InputSizeError, match="fixed to input size 64×64 in the file"):
        rfkit.trace(exports["legacy"], input_size=96)
    with pytest.raises(WeightsError, match="carries its own weights"):
        rfkit.prepare(exports["legacy"], weights="random")


def _tiny(tmp_path, nodes, inits=(), *, name="tiny.onnx", dims=("N", 1, "H", "W"), opset=17):
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(dims))
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    model = h.make_model(h.make_graph(nodes, "tiny", [x], [y], list(inits)), opset_imports=[h.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_dynamic_height_and_width_take_any_size(tmp_path):
    w = onnx.numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    path = _tiny(tmp_path, [onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="c", strides=[2, 2])], [w])
    assert rfkit.trace(path)["c"].shape == (1, 1, 111, 111)  # 224 where the file says nothing
    assert rfkit.trace(path, input_size=(33, 17))["c"].shape == (1, 1, 16, 8)


def test_conversion_failure_says_so_in_one_line_and_the_graph_still_works(tmp_path):
    """onnx2torch has no LpPool: measuring fails in one line that points to the graph, which rfkit reads
    without converting."""
    path = _tiny(
        tmp_path, [onnx.helper.make_node("LpPool", ["x"], ["y"], name="lp", kernel_shape=[2, 2], strides=[2, 2])]
    )
    with pytest.raises(ConversionError) as e:
        rfkit.prepare(path, input_size=32)
    message = str(e.value)
    assert "onnx2torch cannot convert tiny.onnx to PyTorch (it has no converter for LpPool-11)" in message
    assert "rfkit graph tiny.onnx" in message
    assert "\n" not in message
    assert rfkit.trace(path, input_size=32)["lp"].size == (2, 2)


def test_bad_and_missing_files_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelBuildError, match="bad.onnx is not an ONNX model"):
        rfkit.trace(bad)
    with pytest.raises(ModelNotFoundError, match="ONNX file nothere.onnx does not exist"):
        rfkit.trace(tmp_path / "nothere.onnx")
    assert "not an ONNX model" in cli_error(capsys, "graph", bad)
    assert "does not exist" in cli_error(capsys, "graph", tmp_path / "nothere.onnx")


def _external(tmp_path, location: str):
    """A model whose weight lives in external data at ``location``."""
    from onnx.external_data_helper import set_external_data

    w = onnx.numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    set_external_data(w, location=location)
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    return _tiny(tmp_path, [onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [w], name="ext.onnx")


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(9, np.float32).tobytes())
    path = _external(folder, location)
    with pytest.raises(ModelBuildError, match="outside its folder") as e:
        rfkit.trace(path)
    assert "\n" not in str(e.value)


def test_external_data_inside_the_folder_loads(tmp_path):
    (tmp_path / "weights.bin").write_bytes(np.full(9, 2.0, np.float32).tobytes())
    path = _external(tmp_path, "weights.bin")
    assert rfkit.trace(path, input_size=8)["c"].size == (3, 3)


@pytest.mark.parametrize("package", ["onnx", "onnx2torch"])
def test_missing_extras_are_one_line_naming_the_extra(monkeypatch, exports, package, capsys):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    with pytest.raises(MissingExtraError, match=r'pip install "rfkit\[onnx\]"'):
        rfkit.prepare(exports["legacy"])
    err = cli_error(capsys, "erf", exports["legacy"], "--images", "noise", "--num-images", "1", "-q")
    assert f"need the {package} package" in err and 'pip install "rfkit[onnx]"' in err


def test_channels_last_input_is_analysed_and_measured_channels_first(tmp_path):
    """A Keras/TensorFlow-style model: (N, H, W, C) input, cast and rescaled, then transposed before a 'SAME'
    convolution. Its graph is that of the channels-first net (TensorFlow's SAME pads 0 before, 1 after at an even
    size: centre 1), and its ERF through the converted module equals that of the same net written in torch."""
    h = onnx.helper
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x = h.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 16, 16, 3])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    nodes = [
        h.make_node("Cast", ["image"], ["cast"], to=onnx.TensorProto.FLOAT, name="cast"),
        h.make_node("Mul", ["cast", "two"], ["scaled"], name="rescale"),
        h.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        h.make_node("Conv", ["nchw", "w"], ["conv"], name="conv", strides=[2, 2], auto_pad="SAME_UPPER"),
        h.make_node("Relu", ["conv"], ["y"], name="relu"),
    ]
    inits = [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(np.asarray(2.0, np.float32), "two")]
    model = h.make_model(h.make_graph(nodes, "nhwc", [x], [y], inits), opset_imports=[h.make_opsetid("", 17)])
    path = tmp_path / "nhwc.onnx"
    onnx.save(model, str(path))
    g = rfkit.trace(path)
    assert (g.input_size, g.in_chans) == ((16, 16), 3)
    info = g["conv"]
    assert (info.size, info.stride, info.center, info.shape) == ((3, 3), (2, 2), (1, 1), (1, 4, 8, 8))

    twin = torch.nn.Sequential(torch.nn.ZeroPad2d((0, 1, 0, 1)), torch.nn.Conv2d(3, 4, 3, stride=2, bias=False))
    twin[1].weight.data = torch.from_numpy(w * 2.0)  # the rescaling folded into the weights
    twin.append(torch.nn.ReLU())
    kw = dict(images="noise", num_images=2, device="cpu")
    ours = rfkit.erf(rfkit.prepare(path), layers=["relu"], **kw)
    theirs = rfkit.erf(twin, layers=["2"], input_size=16, **kw)
    assert ours.unit["relu"] == theirs.unit["2"] == (4, 4)
    assert np.corrcoef(ours.maps["relu"].ravel(), theirs.maps["2"].ravel())[0, 1] > 0.999


class _Sampler(torch.nn.Module):
    """Every kind of window torch's exporters write differently across opsets: a strided conv, a ceil-mode max
    pool, a transposed conv with output padding, nearest and bilinear upsampling, a concatenation, an average pool
    with ceil mode and without padded zeros, asymmetric zero padding."""

    def __init__(self, smooth: str = "bilinear"):
        super().__init__()
        self.smooth = smooth
        c = torch.nn.Conv2d
        self.stem = c(3, 4, 3, stride=2, padding=1)
        self.pool = torch.nn.MaxPool2d(3, 2, ceil_mode=True)
        self.up = torch.nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.mix = c(8, 4, 3, padding=1)
        self.avg = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.pad = torch.nn.ZeroPad2d((0, 1, 2, 0))
        self.head = c(4, 4, 3)

    def forward(self, x):
        s = self.stem(x)
        y = self.up(self.pool(s))
        y = torch.cat([y, s[..., : y.shape[-2], : y.shape[-1]]], 1)
        y = torch.nn.functional.interpolate(self.mix(y), scale_factor=2, mode="nearest")
        y = torch.nn.functional.interpolate(self.avg(y), scale_factor=2, mode=self.smooth)
        return self.head(self.pad(y))


@pytest.mark.parametrize("exporter", ["legacy-9", "legacy-11", "legacy-13", "legacy-17", "legacy-20", "dynamo"])
def test_every_opset_torch_writes_gives_torchs_graph(exporter, tmp_path):
    """Upsample/Resize, ceil-mode pools, ConvTranspose, Pad and Slice as each opset writes them: the RF of every
    conv equals rfkit's graph of the torch model. (At opset 9 torch writes bilinear upsampling as Upsample,
    which ONNX samples with asymmetric coordinates — another model than torch's, as torch warns — so that
    export is compared with nearest upsampling only.)"""
    torch.manual_seed(0)
    net = _Sampler("nearest" if exporter == "legacy-9" else "bilinear").eval()
    path = tmp_path / "sampler.onnx"
    x = torch.randn(1, 3, 38, 42)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(net, (x,), str(path))
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=int(exporter.split("-")[1]))
    ours, theirs = rfkit.trace(path), rfkit.trace(net, input_size=(38, 42))
    assert not ours.unsupported and ours.incomplete is None
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 4
    for node, module in zip(convs, ["stem", "up", "mix", "head"]):
        a, b = ours[node.name], theirs[module]
        ours_rf, theirs_rf = (a.size, a.stride, a.center, a.shape[1:]), (b.size, b.stride, b.center, b.shape[1:])
        assert ours_rf == theirs_rf, (node.name, module)


def test_verify_measures_the_converted_module_against_the_onnx_graph(exports):
    """rfkit.verify: the gradient support of the converted module (positive weights, float64) covers exactly
    the window the ONNX graph gives, for layers named the ONNX way."""
    layers = ["/layer1/layer1.1/relu_1/Relu", "/layer2/layer2.1/relu_1/Relu_output_0"]
    report = rfkit.verify(exports["legacy"], layers=layers, estimate=False)
    assert report.ok and len(report.checks) == 6
    assert {c.status for c in report.checks} == {"pass"}
