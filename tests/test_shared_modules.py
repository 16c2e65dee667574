"""A module called more than once (ultralytics' one SiLU shared by every Conv, torchvision's ``relu`` called
twice per block) names its first call, in the graph and in the ERF capture alike: the graph once named the last
call while the forward hooks captured the first, so ``rfkit erf ultralytics:yolo11n-cls.yaml`` failed on a layout
mismatch, and where both calls have one shape the ERF was silently of another tensor than the analytic RF."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

import rfkit


class SharedAct(nn.Module):
    """3x3 conv, ReLU, 3x3 stride-2 conv, the same ReLU: on 16 px the first call is 14x14, the second 6x6."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 1, 3)
        self.c2 = nn.Conv2d(1, 1, 3, stride=2)
        self.act = nn.ReLU()
        with torch.no_grad():  # positive weights: every pixel a unit sees has a positive gradient
            for p in self.parameters():
                p.fill_(0.1)

    def forward(self, x):
        return self.act(self.c2(self.act(self.c1(x))))


def test_a_shared_module_names_its_first_call_in_the_graph():
    g = rfkit.trace(SharedAct(), input_size=16, in_chans=1)
    assert g["act"].size == (3, 3)  # after the first 3x3 conv; the second call sees 3 + 2 = 5
    assert g.record("act").info.shape[-2:] == (14, 14)


def test_the_erf_of_a_shared_module_is_of_its_first_call():
    r = rfkit.erf(
        SharedAct(),
        layers="act",
        images=rfkit.Images("noise", 1, input_size=16),
        options=rfkit.ERFOptions(metrics=False),
        runtime="cpu",
    )
    rows, cols = np.nonzero(r.maps["act"])
    # centre unit (7, 7) of the 14x14 map: input pixels 7..9 on each axis (centre0 = 1, stride 1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 9, 7, 9)
