"""A Keras 3 model (PyTorch backend) as rfkit runs every model: a ``torch.nn.Module`` taking NCHW images.

:class:`KerasModule` moves the channels to the end at its input (Keras' ``channels_last``) and back at every
output it hands out, and, for a Keras application that wants BGR, reorders the colour channels, so that the
rest of rfkit sees the layout it knows. Its Keras model is a submodule: ``parameters()``, ``.to(device)``,
``eval()`` and ``requires_grad_`` reach the Keras variables (they are torch parameters on this backend).

:func:`walk` runs a Keras functional graph node by node, the way Keras' own ``Functional`` does, handing each
layer (or ``keras.ops`` operation) and its inputs to a callback; nested functional models and ``Sequential``
models are entered. The RF graph (:mod:`rfkit.graph.keras_graph`, on symbolic tensors) and the layer captures
(:meth:`KerasModule.capture`, on real tensors) both name nodes through it, so a name means the same layer in
both: the Keras layer name, ``outer.inner`` inside a nested model, ``name#k`` for the k-th further call of a
shared layer and ``name[i]`` for output ``i`` of a layer with several.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from rfkit.errors import ModelBuildError, TraceError


class KerasModule(nn.Module):
    """A Keras model wrapped for rfkit: NCHW in, NCHW out.

    Parameters
    ----------
    keras_model : keras.Model
        A functional or ``Sequential`` Keras model (a subclassed model runs too, but has no layer graph).
    label : str, optional
        The model's name in reports (default: the Keras model's name).
    channel_order : tuple of int, optional
        Colour channels in the order the model takes them, as indices into RGB (``(2, 1, 0)``: BGR).
    data_config : dict, optional
        The preprocessing the model expects (``mean``, ``std``, ``interpolation``, ``crop_pct``); its input size
        is the model's own.

    Examples
    --------
    >>> from rfkit.models.keras_build import import_keras
    >>> keras = import_keras()
    >>> inp = keras.Input((16, 16, 3))
    >>> net = keras.Model(inp, keras.layers.Conv2D(4, 3, name="conv")(inp))
    >>> m = KerasModule(net)
    >>> tuple(m(torch.zeros(2, 3, 16, 16)).shape), m.input_size, m.in_chans
    ((2, 4, 14, 14), (16, 16), 3)
    """

    def __init__(self, keras_model, *, label: str | None = None, channel_order=None, data_config=None) -> None:
        super().__init__()
        from rfkit.models.keras_build import import_keras

        keras = import_keras()
        if not isinstance(keras_model, keras.Model):
            raise ModelBuildError(f"expected a Keras model, got {type(keras_model).__name__}")
        inputs = getattr(keras_model, "inputs", None) or []
        if len(inputs) > 1:
            raise ModelBuildError(
                f"the Keras model {keras_model.name} takes {len(inputs)} inputs; rfkit analyses models of one image"
            )
        self.keras_model = keras_model
        self.label = label or keras_model.name
        self.channel_order = tuple(channel_order) if channel_order is not None else None
        self.channels_last = data_format(keras_model) == "channels_last"
        shape = tuple(inputs[0].shape) if inputs else None
        self.ndim = len(shape) - 2 if shape else 2
        spatial = (shape[1:-1] if self.channels_last else shape[2:]) if shape else ()
        self.input_size = tuple(spatial) if spatial and all(isinstance(s, int) for s in spatial) else None
        chans = (shape[-1] if self.channels_last else shape[1]) if shape else None
        self.in_chans = chans if isinstance(chans, int) else None
        if self.ndim == 2:  # images: the preprocessing rfkit's image stream reads (as timm's pretrained_cfg)
            from rfkit.models.data_config import DEFAULT_DATA_CONFIG

            cfg = {**DEFAULT_DATA_CONFIG, **(data_config or {})}
            cfg["input_size"] = (self.in_chans or 3, *(self.input_size or cfg["input_size"][1:]))
            self.pretrained_cfg = cfg
        self.feature_info = stage_outputs(keras_model, self.channels_last)
        self._handles: dict | None = None

    @classmethod
    def for_application(cls, keras_model, name: str) -> KerasModule:
        """A model of ``keras.applications.NAME``, with the preprocessing its ``preprocess_input`` applies."""
        from rfkit.models.keras_build import application_preprocessing

        cfg, order = application_preprocessing(name)
        return cls(keras_model, label=f"keras:{name}", channel_order=order, data_config=cfg)

    # --- the boundary: NCHW (rfkit) <-> the Keras layout ----------------------------------------------------
    def to_keras(self, x: torch.Tensor) -> torch.Tensor:
        """An rfkit input (N, C, *spatial), RGB, in the model's own layout and channel order."""
        if self.channel_order is not None:
            x = x[:, list(self.channel_order)]
        return x.movedim(1, -1) if self.channels_last else x

    def to_graph(self, y):
        """A Keras output in rfkit's layout: a map (N, *spatial, C) becomes (N, C, *spatial)."""
        if isinstance(y, torch.Tensor) and self.channels_last and y.dim() == self.ndim + 2:
            return y.movedim(-1, 1)
        return y

    def device_scope(self):
        """Keras' device scope for where the model's variables live (Keras moves inputs to its device)."""
        from rfkit.models.keras_build import import_keras

        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        return import_keras().device(str(device))

    def forward(self, x: torch.Tensor):
        with self.device_scope():
            out = self.keras_model(self.to_keras(x), training=False)
        if isinstance(out, (list, tuple)):
            return type(out)(self.to_graph(o) for o in out)
        if isinstance(out, dict):
            return {k: self.to_graph(v) for k, v in out.items()}
        return self.to_graph(out)

    def to_keras_layout(self, y):
        """The inverse of :meth:`to_graph`: a map (N, C, *spatial) back to Keras' (N, *spatial, C)."""
        if isinstance(y, torch.Tensor) and self.channels_last and y.dim() == self.ndim + 2:
            return y.movedim(1, -1)
        return y

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """The torch modules, then one :class:`KerasLayer` handle per Keras layer called once, named like its
        graph node (hooks on it see the layer's output in rfkit's layout: what CAM methods hook)."""
        yield from super().named_modules(memo, prefix, remove_duplicate)
        if self._handles is None:
            self._handles = {name: KerasLayer(self, layer) for name, layer in single_call_layers(self.keras_model)}
        for name, handle in self._handles.items():
            yield (f"{prefix}.{name}" if prefix else name), handle

    def capture(self, nodes: dict[str, str]) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
        """A function of an input batch returning the outputs of graph nodes (node name -> key), in rfkit's
        layout, from one run of the model's graph that stops once every node has run."""
        wanted: dict[str, list[str]] = {}
        for key, node in nodes.items():
            wanted.setdefault(node, []).append(key)
        total = len(nodes)
        from keras.src.models.functional import operation_fn

        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            found: dict[str, torch.Tensor] = {}
            for key in wanted.get(INPUT, ()):
                found[key] = x

            def apply(call: KerasCall):
                out = operation_fn(call.op, training=False)(*call.args, **call.kwargs)
                flat = _flatten(out)
                names = [call.name] if len(flat) == 1 else [f"{call.name}[{i}]" for i in range(len(flat))]
                for name, t in zip(names, flat):
                    for key in wanted.get(name, ()):
                        found[key] = self.to_graph(t)
                if len(found) == total:
                    raise _Seen
                return out

            if len(found) < total:
                with self.device_scope():
                    try:
                        walk(self.keras_model, [self.to_keras(x)], apply)
                    except _Seen:
                        pass
            missing = [k for k in nodes if k not in found]
            if missing:
                raise TraceError(f"layers {', '.join(missing)} did not run in the Keras model {self.label}")
            return found

        return run


class KerasLayer(nn.Module):
    """A handle on one Keras layer of a :class:`KerasModule`: a forward hook registered on it runs on the
    layer's output in rfkit's layout (NCHW), and what the hook returns replaces the output, so the tensor it
    sees lies on the gradient path (pytorch-grad-cam hooks the gradient of that very tensor). It holds no
    parameters and is never called itself."""

    def __init__(self, owner: KerasModule, layer) -> None:
        super().__init__()
        self.__dict__["_owner"], self.__dict__["_layer"] = owner, layer  # not submodules: no second copy

    def register_forward_hook(self, hook, *args, **kwargs):
        owner = self._owner

        def in_rfkit_layout(module, inputs, output):
            view = owner.to_graph(output)
            result = hook(self, inputs, view)
            return owner.to_keras_layout(view if result is None else result)

        return self._layer.register_forward_hook(in_rfkit_layout, *args, **kwargs)

    def forward(self, *args, **kwargs):
        raise TypeError("a KerasLayer handle is for hooks; call the KerasModule")


def single_call_layers(keras_model) -> list[tuple[str, object]]:
    """(graph node name, layer) of the Keras layers called once in the model's graph (a hook on a shared layer
    would fire on every call)."""
    found: dict[int, list] = {}
    functional = functional_of(keras_model)
    if functional is None:
        return []

    def note(call: KerasCall):
        found.setdefault(id(call.op), [call.name, call.op, 0])[2] += 1
        return [_Placeholder() for _ in range(call.outputs)]

    walk(keras_model, [_Placeholder() for _ in functional.inputs], note)
    return [(name, op) for name, op, calls in found.values() if calls == 1 and hasattr(op, "register_forward_hook")]


class _Placeholder:
    """Stands for a tensor in a walk that only lists the calls."""


#: The graph node of a Keras model's (first) input.
INPUT = "input"


def as_keras_module(model) -> KerasModule | None:
    """``model`` as a :class:`KerasModule`: itself if it is one, a Keras model wrapped, None for anything else."""
    from rfkit.models.keras_build import is_keras_model

    if isinstance(model, KerasModule):
        return model
    if is_keras_model(model):
        return KerasModule(model)
    return None


def data_format(keras_model) -> str:
    """``channels_last`` or ``channels_first``: the data format of the model's first spatial layer (Keras'
    default image data format for a model without one)."""
    from rfkit.models.keras_build import import_keras

    keras = import_keras()
    for layer in keras_model._flatten_layers(include_self=False, recursive=True):
        fmt = getattr(layer, "data_format", None)
        if fmt in ("channels_last", "channels_first"):
            return fmt
    return keras.config.image_data_format()


def stage_outputs(keras_model, channels_last: bool) -> list[dict]:
    """Stage outputs as timm's ``feature_info`` lists them: for each downsampling factor of the input (2, 4,
    8, ...: the power of two nearest to input / map size), the last layer whose output map is that much
    smaller than the input, from the shapes Keras
    knows at the model's own input size (none when that size is not fixed). Padding and cropping layers,
    which only border a map, are left out."""
    inputs = getattr(keras_model, "inputs", None) or []
    functional = functional_of(keras_model)
    if len(inputs) != 1 or functional is None:
        return []
    shape = tuple(inputs[0].shape)
    spatial = shape[1:-1] if channels_last else shape[2:]
    if not spatial or not all(isinstance(s, int) for s in spatial):
        return []
    stages: dict[int, dict] = {}
    for node in _nodes(functional):
        op = node.operation
        if type(op).__name__.startswith(("ZeroPadding", "Cropping")) or len(node.outputs) != 1:
            continue
        out = tuple(node.outputs[0].shape)
        if len(out) != len(shape):
            continue
        grid = out[1:-1] if channels_last else out[2:]
        if not all(isinstance(s, int) and s > 0 for s in grid) or max(grid) == 1:
            continue  # a pooled cell (a head, a squeeze-and-excitation gate) is no stage
        reduction = 2 ** round(math.log2(spatial[0] / grid[0]))  # 528 px / 17 cells: 32 ('same' rounds up)
        if reduction >= 2:
            chans = out[-1] if channels_last else out[1]
            stages[reduction] = {"module": op.name, "reduction": reduction, "num_chs": chans}
    return [stages[r] for r in sorted(stages)]


# --- the graph walk ---------------------------------------------------------------------------------------


@dataclass
class KerasCall:
    """One call of a layer or ``keras.ops`` operation in a walk: its graph node name, the operation, and its
    arguments filled in with the walk's values."""

    name: str
    op: object
    args: tuple
    kwargs: dict
    outputs: int = 1  # how many tensors the call returns


class _Seen(Exception):
    """Raised once every requested node has run, to skip the rest of the graph."""


def functional_of(model):
    """The functional graph of a Keras model: a functional model itself, a built ``Sequential``'s; None for a
    subclassed model (whose layers are called by Python code, not by a graph)."""
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return model
    inner = getattr(model, "_functional", None)
    return inner if isinstance(inner, Functional) else None


def _nodes(functional):
    """The nodes of a functional graph in an order where every node comes after its inputs."""
    by_depth = functional._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _flatten(out) -> list:
    from keras import tree

    return list(tree.flatten(out))


def walk(model, inputs: list, apply: Callable[[KerasCall], object], *, prefix: str = "") -> list:
    """Run the functional graph of ``model`` on ``inputs`` (one value per model input), calling ``apply`` for
    each layer or operation in order; what ``apply`` returns stands for that call's outputs. Nested functional
    and ``Sequential`` models are entered (their layers named ``outer.inner``).

    Returns
    -------
    list
        The values standing for the model's outputs.

    Raises
    ------
    TraceError
        ``model`` has no functional graph (a subclassed model, or a ``Sequential`` never built).
    """
    functional = functional_of(model)
    if functional is None:
        what = "a Sequential model that was never built" if type(model).__name__ == "Sequential" else "subclassed"
        raise TraceError(
            f"the Keras model {model.name} is {what}: it has no layer graph to read; build it with keras.Input "
            "(functional API or Sequential with an Input)"
        )
    values = {id(t): v for t, v in zip(functional.inputs, inputs)}
    calls: dict[int, int] = {}
    for node in _nodes(functional):
        if any(id(t) not in values for t in node.input_tensors):
            continue  # a branch that does not start at the inputs
        op = node.operation
        k = calls.get(id(op), 0)
        calls[id(op)] = k + 1
        name = prefix + op.name + (f"#{k}" if k else "")
        args, kwargs = node.arguments.fill_in(values)
        if functional_of(op) is not None:
            out = walk(op, _flatten(args[0] if len(args) == 1 else args), apply, prefix=name + ".")
            out = out[0] if len(out) == 1 else out
        else:
            out = apply(KerasCall(name, op, tuple(args), dict(kwargs), len(node.outputs)))
        for t, v in zip(node.outputs, _flatten(out)):
            values[id(t)] = v
    return [values[id(t)] for t in functional.outputs]


def input_name(model) -> str | None:
    """The name of a Keras model's input layer (``input_layer``, or the name given to ``keras.Input``)."""
    functional = functional_of(model)
    if functional is None or not functional.inputs:
        return None
    return functional.inputs[0]._keras_history.operation.name
