"""One small test per RF rule, against values computed by hand from the recurrence
r' = r + (k_eff - 1) S,  S' = S s,  c' = c + ((k_eff - 1)/2 - p) S   (DESIGN.md)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfkit
from rfkit.graph.state import AxisRF, RFState, merge


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def trace_seq(*layers, size=(32, 32), chans=3):
    return rfkit.trace(nn.Sequential(*layers), input_size=size, in_chans=chans)


# --- convolutions --------------------------------------------------------------------------------------------
def test_conv3x3_dilation2_has_rf5():
    g = trace_seq(nn.Conv2d(3, 4, 3, dilation=2))
    assert g["0"].size == (5, 5)
    assert g["0"].center == (2, 2)  # no padding: unit 0 sits on pixels 0..4
    assert g["0"].padding == (0, 0)


def test_anisotropic_kernel_keeps_axis_order():
    g = trace_seq(nn.Conv2d(3, 4, (3, 9), stride=(1, 2), padding=(1, 4)))
    assert g["0"].size == (3, 9)
    assert g["0"].stride == (1, 2)
    assert g["0"].center == (0, 0)
    assert g["0"].shape == (2, 4, 32, 16)


def test_non_square_input_keeps_axis_order():
    g = trace_seq(nn.Conv2d(3, 4, 3, stride=2), size=(40, 24))
    assert g["0"].shape == (2, 4, 19, 11)


def test_stack_of_strided_convs():
    g = trace_seq(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 1, 1))
    # 1 -> 3 (S 2) -> 3 + 2*2 = 7 (S 4) -> 7 + 2*4 = 15 (S 4); symmetric padding keeps c = 0
    assert [g[k].size for k in "012"] == [(3, 3), (7, 7), (15, 15)]
    assert [g[k].stride for k in "012"] == [(2, 2), (4, 4), (4, 4)]
    assert g["2"].center == (0, 0)
    assert g["2"].padding == (7, 7)


@pytest.mark.parametrize("padding, center", [("valid", 1.5), ("same", 0.5), (0, 1.5), (2, -0.5)])
def test_conv_padding_forms_even_kernel(padding, center):
    # k = 4: torch's 'same' pads d(k-1) = 3 in total, 1 on the left: c = 3/2 - 1
    g = trace_seq(nn.Conv2d(3, 4, 4, padding=padding))
    assert g["0"].size == (4, 4)
    assert g["0"].center == (center, center)
    assert g["0"].padding == (1.5 - center, 1.5 - center)


def test_functional_conv_reads_kernel_from_weight():
    w = torch.ones(4, 3, 5, 3)

    g = trace_seq(Lambda(lambda x: F.conv2d(x, w.to(x.device), stride=(2, 1), padding=(0, 1), dilation=(1, 3))))
    assert g["0"].size == (5, 7)  # k_eff = 3 (1 + 3*2) = 7 along w
    assert g["0"].stride == (2, 1)
    assert g["0"].center == (2, 2)  # h: (5-1)/2 - 0 ; w: (7-1)/2 - 1


def test_grouped_conv_same_rf():
    g = trace_seq(nn.Conv2d(4, 8, 3, groups=4), chans=4)
    assert g["0"].size == (3, 3)


def test_conv1d_and_conv3d():
    g1 = rfkit.trace(nn.Sequential(nn.Conv1d(2, 4, 5, stride=2), nn.Conv1d(4, 4, 3, dilation=3)), input_size=(64,))
    assert g1["1"].size == (5 + 6 * 2,)
    assert g1["1"].stride == (2,)
    g3 = rfkit.trace(nn.Sequential(nn.Conv3d(1, 2, (3, 5, 7), padding=(1, 2, 3))), input_size=(8, 16, 16))
    assert g3["0"].size == (3, 5, 7)
    assert g3["0"].center == (0, 0, 0)


# --- pooling -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_maxpool_ceil_mode_changes_shape_not_rf(ceil_mode):
    g = trace_seq(nn.Conv2d(3, 4, 3, 2, 1), nn.MaxPool2d(3, 2, 0, ceil_mode=ceil_mode), size=(36, 36))
    assert g["1"].size == (3 + 2 * 2,) * 2
    assert g["1"].stride == (4, 4)
    assert g["1"].center == (2, 2)  # 0 + (1 - 0) * 2
    assert g["1"].shape[-1] == (9 if ceil_mode else 8)


def test_avgpool_default_stride_is_kernel_and_lppool():
    g = trace_seq(nn.AvgPool2d(2), nn.LPPool2d(2, 3))
    assert g["0"].stride == (2, 2) and g["0"].center == (0.5, 0.5)
    assert g["1"].size == (2 + 2 * 2,) * 2 and g["1"].stride == (6, 6)


def test_functional_max_pool_with_dilation():
    g = trace_seq(Lambda(lambda x: F.max_pool2d(x, 3, stride=1, padding=1, dilation=2)))
    assert g["0"].size == (5, 5) and g["0"].center == (1, 1)  # (5 - 1)/2 - 1


@pytest.mark.parametrize(
    "size_in, size_out, rf, stride, center, windows",
    [
        (8, 4, 2, 2, 0.5, ((0, 1),)),  # even bins: a 2x2 pool
        (7, 7, 1, 1, 0, ((0, 0),)),  # identity (VGG's 7x7 at 224)
        (10, 4, 3, 2.5, 1, ((0, 2), (2, 4))),  # bins [0,3) [2,5) [5,8) [7,10): period 2, advancing 5 pixels
    ],
)
def test_adaptive_pool(size_in, size_out, rf, stride, center, windows):
    g = trace_seq(nn.AdaptiveAvgPool2d(size_out), size=(size_in, size_in))
    info = g["0"]
    assert info.size == (rf, rf) and info.stride == (stride, stride) and info.center == (center, center)
    assert info.windows == (windows, windows) and not info.approximate and not info.is_global
    if size_in == 10:
        assert info.window_of((2, 3)) == ((5, 7), (7, 9)) and not info.shift_invariant


def test_global_pool_and_linear_are_global():
    g = trace_seq(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    for k in "123":
        assert g[k].is_global and g[k].size == (math.inf, math.inf) and g[k].local_size is None
    assert not g["0"].is_global


def test_flatten_then_linear_is_global():
    g = trace_seq(nn.Conv2d(3, 4, 3, 4), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    assert not g["0"].is_global and g["2"].is_global


def test_mean_over_spatial_dims_is_global():
    g = trace_seq(nn.Conv2d(3, 4, 3), Lambda(lambda x: x.mean((2, 3), keepdim=True)), Lambda(lambda x: x.sum(1)))
    assert g["1"].is_global
    assert not trace_seq(nn.Conv2d(3, 4, 3), Lambda(lambda x: x.sum(1, keepdim=True)))["1"].is_global


# --- padding -------------------------------------------------------------------------------------------------
def test_functional_pad_order_is_last_dim_first():
    g = trace_seq(Lambda(lambda x: F.pad(x, (1, 2, 3, 4))), nn.Conv2d(3, 4, 3))
    assert g["0"].center == (-3, -1)  # (h, w): h padded 3 on top, w padded 1 on the left
    assert g["1"].center == (-2, 0)


@pytest.mark.parametrize(
    "pad",
    [
        nn.ZeroPad2d((2, 0, 1, 0)),
        nn.ReflectionPad2d((2, 0, 1, 0)),
        nn.ReplicationPad2d((2, 0, 1, 0)),
        nn.ConstantPad2d((2, 0, 1, 0), 0.5),
    ],
)
def test_padding_modules(pad):
    g = trace_seq(pad, nn.Conv2d(3, 4, 3, 2))
    assert g["1"].center == (0, -1)
    assert g["1"].size == (3, 3)


def test_negative_pad_crops():
    g = trace_seq(Lambda(lambda x: F.pad(x, (-2, 0, 0, 0))))
    assert g["0"].center == (0, 2)


# --- neutral ops ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer",
    [
        nn.ReLU(),
        nn.GELU(),
        nn.SiLU(),
        nn.Hardswish(),
        nn.Dropout2d(0.5),
        nn.BatchNorm2d(3),
        nn.Identity(),
        nn.LeakyReLU(),
        nn.PReLU(),
        Lambda(torch.sigmoid),
        Lambda(lambda x: x.clamp(0, 1).contiguous()),
    ],
)
def test_neutral_ops_keep_rf(layer):
    g = trace_seq(nn.Conv2d(3, 3, 5, 2, 1), layer)
    assert g["1"] == g["0"].__class__(**{**g["0"].as_dict(), "shape": g["1"].shape})
    assert g.unsupported == []


def test_layernorm_over_channels_after_permute_is_neutral():
    class ChannelsLastBlock(nn.Module):  # the ConvNeXt block layout
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(4, 4, 7, padding=3, groups=4)
            self.norm = nn.LayerNorm(4)
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.fc(self.norm(y)).permute(0, 3, 1, 2)
            return x + y

    g = rfkit.trace(ChannelsLastBlock(), input_size=32, in_chans=4)
    assert g["fc"].size == (7, 7) and not g["fc"].is_global
    assert g.output.size == (7, 7) and g.output.size_min == (1, 1)


def test_spatial_norms_are_global_but_keep_local_rf():
    for norm in (nn.GroupNorm(2, 4), nn.InstanceNorm2d(4), nn.LayerNorm([4, 32, 32])):
        g = trace_seq(nn.Conv2d(3, 4, 3, padding=1), norm)
        assert g["1"].is_global and g["1"].size == (math.inf, math.inf)
        assert g["1"].local_size == (3, 3)


def test_vector_norm_over_positions_is_global_over_channels_local():
    def grn(x):  # ConvNeXt-V2's global response norm, channels-last as transformers writes it
        x = x.permute(0, 2, 3, 1)
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        return (x * gx / (gx.mean(dim=-1, keepdim=True) + 1e-6) + x).permute(0, 3, 1, 2)

    g = trace_seq(nn.Conv2d(3, 4, 3, padding=1), Lambda(grn))
    assert g["1"].is_global and g["1"].local_size == (3, 3)
    g = trace_seq(nn.Conv2d(3, 4, 3, padding=1), Lambda(lambda x: torch.linalg.vector_norm(x, dim=1, keepdim=True)))
    assert not g["1"].is_global and g["1"].size == (3, 3)


class MaxBranch(nn.Module):
    """Maxima over channels and over the width, behind a branch on the width: torch.fx keeps it whole and make_fx
    records it as ``aten.max.dim``."""

    def forward(self, x):
        if x.shape[-1] > 1:
            return x.max(dim=1, keepdim=True).values + x.max(dim=3, keepdim=True).values
        return x


def test_aten_max_over_channels_is_local_over_the_width_global():
    g = trace_seq(nn.Conv2d(3, 4, 3, padding=1), MaxBranch())
    assert "1" in g.untraced and g.unsupported == []
    assert g["1"].is_global and g["1"].local_size == (3, 3)


def test_softmax_over_channels_is_neutral_over_positions_is_global():
    assert not trace_seq(Lambda(lambda x: x.softmax(1)))["0"].is_global
    assert trace_seq(Lambda(lambda x: x.flatten(2).softmax(-1)))["0"].is_global


# --- merges --------------------------------------------------------------------------------------------------
class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + self.b(self.a(x))


def test_residual_max_and_min_over_paths():
    g = rfkit.trace(Residual(), input_size=16)
    assert g.output.size == (5, 5) and g.output.size_min == (1, 1)
    assert not g.output.misaligned


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 2, 1)
        self.b3 = nn.Conv2d(3, 2, (1, 7), padding=(0, 3))
        self.b5 = nn.Conv2d(3, 2, 5, padding=2)
        self.pool = nn.AvgPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


def test_concat_of_branches_per_axis():
    g = rfkit.trace(Inception(), input_size=16)
    assert g.output.size == (5, 7)  # h: max(1, 1, 5, 3); w: max(1, 7, 5, 3)
    assert g.output.size_min == (1, 1)
    assert not g.output.misaligned


class Misaligned(nn.Module):
    def __init__(self):
        super().__init__()
        self.even = nn.Conv2d(3, 3, 2, stride=2)  # unit 0 centred at 0.5
        self.odd = nn.Conv2d(3, 3, 1, stride=2)  # unit 0 centred at 0

    def forward(self, x):
        return self.even(x) + self.odd(x)


def test_misaligned_merge_is_flagged_and_uses_the_union():
    g = rfkit.trace(Misaligned(), input_size=16)
    out = g.output
    assert out.misaligned
    assert out.size == (2, 2) and out.size_min == (1, 1)  # union of [0, 1] and [0, 0]
    assert out.center == (0.5, 0.5) and out.stride == (2, 2)


def test_stack_and_broadcast_constant():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3)
            self.scale = nn.Parameter(torch.ones(1, 3, 1, 1))

        def forward(self, x):
            y = self.c(x) * self.scale
            return torch.stack([y, y], 1).sum(1)

    g = rfkit.trace(M(), input_size=16)
    assert g.output.size == (3, 3) and not g.output.is_global


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc1 = nn.Conv2d(4, 2, 1)
        self.fc2 = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


def test_squeeze_excitation_is_global_and_keeps_conv_rf():
    g = rfkit.trace(SE(), input_size=16)
    out = g.output
    assert out.is_global and out.size == (math.inf, math.inf)
    assert out.local_size == (3, 3) and out.stride == (1, 1) and out.center == (0, 0)


# --- layout --------------------------------------------------------------------------------------------------
def test_slicing_reindexes_the_axis():
    g = trace_seq(nn.Conv2d(3, 3, 3, 2, 1), Lambda(lambda x: x[:, :, 1:, ::2]))
    assert g["1"].center == (2, 0) and g["1"].stride == (2, 4) and g["1"].size == (3, 3)


def test_channel_index_and_reshape_keep_spatial_axes():
    def shuffle(x):
        b, c, h, w = x.shape
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)

    g = trace_seq(nn.Conv2d(3, 4, 3), Lambda(shuffle), Lambda(lambda x: x[:, 0].unsqueeze(1)), nn.Conv2d(1, 1, 3))
    assert g["3"].size == (5, 5) and g.unsupported == []


def test_unsupported_op_is_listed_and_what_follows_is_unknown():
    g = trace_seq(nn.Conv2d(3, 3, 3), Lambda(lambda x: torch.cumsum(x, 3)), nn.Conv2d(3, 3, 3))
    assert [u.op for u in g.unsupported] == ["torch.cumsum"] or "cumsum" in g.unsupported[0].op
    assert g.unsupported[0].count == 1
    assert g["1"].unknown and g["2"].unknown and math.isnan(g["2"].size[0])
    assert not g["0"].unknown


def test_cat_along_spatial_axis_is_unsupported_not_guessed():
    g = trace_seq(Lambda(lambda x: torch.cat([x, x], 3)))
    assert g["0"].unknown and "spatial" in g.unsupported[0].reasons[0]


# --- state arithmetic ----------------------------------------------------------------------------------------
def test_merge_with_different_strides_is_approximate():
    a = AxisRF.identity().local(3, 2, 1)
    b = AxisRF.identity().local(3, 1, 1)
    m = merge([RFState((a,), (2,)), RFState((b,), (2,))], (2,))
    assert m.misaligned and m.approximate


class ECA(nn.Module):
    """Efficient channel attention: a conv1d across the channels of the pooled map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.eca = nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.eca(y).view(x.shape[0], -1, 1, 1)
        return x * (-y).sigmoid()


def test_eca_gate_is_global_and_keeps_conv_rf():
    g = rfkit.trace(ECA(), input_size=16)
    assert g["eca"].is_global and g["eca"].local_size is None
    assert g.output.is_global and g.output.local_size == (3, 3)
    assert g.unsupported == []


def test_glu_over_channels_is_neutral_over_width_unsupported():
    g = trace_seq(nn.Conv2d(3, 4, 3), nn.GLU(1))
    assert g["1"].size == (3, 3) and g["1"].shape[1] == 2 and g.unsupported == []
    g = trace_seq(nn.Conv2d(3, 4, 3), nn.GLU(-1))
    assert g["1"].unknown and "GLU" in g.unsupported[0].reasons[0]


def test_inplace_method_results_are_not_dropped():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 3, 1)
            self.b = nn.Conv2d(3, 3, 5, padding=2)

        def forward(self, x):
            out = self.a(x)
            out.add_(self.b(x))  # torch.fx records it, but later code reads `out`, not the add_ node
            return out.relu()

    g = rfkit.trace(InPlace(), input_size=16)
    assert g.output.size == (5, 5) and g.output.size_min == (1, 1)


def test_gather_along_a_mixed_dim_and_empty_slices():
    class Zigzag(nn.Module):
        def forward(self, x):
            b, c, h, w = x.shape
            y = x.reshape(b, c, h, w // 4, 4)
            y = (y + y.mean(-1, keepdim=True))[..., [3, 1, 0, 2]]  # mixed within blocks of 4, then permuted
            return y + x[:, :, :, :0].sum()  # an empty slice is harmless

    g = rfkit.trace(nn.Sequential(Zigzag()), input_size=(2, 8))
    out = g["0"]
    assert g.unsupported == [] and out.approximate
    # the permuted entries are channels now; the grid is the blocks, 4 pixels apart, each seeing its block
    assert out.dims == (2, 3) and out.stride == (1, 4)
    assert [out.window_of((0, o))[1] for o in range(2)] == [(0, 3), (4, 7)]


@pytest.mark.parametrize("size, pad_left", [(224, 0), (225, 1)])
def test_tf_same_padding_depends_on_input_parity(size, pad_left):
    """TF 'SAME', k3 s2: total pad max((ceil(n/2) - 1) * 2 + 3 - n, 0): 1 at 224 (all on the right),
    2 at 225 (one each side). The centre of unit 0 is (3 - 1)/2 - left pad."""
    from test_measured import check_model
    from timm.layers import Conv2dSame
    from timm.layers.pool2d_same import MaxPool2dSame

    net = nn.Sequential(Conv2dSame(3, 4, 3, stride=2), MaxPool2dSame(3, 2))
    g = rfkit.trace(net, input_size=(size, size))
    assert g["0"].center == (1 - pad_left,) * 2 and g["0"].size == (3, 3)
    # the pool sees a 112 (113) map: total pad 1 (2), left 0 (1)
    assert g["1"].center == (1 - pad_left + 2 * (1 - pad_left),) * 2 and g["1"].size == (7, 7)
    check_model(net, (size // 4, size // 4 + 1))


def test_pixels_a_strided_stem_never_reads():
    """A k7 s7 stem without padding reads 13 * 7 = 91 of 96 pixels (0..90); later layers' windows reach
    further only into pixels nothing reads."""
    from test_measured import check_model

    net = nn.Sequential(nn.Conv2d(3, 4, 7, 7), nn.Conv2d(4, 4, 9, padding=4), nn.AdaptiveAvgPool2d(1))
    g = rfkit.trace(net, input_size=(96, 50))
    assert g["0"].reads == ((0, 90), (0, 48))
    assert g["1"].window_of((12, 6))[0] == (56, 118) and g["1"].reads == ((0, 90), (0, 48))
    assert g["2"].is_global and g["2"].reads == ((0, 90), (0, 48))
    check_model(net, (96, 50))
