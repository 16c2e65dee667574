"""No silent all-zero map: a CAM layer or an ERF unit that gets no gradient says why, and which layer to use."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

import rfkit


def _attribute_warnings(layer: str):
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rfkit.attribute(
            "test_vit",
            images=rfkit.Images(num_images=2),
            methods="gradcam",
            layer=layer,
            weights="random",
        )
    return res, [str(w.message) for w in caught if "CAM layer" in str(w.message)]


def test_last_vit_block_under_a_class_token_head_warns_and_names_the_block_before():
    """test_vit (6 blocks, global_pool='token'): the head reads the class token only, so the patch tokens of
    blocks.5 get no gradient and Grad-CAM there is all zero (measured); blocks.4's map is not."""
    res, said = _attribute_warnings("blocks.5")
    assert np.abs(res.maps["gradcam"]).max() == 0
    assert len(said) == 1
    assert "depends only on the class (prefix) token" in said[0] and "patch tokens of blocks.5" in said[0]
    assert "use blocks.4" in said[0]
    assert said[0] in res.warnings


def test_a_layer_with_a_gradient_gives_no_warning():
    res, said = _attribute_warnings("blocks.4")
    assert np.abs(res.maps["gradcam"]).max() > 0
    assert said == []


def test_erf_of_a_unit_that_never_fires_warns_and_names_the_layer_before():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    with torch.no_grad():  # the last conv is -1 everywhere: relu(unit) = 0, no gradient on any image
        net[2].weight.zero_()
        net[2].bias.fill_(-1.0)
    with pytest.warns(UserWarning, match=r"2: the measured unit has zero input gradient .* measure 1 "):
        res = rfkit.erf(
            net,
            layers="2",
            images=rfkit.Images(num_images=2, input_size=16),
            options=rfkit.ERFOptions(metrics=False),
        )
    assert not res.maps["2"].any()


def test_erf_of_a_live_unit_does_not_warn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    with torch.no_grad():
        net[2].bias.fill_(10.0)  # always positive: the gradient is the (non-zero) weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rfkit.erf(
            net,
            layers="2",
            images=rfkit.Images(num_images=2, input_size=16),
            options=rfkit.ERFOptions(metrics=False),
        )
    assert res.maps["2"].any()
    assert not [w for w in caught if "zero input gradient" in str(w.message)]
