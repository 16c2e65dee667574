"""The forward stops once every measured layer's output exists (issue 13): the layers after it never run, and
the maps are bit-for-bit those of a hand loop over the whole forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit


class Spy(nn.Module):
    """Counts its calls; otherwise the identity."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 5, padding=2)
        self.late = Spy()
        self.head = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), Spy())

    def forward(self, x):
        y = torch.relu(self.a(x))
        z = y + self.b(y)  # the node "add": not a module's output
        return self.head(self.late(self.c(z)))


def _full_forward_map(net, x, take, unit):
    """The RepLKNet map of ``unit`` of the tensor ``take(net, x)`` picks, over the whole forward pass, image
    by image, added up in float64 in the order of the images (as rfkit adds its batches of one)."""
    total = 0.0
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        seen = {}
        out = take(net, xi, seen)
        score = torch.relu(seen["y"][:, :, unit[0], unit[1]]).sum()
        (grad,) = torch.autograd.grad(score, xi)
        assert out is not None  # the whole network ran
        total = total + torch.relu(grad).sum(dim=1)[0].double().numpy()
    return total / x.shape[0]


def _module_output(name):
    def take(net, x, seen):
        handle = dict(net.named_modules())[name].register_forward_hook(lambda m, i, o: seen.__setitem__("y", o))
        try:
            return net(x)
        finally:
            handle.remove()

    return take


def _add_output(net, x, seen):
    y = torch.relu(net.a(x))
    seen["y"] = y + net.b(y)
    return net.head(net.late(net.c(seen["y"])))


@pytest.mark.parametrize(
    "layer,take",
    [("b", _module_output("b")), ("add", _add_output), ("c", _module_output("c"))],
    ids=["module", "graph node", "deeper module"],
)
def test_truncated_forward_gives_the_full_forward_map_and_skips_the_rest(layer, take):
    torch.manual_seed(0)
    net = Residual().eval()
    x = torch.randn(3, 3, 20, 20)
    res = rfkit.erf(
        net,
        layers=[layer],
        images=rfkit.Images(x, 3, input_size=20),
        unit=(9, 10),
        options=rfkit.ERFOptions(metrics=False, crop=False, bootstrap=0),
        runtime=rfkit.Runtime("cpu", batch_size=1),
    )  # fmt: skip
    assert net.late.calls == 0 and net.head[1].calls == 0  # nothing after the layer ran
    want = _full_forward_map(net, x, take, (9, 10))
    assert net.late.calls == 3  # the spies count the calls of this very module: the whole forward ran 3 times
    assert np.array_equal(res.maps[layer], want)  # bit for bit
    assert res.maps[layer].any()


def test_the_crop_gives_the_same_map_up_to_rounding():
    torch.manual_seed(0)
    net = Residual().eval()
    x = torch.randn(2, 3, 40, 40)
    cropped, whole = (
        rfkit.erf(
            net,
            layers=["c"],
            images=rfkit.Images(x, 2, input_size=40),
            options=rfkit.ERFOptions(metrics=False, crop=True, bootstrap=0),
            runtime="cpu",
        ),
        rfkit.erf(
            net,
            layers=["c"],
            images=rfkit.Images(x, 2, input_size=40),
            options=rfkit.ERFOptions(metrics=False, crop=False, bootstrap=0),
            runtime="cpu",
        ),
    )
    assert cropped.crops["c"]  # a 11 px RF on a 40 px input: measured on a crop
    np.testing.assert_allclose(cropped.maps["c"], whole.maps["c"], rtol=1e-5, atol=1e-7 * whole.maps["c"].max())
