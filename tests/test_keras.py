"""Keras 3 models (torch backend): the RF graph read from Keras' layer configs against a PyTorch twin with the
same weights, against hand derivations and receptivefield's published numbers, against gradient support
measured here with torch autograd, the ERF through Keras, and the one-line errors."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfkit
from rfkit.errors import (
    InputTooSmallError,
    MissingExtraError,
    ModelBuildError,
    ModelNotFoundError,
    UntrustedFileError,
    WeightsUnavailableError,
    WeightsWarning,
)

keras_build = pytest.importorskip("rfkit.models.keras_build")
try:
    keras = keras_build.import_keras()
except (MissingExtraError, ModelBuildError) as e:  # not installed, or imported with another backend
    pytest.skip(str(e), allow_module_level=True)
layers = keras.layers


def _measured_bounds(model, layer: str, size: tuple[int, ...], unit: tuple[int, ...]) -> list[tuple[int, int]]:
    """First and last input pixel, per axis, that change one output unit of ``layer`` when set to 1 on a black
    input, measured through Keras itself (kernels 1, biases 0: nothing cancels; a max pool sees its spike)."""
    for w in model.weights:
        w.assign(np.ones(w.shape, dtype="float32") if w.path.endswith(("kernel", "gamma")) else np.zeros(w.shape))
    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    n = math.prod(size)
    x = torch.zeros(n + 1, n, model.inputs[0].shape[-1])
    x[torch.arange(n), torch.arange(n)] = 1.0  # image i has pixel i on; the last one is black
    with torch.no_grad():
        out = sub(x.reshape(n + 1, *size, -1), training=False)[(slice(None), *unit)].sum(-1)
    seen = torch.nonzero((out[:n] - out[n]).abs() > 1e-6)[:, 0]
    coords = np.stack(np.unravel_index(seen.numpy(), size), 1)
    return [(int(coords[:, a].min()), int(coords[:, a].max())) for a in range(len(size))]


def _analytic_bounds(g, layer: str, unit) -> list[tuple[int, int]]:
    """First and last input pixel of a unit's RF, per axis, cut to the input (what a gradient can show)."""
    info = g[layer]
    out = []
    for a, u in enumerate(unit):
        centre = info.center[a] + u * info.stride[a]
        half = (info.size[a] - 1) / 2
        out.append((max(0, math.ceil(centre - half)), min(g.input_size[a] - 1, math.floor(centre + half))))
    return out


# --- TensorFlow 'SAME' padding: more on the bottom/right -------------------------------------------------


@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("kind", ["MaxPooling2D", "AveragePooling2D", "Conv2D"])
def test_same_padding_pads_the_odd_pixel_after(kind, size):
    inp = keras.Input((size, size, 1))
    op = layers.Conv2D(1, 3, strides=2, padding="same", name="op") if kind == "Conv2D" else None
    op = op or getattr(layers, kind)(3, strides=2, padding="same", name="op")
    model = keras.Model(inp, op(inp))
    g = rfkit.trace(model)
    # TF: total padding (ceil(i/2) - 1) * 2 + 3 - i = 1 at 16 (all of it after), 2 at 15 (one on each side)
    assert g["op"].center == ((1, 1) if size == 16 else (0, 0))
    assert g["op"].shape == (1, 1, 8, 8)
    last = g["op"].shape[-1] - 1
    for unit in [(0, 0), (last, last), (3, 4)]:
        assert _measured_bounds(model, "op", (size, size), unit) == _analytic_bounds(g, "op", unit)


# --- a Keras CNN and its PyTorch twin -------------------------------------------------------------------


def _keras_cnn():
    inp = keras.Input((32, 32, 3), name="img")
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inp)
    x = layers.BatchNormalization(epsilon=1e-3, name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    x = layers.ZeroPadding2D(((1, 2), (0, 1)), name="pad")(x)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, depth_multiplier=2, name="dw")(x)
    x = layers.Conv2D(16, 3, groups=4, name="gconv")(x)
    x = layers.Cropping2D(((1, 0), (0, 1)), name="crop")(x)
    gate = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    gate = layers.Conv2D(16, 1, activation="sigmoid", name="se_fc")(gate)
    y = layers.Multiply(name="se")([x, gate])
    x = layers.Add(name="add")([y, layers.Conv2D(16, 1, name="proj")(x)])
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="resize")(x)
    x = layers.AveragePooling2D(2, name="avg")(x)
    x = layers.Concatenate(name="cat")([x, layers.Conv2D(4, 1, name="side")(x)])
    x = layers.SeparableConv2D(8, 3, strides=2, padding="same", name="sep")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, layers.Dense(10, name="fc")(x))


class _CroppedTranspose(nn.Module):
    """Keras' 'same' transposed convolution: PyTorch's full output, cropped after (TF puts the odd pixel
    there; PyTorch's padding=1, output_padding=1 would crop before instead)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2)

    def forward(self, x):
        return self.conv(x)[:, :, :-1, :-1]


class _TorchCNN(nn.Module):
    """The same network in PyTorch: TF 'same' written as explicit (asymmetric) padding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2)
        self.bn = nn.BatchNorm2d(8, eps=1e-3)
        self.pool = nn.MaxPool2d(3, 2)
        self.dw = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=8)
        self.gconv = nn.Conv2d(16, 16, 3, groups=4)
        self.se_fc = nn.Conv2d(16, 16, 1)
        self.proj = nn.Conv2d(16, 16, 1)
        self.up = _CroppedTranspose(16, 8)
        self.side = nn.Conv2d(8, 4, 1)
        self.sep_dw = nn.Conv2d(12, 12, 3, stride=2, groups=12, bias=False)
        self.sep = nn.Conv2d(12, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(F.pad(x, (0, 1, 0, 1)))))
        x = self.pool(F.pad(x, (0, 1, 0, 1), value=-math.inf))
        x = F.pad(x, (0, 1, 1, 2))
        x = self.gconv(self.dw(x))
        x = x[:, :, 1:, :-1]
        gate = torch.sigmoid(self.se_fc(F.adaptive_avg_pool2d(x, 1)))
        x = x * gate + self.proj(x)
        x = self.up(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.avg_pool2d(x, 2)
        x = torch.cat([x, self.side(x)], 1)
        x = self.sep(self.sep_dw(F.pad(x, (0, 1, 0, 1))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _copy_weights(km, twin: _TorchCNN) -> None:
    """Keras' weights into the twin (kernels transposed to PyTorch's layout); BN statistics made non-trivial."""
    get = {layer.name: [torch.from_numpy(np.asarray(w)) for w in layer.get_weights()] for layer in km.layers}
    rng = np.random.default_rng(0)
    bn = km.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8), rng.uniform(0.5, 2, 8)])
    get["bn"] = [torch.from_numpy(np.asarray(w, dtype="float32")) for w in bn.get_weights()]
    with torch.no_grad():
        for name in ("stem", "gconv", "se_fc", "proj", "side"):
            kernel, bias = get[name]
            getattr(twin, name).weight.copy_(kernel.permute(3, 2, 0, 1))
            getattr(twin, name).bias.copy_(bias)
        kernel, bias = get["dw"]  # (kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw)
        twin.dw.weight.copy_(kernel.reshape(3, 3, 1, 16).permute(3, 2, 0, 1))
        twin.dw.bias.copy_(bias)
        kernel, bias = get["up"]  # (kh, kw, out, in) -> (in, out, kh, kw)
        twin.up.conv.weight.copy_(kernel.permute(3, 2, 0, 1))
        twin.up.conv.bias.copy_(bias)
        depthwise, pointwise, bias = get["sep"]
        twin.sep_dw.weight.copy_(depthwise.reshape(3, 3, 1, 12).permute(3, 2, 0, 1))
        twin.sep.weight.copy_(pointwise.permute(3, 2, 0, 1))
        twin.sep.bias.copy_(bias)
        gamma, beta, mean, var = get["bn"]
        twin.bn.weight.copy_(gamma), twin.bn.bias.copy_(beta)
        twin.bn.running_mean.copy_(mean), twin.bn.running_var.copy_(var)
        kernel, bias = get["fc"]
        twin.fc.weight.copy_(kernel.T)
        twin.fc.bias.copy_(bias)


@pytest.fixture(scope="module")
def twins():
    keras.utils.set_random_seed(0)
    km = _keras_cnn()
    twin = _TorchCNN().eval()
    _copy_weights(km, twin)
    return km, twin


#: Keras layer -> the twin's module or graph node with the same output.
_SAME = {
    "stem": "stem",
    "pool": "pool",
    "dw": "dw",
    "gconv": "gconv",
    "se_fc": "se_fc",
    "proj": "proj",
    "up": "up",
    "side": "side",
    "sep": "sep",
}


def test_twin_computes_the_same_function(twins):
    km, twin = twins
    x = torch.rand(2, 3, 32, 32)
    wrapped = rfkit.prepare(km).model
    assert torch.allclose(wrapped(x), twin(x), atol=1e-4)


def test_twin_graphs_are_equal_on_every_conv(twins):
    km, twin = twins
    gk, gt = rfkit.trace(km), rfkit.trace(twin, input_size=32)
    assert gk.method == "keras" and not gk.unsupported and gk.incomplete is None
    for k, t in _SAME.items():
        a, b = gk[k], gt[t]
        assert (a.size, a.size_min, a.stride, a.center, a.shape[1:]) == (
            b.size,
            b.size_min,
            b.stride,
            b.center,
            b.shape[1:],
        ), k
    assert gk.record("up").op == "Conv2DTranspose" and gk["fc"].is_global
    assert gk["se"].is_global and gk["se"].local_size == gt["gconv"].size  # the SE gate: global, local RF kept
    assert gk[""] == gk["fc"] and gk["img"] == gk["input"]


def test_twin_erf_maps_agree(twins):
    km, twin = twins
    kw = dict(images="noise", num_images=4, device="cpu", metrics=False, seed=3)
    rk = rfkit.erf(km, layers=["gconv", "sep"], **kw)
    rt = rfkit.erf(twin, layers=["gconv", "sep"], input_size=32, **kw)
    for layer in ("gconv", "sep"):
        a, b = rk.maps[layer].ravel(), rt.maps[layer].ravel()
        assert a.sum() > 0 and np.corrcoef(a, b)[0, 1] > 0.999, layer
    assert rk.unit == rt.unit


def test_twin_attribution_agrees_gradcam_included(twins):
    """Saliency through Keras' autograd, and Grad-CAM, which hooks the Keras layer (seen in NCHW)."""
    km, twin = twins
    kw = dict(images="noise", num_images=2, device="cpu", target=3, layer="sep")
    a = rfkit.attribute(km, methods=["saliency", "gradcam"], **kw)
    b = rfkit.attribute(twin, methods=["saliency", "gradcam"], input_size=32, **kw)
    for method in ("saliency", "gradcam"):
        ma, mb = np.asarray(a.maps[method]).ravel(), np.asarray(b.maps[method]).ravel()
        assert np.abs(ma).sum() > 0 and np.corrcoef(ma, mb)[0, 1] > 0.999, method


def test_verify_measures_a_keras_model_through_a_float64_clone(twins):
    km, _ = twins
    before = [np.array(w) for w in km.get_weights()]
    report = rfkit.verify(km, layers=["pool", "gconv", "up"], estimate_max_size=64)
    assert len(report.checks) == 9 and {c.status for c in report.checks} == {"pass"}, report.checks
    assert "pool: MaxPooling2D measured as average pooling" in report.notes
    assert {e.status for e in report.estimates if e.layer in ("pool", "gconv")} == {"pass"}
    assert all(np.array_equal(a, b) for a, b in zip(before, km.get_weights()))  # the clone was measured


# --- published and hand-derived numbers ----------------------------------------------------------------------


def _rf_block(input_shape, specs, name="feature_grid"):
    inp = keras.Input(input_shape, name="input_image")
    x = inp
    for i, (kind, args) in enumerate(specs):
        x = getattr(layers, kind)(*args, name=f"l{i}" if i < len(specs) - 1 else name)(x)
    return keras.Model(inp, x)


def test_receptivefield_published_examples():
    """receptivefield's README (fornaxai/receptivefield): its ``offset`` is the first unit's RF centre in pixel
    edge coordinates, rfkit's ``center`` the same in pixel centre coordinates: offset = center + 0.5."""
    minimal = _rf_block(
        (64, 64, 3), [("Conv2D", (32, 7)), ("Conv2D", (32, 5)), ("AvgPool2D", (2,)), ("Conv2D", (64, 5))]
    )
    g = rfkit.trace(minimal)
    assert g["feature_grid"].shape[2:] == (23, 23)  # "Feature maps shape: [[None, 23, 23, 1]]"
    assert g["feature_grid"].size == (20, 20) and g["feature_grid"].stride == (2, 2)
    assert tuple(c + 0.5 for c in g["feature_grid"].center) == (10.0, 10.0)

    detailed = [("Conv2D", (32, 5)), ("Conv2D", (32, 3)), ("AvgPool2D", (2,)), ("Conv2D", (64, 3)), ("Conv2D", (64, 3))]
    detailed += [("AvgPool2D", (2,)), ("Conv2D", (128, 3)), ("Conv2D", (128, 3))]
    g = rfkit.trace(_rf_block((96, 96, 3), detailed))
    assert g["feature_grid"].shape[2:] == (16, 16)
    assert g["feature_grid"].size == (34, 34) and g["feature_grid"].stride == (4, 4)
    assert tuple(c + 0.5 for c in g["feature_grid"].center) == (17.0, 17.0)

    # the TensorFlow example (slim VGG: 'SAME' 3x3 convolutions, 2x2 average pools), here in Keras
    vgg = []
    for n, pool in ((2, True), (2, True), (3, True), (3, False)):
        vgg += [("Conv2D", (8, 3, 1, "same"))] * n + ([("AvgPool2D", (2,))] if pool else [])
    vgg += [("AvgPool2D", (2,))] + [("Conv2D", (8, 3, 1, "same"))] * 3
    g = rfkit.trace(_rf_block((288, 288, 3), vgg))
    fm0, fm1 = g["l12"], g["feature_grid"]  # conv4_3 and conv5_3
    assert fm0.shape[2:] == (36, 36) and fm1.shape[2:] == (18, 18)
    assert (fm0.size, fm0.stride, tuple(c + 0.5 for c in fm0.center)) == ((92, 92), (8, 8), (4.0, 4.0))
    assert (fm1.size, fm1.stride, tuple(c + 0.5 for c in fm1.center)) == ((196, 196), (16, 16), (8.0, 8.0))


@pytest.fixture(scope="module")
def resnet50():
    return rfkit.prepare("keras:ResNet50", weights="random", input_size=224)


def test_keras_resnet50_rf_from_its_layer_configs(resnet50):
    """ResNet v1: the stride of a stage sits in the first block's 1x1 convolution (torchvision's v1.5 puts it
    in the 3x3, which makes its RFs smaller: 427 px for layer4, not 483)."""
    g, model = resnet50.graph, resnet50.model.keras_model
    cfg = {layer.name: layer.get_config() for layer in model.layers}
    size, stride = 1, 1
    size += (cfg["conv1_conv"]["kernel_size"][0] - 1) * stride  # after conv1_pad (3 px)
    stride *= cfg["conv1_conv"]["strides"][0]
    size += (cfg["pool1_pool"]["pool_size"][0] - 1) * stride  # after pool1_pad (1 px)
    stride *= cfg["pool1_pool"]["strides"][0]
    expected = {"pool1_pool": (size, stride)}
    for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3)):
        for block in range(1, blocks + 1):
            for conv in (1, 2, 3):
                c = cfg[f"conv{stage}_block{block}_{conv}_conv"]
                size += (c["kernel_size"][0] - 1) * stride
                stride *= c["strides"][0]
                expected[f"conv{stage}_block{block}_{conv}_conv"] = (size, stride)
        expected[f"conv{stage}_block{blocks}_out"] = (size, stride)
    assert cfg["conv3_block1_1_conv"]["strides"] == (2, 2) and cfg["conv3_block1_2_conv"]["strides"] == (1, 1)
    assert expected["conv3_block1_1_conv"] == (35, 8) and expected["conv3_block1_2_conv"] == (51, 8)
    assert [expected[f"conv{s}_block{b}_out"][0] for s, b in ((2, 3), (3, 4), (4, 6), (5, 3))] == [35, 99, 291, 483]
    for layer, (size, stride) in expected.items():
        assert g[layer].size == (size, size) and g[layer].stride == (stride, stride), layer
        assert g[layer].center == (0, 0)  # 'same' 3x3s and 1x1s keep unit 0 on pixel 0
    assert g["avg_pool"].is_global and not g.unsupported and g.incomplete is None
    assert [s["module"] for s in resnet50.model.feature_info][1:] == [
        "conv2_block3_out",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_out",
    ]


def test_keras_application_preprocessing_is_its_preprocess_input(resnet50):
    """rfkit's normalisation (mean/std on [0, 1] RGB) plus the wrapper's channel order equal Keras'
    ``preprocess_input`` ('caffe': BGR, ImageNet means subtracted on 0-255) for ResNet50."""
    from keras.applications.resnet50 import preprocess_input

    cfg, wrapped = resnet50.data_config, resnet50.model
    x = torch.rand(2, 3, 8, 8)
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    ours = wrapped.to_keras((x - mean) / std)
    theirs = preprocess_input(x.permute(0, 2, 3, 1).numpy() * 255.0)
    assert np.allclose(ours.numpy(), np.asarray(theirs), atol=1e-3)
    assert wrapped.channel_order == (2, 1, 0)


def test_keras_application_erf_through_keras(resnet50):
    res = rfkit.erf(resnet50, layers="conv2_block1_out", images="noise", num_images=2, device="cpu", metrics=False)
    lo, hi = np.argwhere(res.maps["conv2_block1_out"] > 0)[[0, -1]]
    rf = _analytic_bounds(resnet50.graph, "conv2_block1_out", res.unit["conv2_block1_out"])
    assert (lo.tolist(), hi.tolist()) == ([rf[0][0], rf[1][0]], [rf[0][1], rf[1][1]])


def test_nested_models_and_shared_layers_are_named_and_measured():
    inp = keras.Input((24, 24, 3), name="img")
    inner = keras.Sequential([keras.Input((24, 24, 3)), layers.Conv2D(4, 3, padding="same", name="c")], name="inner")
    shared = layers.Conv2D(4, 3, padding="same", name="shared")
    a = shared(inner(inp))
    model = keras.Model(inp, layers.Add(name="sum")([a, shared(a)]))
    g = rfkit.trace(model, input_size=40)  # not the Input's 24: the layers allow it
    assert list(g) == ["input", "inner.c", "shared", "shared#1", "sum"]
    assert g["inner"] == g["inner.c"] and g["shared#1"].size == (7, 7) and g["sum"].shape == (1, 4, 40, 40)
    res = rfkit.erf(model, layers=["inner.c", "shared#1"], images="noise", num_images=2, device="cpu", metrics=False)
    for layer, half in (("inner.c", 1), ("shared#1", 3)):
        nz = np.argwhere(res.maps[layer] > 0)
        assert nz.min(0).tolist() == [12 - half] * 2 and nz.max(0).tolist() == [12 + half] * 2, layer


def test_stages_are_the_last_layer_of_each_resolution():
    inp = keras.Input((33, 33, 3))
    x = inp
    for i in range(3):  # 'same' rounds up: 17, 9, 5 cells, reductions 2, 4, 8
        x = layers.Conv2D(4, 3, strides=2, padding="same", name=f"down{i}")(x)
        x = layers.ReLU(name=f"act{i}")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)  # one cell: no stage
    model = keras.Model(inp, layers.Conv2D(2, 1, name="head")(x))
    wrapped = rfkit.prepare(model).model
    assert [(s["module"], s["reduction"]) for s in wrapped.feature_info] == [("act0", 2), ("act1", 4), ("act2", 8)]


# --- other ranks -----------------------------------------------------------------------------------------


def test_conv1d_causal_dilated_and_conv3d_against_measured_support():
    inp = keras.Input((40, 2))
    x = layers.Conv1D(3, 3, padding="causal", dilation_rate=2, name="causal")(inp)
    x = layers.Conv1D(3, 4, strides=2, padding="same", groups=3, name="grouped")(x)
    x = layers.MaxPooling1D(2, name="pool")(x)
    model = keras.Model(inp, x)
    g = rfkit.trace(model)
    assert g["causal"].size == (5,) and g["causal"].center == (-2,)  # sees itself and the 4 pixels before
    for layer, unit in (("causal", (7,)), ("grouped", (5,)), ("pool", (4,)), ("pool", (0,))):
        assert _measured_bounds(model, layer, (40,), unit) == _analytic_bounds(g, layer, unit), layer

    inp = keras.Input((12, 12, 12, 1))
    x = layers.Conv3D(2, (3, 1, 3), strides=(1, 2, 2), padding="same", name="c3")(inp)
    x = layers.UpSampling3D(2, name="up")(x)
    model = keras.Model(inp, x)
    g = rfkit.trace(model)
    assert g["c3"].shape == (1, 2, 12, 6, 6) and g["up"].shape == (1, 2, 24, 12, 12)
    for unit in ((5, 2, 3), (0, 0, 0)):
        assert _measured_bounds(model, "c3", (12, 12, 12), unit) == _analytic_bounds(g, "c3", unit)


# --- never a silently wrong graph -----------------------------------------------------------------------------


def test_a_layer_without_rule_is_flagged_not_passed_through(tmp_path):
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, name="c1")(inp)
    x = layers.Lambda(lambda t: t[:, ::2, ::2, :], name="subsample")(x)
    x = layers.Conv2D(4, 3, name="c2")(x)
    model = keras.Model(inp, x)
    g = rfkit.trace(model)
    assert [u.op for u in g.unsupported] == ["Lambda"] and g.unsupported[0].nodes == ("subsample",)
    assert g["c1"].size == (3, 3) and not g["c1"].unknown
    assert g["subsample"].unknown and g["c2"].unknown and g.output.unknown
    assert g["c2"].shape == (1, 4, 5, 5)  # Keras' own shapes carry on past the opaque layer

    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UntrustedFileError, match=r"lambda.keras holds Python code .*--trust"):
        rfkit.trace(str(path))
    assert rfkit.trace(str(path), trust=True)["c2"].unknown


def test_a_wrong_rule_is_caught_by_keras_shapes(monkeypatch):
    from rfkit.graph import keras_graph

    monkeypatch.setitem(keras_graph.RULES, "ReLU", lambda b, c: b.pool(c.name, 2, input=c.source))
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, name="c1")(inp)
    x = layers.ReLU(name="relu")(x)
    g = rfkit.trace(keras.Model(inp, layers.Conv2D(4, 3, name="c2")(x)))
    assert g.incomplete and "relu" in g.incomplete and "(1, 4, 7, 7) is not Keras' (1, 4, 14, 14)" in g.incomplete
    assert g["relu"].unknown and g["c2"].unknown and not g["c1"].unknown


# --- errors --------------------------------------------------------------------------------------------------


def test_unknown_keras_name_lists_close_matches():
    with pytest.raises(ModelNotFoundError, match=r"unknown Keras model 'ResNet5'.*Close matches: ResNet50"):
        rfkit.trace("keras:ResNet5")
    with pytest.raises(ModelNotFoundError, match=r"Close matches: MobileNetV3Small"):
        rfkit.trace("keras:mobilenetv3small")


def test_random_keras_weights_are_seeded_and_leave_the_global_rngs_alone():
    import random

    from rfkit.models.keras_build import keras_seeded
    from rfkit.models.weights import load_model

    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a, info = load_model("keras:MobileNetV3Small", "random", seed=0, input_size=(32, 32))
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    assert torch.equal(torch.get_rng_state(), state[2])
    b, _ = load_model("keras:MobileNetV3Small", "random", seed=0, input_size=(32, 32))
    kernels = [m.keras_model.get_layer("conv").kernel.value for m in (a, b)]
    assert torch.equal(kernels[0], kernels[1]) and info.description == "random init (keras default, seed 0)"
    with keras_seeded(1):  # another seed draws other weights
        one = keras.layers.Dense(4)
        one.build((None, 3))
    with keras_seeded(2):
        two = keras.layers.Dense(4)
        two.build((None, 3))
    assert not torch.equal(one.kernel.value, two.kernel.value)


def test_keras_init_traps_are_found_and_neutralised():
    from keras.src.applications.convnext import LayerScale

    from rfkit.models.keras_build import keras_traps, make_keras_safe

    inp = keras.Input((8, 8, 4))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = LayerScale(1e-6, 4, name="scale")(x)
    x = layers.BatchNormalization(gamma_initializer="zeros", name="bn")(x)
    model = keras.Model(inp, x)
    with pytest.warns(WeightsWarning, match="2 init trap"):
        p = rfkit.prepare(model)  # as given: reported, not changed
    assert p.weights.traps == ("scale/variable", "bn/gamma") and p.model.keras_model is model
    assert [c.split(":")[0] for c in make_keras_safe(model, 1e-2)] == ["scale/variable", "bn/gamma"]
    assert keras_traps(model, 1e-2) == [] and float(model.get_layer("scale").gamma.value.min()) == 1.0


def test_input_too_small_for_a_keras_application():
    with pytest.raises(InputTooSmallError, match=r"keras:InceptionV3 .*at least 75x75"):
        rfkit.trace("keras:InceptionV3", input_size=32)


def test_imagenet_weights_offline_fail_in_one_line_or_fall_back(monkeypatch, tmp_path):
    from rfkit.models import weights

    monkeypatch.setattr(weights, "_unreachable", lambda url, timeout=None: "cannot reach storage.googleapis.com")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    with pytest.raises(WeightsUnavailableError, match=r"keras:MobileNetV3Small .*not in the Keras cache") as e:
        rfkit.prepare("keras:MobileNetV3Small", weights="pretrained", input_size=32)
    assert "\n" not in str(e.value)
    with pytest.warns(WeightsWarning, match="unavailable"):
        p = rfkit.prepare("keras:MobileNetV3Small", weights="auto", input_size=32)
    assert p.weights.kind == "random-safe" and p.graph.incomplete is None and not p.graph.unsupported


def test_bad_and_missing_files(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ModelBuildError, match=r"^Keras cannot load broken.keras: ") as e:
        rfkit.trace(str(bad))
    assert "\n" not in str(e.value)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        rfkit.trace(str(tmp_path / "missing.h5"))
    weights = tmp_path / "net.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="holds weights only"):
        rfkit.trace(str(weights))


def test_keras_missing_or_on_another_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'rfkit\[keras\]'"):
        rfkit.trace("keras:ResNet50")
    monkeypatch.undo()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ModelBuildError, match="set KERAS_BACKEND=torch before importing keras"):
        keras_build.import_keras()


def test_cli_lists_keras_models_and_fails_in_one_line(capsys):
    from rfkit_cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["list-models", "--source", "keras", "MobileNet*"])
    assert exc.value.code == 0
    names = capsys.readouterr().out.split()
    assert names == ["keras:MobileNet", "keras:MobileNetV2", "keras:MobileNetV3Large", "keras:MobileNetV3Small"]
    with pytest.raises(SystemExit) as exc:
        main(["graph", "keras:ResNet5"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and err.startswith("error:") and len(err.splitlines()) == 1
    assert "Close matches: ResNet50" in err
