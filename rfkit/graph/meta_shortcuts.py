"""Shortcuts for running a model on meta tensors: the modules and functions whose output shape, dtype and layout
follow from their input's (batch and layer norm, activations, dropout, linear layers) need not run there. On
meta tensors their forward only costs time: many meta kernels are Python decompositions (batch norm was a sixth
of a zoo trace; layer norm, linear layers and GELU a quarter of a transformer's).

A shortcut's output has the shape, dtype and memory layout (strides) the op gives on the CPU: elementwise ops keep
a dense input's layout, layer norms and linear layers return contiguous tensors, batch and group norms take a
shortcut on contiguous inputs only (the meta and CPU kernels disagree on the layout of others). A shortcut is only
taken where every check the op itself makes on shapes holds (a layer norm's normalised shape, a linear layer's
input features): anything else runs the op, which then raises its own error.

>>> import torch.nn as nn
>>> x = torch.empty(1, 8, 5, 5, device="meta")
>>> tuple(shape_only_output(nn.BatchNorm2d(8, device="meta"), (x,), {}).shape)
(1, 8, 5, 5)
>>> tuple(shape_only_output(nn.Linear(5, 3, device="meta"), (x,), {}).shape)
(1, 8, 5, 3)
>>> shape_only_output(nn.Conv2d(8, 8, 3, device="meta"), (x,), {}) is None
True
>>> tuple(shape_only_call(torch.nn.functional.gelu, (x,), {}).shape)
(1, 8, 5, 5)
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map


@functools.cache
def _types() -> tuple[type, ...]:
    """Module types whose output has the input's shape, dtype and layout whatever their parameters: on meta
    tensors their forward only costs time (batch norm runs through Python decompositions there, a sixth of
    a zoo trace), so the propagation makes their output with ``empty_like``. Exact types only: a subclass
    may change what ``forward`` returns."""
    nn = torch.nn
    types_ = [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.Identity, nn.Dropout]
    types_ += [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid]
    types_ += [nn.Sigmoid, nn.Tanh]
    try:
        from timm.layers.norm_act import BatchNormAct2d  # BN, dropout and an activation: elementwise after BN
    except ImportError:
        pass
    else:
        types_.append(BatchNormAct2d)
    return tuple(types_)


def _meta(x) -> bool:
    return isinstance(x, torch.Tensor) and x.device.type == "meta"


def _dense(x: torch.Tensor) -> bool:
    """Whether ``x`` is non-overlapping and dense (a permutation of a contiguous tensor), the layout an
    elementwise op's output copies.

    >>> _dense(torch.empty(2, 3, 4).permute(2, 0, 1)), _dense(torch.empty(2, 3, 4)[:, :, ::2])
    (True, False)
    """
    if x.is_contiguous():
        return True
    expected = 1
    for size, stride in sorted((d for d in zip(x.shape, x.stride()) if d[0] != 1), key=lambda d: d[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _normalises(x: torch.Tensor, shape, *params) -> bool:
    """Whether a layer norm over the trailing ``shape`` of ``x`` (with these weight/bias ``params``) runs."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not 0 < len(shape) <= x.dim() or tuple(x.shape[-len(shape) :]) != shape:
        return False
    return all(p is None or (tuple(p.shape) == shape and p.dtype == x.dtype) for p in params)


def _linear_output(x: torch.Tensor, weight, bias=None) -> torch.Tensor | None:
    if weight is None or weight.dim() != 2 or x.dim() < 1 or x.shape[-1] != weight.shape[1] or x.dtype != weight.dtype:
        return None
    if bias is not None and (tuple(bias.shape) != (weight.shape[0],) or bias.dtype != x.dtype):
        return None
    return torch.empty((*x.shape[:-1], weight.shape[0]), device="meta", dtype=x.dtype)


def _contiguous_like(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, device="meta", dtype=x.dtype)


def _rnn_output(module, x: torch.Tensor):
    """An LSTM's ``(output, (h_n, c_n))`` or a GRU's or RNN's ``(output, h_n)`` with the CPU's layout (a
    batch-first output is a transposed view of a sequence-first one), or None where the module must run."""
    if x.dim() not in (2, 3) or x.shape[-1] != module.input_size or x.dtype != module.weight_ih_l0.dtype:
        return None
    directions = 2 if module.bidirectional else 1
    h_out = getattr(module, "proj_size", 0) or module.hidden_size
    batched = x.dim() == 3
    length, batch = (x.shape[1], x.shape[0]) if batched and module.batch_first else (x.shape[0], x.shape[-2])
    state = (directions * module.num_layers, *((batch,) if batched else ()))

    def empty(*shape):
        return torch.empty(shape, device="meta", dtype=x.dtype)

    if not batched:
        output = empty(length, directions * h_out)
    elif module.batch_first:
        output = empty(length, batch, directions * h_out).transpose(0, 1)
    else:
        output = empty(length, batch, directions * h_out)
    if isinstance(module, torch.nn.LSTM):
        return output, (empty(*state, h_out), empty(*state, module.hidden_size))
    return output, empty(*state, module.hidden_size)


def _module_output(module: torch.nn.Module, x: torch.Tensor):
    nn = torch.nn
    kind = type(module)
    if kind in (nn.LSTM, nn.GRU, nn.RNN):
        return _rnn_output(module, x)
    if kind in _types():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (x.dim() < 2 or x.shape[1] != module.num_features):
            return None  # let the module raise its own error
        return torch.empty_like(x) if x.is_floating_point() and _dense(x) else None
    if kind is nn.Linear:
        return _linear_output(x, module.weight, module.bias)
    if kind is nn.LayerNorm and _normalises(x, module.normalized_shape, module.weight, module.bias):
        return _contiguous_like(x)
    if kind is nn.GroupNorm and x.is_contiguous() and x.dim() >= 2 and x.shape[1] == module.num_channels:
        return torch.empty_like(x)  # num_channels % num_groups is checked by the constructor
    return None


def shape_only_output(module: torch.nn.Module, args: tuple, kwargs: dict):
    """The output of ``module`` on one meta tensor when its type's output follows from its input (see
    :func:`_types`; linear, layer and group norm layers; LSTM, GRU and RNN layers, whose meta kernels run
    step by step through Python decompositions: two thirds of a Sequencer2D trace); None when the module must
    run."""
    if kwargs or len(args) != 1 or not _meta(args[0]):
        return None
    return _module_output(module, args[0])


def _same_shape(x, *_, **__) -> torch.Tensor | None:
    return torch.empty_like(x) if x.is_floating_point() and _dense(x) else None


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _contiguous_like(x) if _normalises(x, normalized_shape, weight, bias) else None


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    ok = x.is_contiguous() and x.dim() >= 2 and isinstance(num_groups, int) and num_groups > 0
    ok = (
        ok
        and x.shape[1] % num_groups == 0
        and all(p is None or tuple(p.shape) == (x.shape[1],) for p in (weight, bias))
    )
    return torch.empty_like(x) if ok else None


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, *_, **__):
    channels = x.shape[1] if x.dim() >= 2 else None
    params = (running_mean, running_var, weight, bias)
    ok = x.is_contiguous() and channels is not None and all(p is None or tuple(p.shape) == (channels,) for p in params)
    return torch.empty_like(x) if ok else None


def _elementwise(a, b, *rest, **kwargs):
    """A binary op on two floating meta tensors of one dtype, one of them dense and of the output's shape (the other
    of its layout, or broadcast: the output copies the full one's layout), or on a dense floating tensor and a
    Python number."""
    if rest or kwargs:
        return None
    if not isinstance(a, torch.Tensor):
        a, b = b, a
    if not _meta(a):
        return None
    if not isinstance(b, torch.Tensor):
        ok = isinstance(b, (int, float)) and not isinstance(b, bool) and a.is_floating_point() and _dense(a)
        return torch.empty_like(a) if ok else None
    if not _meta(b) or a.dtype != b.dtype or not a.is_floating_point():  # integers: true division promotes
        return None
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return None
    if a.shape == b.shape:
        return torch.empty_like(a) if a.stride() == b.stride() and _dense(a) else None
    full = a if a.shape == shape else b if b.shape == shape else None
    return torch.empty_like(full) if full is not None and _dense(full) else None


@functools.cache
def _functions() -> dict[Callable, Callable]:
    """The functions with a shortcut: each to the function making its output on meta tensors (None where the
    function must run)."""
    same = [F.gelu, F.relu, torch.relu, F.silu, F.hardswish, F.hardsigmoid, F.mish, F.relu6, F.leaky_relu, F.elu]
    same += [torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.dropout, F.dropout2d]
    table: dict[Callable, Callable] = dict.fromkeys(same, _same_shape)
    table.update(
        {F.layer_norm: _layer_norm, F.group_norm: _group_norm, F.batch_norm: _batch_norm, F.linear: _linear_output}
    )
    table.update(
        dict.fromkeys([operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul], _elementwise)
    )
    return table


def shape_only_call(function, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of ``function(*args, **kwargs)`` when it has a shortcut (:func:`_functions`) on these meta
    tensors; None when it must run."""
    try:
        make = _functions().get(function)
    except TypeError:  # an unhashable callable
        return None
    if make is None or not args or not (_meta(args[0]) or make is _elementwise):
        return None
    if make is _same_shape and (kwargs.get("inplace") or any(isinstance(a, torch.Tensor) for a in args[1:])):
        return None
    try:
        return make(*args, **kwargs)
    except TypeError:  # arguments the shortcut does not take: the function itself says what is wrong
        return None


def _reached(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """A tensor of ``out``'s shape and strides that autograd sees ``x`` reach."""
    if out.shape == x.shape and out.stride() == x.stride():
        return x.clone()
    if out.shape == x.shape and out.is_contiguous():  # a layer norm of a permuted input
        return x.clone(memory_format=torch.contiguous_format)
    one = x[(slice(0, 1),) * x.dim()].reshape(())  # a view of x's first element
    return one.expand(out.shape).clone(memory_format=torch.contiguous_format).as_strided(out.shape, out.stride())


@contextlib.contextmanager
def shape_only_forwards(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, each module of ``model`` that :func:`shape_only_output` covers returns a tensor of its
    output's shape computed from its meta input (autograd still sees the input reach the output) instead of
    running its forward."""
    patched = []
    nn = torch.nn
    covered = (*_types(), nn.Linear, nn.LayerNorm, nn.GroupNorm, nn.LSTM, nn.GRU, nn.RNN)
    for module in model.modules():
        if type(module) not in covered:
            continue

        def forward(*args, _module=module, _forward=module.forward, **kwargs):
            out = shape_only_output(_module, args, kwargs)
            if out is None:
                return _forward(*args, **kwargs)
            return tree_map(lambda t: _reached(args[0], t), out)

        had = "forward" in module.__dict__
        patched.append((module, had, module.__dict__.get("forward")))
        module.forward = forward
    try:
        yield
    finally:
        for module, had, own in patched:
            if had:
                module.forward = own
            else:
                del module.forward
