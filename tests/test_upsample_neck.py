"""A detector neck in miniature (nearest ×2 upsampling of a coarse map, concatenated with a fine one, a 3×3 conv,
a stride-2 conv back down): the analytic window of every unit equals the exact gradient support, including the
lopsided windows of the units after the upsampling (a fine unit's 3×3 reads coarse units v/2 - 1, v/2, v/2 for
an even v: its window reaches further on one side). This is why the RF centres of YOLO's neck layers lie
off the units' nominal centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit


class Neck(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, 2, 1)  # stride 2
        self.b = nn.Conv2d(1, 1, 3, 2, 1)  # stride 4: the coarse map
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c = nn.Conv2d(2, 1, 3, 1, 1)  # 3×3 at stride 2, after the concatenation
        self.d = nn.Conv2d(1, 1, 3, 2, 1)  # back to stride 4

    def forward(self, x):
        f = self.a(x)
        return self.d(self.c(torch.cat([self.up(self.b(f)), f], 1)))


def _support(net, layer, unit):
    """First and last input row and column whose gradient is non-zero (positive weights: no cancellation)."""
    x = torch.rand(1, 1, 64, 64, dtype=torch.float64, requires_grad=True)
    seen = {}
    handle = dict(net.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.__setitem__("y", o))
    net(x)
    handle.remove()
    seen["y"][0, 0, unit[0], unit[1]].backward()
    ys, xs = np.nonzero(x.grad[0, 0].numpy())
    return (int(ys.min()), int(ys.max())), (int(xs.min()), int(xs.max()))


@pytest.mark.parametrize("layer,unit", [("c", (8, 8)), ("c", (9, 9)), ("c", (8, 9)), ("d", (4, 4)), ("d", (3, 5))])
def test_windows_after_nearest_upsampling_are_the_gradient_support(layer, unit):
    torch.manual_seed(0)
    net = Neck().double()
    for p in net.parameters():
        p.data = p.data.abs() + 0.1
    g = rfkit.trace(net, input_size=64)
    assert g.record(layer).info.window_of(unit) == _support(net, layer, unit)


def test_an_even_unit_after_the_upsampling_is_lopsided():
    g = rfkit.trace(Neck(), input_size=64)
    (lo, hi), _ = g.record("c").info.window_of((8, 8))
    assert (lo, hi) == (9, 19)  # its centre, 14, lies 2 px before the nominal 8 × 2 = 16
