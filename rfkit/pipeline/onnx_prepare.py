"""``rfkit.prepare("model.onnx")``: an ONNX model converted to PyTorch once (:mod:`rfkit.models.onnx_source`)
with the RF graph read from its ONNX graph (:func:`rfkit.graph.onnx_graph.trace_onnx`), the graph's nodes named
after the converted module's submodules, so that the measuring stages catch every node with a forward hook."""

from __future__ import annotations

from rfkit.graph.onnx_graph import trace_onnx
from rfkit.models.onnx_file import image_input, load_onnx, onnx_display_name
from rfkit.models.onnx_source import load_onnx_model


def prepare_onnx(model, weights="auto", input_size=None, *, in_chans: int | None = None, seed: int = 0):
    """:func:`rfkit.prepare` for an ONNX model (``PATH.onnx`` or an ``onnx.ModelProto``).

    Raises
    ------
    MissingExtraError, ModelNotFoundError, ModelBuildError
        onnx or onnx2torch missing, no such file, not an ONNX model.
    ConversionError
        onnx2torch cannot convert it (its RF graph still can be read: ``rfkit graph``).
    WeightsError
        Weights other than the file's.
    InputSizeError
        An input size other than the one the file fixes.
    """
    from rfkit.pipeline.prepare import Prepared, _data_config

    name = onnx_display_name(model)
    proto = load_onnx(model)
    image_input(proto, name).concrete(input_size, in_chans, name)  # a size the file refuses: before converting
    module, info = load_onnx_model(proto, weights, name=name, input_size=input_size)
    g = trace_onnx(proto, input_size, in_chans=in_chans, module_names=module.onnx_module_names, name=name)
    cfg = _data_config(module, g.input_size, g.in_chans)
    return Prepared(module, info, name, model, cfg, g, None, seed)
