"""ONNX models as a source of models: ``PATH.onnx`` (or an ``onnx.ModelProto`` in the API), measured through
its PyTorch conversion (:mod:`rfkit.models.onnx_convert`) with the weights the file holds.

The RF graph needs no conversion (:func:`rfkit.graph.onnx_graph.trace_onnx`); everything that runs the model
(ERF, attribution, verification) uses the converted module, whose submodules are the ONNX nodes.
"""

from __future__ import annotations

import torch.nn as nn

from rfkit.errors import WeightsError
from rfkit.models.onnx_file import is_onnx, is_onnx_proto, onnx_display_name

#: What ``rfkit list-models --source onnx`` says: there is no catalogue of ONNX models, they are files.
LISTING = (
    "ONNX models are files, not names: pass the path of an exported model, e.g. `rfkit graph resnet18.onnx` "
    "(the RF graph is read from the ONNX graph; ERF and attribution run on its PyTorch conversion; needs "
    'pip install "rfkit[onnx]").'
)

#: ``weights`` options an ONNX model takes: the file holds its weights.
AS_GIVEN = ("auto", "as-given", None)


def load_onnx_model(model, weights="auto", *, name: str | None = None, input_size=None):
    """The ONNX model ``model`` as a PyTorch module carrying the file's weights, and what weights those are.

    The module (onnx2torch's ``GraphModule``) has an ``onnx_module_names`` attribute: ONNX output name -> the
    name of the submodule computing it.

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
    >>> info.kind, module.onnx_module_names
    ('as-given', {'y': 'Relu'})
    """
    from rfkit.models.onnx_convert import to_torch
    from rfkit.models.weights import WeightsInfo

    shown = name or onnx_display_name(model)
    if weights not in AS_GIVEN:
        raise WeightsError(
            f"{shown} is an ONNX file, which carries its own weights: use weights='auto' (or 'as-given'), "
            f"not {weights!r}"
        )
    converted = to_torch(model, shown, input_size)
    module: nn.Module = converted.module
    module.onnx_module_names = dict(converted.module_names)
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


__all__ = ["LISTING", "is_onnx", "load_onnx_model"]
