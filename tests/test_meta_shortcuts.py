"""The meta-device shortcuts give what the ops themselves give on the CPU: the same shape, dtype and strides, and
no shortcut where the op would raise."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.graph.meta_shortcuts import shape_only_call, shape_only_forwards, shape_only_output


def _layouts(shape=(2, 8, 5, 6)):
    """A tensor of ``shape`` contiguous, channels-last, permuted (a view), and strided (not dense)."""
    x = torch.randn(shape)
    return {
        "contiguous": x,
        "channels_last": x.to(memory_format=torch.channels_last),
        "permuted": torch.randn(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2),
        "strided": torch.randn(*shape[:-1], shape[-1] * 2)[..., ::2],
    }


def _meta(value):
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    return value


def _agrees(function, *args, **kwargs):
    """The shortcut of ``function`` on meta copies of ``args`` (None when it takes none) and its CPU output."""
    cpu = function(*args, **kwargs)
    out = shape_only_call(function, tuple(_meta(a) for a in args), {k: _meta(v) for k, v in kwargs.items()})
    if out is not None:
        assert (out.shape, out.dtype, out.stride()) == (cpu.shape, cpu.dtype, cpu.stride()), function
    return out


UNARY = [F.gelu, F.relu, F.silu, F.hardswish, F.mish, torch.sigmoid, torch.tanh, F.dropout]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "permuted", "strided"])
def test_elementwise_shortcuts_copy_the_cpu_layout(layout):
    x = _layouts()[layout]
    taken = [_agrees(f, x) is not None for f in UNARY]
    assert taken == [layout != "strided"] * len(UNARY)  # a dense input: every shortcut taken, else none
    y = _layouts()[layout]
    assert (_agrees(operator.add, x, y) is not None) == (layout != "strided")
    assert _agrees(operator.mul, x, 2.0) is not None or layout == "strided"
    assert _agrees(operator.mul, 0.5, x) is not None or layout == "strided"
    gate = torch.randn(2, 8, 1, 1)  # a squeeze-excite gate, broadcast over the map
    assert (_agrees(operator.mul, x, gate) is not None) == (layout != "strided")
    assert (_agrees(operator.mul, gate, x) is not None) == (layout != "strided")


def test_mixed_layouts_and_dtypes_run_the_op():
    x, y = _layouts()["contiguous"], _layouts()["channels_last"]
    assert _agrees(operator.add, x, y) is None  # two layouts: the op decides
    assert _agrees(operator.add, x, x.double()) is None  # type promotion: the op decides
    assert _agrees(operator.add, x.long(), 2.5) is None
    assert _agrees(operator.truediv, x.long(), x.long()) is None  # integers divided: floats
    assert _agrees(F.relu, x.long()) is None
    assert shape_only_call(operator.add, (_meta(x), _meta(torch.randn(3))), {}) is None  # does not broadcast


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "permuted"])
def test_norm_and_linear_shortcuts_copy_the_cpu_layout(layout):
    x = _layouts()[layout]
    nhwc = x.permute(0, 2, 3, 1)
    w, b = torch.randn(8), torch.randn(8)
    assert _agrees(F.layer_norm, nhwc, (8,), w, b) is not None
    assert _agrees(F.linear, nhwc, torch.randn(4, 8), torch.randn(4)) is not None
    assert _agrees(F.linear, nhwc, torch.randn(4, 8)) is not None
    for f, args in ((F.group_norm, (2, w, b)), (F.batch_norm, (torch.zeros(8), torch.ones(8), w, b))):
        assert (_agrees(f, x, *args) is not None) == (layout == "contiguous")  # meta and CPU differ on the others


def test_no_shortcut_where_the_op_raises():
    x = torch.empty(2, 5, 6, 8, device="meta")
    assert shape_only_call(F.layer_norm, (x, (6,)), {}) is None
    assert shape_only_call(F.layer_norm, (x, (8,), torch.empty(6, device="meta")), {}) is None
    assert shape_only_call(F.linear, (x, torch.empty(4, 6, device="meta")), {}) is None
    assert shape_only_call(F.group_norm, (x.permute(0, 3, 1, 2).contiguous(), 3), {}) is None
    assert shape_only_output(nn.Linear(6, 4, device="meta"), (x,), {}) is None
    assert shape_only_output(nn.LayerNorm(6, device="meta"), (x,), {}) is None
    assert shape_only_output(nn.BatchNorm2d(4, device="meta"), (x,), {}) is None
    assert shape_only_call(F.relu, (x,), {"inplace": True}) is None
    with pytest.raises(RuntimeError):
        F.layer_norm(x, (6,))  # the op itself raises: that is what the graph then reports


@pytest.mark.parametrize(
    "module",
    [nn.Linear(8, 3), nn.LayerNorm(8), nn.GELU(), nn.BatchNorm2d(6), nn.GroupNorm(2, 6)],
    ids=lambda m: type(m).__name__,
)
def test_module_shortcuts_equal_the_module_on_the_cpu(module):
    x = torch.randn(2, 6, 5, 8) if not isinstance(module, nn.Linear | nn.LayerNorm) else torch.randn(2, 5, 6, 8)
    cpu = module.eval()(x)
    out = shape_only_output(module.to("meta"), (_meta(x),), {})
    assert (out.shape, out.dtype, out.stride()) == (cpu.shape, cpu.dtype, cpu.stride())


def test_the_reference_forward_keeps_autograd_through_a_shortcut():
    model = nn.Sequential(nn.Linear(8, 3), nn.LayerNorm(3), nn.GELU()).to("meta")
    x = torch.empty(2, 5, 8, device="meta", requires_grad=True)
    with shape_only_forwards(model):
        out = model(x)
    assert out.shape == (2, 5, 3) and out.requires_grad and out.grad_fn is not None
    assert "forward" not in model[0].__dict__  # put back


RNNS = {
    "lstm-batch-first-bidirectional": lambda: nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True),
    "lstm-projected": lambda: nn.LSTM(6, 5, proj_size=3),
    "gru-bidirectional": lambda: nn.GRU(6, 5, bidirectional=True),
    "rnn-batch-first": lambda: nn.RNN(6, 4, batch_first=True),
}


def _flat(out) -> list[tuple]:
    leaves = [out[0], *(out[1] if isinstance(out[1], tuple) else (out[1],))]
    return [(tuple(t.shape), t.dtype, t.stride()) for t in leaves]


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("name", list(RNNS))
def test_recurrent_layers_equal_the_cpu(name, unbatched):
    module = RNNS[name]().eval()
    x = torch.randn(7, 6) if unbatched else torch.randn(4, 7, 6)
    cpu = module(x)
    out = shape_only_output(module.to("meta"), (_meta(x),), {})
    assert _flat(out) == _flat(cpu)
    assert shape_only_output(module, (torch.empty(4, 7, 5, device="meta"),), {}) is None  # 5 features, not 6


def test_the_reference_forward_sees_through_a_recurrent_shortcut():
    lstm = nn.LSTM(6, 5, batch_first=True, bidirectional=True).to("meta")
    x = torch.empty(4, 7, 6, device="meta", requires_grad=True)
    with shape_only_forwards(lstm):
        out, (h, c) = lstm(x)
    assert out.shape == (4, 7, 10) and out.stride() == (10, 40, 1)  # batch-first: a transposed view, as on the CPU
    assert all(t.grad_fn is not None for t in (out, h, c))
