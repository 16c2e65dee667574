"""ONNX model files: the spec (``PATH.onnx``, or an ``onnx.ModelProto`` in the API), loading one safely, and
the input it takes.

An ONNX file is data (a protobuf graph and its tensors), so loading it runs no code and needs no ``trust``.
Its tensors may live in *external data* files named inside the model; such a name is resolved against the
model's folder and refused when it points outside it (an absolute path, ``../``, a link leading elsewhere), so
a downloaded model cannot make rfkit read arbitrary files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rfkit.errors import InputSizeError, MissingExtraError, ModelBuildError, ModelNotFoundError
from rfkit.io import shown_path

INSTALL_HINT = 'pip install "rfkit[onnx]"'


def require(package: str = "onnx"):
    """Import ``package`` (``onnx``, ``onnx2torch``, ``onnxruntime``), or raise :class:`MissingExtraError`
    naming the extra that installs it.

    >>> require("onnx").__name__
    'onnx'
    """
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise MissingExtraError(
            f"ONNX models need the {package} package, which is not installed: {INSTALL_HINT}"
        ) from e


def is_onnx_proto(model) -> bool:
    """Whether ``model`` is an ``onnx.ModelProto`` (False without onnx installed: nothing can be one then)."""
    cls = type(model)
    return cls.__name__ == "ModelProto" and cls.__module__.startswith("onnx")


def is_onnx(model) -> bool:
    """Whether ``model`` names an ONNX model: a path ending in ``.onnx`` or an ``onnx.ModelProto``.

    >>> is_onnx("nets/resnet18.onnx"), is_onnx("resnet18"), is_onnx("torchvision:resnet18")
    (True, False, False)
    """
    if isinstance(model, (str, os.PathLike)):
        return str(model).strip().lower().endswith(".onnx")
    return is_onnx_proto(model)


def onnx_display_name(model) -> str:
    """How an ONNX model is named in tables and reports: its file (:func:`rfkit.io.shown_path`), or for a
    ``ModelProto`` its graph's name.

    >>> onnx_display_name("/somewhere/else/resnet18.onnx")
    'resnet18.onnx'
    """
    if isinstance(model, (str, os.PathLike)):
        return shown_path(str(model).strip())
    return getattr(getattr(model, "graph", None), "name", "") or "onnx model"


def load_onnx(model):
    """The ``onnx.ModelProto`` of ``model`` (a path or a ``ModelProto``, returned as it is), with its external
    data loaded from the model's folder.

    Raises
    ------
    MissingExtraError
        onnx is not installed.
    ModelNotFoundError
        The file does not exist.
    ModelBuildError
        The file is not an ONNX model, or its external data is missing or lies outside the model's folder.

    Examples
    --------
    >>> import onnx
    >>> load_onnx(onnx.ModelProto()).ir_version
    0
    """
    onnx = require("onnx")
    if is_onnx_proto(model):
        _check_external(model, None, "the ModelProto")
        return model
    path = Path(str(model).strip())
    shown = onnx_display_name(path)
    if not path.is_file():
        raise ModelNotFoundError(f"ONNX file {shown} does not exist{' (it is a folder)' if path.is_dir() else ''}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError, or a RuntimeWarning-turned error
        raise ModelBuildError(f"{shown} is not an ONNX model: {_first_line(e)}") from e
    if not proto.graph.node and not proto.graph.input:
        raise ModelBuildError(f"{shown} is not an ONNX model: it holds no graph")
    _check_external(proto, path.parent, shown)
    try:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(proto, str(path.parent))
    except Exception as e:  # noqa: BLE001 - a missing or truncated data file
        raise ModelBuildError(f"cannot read the external data of {shown}: {_first_line(e)}") from e
    return proto


def _tensors(proto):
    """Every tensor of the model: initializers and tensor attributes, in subgraphs too."""
    graphs = [proto.graph]
    while graphs:
        g = graphs.pop()
        yield from g.initializer
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    graphs.append(a.g)
                graphs.extend(a.graphs)


def _check_external(proto, folder: Path | None, shown: str) -> None:
    """Refuse external data whose location leaves ``folder`` (or any external data without a folder)."""
    from onnx import TensorProto

    for t in _tensors(proto):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in t.external_data}.get("location", "")
        if folder is None:
            if not t.raw_data:
                raise ModelBuildError(
                    f"{shown} keeps tensor {t.name!r} in an external file it cannot locate: pass the model's path "
                    "(rfkit loads the external data from the model's folder)"
                )
            continue
        base = folder.resolve()
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or (target != base and base not in target.parents):
            raise ModelBuildError(
                f"{shown} refers to external data {location!r} outside its folder (tensor {t.name!r}): refused; "
                "keep the model's data files next to it"
            )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass(frozen=True)
class OnnxInput:
    """The image input of an ONNX model.

    Attributes
    ----------
    name : str
        The graph input's name.
    shape : tuple
        Its dims as the file declares them, an int where the file fixes it, None where it is symbolic
        (``batch``, ``height``...).
    elem_type : int
        Its ONNX element type.
    channels_last : bool
        Whether the file takes (N, spatial..., C) — Keras and TensorFlow models, which transpose to channels-first
        before their first convolution. rfkit's shapes (:meth:`concrete`) are channels-first all the same.
    """

    name: str
    shape: tuple
    elem_type: int
    channels_last: bool = False

    @property
    def spatial(self) -> tuple:
        """The spatial dims (after batch and channels)."""
        return self.shape[1:-1] if self.channels_last else self.shape[2:]

    @property
    def channels(self) -> int | None:
        return self.shape[-1] if self.channels_last else self.shape[1]

    def as_declared(self, shape) -> tuple[int, ...]:
        """A channels-first ``shape`` in the order the file takes it."""
        return (shape[0], *shape[2:], shape[1]) if self.channels_last else tuple(shape)

    def concrete(self, input_size=None, in_chans: int | None = None, shown: str = "the model") -> tuple[int, ...]:
        """The input shape to analyse: the file's fixed dims, ``input_size`` for the symbolic spatial dims
        (default 224), batch 1 where the file leaves it open.

        Raises
        ------
        InputSizeError
            ``input_size`` or ``in_chans`` differs from a size the file fixes, or ``input_size`` has the wrong
            number of axes.
        """
        n = len(self.spatial)
        if input_size is not None:
            size = (input_size,) * n if isinstance(input_size, int) else tuple(input_size)
            if len(size) == 1 and n > 1:
                size = size * n
            if len(size) != n:
                raise InputSizeError(f"{shown} takes {n}-D inputs, got input size {input_size!r}")
            fixed = [(s, want) for s, want in zip(self.spatial, size) if s is not None and s != want]
            if fixed:
                raise InputSizeError(
                    f"{shown} is fixed to input size {_dims(self.spatial)} in the file, not {_dims(size)}: leave the "
                    "input size out, or export the model with dynamic height and width"
                )
        else:
            size = tuple(s if s is not None else 224 for s in self.spatial)
        chans = self.channels
        if in_chans is not None and chans is not None and in_chans != chans:
            raise InputSizeError(f"{shown} takes {chans} input channels (fixed in the file), not {in_chans}")
        chans = chans or in_chans or 3
        return (self.shape[0] or 1, chans, *size)


def _dims(size) -> str:
    return "×".join("?" if s is None else str(s) for s in size)


def image_input(proto, shown: str = "the model") -> OnnxInput:
    """The model's one image input: the graph input that is no initializer, of rank 3 to 5 (N, C, spatial...).

    Raises
    ------
    ModelBuildError
        The model takes no such input, or several inputs.
    """
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelBuildError(
            f"{shown} takes {len(inputs)} inputs ({names}); rfkit analyses models with one image input"
        )
    value = inputs[0]
    ttype = value.type.tensor_type
    if not ttype.HasField("shape"):
        raise ModelBuildError(f"{shown}: input {value.name!r} has no declared shape; export it with one (N, C, H, W)")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in ttype.shape.dim)
    if not 3 <= len(shape) <= 5:
        raise ModelBuildError(
            f"{shown}: input {value.name!r} has shape {_dims(shape)}, not (N, C, spatial...) of an image, signal or "
            "volume"
        )
    return OnnxInput(value.name, shape, ttype.elem_type, _channels_last(proto, value.name, shape))


#: Ops a channels-last input may pass through (casts, a Rescaling layer's arithmetic) before its transpose.
_ON_THE_WAY = frozenset({"Cast", "CastLike", "Identity", "Add", "Sub", "Mul", "Div"})


def _channels_last(proto, name: str, shape: tuple) -> bool:
    """Whether the input is (N, spatial..., C): ONNX convolutions take channels first, so such a model transposes
    its input (perm 0, r-1, 1, ..., r-2) before anything spatial, as Keras and tf2onnx exports do — after casts
    or a rescaling, perhaps."""
    rank = len(shape)
    to_first = [0, rank - 1, *range(1, rank - 1)]
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    frontier, seen = [name], set()
    while frontier:
        value = frontier.pop()
        for node in consumers.get(value, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm == to_first:
                    return True
            elif node.op_type in _ON_THE_WAY:
                frontier.extend(node.output)
    return False


@dataclass
class Inferred:
    """ONNX's shape inference at the analysed input size: static shapes and element types by value name."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, object] = field(default_factory=dict)


def np_dtype(elem_type: int) -> np.dtype:
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        return np.dtype(tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # noqa: BLE001 - bfloat16, float8...: float32 on the meta device
        return np.dtype(np.float32)


def torch_dtype(dtype) -> torch.dtype:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return torch.bool
    try:
        return torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    except TypeError:  # strings and other types torch has not
        return torch.float32


def inferred_shapes(proto, input_shape) -> Inferred:
    """ONNX's shape inference with the image input at ``input_shape`` (channels first, as
    :meth:`OnnxInput.concrete`): the static shape and the element type of every value it can tell (values with a
    symbolic dim left out of the shapes)."""
    onnx = require("onnx")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {t.name for t in model.graph.initializer}
    declared = image_input(proto).as_declared(input_shape)
    for value in model.graph.input:
        if value.name not in inits:
            dims = value.type.tensor_type.shape.dim
            for d, size in zip(dims, declared):
                d.Clear()
                d.dim_value = int(size)
            break
    del model.graph.value_info[:]  # the exporter's own, for another batch size perhaps
    for o in model.graph.output:  # declared output shapes may hold the exporter's batch size
        o.type.tensor_type.ClearField("shape")
    found = Inferred()
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is a check: without it, translated shapes stand alone
        return found
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tt = value.type.tensor_type
        if tt.elem_type:
            found.dtypes[value.name] = torch_dtype(np_dtype(tt.elem_type))
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            found.shapes[value.name] = tuple(d.dim_value for d in tt.shape.dim)
    return found
