"""A float64 model is traced, measured and attributed in float64: rfkit's inputs follow the model's dtype (the
dummy input of the trace was float32, which a float64 conv refuses)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

import rfkit


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip


def test_a_float64_model_is_traced_and_measured():
    net32 = _net()
    net64 = _net().double()
    g = rfkit.trace(net64, input_size=16)
    assert tuple(g.record("2").info.size) == (5, 5)
    x = torch.rand(2, 3, 16, 16)
    m64, m32 = (
        rfkit.erf(
            net64,
            layers=["2"],
            images=rfkit.Images(x, 2, input_size=16),
            options=rfkit.ERFOptions(bootstrap=0),
            runtime="cpu",
        ).maps["2"],
        rfkit.erf(
            net32,
            layers=["2"],
            images=rfkit.Images(x, 2, input_size=16),
            options=rfkit.ERFOptions(bootstrap=0),
            runtime="cpu",
        ).maps["2"],
    )
    np.testing.assert_allclose(m64, m32, rtol=1e-4, atol=1e-6 * m32.max())
    assert m64.any() and next(net64.parameters()).dtype == torch.float64  # left as found


def test_a_float64_model_is_attributed():
    res = rfkit.attribute(
        _net().double(),
        images=rfkit.Images("noise", 2, input_size=16),
        methods="saliency",
        runtime="cpu",
    )  # fmt: skip
    assert res.maps["saliency"].shape == (2, 16, 16) and np.abs(res.maps["saliency"]).max() > 0
