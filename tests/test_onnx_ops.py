"""The RF graph of ONNX ops (rfkit.graph.onnx_ops) against the receptive field onnxruntime measures.

Each case is a one-op ONNX model (random weights, batch left symbolic). onnxruntime runs it on one image per input
pixel, that pixel raised by 100 in every channel: the output units that change are exactly those whose receptive
field holds the pixel. The window rfkit gives every output unit must be that set, clipped to the image — an
independent measurement, no rfkit code involved.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
TensorProto, h, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper

from rfkit.graph.onnx_graph import trace_onnx  # noqa: E402

H, W = 9, 11


def one_op(op_type: str, attrs: dict | None = None, *, chans=2, weight=None, consts=(), opset=18, size=(H, W)):
    """A model ``y = op(x, [weight], *consts)`` with input (N, chans, *size)."""
    rng = np.random.default_rng(1)
    inits, names = [], ["x"]
    if weight is not None:
        w = (rng.standard_normal(weight) + 0.5).astype(np.float32)  # no weight near zero: every tap shows
        inits.append(numpy_helper.from_array(w, "w"))
        names.append("w")
    for i, c in enumerate(consts):
        if c is None:
            names.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(c), f"c{i}"))
        names.append(f"c{i}")
    node = h.make_node(op_type, names, ["y"], name="op", **(attrs or {}))
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", chans, *size])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = h.make_graph([node], "one_op", [x], [y], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def measured_windows(model) -> tuple[np.ndarray, dict]:
    """Output shape and, per output unit (i, j), the (first, last) input row and column whose change changes
    it (None for a unit no pixel reaches), measured with onnxruntime."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    hh, ww = shape[-2:]
    batch = np.repeat(base[None], hh * ww + 1, axis=0)
    for k in range(hh * ww):
        batch[k + 1, :, k // ww, k % ww] += 100.0
    out = sess.run(None, {"x": batch})[0]
    changed = np.abs(out[1:] - out[:1]).max(axis=1) > 1e-3 * max(1.0, float(np.abs(out).max()) * 1e-4)
    windows = {}
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            pix = np.flatnonzero(changed[:, i, j])
            rows, cols = pix // ww, pix % ww
            windows[(i, j)] = None if not len(pix) else ((rows.min(), rows.max()), (cols.min(), cols.max()))
    return out.shape[1:], windows


def assert_windows(model, interior_only: bool = False):
    g = trace_onnx(model)
    info = g["op"]
    shape, measured = measured_windows(model)
    assert info.shape[1:] == tuple(shape), "rfkit's shape differs from onnxruntime's"
    assert not g.unsupported, g.unsupported
    hh, ww = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[-2:])
    for (i, j), got in measured.items():
        (r0, r1), (c0, c1) = info.window_of((i, j))
        clipped = ((max(r0, 0), min(r1, hh - 1)), (max(c0, 0), min(c1, ww - 1)))
        inside = r0 >= 0 and c0 >= 0 and r1 < hh and c1 < ww
        if interior_only and not inside:
            continue
        expected = None if clipped[0][0] > clipped[0][1] or clipped[1][0] > clipped[1][1] else clipped
        assert got == expected, f"unit {(i, j)}: onnxruntime {got}, rfkit {expected}"
    return info


CONV = [
    pytest.param({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, id="pads"),
    pytest.param({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 2, 0]}, id="asymmetric-pads"),
    pytest.param({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, id="same-upper"),
    pytest.param({"kernel_shape": [4, 4], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, id="same-lower"),
    pytest.param({"kernel_shape": [3, 2], "auto_pad": "VALID", "dilations": [2, 3]}, id="valid-dilated"),
    pytest.param({"kernel_shape": [3, 3], "group": 2, "strides": [1, 2], "pads": [2, 2, 2, 2]}, id="grouped"),
]


@pytest.mark.parametrize("attrs", CONV)
def test_conv(attrs):
    k = attrs["kernel_shape"]
    cin = 1 if attrs.get("group") == 2 else 2
    assert_windows(one_op("Conv", attrs, weight=(2, cin, *k)))


def test_conv_hand_computed():
    """SAME_UPPER at an even size: TensorFlow's padding (0 before, 1 after for a 3x3 stride-2 conv on 10 px)."""
    info = trace_onnx(one_op("Conv", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
                             weight=(2, 2, 3, 3), size=(10, 10)))["op"]  # fmt: skip
    assert (info.size, info.stride, info.center, info.padding) == ((3, 3), (2, 2), (1, 1), (0, 0))


CONV_T = [
    pytest.param({"kernel_shape": [3, 3], "strides": [2, 2]}, id="plain"),
    pytest.param({"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1, 1, 1, 1]}, id="pads"),
    pytest.param(
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 2], "output_padding": [1, 1]},
        id="asymmetric-output-padding",
    ),  # fmt: skip
    pytest.param({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, id="same-upper"),
    pytest.param({"kernel_shape": [3, 3], "strides": [2, 2], "output_shape": [20, 21]}, id="output-shape"),
    pytest.param({"kernel_shape": [2, 3], "dilations": [2, 1]}, id="dilated"),
]


@pytest.mark.parametrize("attrs", CONV_T)
def test_conv_transpose(attrs):
    """A dilated window has holes: at the border its first tap may fall outside the image while the span's
    clipped start is a hole, so only windows inside the image are compared there."""
    dilated = "dilations" in attrs
    assert_windows(one_op("ConvTranspose", attrs, weight=(2, 2, *attrs["kernel_shape"])), interior_only=dilated)


POOLS = [
    pytest.param("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, id="max"),
    pytest.param("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, id="max-ceil"),
    pytest.param(
        "MaxPool",
        {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 0, 0, 2], "ceil_mode": 1},
        id="max-asymmetric-ceil",
    ),  # fmt: skip
    pytest.param("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [1, 2]}, id="max-dilated"),
    pytest.param("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, id="max-same"),
    pytest.param(
        "AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, id="avg-ceil"
    ),  # fmt: skip
    pytest.param(
        "AveragePool",
        {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [2, 0, 0, 2], "count_include_pad": 1},
        id="avg-wide-pads",
    ),  # fmt: skip
    pytest.param("LpPool", {"kernel_shape": [2, 2], "strides": [2, 2], "p": 2}, id="lp"),
]


@pytest.mark.parametrize("op_type, attrs", POOLS)
def test_pool(op_type, attrs):
    assert_windows(one_op(op_type, attrs))


def _resize(mode, coordinate, nearest="round_prefer_floor", scales=None, sizes=None):
    """Scales of all four dims, or sizes of H and W (``axes``: the batch of the measurement varies)."""
    attrs = {"mode": mode, "coordinate_transformation_mode": coordinate, "nearest_mode": nearest}
    if sizes:
        attrs["axes"] = [2, 3]
    consts = [None, np.asarray(scales, np.float32) if scales else None]
    if sizes:
        consts.append(np.asarray(sizes, np.int64))
    return one_op("Resize", attrs, consts=consts)


RESIZE = [
    pytest.param(_resize("nearest", "asymmetric", "floor", scales=[1, 1, 2, 2]), id="nearest-torch"),
    pytest.param(_resize("nearest", "half_pixel", scales=[1, 1, 2, 2]), id="nearest-onnx-default"),
    pytest.param(_resize("nearest", "half_pixel", sizes=[4, 5]), id="nearest-down-prefer-floor"),
    pytest.param(_resize("nearest", "half_pixel", "round_prefer_ceil", sizes=[4, 5]), id="nearest-exact"),
    pytest.param(_resize("nearest", "asymmetric", "ceil", scales=[1, 1, 1.5, 1.5]), id="nearest-ceil"),
    pytest.param(_resize("linear", "half_pixel", scales=[1, 1, 2, 2]), id="bilinear"),
    pytest.param(_resize("linear", "pytorch_half_pixel", sizes=[13, 7]), id="bilinear-sizes"),
    pytest.param(_resize("linear", "align_corners", sizes=[17, 21]), id="bilinear-align-corners"),
    pytest.param(_resize("linear", "asymmetric", scales=[1, 1, 2, 3]), id="linear-asymmetric"),
    pytest.param(_resize("cubic", "half_pixel", scales=[1, 1, 2, 2]), id="cubic"),
]


@pytest.mark.parametrize("model", RESIZE)
def test_resize(model):
    assert_windows(model)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_opset9(mode):
    """Upsample (torch's legacy export at opset 9): asymmetric coordinates, also for linear."""
    assert_windows(one_op("Upsample", {"mode": mode}, consts=[np.asarray([1, 1, 2, 3], np.float32)], opset=9))


@pytest.mark.parametrize(
    "pads",
    [
        pytest.param([0, 0, 1, 2, 0, 0, 3, 0], id="pad"),
        pytest.param([0, 0, -1, 2, 0, 0, 1, -3], id="pad-and-crop"),
    ],
)
def test_pad(pads):
    assert_windows(one_op("Pad", consts=[np.asarray(pads, np.int64)]))


def test_pad_reflect_interior():
    """Reflection padding: rfkit treats the pad like zeros (as for torch's ReflectionPad2d); inside the image
    the windows are exact."""
    assert_windows(one_op("Pad", {"mode": "reflect"}, consts=[np.asarray([0, 0, 2, 1, 0, 0, 2, 1], np.int64)]),
                   interior_only=True)  # fmt: skip


def test_slice_with_steps():
    consts = [np.asarray([1, 2], np.int64), np.asarray([8, 100], np.int64), np.asarray([2, 3], np.int64),
              np.asarray([2, 3], np.int64)]  # fmt: skip
    assert_windows(one_op("Slice", consts=consts))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    info = assert_windows(one_op("DepthToSpace", {"blocksize": 2, "mode": mode}, chans=4))
    assert info.stride == (0.5, 0.5)


def test_space_to_depth():
    assert_windows(one_op("SpaceToDepth", {"blocksize": 2}, size=(8, 10)))


def test_unknown_op_is_listed_not_passed_through():
    """An op rfkit has no rule for: listed as unsupported with the reason, every RF after it unknown; the
    graph keeps going on ONNX's inferred shape."""
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        h.make_node("CumSum", ["x", "axis"], ["c"], name="cumsum"),
        h.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    axis = numpy_helper.from_array(np.asarray(2, np.int64), "axis")
    g = trace_onnx(h.make_model(h.make_graph(nodes, "g", [x], [y], [axis]), opset_imports=[h.make_opsetid("", 17)]))
    (op,) = g.unsupported
    assert op.op == "onnx.CumSum" and op.nodes == ("cumsum",) and "no RF rule for ONNX op CumSum" in op.reasons[0]
    assert g["relu"].unknown and g["relu"].shape == (1, 1, 8, 8)


def test_custom_domain_op_without_shape_leaves_the_rest_out():
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        h.make_node("Relu", ["x"], ["r"], name="relu"),
        h.make_node("Mystery", ["r"], ["m"], name="mystery", domain="com.example"),
        h.make_node("Relu", ["m"], ["y"], name="after"),
    ]
    model = h.make_model(
        h.make_graph(nodes, "g", [x], [y]), opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.example", 1)]
    )
    g = trace_onnx(model)
    assert "relu" in g and "after" not in g
    assert "follow an op whose output shape ONNX cannot infer" in g.incomplete


def test_concat_of_misaligned_branches_is_flagged():
    """Concat of a stride-1 and a (cropped) stride-2 branch of the same size: different grids, flagged."""
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        h.make_node("Conv", ["x", "w"], ["a"], name="a", pads=[1, 1, 1, 1], strides=[2, 2]),
        h.make_node("Slice", ["x", "s", "e"], ["b"], name="b"),
        h.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1),
    ]
    consts = [
        numpy_helper.from_array(np.asarray(v, np.int64), n) for v, n in (([0, 0, 0, 0], "s"), ([1, 1, 4, 4], "e"))
    ]
    g = trace_onnx(
        h.make_model(h.make_graph(nodes, "g", [x], [y], [w, *consts]), opset_imports=[h.make_opsetid("", 17)])
    )
    assert g["cat"].misaligned
