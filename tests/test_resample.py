"""Resampling ops (upsampling, pixel shuffle, transposed conv) against hand-computed windows, then the
same nets against the measured gradient support of several units.

Hand computation, per axis, after a conv k3 s2 p1 (unit j sees pixels 2j-1 .. 2j+1):

- nearest ×2 / PixelShuffle(2): upsampled v reads j = v // 2. A conv3 (p1) at w reads v = w-1 .. w+1,
  i.e. j = (w-1)//2 .. (w+1)//2: w = 0 → j -1..0 → pixels [-3, 1]; w = 1 → j 0..1 → [-1, 3]. Size 5,
  repeating every 2 units, stride 1.
- bilinear ×2 (align_corners=False): source x = v/2 - 1/4, taps floor(x), floor(x)+1: v = 2m reads
  m-1..m, v = 2m+1 reads m..m+1. A conv3 at w = 0 reads v -1..1 → j -1..1 → [-3, 3]; w = 1 reads v 0..2
  → j -1..1 → [-3, 3]; w = 2 → j 0..2 → [-1, 5]. Size 7, period 2.
- ConvTranspose k4 s2 p1: output v reads j with v + 1 - t ≡ 0 (mod 2), t < 4: v = 2m → j m-1..m;
  v = 2m+1 → j m..m+1 — the same taps as bilinear ×2, hence the same windows after a conv3.
"""

from __future__ import annotations

import pytest
import torch.nn as nn
from test_measured import check_model

import rfkit


class Interp(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return nn.functional.interpolate(x, **self.kw)


def net(middle, out_ch=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), middle, nn.Conv2d(out_ch, 4, 3, 1, 1))


NEAREST = ((-3, 1), (-1, 3))
LINEAR = ((-3, 3), (-3, 3), (-1, 5), (-1, 5))

CASES = {
    "conv_transpose": (lambda: net(nn.ConvTranspose2d(4, 4, 4, 2, 1)), LINEAR, 7),
    "nearest": (lambda: net(nn.Upsample(scale_factor=2, mode="nearest")), NEAREST, 5),
    "bilinear": (lambda: net(nn.Upsample(scale_factor=2, mode="bilinear")), LINEAR, 7),
    "pixel_shuffle": (lambda: net(nn.Sequential(nn.Conv2d(4, 16, 1), nn.PixelShuffle(2))), NEAREST, 5),
    "interpolate_size": (lambda: net(Interp(size=(16, 16), mode="nearest")), NEAREST, 5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_windows_after_resampling_then_conv3(case):
    factory, windows, size = CASES[case]
    g = rfkit.trace(factory(), input_size=16)
    info = g["2"]
    got = [info.window_of((u, u))[0] for u in range(len(windows))]
    assert got == list(windows)
    assert info.size == (size, size) and info.stride == (1, 1) and info.period == (2, 2)
    assert not info.shift_invariant and "periodic" in info.flags()


def test_pixel_unshuffle_is_a_strided_window():
    g = rfkit.trace(nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 4, 3, padding=1)), input_size=16, in_chans=3)
    assert g["0"].size == (2, 2) and g["0"].stride == (2, 2) and g["0"].center == (0.5, 0.5)
    assert g["1"].size == (6, 6) and g["1"].shift_invariant


def test_upsample_then_downsample_is_shift_invariant_again():
    g = rfkit.trace(nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 3, 2, 2)), input_size=8)
    assert g["1"].shift_invariant and g["1"].size == (1, 1) and g["1"].stride == (1, 1)


def test_non_integer_scale_and_align_corners():
    g = rfkit.trace(nn.Sequential(Interp(size=(12, 12), mode="bilinear", align_corners=True)), input_size=(9, 9))
    # source x = v * 8 / 11: v = 0 → 0 (one tap), v = 1 → 0.727 → 0..1, ..., v = 11 → 8
    assert g["0"].window_of((0, 11)) == ((0, 0), (8, 8))
    assert g["0"].window_of((1, 1)) == ((0, 1), (0, 1))


@pytest.mark.parametrize("case", list(CASES) + ["bicubic", "nearest_exact", "scale_1_5", "area", "conv_transpose_odd"])
def test_measured_support(case):
    extra = {
        "bicubic": lambda: net(nn.Upsample(scale_factor=2, mode="bicubic")),
        "nearest_exact": lambda: net(Interp(scale_factor=3, mode="nearest-exact")),
        "scale_1_5": lambda: net(Interp(scale_factor=1.5, mode="bilinear")),
        "area": lambda: net(Interp(size=(5, 7), mode="area")),
        "conv_transpose_odd": lambda: net(nn.ConvTranspose2d(4, 4, (3, 5), (3, 2), (1, 2), dilation=(1, 2))),
    }
    factory = CASES[case][0] if case in CASES else extra[case]
    check_model(factory(), (40, 36))
