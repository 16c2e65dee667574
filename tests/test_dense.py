"""Dense outputs: the ERF of one output pixel of an image-to-image model, on a non-square input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfkit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class TinyUNet(nn.Module):
    """conv 3x3 -> max pool 2 -> conv 3x3 -> nearest x2 -> concat with the first conv -> conv 3x3."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, 4, 3, padding=1)
        self.enc2 = nn.Conv2d(4, 4, 3, padding=1)
        self.dec = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        e1 = torch.relu(self.enc1(x))
        e2 = torch.relu(self.enc2(F.max_pool2d(e1, 2)))
        up = F.interpolate(e2, scale_factor=2, mode="nearest")
        return self.dec(torch.cat([up, e1], 1))


def test_rf_and_erf_of_an_output_pixel_on_a_non_square_input():
    g = rfkit.trace(TinyUNet(), input_size=(24, 40))
    out = g[""]
    # skip path: 3 + 2 = 5; deep path: an e2 unit sees 8 pixels (3, pool 2, 3 at stride 2); the output's
    # 3x3 conv reads two neighbouring e2 units after the x2 upsampling: 8 + 2 = 10, the largest over a period
    assert out.shape == (2, 2, 24, 40) and out.stride == (1, 1) and out.size == (10, 10)
    torch.manual_seed(0)
    res = rfkit.erf(
        TinyUNet(),
        layers=[""],
        images=rfkit.Images("noise", 2, input_size=(24, 40)),
        runtime="cpu",
    )
    assert res.grid[""] == (24, 40) and res.unit[""] == (12, 20)
    # unit 12 reads up-units 11..13, i.e. e2 units 5 and 6, which see pixels 7..14 and 9..16 (e2 unit v:
    # 2v-3..2v+4); the skip path reads 10..14; likewise columns 15..24 for unit 20
    assert g[""].window_of((12, 20)) == ((7, 16), (15, 24))
    rows, cols = np.nonzero(res.maps[""])
    assert 7 <= rows.min() and rows.max() <= 16 and 15 <= cols.min() and cols.max() <= 24
