"""The analytic RF against the measured gradient support of output units (tests/measure.py): for every
node whose RF is known and local, the support of the centre unit and of the corner unit must be exactly
the analytic window (clipped to the image); for global nodes it must be the whole image."""

from __future__ import annotations

import pytest
import timm
import torch.nn as nn
from test_handlers import SE, Inception, Misaligned, Residual

import rfkit
from rfkit.verification.measure import measurable, measure
from rfkit.verification.verify import agrees, clipped_window


def expected_extent(info, unit, size):
    """Pixels [lo, hi] of the unit's analytic RF, clipped to what the node reads of the input."""
    return list(clipped_window(info, unit, size))


def check_model(model: nn.Module, input_size: tuple[int, ...], in_chans: int = 3, max_nodes: int = 60):
    g = rfkit.trace(model, input_size=input_size, in_chans=in_chans)
    checked = [
        n
        for n, info in g.items()
        if info.shape is not None
        and info.dims is not None
        and len(info.dims) == len(input_size)
        and not info.unknown
        and not info.approximate
        and g.records[n].kind != "placeholder"
    ]
    step = max(1, len(checked) // max_nodes)
    checked = checked[::step][:max_nodes] + ([checked[-1]] if checked else [])
    checked = list(dict.fromkeys(checked))
    gm = measurable(model)
    shape = (1, in_chans, *input_size)
    centre = {n: tuple(g[n].shape[d] // 2 for d in g[n].dims) for n in checked}
    # the unit after the centre, when the map has one: another phase of periodic (resampled) axes
    after = {n: tuple(min(g[n].shape[d] // 2 + 1, g[n].shape[d] - 1) for d in g[n].dims) for n in checked}
    corner = {n: tuple(0 for _ in g[n].dims) for n in checked}
    dims = {n: g[n].dims for n in checked}
    failures = []
    for is_corner, units in ((False, centre), (False, after), (True, corner)):
        for name, (unit, extent) in measure(gm, checked, shape, units, dims).items():
            info = g[name]
            if info.is_global:
                want = list(info.reads or [(0, n - 1) for n in input_size])
            else:
                want = expected_extent(info, unit, input_size)
            if not agrees(extent, want, is_corner and not info.is_global):  # see rfkit.verification.verify
                failures.append(
                    f"{name} ({g.records[name].op}) unit {unit}: measured {extent}, analytic {want} "
                    f"(size {info.size}, windows {info.windows})"
                )
    assert not failures, "\n".join(failures)
    return checked


# --- hand-built nets -----------------------------------------------------------------------------------------
def _dilated_stack():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, dilation=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(4, 4, (3, 5), stride=(2, 1), padding=(1, 0)),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, dilation=3),
    )


def _pad_and_slice():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad = nn.ZeroPad2d((3, 0, 0, 2))
            self.conv = nn.Conv2d(3, 4, 4, stride=2)
            self.conv2 = nn.Conv2d(4, 4, 3, padding="same")

        def forward(self, x):
            return self.conv2(self.conv(self.pad(x))[:, :, 1:, ::2])

    return M()


def _blocks():
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, 2, 1), Residual(), Inception(), nn.Conv2d(9, 3, 2, 2), Misaligned(), nn.Conv2d(3, 3, 1), SE()
    )


@pytest.mark.parametrize("factory, size", [(_dilated_stack, (45, 38)), (_pad_and_slice, (33, 40)), (_blocks, (74, 58))])
def test_hand_built_nets(factory, size):
    check_model(factory(), size)


def test_conv1d_and_conv3d_nets():
    check_model(
        nn.Sequential(nn.Conv1d(2, 3, 5, 2, 1), nn.AvgPool1d(3, 2), nn.Conv1d(3, 3, 3, dilation=2)), (61,), in_chans=2
    )
    check_model(
        nn.Sequential(nn.Conv3d(1, 2, (1, 3, 5), (1, 2, 1), (0, 1, 2)), nn.Conv3d(2, 2, 3, 2)), (9, 17, 15), in_chans=1
    )


# --- tiny timm models ----------------------------------------------------------------------------------------
TIMM_TEST_MODELS = timm.list_models("test_*")


@pytest.mark.parametrize("name", TIMM_TEST_MODELS)
def test_timm_tiny_models(name):
    model = timm.create_model(name)
    fixed = model.pretrained_cfg.get("fixed_input_size", False)
    size = tuple(model.pretrained_cfg["input_size"][1:]) if fixed else (96, 80)
    checked = check_model(model, size, max_nodes=25)
    assert checked, "no node with a known local RF to check"
