"""No silent wrong graph: a trace that is not the whole model says so (``g.incomplete``, an unknown RF from the
place it departs, ``unsupported`` > 0), and ordinary models pass the check with no false alarm."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.graph.check import reference_forward
from rfkit.graph.tracing import trace_fx
from rfkit_cli.app import main


def _exact(info) -> bool:
    return not info.unknown and all(math.isfinite(v) for v in info.size)


def _assert_not_exact(g, *words):
    assert not _exact(g.output), g.output
    assert g.output.unknown
    assert sum(u.count for u in g.unsupported) > 0
    said = " ".join([g.incomplete or "", *(f"{u.op}: {'; '.join(u.reasons)}" for u in g.unsupported)])
    for word in words:
        assert word in said


class _NumpyHalf(nn.Module):
    """Subsamples by 2 through numpy: torch (and autograd) never see it."""

    def forward(self, x):
        return torch.from_numpy(x.detach().cpu().numpy()[:, :, ::2, ::2].copy())


class _Blur(torch.autograd.Function):
    """A 5x5 box blur forward with an identity backward (the gradient does not follow the forward)."""

    @staticmethod
    def forward(ctx, x):
        return nn.functional.avg_pool2d(x, 5, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        return grad


@torch.library.custom_op("rfkit_test::blur", mutates_args=())
def _custom_blur(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(x, 5, 1, 2)


@_custom_blur.register_fake
def _(x):
    return torch.empty_like(x)


class _Two(nn.Module):
    """conv3x3 -> middle -> conv3x3; ``middle`` names the hostile step."""

    def __init__(self, middle: str) -> None:
        super().__init__()
        self.c1, self.c2, self.middle = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), middle
        self.numpy = _NumpyHalf()

    def forward(self, x):
        y = self.c1(x)
        if self.middle == "numpy":
            return self.c2(self.numpy(y))
        if self.middle == "function":
            return self.c2(_Blur.apply(y))
        if self.middle == "custom_op":
            return self.c2(_custom_blur(y))
        if self.middle == "detach":
            return self.c2(y.detach())
        return self.c2(y)


@pytest.mark.parametrize(
    "middle, words",
    [
        ("numpy", ["_NumpyHalf"]),
        ("function", ["torch.autograd.Function _Blur", "module c2"]),
        ("custom_op", ["rfkit_test::blur"]),
        ("detach", ["module c2", "no gradient reaches it"]),
    ],
)
def test_a_step_outside_torch_is_never_an_exact_rf(middle, words):
    g = rfkit.trace(_Two(middle), input_size=16)
    _assert_not_exact(g, *words)
    assert g["c1"].size == (3, 3) and not g["c1"].unknown  # before the hostile step: exact, as hand-computed


def test_the_reference_says_which_gradients_reach_the_input():
    """Independently of the graph: with an identity backward, the input gradient of the centre unit of the
    output is the 3x3 support of c1 alone (c2 and c1: 5x5), not the 9x9 of the forward (c1, blur, c2)."""
    torch.manual_seed(0)
    model = _Two("function").eval()
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = model(x)
    out[0, :, 5, 5].sum().backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    assert rows.max() - rows.min() + 1 == 5  # what the gradient sees; the forward RF is 9
    assert rfkit.trace(model, input_size=16).output.unknown


def test_a_detached_branch_makes_the_merge_unknown():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 7, padding=3)

        def forward(self, x):
            return self.a(x) + self.b(x.detach())

    g = rfkit.trace(Branches(), input_size=16)
    _assert_not_exact(g, "module b")
    assert g["a"].size == (3, 3)


def test_findings_hold_at_every_input_size():
    _, fxm = trace_fx(_Two("detach"), input_size=16)
    g = fxm.graph(24)
    _assert_not_exact(g, "module c2")


def test_keras_model_behind_a_permute_is_never_exact():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    inner = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Conv2D(4, 3, padding="same")]
    )

    class NHWC(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = inner

        def forward(self, x):
            return self.m(x.permute(0, 2, 3, 1))

    g = rfkit.trace(NHWC(), input_size=16)
    _assert_not_exact(g, "does not depend on the input")
    assert g.output.shape == (2, 16, 16, 4)  # the model's real output, not the permute's (2, 16, 16, 3)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext", "test_efficientnet"])
def test_ordinary_models_pass_with_no_false_alarm(name):
    g = rfkit.trace(name)
    assert g.incomplete is None
    assert not g.unsupported
    assert _exact(g[g.resolve("")]) or g.output.is_global


def test_resnet18_on_meta_passes_and_the_reference_ran():
    import torchvision

    model = torchvision.models.resnet18().to("meta").eval()
    ref = reference_forward(model, torch.empty(2, 3, 64, 64, device="meta"))
    assert ref is not None and ref.output_grad and ref.output_shapes == [(2, 1000)]
    assert sum(r.has_params for r in ref.modules) == 41  # 20 convs, 20 BNs, fc: all ran, all carry the gradient
    assert all(r.grad for r in ref.modules)
    assert rfkit.trace("torchvision:resnet18", input_size=64).incomplete is None


def test_reference_forward_leaves_requires_grad_as_found():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)).to("meta")
    model[0].weight.requires_grad_(False)
    reference_forward(model, torch.empty(1, 3, 8, 8, device="meta"))
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_cli_graph_prints_why_the_graph_is_incomplete(tmp_path, capsys):
    f = tmp_path / "net.py"
    f.write_text(
        "import torch.nn as nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.c1, self.c2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)\n\n"
        "    def forward(self, x):\n        return self.c2(self.c1(x).detach())\n\n"
        "def build():\n    return Net()\n"
    )
    with pytest.raises(SystemExit) as exc:
        main(["graph", f"{f}:build", "--trust", "-q", "--input-size", "16"])
    assert exc.value.code == 0
    err = capsys.readouterr().err
    assert "warning: incomplete graph: module c2 (Conv2d)" in err and "no gradient reaches it" in err


def test_numpy_helper_really_leaves_torch():
    """The hostile module of these tests does what it claims: its output has no autograd history."""
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    y = _NumpyHalf()(x)
    assert y.grad_fn is None and y.shape == (1, 3, 4, 4)
    assert np.allclose(y.numpy(), x.detach().numpy()[:, :, ::2, ::2])
