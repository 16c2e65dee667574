"""Models from a spec are built for the input size asked for: timm transformers with a fixed grid (ViT, Swin)
get ``img_size``, models without one are built as always; non-square sizes included."""

from __future__ import annotations

import numpy as np
import pytest

import rfkit


def test_a_vit_is_built_for_a_non_square_input():
    g = rfkit.trace("test_vit", input_size=(48, 80))  # test_vit: 16 px patches, built for 160 x 160
    assert g.input_size == (48, 80)
    patches = g.record("patch_embed").info
    assert tuple(patches.size) == (16, 16) and tuple(patches.stride) == (16, 16)
    assert g.record("blocks.0").info.is_global  # attention: every token sees every patch


def test_the_erf_of_a_patch_embedding_is_its_patch():
    res = rfkit.erf(
        "test_vit",
        layers=["patch_embed"],
        images=rfkit.Images("noise", 1, input_size=(48, 80)),
        weights="random",
        options=rfkit.ERFOptions(metrics=False),
        runtime="cpu",
    )  # fmt: skip
    m = res.maps["patch_embed"]
    assert m.shape == (48, 80) and res.grid["patch_embed"] == (3, 5)
    r, c = res.unit["patch_embed"]
    inside = np.zeros_like(m, dtype=bool)
    inside[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = True
    assert m[inside].sum() > 0 and not m[~inside].any()


def test_a_cnn_spec_takes_any_size_as_before():
    g = rfkit.trace("test_resnet", input_size=(40, 72))
    assert g.input_size == (40, 72)
    with pytest.raises(rfkit.errors.RFKitError):
        rfkit.trace("test_vit", input_size=(50, 80))  # not a multiple of the 16 px patch: timm refuses it
