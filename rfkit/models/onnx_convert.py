"""An ONNX model as a PyTorch module, for what needs gradients (ERF, attribution): onnx2torch, after exact rewrites
of the ONNX graph, checked against onnxruntime.

Which converter (``benchmarks/onnx_converters.py``, results in ``benchmarks/results/onnx_converters.md``:
torchvision's resnet18 and a Keras 3 CNN; torch 2.14, onnx2torch 1.5.15, onnx2pytorch 0.6):

- unaided, onnx2torch fails on torch's default (dynamo) export (no converter for ReduceMean-18), on the legacy
  export without ``keep_initializers_as_inputs`` (KeyError on a weight shared through an Identity node; at the
  default opset 20, Identity-19) and on Keras' export (Cast-19); onnx2pytorch converts the dynamo and Keras
  exports but runs the dynamo one on one image only (its Reshape to ``[1, 512]``), and fails on the legacy export
  without ``keep_initializers_as_inputs``;
- after :func:`fit_for_onnx2torch` and, where onnx2torch lacks a newer op version, :func:`lower_to_opset17`, both
  convert every export, equal onnxruntime to 1e-6 and take batches.

rfkit uses onnx2torch: its module is a ``torch.fx.GraphModule`` of standard torch modules, one per ONNX node and
named after it, with the ONNX output names each computes (``attach_onnx_mapping``), so every node of the RF
graph is a module output a forward hook catches; and it took less CPU time per forward + backward (1.02 s against
1.18 s for 8 images of resnet18 at 64×64, one run on a shared machine).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch.nn as nn

from rfkit.errors import ConversionError, RFKitError
from rfkit.models.onnx_file import image_input, inferred_shapes, load_onnx, onnx_display_name, require

#: The newest default-domain opset every op onnx2torch converts has a converter for; graphs above it are
#: converted down to it when onnx2torch lacks an op's newer version.
ONNX2TORCH_OPSET = 17
#: Largest difference between onnxruntime's output and the converted module's, relative to the output's
#: largest magnitude, that still counts as the same model.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Converted:
    """An ONNX model converted to PyTorch.

    Attributes
    ----------
    module : nn.Module
        onnx2torch's ``GraphModule``, in eval mode.
    module_names : dict
        ONNX output name -> the module whose output it is (``name[k]`` for output ``k`` of a node with several).
    steps : tuple of str
        The rewrites :func:`fit_for_onnx2torch` made.
    check : str
        How the module was checked against onnxruntime (one line for reports).
    """

    module: nn.Module
    module_names: dict
    steps: tuple[str, ...]
    check: str


def _copy(proto):
    onnx = require("onnx")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    return model


def _default_opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def fold_identities(proto) -> int:
    """Identity nodes of an initializer become initializers under their output's name (torch's legacy export
    shares a weight through them, and onnx2torch looks weights up as initializers). Returns how many."""
    from onnx import TensorProto

    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    folded = 0
    for node in list(graph.node):
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input[0] in inits:
            t = TensorProto()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            graph.initializer.append(t)
            inits[t.name] = t
            graph.node.remove(node)
            folded += 1
    return folded


def _constants(proto) -> dict:
    """Name -> array of every initializer and Constant node output."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return values


def _set_shape_input(proto, node, array: np.ndarray) -> None:
    """Give ``node`` a new initializer of its own as its shape input (input 1)."""
    from onnx import numpy_helper

    name = f"{node.output[0]}__rfkit_shape"
    proto.graph.initializer.append(numpy_helper.from_array(np.asarray(array, dtype=np.int64), name))
    node.input[1] = name


def drop_allowzero(proto) -> int:
    """Reshape with ``allowzero=1`` and a constant shape without a 0 is the same op with ``allowzero=0``
    (the dynamo export sets it; onnx2torch refuses it). Returns how many were changed."""
    consts = _constants(proto)
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        for a in node.attribute:
            if a.name == "allowzero" and a.i == 1 and node.input[1] in consts and 0 not in consts[node.input[1]]:
                a.i = 0
                changed += 1
    return changed


def free_batch(proto, shapes: dict) -> int:
    """A batch size the file fixes (torch exports fix it to the example's) made symbolic, so that rfkit can
    measure batches of images: the input's first dim becomes ``batch``, and a Reshape whose constant target
    starts with that batch size, on a tensor that starts with it too, copies it instead (0). Returns how many
    Reshapes were changed; whether the module then treats every image alone is checked afterwards."""
    inp = image_input(proto)
    batch = inp.shape[0]
    if batch is None:
        return 0
    consts = _constants(proto)
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        target = consts[node.input[1]]
        data = shapes.get(node.input[0])
        if target.ndim == 1 and len(target) and int(target[0]) == batch and data and data[0] == batch:
            if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
                continue
            fixed = target.copy()
            fixed[0] = 0
            _set_shape_input(proto, node, fixed)
            changed += 1
    for value in proto.graph.input:
        if value.name == inp.name:
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = "batch"
    del proto.graph.value_info[:]
    for o in proto.graph.output:
        o.type.tensor_type.ClearField("shape")
    return changed


_WINDOWED = frozenset({"Conv", "MaxPool", "AveragePool", "LpPool"})


def explicit_pads(proto, shapes: dict) -> int:
    """``auto_pad`` SAME_UPPER / SAME_LOWER / VALID of a convolution or pool written as the explicit ``pads`` it
    means at the input size of ``shapes`` (onnx2torch implements only explicit pads). Returns how many."""
    from onnx import helper

    changed = 0
    weights = {t.name: list(t.dims) for t in proto.graph.initializer}
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if node.op_type not in _WINDOWED or auto == "NOTSET" or node.input[0] not in shapes:
            continue
        sizes = shapes[node.input[0]][2:]
        if node.op_type == "Conv":
            kernel = (
                attrs.get("kernel_shape") or (weights.get(node.input[1]) or list(shapes.get(node.input[1], ())))[2:]
            )
        else:
            kernel = attrs.get("kernel_shape")
        if not kernel or len(kernel) != len(sizes):
            continue
        k = len(kernel)
        strides, dilations = attrs.get("strides") or [1] * k, attrs.get("dilations") or [1] * k
        begin, end = [], []
        for size, kk, s, d in zip(sizes, kernel, strides, dilations):
            total = 0 if auto == "VALID" else max((-(-size // s) - 1) * s + (kk - 1) * d + 1 - size, 0)
            small = total // 2
            begin.append(small if auto != "SAME_LOWER" else total - small)
            end.append(total - begin[-1])
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", begin + end)])
        changed += 1
    return changed


def fit_for_onnx2torch(proto, shapes: dict | None = None) -> tuple[object, list[str]]:
    """A copy of ``proto`` that onnx2torch converts, computing the same function: Identity of weights folded
    (:func:`fold_identities`), ``allowzero`` dropped where it changes nothing (:func:`drop_allowzero`), given ONNX's
    inferred ``shapes``: ``auto_pad`` made explicit (:func:`explicit_pads`) and the batch dim freed
    (:func:`free_batch`). Returns the copy and what was done."""
    model = _copy(proto)
    steps = []
    if n := fold_identities(model):
        steps.append(f"{n} Identity node(s) of weights folded into initializers")
    if n := drop_allowzero(model):
        steps.append(f"allowzero=1 dropped from {n} Reshape(s) whose shape has no 0")
    if shapes is not None and (n := explicit_pads(model, shapes)):
        steps.append(f"auto_pad of {n} convolution(s) or pool(s) written as explicit pads")
    if shapes is not None and image_input(model).shape[0] is not None:
        n = free_batch(model, shapes)
        steps.append("batch dim made symbolic" + (f", {n} Reshape(s) copy it" if n else ""))
    return model, steps


def _down_convert(model, opset: int):
    from onnx import version_converter

    return version_converter.convert_version(model, opset)


#: Ops whose versions after 17 only added types (float8, int4...) or attributes whose defaults keep the old
#: behaviour: their nodes mean the same at opset 17.
SAME_AT_17 = frozenset(
    "Cast CastLike Constant ConstantOfShape Identity Reshape Shape Size Squeeze Unsqueeze Flatten Transpose Equal "
    "QuantizeLinear DequantizeLinear If Loop Scan Split Pad Resize AveragePool".split()
)
#: Reductions that took ``axes`` as an attribute up to opset 17 and as an input from 18.
AXES_INPUT_18 = frozenset(
    "ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare".split()
)


def lower_to_opset17(proto) -> str | None:
    """Declare ``proto`` (opset 18 or later) as opset 17, rewriting the nodes whose meaning changed in an exact
    way: a reduction's constant ``axes`` input back into its attribute. Returns why it cannot (an op whose newer
    version means something else at 17, or a newer attribute in use), else None (``proto`` rewritten)."""
    from onnx import defs, helper

    current = _default_opset(proto)
    consts = _constants(proto)
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            now = defs.get_schema(node.op_type, current).since_version
            then = defs.get_schema(node.op_type, ONNX2TORCH_OPSET).since_version
        except Exception:  # noqa: BLE001 - an op opset 17 does not have
            return f"{node.op_type} does not exist at opset {ONNX2TORCH_OPSET}"
        if now == then:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in AXES_INPUT_18:
            axes = node.input[1] if len(node.input) > 1 else ""
            if axes and axes not in consts:
                return f"{node.op_type} with axes computed at run time"
            if not axes and attrs.get("noop_with_empty_axes"):
                return f"{node.op_type} with noop_with_empty_axes"
            del node.input[1:]
            kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            del node.attribute[:]
            node.attribute.extend(kept)
            if axes:
                node.attribute.append(helper.make_attribute("axes", [int(a) for a in consts[axes].ravel()]))
            continue
        newer = {
            "Pad": len(node.input) > 3 and node.input[3] or attrs.get("mode") == b"wrap",
            "Resize": any(attrs.get(k) for k in ("axes", "antialias"))
            or attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch"
            or attrs.get("coordinate_transformation_mode") == b"half_pixel_symmetric",
            "AveragePool": any(d != 1 for d in attrs.get("dilations", [])),
            "Split": "num_outputs" in attrs,
        }
        if node.op_type not in SAME_AT_17 or newer.get(node.op_type):
            return f"{node.op_type}-{now} means something else at opset {ONNX2TORCH_OPSET}"
        if node.op_type == "AveragePool" and "dilations" in attrs:
            kept = [a for a in node.attribute if a.name != "dilations"]
            del node.attribute[:]
            node.attribute.extend(kept)
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = ONNX2TORCH_OPSET
    return None


def _convert(model):
    onnx2torch = require("onnx2torch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            return onnx2torch.convert(model, attach_onnx_mapping=True)
        finally:
            logging.disable(logging.NOTSET)


def channels_first_input(gm) -> None:
    """Make ``gm`` (whose ONNX model takes channels-last input) take channels-first images, as every rfkit model
    does: its input goes through a permute first. Module names are unchanged."""
    import torch

    graph = gm.graph
    x = next(n for n in graph.nodes if n.op == "placeholder")
    with graph.inserting_after(x):
        moved = graph.call_function(torch.movedim, (x, 1, -1))
    x.replace_all_uses_with(moved, delete_user_cb=lambda user: user is not moved)
    gm.recompile()


def module_names(gm) -> dict:
    """ONNX output name -> the name of the module of onnx2torch's ``gm`` that computes it."""
    names = {}
    for name, m in gm.named_modules():
        mapping = getattr(m, "onnx_mapping", None)
        outs = [o for o in getattr(mapping, "outputs", ()) if o]
        for i, out in enumerate(outs):
            names[out] = name if len(outs) == 1 else f"{name}[{i}]"
    return names


def to_torch(model, name: str | None = None, input_size=None) -> Converted:
    """The ONNX model ``model`` (a path or an ``onnx.ModelProto``) as a PyTorch module that computes the same
    outputs (checked against onnxruntime where it is installed) on batches of any size. ``name`` names it in
    messages (default: its file name, or its graph's name); ``input_size`` is the spatial size it will take, for a
    model exported with dynamic height and width (default 224; 'SAME' paddings are resolved for it).

    Raises
    ------
    MissingExtraError
        onnx or onnx2torch is not installed.
    ConversionError
        onnx2torch cannot convert it, or the module computes something else than onnxruntime (the message
        names the cause; the RF graph, read from the ONNX graph, does not need the conversion).

    Examples
    --------
    >>> import onnx, onnx.helper as h
    >>> x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8, 8])
    >>> y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 4, 4])
    >>> pool = h.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    >>> c = to_torch(h.make_model(h.make_graph([pool], "net", [x], [y]), opset_imports=[h.make_opsetid("", 17)]))
    >>> type(c.module).__name__, c.module_names
    ('GraphModule', {'y': 'pool'})
    """
    proto = load_onnx(model)
    shown = name or onnx_display_name(model)
    require("onnx2torch")
    shape = image_input(proto, shown).concrete(input_size, None, shown)
    fitted, steps = fit_for_onnx2torch(proto, inferred_shapes(proto, shape).shapes)
    try:
        gm = _convert(fitted)
    except NotImplementedError as e:
        if _default_opset(fitted) <= ONNX2TORCH_OPSET:
            raise ConversionError(_failed(shown, e)) from e
        gm, how = _convert_at_17(fitted, e, shown)
        steps.append(f"{how} (onnx2torch lacks {_missing(e)})")
    except RFKitError:
        raise
    except Exception as e:  # noqa: BLE001 - KeyError, TypeError...: onnx2torch's own failures
        raise ConversionError(_failed(shown, e)) from e
    if image_input(proto).channels_last:
        channels_first_input(gm)
        steps.append("takes channels-first images (a transpose to the file's channels-last input added)")
    gm.eval()
    check = check_against_onnxruntime(proto, gm, shown, shape)
    return Converted(gm, module_names(gm), tuple(steps), check)


def _convert_at_17(model, first: Exception, shown: str):
    """onnx2torch's module of ``model`` declared at opset 17 (:func:`lower_to_opset17`), or, where that cannot
    be done exactly, converted by onnx's version converter. Raises :class:`ConversionError` with ``first``."""
    lowered = _copy(model)
    why = lower_to_opset17(lowered)
    try:
        if why is None:
            return _convert(lowered), f"declared at opset {ONNX2TORCH_OPSET}"
        return _convert(_down_convert(model, ONNX2TORCH_OPSET)), f"converted down to opset {ONNX2TORCH_OPSET}"
    except RFKitError:
        raise
    except Exception as e:  # noqa: BLE001 - the first failure is the one to report
        raise ConversionError(_failed(shown, first)) from e


_NO_CONVERTER = re.compile(r"operation_type='(\w+)', version=(\d+)")


def _missing(e: BaseException) -> str:
    """What onnx2torch lacks, from its NotImplementedError: ``LpPool-18``."""
    found = _NO_CONVERTER.search(str(e))
    return f"{found[1]}-{found[2]}" if found else (str(e).strip().splitlines() or [type(e).__name__])[0]


def _failed(shown: str, e: BaseException) -> str:
    if _NO_CONVERTER.search(str(e)):
        why = f"it has no converter for {_missing(e)}"
    else:
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return (
        f"onnx2torch cannot convert {shown} to PyTorch ({why}), so its ERF and attributions cannot be measured; "
        f"its RF graph needs no conversion: rfkit graph {shown}"
    )


def check_against_onnxruntime(proto, module: nn.Module, shown: str, shape=None) -> str:
    """Run ``module`` and onnxruntime on the same random input of ``shape`` (channels first; default the file's),
    and the module on two images at once against each image alone; raise :class:`ConversionError` where they
    differ. Returns what was checked, in one line."""
    import torch

    inp = image_input(proto, shown)
    shape = inp.concrete() if shape is None else tuple(shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)  # channels first: what the module takes
    with torch.no_grad():
        ours = _outputs(module(torch.from_numpy(x)))
        pair = _outputs(module(torch.from_numpy(np.concatenate([x, x[::-1] * 0.5]))))
        second = _outputs(module(torch.from_numpy(np.ascontiguousarray(x[::-1] * 0.5))))
    batch = shape[0]
    for a, b, c in zip(pair, ours, second):
        if a.shape[:1] != (2 * batch,) or not np.allclose(a[:batch], b, rtol=1e-4, atol=_atol(b)):
            raise ConversionError(
                f"{shown} treats the images of a batch together after conversion (outputs of 2 images differ "
                "from each alone), so rfkit cannot measure it: export it with a dynamic batch axis"
            )
        if not np.allclose(a[batch:], c, rtol=1e-4, atol=_atol(c)):
            raise ConversionError(
                f"{shown} mixes the images of a batch after conversion: export it with a dynamic batch axis"
            )
    try:
        ort = require("onnxruntime")
    except Exception:  # noqa: BLE001 - not installed: the conversion stands unchecked, and says so
        return "converted with onnx2torch; not checked against onnxruntime (not installed)"
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: not its advice on initializers listed as inputs
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        declared = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if inp.channels_last else x
        theirs = session.run(None, {inp.name: declared})
    except Exception as e:  # noqa: BLE001 - onnxruntime cannot run it either: nothing to compare with
        return f"converted with onnx2torch; onnxruntime cannot run it to compare ({type(e).__name__})"
    worst = 0.0
    for a, b in zip(ours, theirs):
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ConversionError(
                f"onnx2torch's module of {shown} gives an output of shape {a.shape}, onnxruntime {b.shape}: "
                "rfkit cannot measure it"
            )
        scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-12)
        worst = max(worst, float(np.abs(a - b).max()) / scale if b.size else 0.0)
    if worst > TOLERANCE:
        raise ConversionError(
            f"onnx2torch's module of {shown} computes something else than onnxruntime (largest difference "
            f"{worst:.1e} of the output's scale), so rfkit cannot measure it"
        )
    return f"converted with onnx2torch; output equals onnxruntime's to {worst:.0e} of its scale"


def _atol(b: np.ndarray) -> float:
    return 1e-5 * max(float(np.abs(b).max()) if b.size else 0.0, 1.0)


def _outputs(out) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().double().numpy()]
    if isinstance(out, (tuple, list)):
        return [o for v in out for o in _outputs(v)]
    if isinstance(out, dict):
        return [o for v in out.values() for o in _outputs(v)]
    return []
