"""ONNX files: ``PATH.onnx`` (or an ``onnx.ModelProto`` in the API). Loading one runs no code.

The RF graph is read from the ONNX graph itself (:mod:`rfkit.graph.onnx_graph`, this source's tracer); what
runs the model (ERF, attribution, verification) uses its PyTorch conversion (:mod:`rfkit.models.onnx_convert`),
which carries the file's weights.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from rfkit.errors import ArgumentError, WeightsError
from rfkit.io import shown_path
from rfkit.models.onnx_file import image_input, is_onnx_proto, load_onnx, onnx_display_name
from rfkit.models.sources.base import ModelSource, ModelSpec, NoPretrained

#: What ``rfkit list-models --source onnx`` says: there is no catalogue of ONNX models, they are files.
LISTING = (
    "ONNX models are files, not names: pass the path of an exported model, e.g. `rfkit graph resnet18.onnx` "
    "(the RF graph is read from the ONNX graph; ERF and attribution run on its PyTorch conversion; needs "
    'pip install "rfkit[onnx]")'
)

#: ``weights`` options an ONNX model takes: the file holds its weights.
AS_GIVEN = ("auto", "as-given", None)


class OnnxSource(ModelSource):
    """An exported ONNX model; its own weights; layers by ONNX node or output name."""

    name = "onnx"
    description = "an ONNX file: PATH.onnx (RF graph from the ONNX graph; ERF and attribution via onnx2torch)"
    layers = (
        "ONNX node names (/layer1/layer1.0/conv1/Conv), their output names, or the converted module's "
        "(layer1/layer1/0/conv1/Conv: . → /)"
    )
    tracer = "rfkit.graph.onnx_graph:trace_onnx_source"

    def claims(self, text: str) -> bool:
        return text.strip().lower().endswith(".onnx")

    def parse(self, text: str) -> ModelSpec:
        path = (text[len("onnx:") :] if text.startswith("onnx:") else text).strip()
        return ModelSpec(self.name, Path(path).name, path)

    def spec_text(self, spec: ModelSpec) -> str:
        return spec.path

    def shown(self, spec: ModelSpec, text: str) -> str:
        return shown_path(spec.path)

    def label(self, spec: ModelSpec) -> str:
        return shown_path(spec.path)

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        raise ArgumentError(LISTING)

    def weights_as_built(self, spec: ModelSpec) -> bool:
        return True

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        raise NoPretrained(f"{self.label(spec)} is an ONNX file, which carries its own weights: use weights='auto'")

    def default_input_size(self, spec: ModelSpec):
        return image_input(load_onnx(spec.path), self.label(spec)).concrete()[2:]

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        return load_onnx_model(spec.path)[0]

    def load(self, spec: ModelSpec, mode: str, *, trust: bool, device, **kwargs):
        from rfkit.models.weights import with_warnings

        module, info = load_onnx_model(spec.path, mode)
        return with_warnings(module.to(device), info)


def load_onnx_model(model, weights="auto", *, name: str | None = None, input_size=None):
    """The ONNX model ``model`` as a PyTorch module carrying the file's weights, and what weights those are.

    The module (onnx2torch's ``GraphModule``, taking channels-first images) has an ``onnx_module_names``
    attribute (ONNX output name -> the name of the submodule computing it), ``onnx_sized_for`` (the input size
    its 'SAME' paddings were made explicit for, else None) and a ``pretrained_cfg`` (the input size; ImageNet's
    mean and std, as the file does not say).

    Parameters
    ----------
    model : str, path or onnx.ModelProto
    weights : str
        ``"auto"`` or ``"as-given"``: the weights in the file (an ONNX model carries its own).
    name : str, optional
        How to name the model in messages and reports (default: its file name, or its graph's name).
    input_size : int or tuple, optional
        The spatial input size it will take, for a model exported with dynamic height and width.

    Returns
    -------
    (nn.Module, WeightsInfo)

    Raises
    ------
    WeightsError
        Other weights asked for.
    MissingExtraError, ModelNotFoundError, ModelBuildError, ConversionError
        From loading (:func:`rfkit.models.onnx_file.load_onnx`) and converting
        (:func:`rfkit.models.onnx_convert.to_torch`).

    Examples
    --------
    >>> import onnx, onnx.helper as h
    >>> x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8, 8])
    >>> y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 8, 8])
    >>> net = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y]))
    >>> module, info = load_onnx_model(net)
    >>> info.kind, module.onnx_module_names, module.pretrained_cfg["input_size"]
    ('as-given', {'y': 'Relu'}, (1, 8, 8))
    """
    from rfkit.models.data_config import DEFAULT_DATA_CONFIG
    from rfkit.models.onnx_convert import to_torch
    from rfkit.models.weights import WeightsInfo

    shown = name or onnx_display_name(model)
    if weights not in AS_GIVEN:
        raise WeightsError(
            f"{shown} is an ONNX file, which carries its own weights: use weights='auto' (or 'as-given'), "
            f"not {weights!r}"
        )
    proto = load_onnx(model)
    converted = to_torch(proto, shown, input_size)
    module: nn.Module = converted.module
    module.onnx_module_names = dict(converted.module_names)
    shape = image_input(proto, shown).concrete(input_size, None, shown)
    explicit = any("auto_pad" in step for step in converted.steps)
    module.onnx_sized_for = tuple(shape[2:]) if explicit else None  # its pads are right at this size only
    if len(shape) == 4:
        module.pretrained_cfg = {**DEFAULT_DATA_CONFIG, "input_size": tuple(shape[1:])}
    steps = f" after {'; '.join(converted.steps)}" if converted.steps else ""
    info = WeightsInfo(
        "as-given",
        f"the weights in {shown} ({converted.check}{steps})",
        path=None if is_onnx_proto(model) else shown,
        warnings=(
            f"{shown} does not say how its images are preprocessed: rfkit normalises them with ImageNet's mean and "
            "std, its default for a model that does not say",
        ),
    )
    return module, info
