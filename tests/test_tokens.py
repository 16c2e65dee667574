"""Token layouts: ViT (patch RF, global after the first attention, prefix tokens), Swin windows (exact,
measured), MaxViT-style grids, channels-last, patch merging — against hand-computed values and the
measured gradient support."""

from __future__ import annotations

import math

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_measured import check_model

import rfkit
from rfkit.graph import layout as lay


def test_layout_round_trip_through_window_partition():
    shape = (2, 8, 12, 3)  # B, H, W, C
    plain = lay.plain(shape, (1, 2))
    parts = lay.reshape(plain, shape, (2, 2, 4, 3, 4, 3))
    windows = lay.reshape(lay.permute(parts, (0, 1, 3, 2, 4, 5)), (2, 2, 3, 4, 4, 3), (12, 16, 3))
    assert windows[1].factors == (lay.Factor(0, 4, 1), lay.Factor(1, 4, 1))
    assert windows[0].factors == (lay.Factor(None, 2), lay.Factor(0, 2, 4), lay.Factor(1, 3, 4))
    back = lay.permute(lay.reshape(windows, (12, 16, 3), (2, 2, 3, 4, 4, 3)), (0, 1, 3, 2, 4, 5))
    assert lay.reshape(back, (2, 2, 4, 3, 4, 3), shape) == plain


class WindowMix(nn.Module):
    """Mean over non-overlapping windows of 4 along the width of a (B, C, 1, W) map, broadcast back."""

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.view(b, c, h, w // 4, 4)
        return (y + y.mean(-1, keepdim=True)).view(b, c, h, w)


def test_window_mixing_is_exact_and_periodic():
    g = rfkit.trace(nn.Sequential(WindowMix()), input_size=(1, 16))
    info = g["0"]
    # unit v sees its window [4*(v//4), 4*(v//4)+3]
    assert [info.window_of((0, v))[1] for v in range(6)] == [(0, 3)] * 4 + [(4, 7)] * 2
    assert info.size == (1, 4) and info.period == (1, 4) and not info.is_global


def test_window_mixing_measured():
    check_model(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), WindowMix(), nn.Conv2d(4, 4, 3, padding=1)), (5, 24))


class GridMix(nn.Module):
    """Attention-like mixing over a dilated grid (MaxViT): positions w, w+4, w+8, ... of a 12-wide axis."""

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.view(b, c, h, 3, 4)
        return (y + y.mean(-2, keepdim=True)).view(b, c, h, w)


def test_grid_mixing_is_exact():
    g = rfkit.trace(nn.Sequential(GridMix()), input_size=(1, 12))
    assert g["0"].window_of((0, 1))[1] == (1, 9)  # sees 1, 5, 9
    check_model(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), GridMix()), (4, 12))


def test_vit_patch_rf_then_global_after_first_attention():
    g = rfkit.trace("test_vit")
    cfg = timm.create_model("test_vit").patch_embed
    p = cfg.patch_size[0]
    assert g["patch_embed"].size == (p, p) and g["patch_embed"].stride == (p, p)
    assert g["patch_embed"].center == ((p - 1) / 2, (p - 1) / 2)
    first = g["blocks.0.attn"]
    assert first.is_global and first.size == (math.inf, math.inf) and first.local_size == (p, p)
    assert g["blocks.0.norm1"].size == (p, p) and not g["blocks.0.norm1"].is_global
    assert g.unsupported == []


def test_cls_token_is_a_prefix_and_dropping_it_restores_the_grid():
    class TinyViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, 8, 4, 4)
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))
            self.head = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            t = self.proj(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1)
            grid = t[:, 1:].transpose(1, 2).reshape(t.shape[0], 8, 4, 4)
            return self.head(grid)

    g = rfkit.trace(TinyViT(), input_size=16)
    assert g.output.size == (12, 12) and g.output.stride == (4, 4) and g.unsupported == []
    check_model(TinyViT(), (16, 16))


def tiny_swin(img_size=56, **kw):
    from timm.models.swin_transformer import SwinTransformer

    return SwinTransformer(
        img_size=img_size,
        patch_size=4,
        window_size=7,
        embed_dim=8,
        depths=(2, 2),
        num_heads=(1, 1),
        num_classes=0,
        **kw,
    )


def test_swin_first_block_window_is_exact():
    g = rfkit.trace(tiny_swin(), input_size=56)
    b0 = g["layers.0.blocks.0"]  # regular 7x7 windows of 4-pixel tokens: 28 pixels, aligned
    assert [b0.window_of((0, v))[1] for v in (0, 6, 7, 13)] == [(0, 27), (0, 27), (28, 55), (28, 55)]
    assert b0.size == (28, 28) and b0.stride == (4, 4) and b0.period == (7, 7)
    b1 = g["layers.0.blocks.1"]  # shifted by 3 tokens: a token sees two block-0 windows at most
    assert b1.size == (56, 56) and b1.approximate  # the roll wraps around at the border
    assert g.unsupported == []


def test_swin_measured_inside_the_map():
    """The analytic windows match the gradient support of interior units (away from the wrap-around)."""
    from test_measured import expected_extent

    from rfkit.verification.measure import measurable, measure

    model = tiny_swin(img_size=224)
    g = rfkit.trace(model, input_size=224)
    names = [g.resolve(k) for k in ("layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.0")]
    gm = measurable(model)
    # 56 tokens per axis in stage 0, whose shifted windows are [3, 9], [10, 16], ...; these units and the
    # stage-1 units above them (index // 2) only reach windows that do not wrap around the border
    for unit in ((20, 24), (26, 22), (30, 33)):
        units = {n: tuple(u * g[n].shape[g[n].dims[0]] // 56 for u in unit) for n in names}
        got = measure(gm, names, (1, 3, 224, 224), units, {n: g[n].dims for n in names})
        for n, (u, extent) in got.items():
            assert extent == expected_extent(g[n], u, (224, 224)), (n, u, extent, g[n].window_of(u))


def test_patch_merging_compacts_the_grid():
    g = rfkit.trace(tiny_swin(), input_size=56)
    merged = g["layers.1.downsample"]
    assert merged.stride == (8, 8) and merged.dims == (1, 2) and merged.shape == (2, 7, 7, 16)


class ShapeBranch(nn.Module):
    """torch.fx cannot trace it (control flow on the input's shape); rfkit records it with make_fx."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1))
        return self.conv(x)[..., : x.shape[-2], :]


def test_untraceable_module_is_recorded_with_make_fx(monkeypatch):
    import rfkit.graph.tracer as tracer

    monkeypatch.setattr(tracer, "_timm_notrace", lambda: ((ShapeBranch,), ()))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), ShapeBranch(), nn.Conv2d(4, 4, 3))
    g = rfkit.trace(model, input_size=(20, 21))
    assert g.unsupported == [] and g.records[g.resolve("1")].kind == "call_module"
    assert g["1"].size == (7, 7) and g["1"].stride == (2, 2)
    check_model(model, (20, 21))


class WindowConv(nn.Module):
    """A depthwise 3x3 conv applied inside 4x4 windows (EfficientViT's local window attention)."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(2, 2, 3, padding=1, groups=2)

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, 4, 4)
        y = self.dw(y)
        return y.view(b, h // 4, w // 4, c, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def test_conv_inside_windows_is_clipped_at_window_edges():
    g = rfkit.trace(nn.Sequential(WindowConv()), input_size=(8, 8), in_chans=2)
    info = g["0"]
    # unit 3 sits at the right edge of window [0, 3]: it sees 2..3 only; unit 4 opens the next window: 4..5
    assert [info.window_of((0, v))[1] for v in range(6)] == [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (4, 6)]
    check_model(nn.Sequential(nn.Conv2d(2, 2, 1), WindowConv()), (8, 12), in_chans=2)


class UnfoldNet(nn.Module):
    """im2col patches (TNT), a linear layer per patch, back to the grid of patch positions."""

    def __init__(self):
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=(3, 5), stride=2, padding=1)
        self.fc = nn.Linear(3 * 15, 4)

    def forward(self, x):
        b, _, h, w = x.shape
        cols = self.fc(self.unfold(x).transpose(1, 2))  # (B, L, 4)
        return cols.transpose(1, 2).reshape(b, 4, (h - 1) // 2 + 1, (w - 1) // 2)


class TokenPool(nn.Module):
    """AvgPool1d over row-major tokens with k = s dividing the row length (NextViT's E-MHSA)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool1d(4, 4)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.pool(x.flatten(2)).view(b, c, h, w // 4)


def test_unfold_and_token_pooling():
    g = rfkit.trace(UnfoldNet(), input_size=(9, 12))
    assert g.output.size == (3, 5) and g.output.stride == (2, 2) and g.output.center == (0, 1)
    check_model(UnfoldNet(), (9, 12))
    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), TokenPool()), input_size=(5, 16))
    assert g.output.size == (3, 6) and g.output.stride == (1, 4) and g.unsupported == []
    check_model(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), TokenPool()), (5, 16))


def test_einsum_attention_is_global_and_keeps_the_query_path():
    class EinsumAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, 4)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
            attn = torch.einsum("bnc,bmc->bnm", t, t).softmax(-1)
            return torch.einsum("bnm,bmc->bnc", attn, t)

    g = rfkit.trace(EinsumAttention(), input_size=16)
    assert g.output.is_global and g.output.local_size == (4, 4) and g.unsupported == []


def _shape_branch_fn(x, size):
    """A function kept whole (like timm's no-trace functions) whose arguments include a tuple of ints."""
    if x.shape[-1] != size[1]:
        raise AssertionError("size mismatch")
    return F.avg_pool2d(x, 3, 1, 1)


def test_recorded_function_with_tuple_arguments(monkeypatch):
    import rfkit.graph.tracer as tracer

    monkeypatch.setattr(tracer, "_timm_notrace", lambda: ((), (_shape_branch_fn,)))

    class M(nn.Module):
        def forward(self, x):
            return _shape_branch_fn(x, tuple(x.shape[-2:]))

    g = rfkit.trace(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), M()), input_size=(12, 10))
    assert g.unsupported == [] and g.output.size == (5, 5)


class SpaceToDepthNet(nn.Module):
    """TResNet's stem: 4x4 pixel blocks moved into channels, then a 3x3 conv mixes them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(48, 4, 3, padding=1)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4).reshape(b, c * 16, h // 4, w // 4)
        return self.conv(x)


class FoldNet(nn.Module):
    """VOLO-style: unfold 3x3 windows (stride 2), then fold them back (overlapping windows summed)."""

    def forward(self, x):
        cols = F.unfold(x, 3, padding=1, stride=2)
        return F.fold(cols, x.shape[-2:], 3, padding=1, stride=2)


def test_space_to_depth_then_conv():
    g = rfkit.trace(SpaceToDepthNet(), input_size=16, in_chans=3)
    assert g.output.stride == (4, 4) and g.output.size == (12, 12) and g.unsupported == []
    check_model(SpaceToDepthNet(), (16, 20))


def test_fold_after_unfold_is_an_upper_bound():
    """fold(unfold(x)) puts every pixel back where it was: each output pixel sees itself only. rfkit gives
    the union of the windows holding it (exact once a model mixes the window entries, as VOLO does) and
    says approximate."""
    from rfkit.verification.measure import measurable, measure

    g = rfkit.trace(nn.Sequential(FoldNet()), input_size=(9, 11))
    out = g["0"]
    assert g.unsupported == [] and out.approximate and out.stride == (1, 1) and out.period == (2, 2)
    # pixel 4 lies in windows 2 (pixels 3..5) only; pixel 5 in windows 2 and 3 (3..7)
    assert out.window_of((4, 5)) == ((3, 5), (3, 7))
    node = g.resolve("0")
    got = measure(measurable(nn.Sequential(FoldNet())), [node], (1, 3, 9, 11), {node: (4, 5)}, {node: (2, 3)})
    assert got[node][1] == [(4, 4), (5, 5)]  # inside the analytic window, as an upper bound must be


def test_bidirectional_lstm_over_rows_is_global():
    class RowLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True, bidirectional=True)

        def forward(self, x):
            b, c, h, w = x.shape
            y, _ = self.rnn(x.permute(0, 2, 3, 1).reshape(b * h, w, c))
            return y.reshape(b, h, w, 8)

    g = rfkit.trace(RowLSTM(), input_size=(4, 6))
    assert g.output.is_global and g.unsupported == []


class EinsumWindowAttention(nn.Module):
    """torchvision MaxViT's layout: (B, G windows, P tokens per window, D), attention by einsum over P."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.embed(x).permute(0, 2, 3, 1).reshape(b, h // 4, 4, w // 4, 4, 4)
        t = t.permute(0, 1, 3, 2, 4, 5).reshape(b, (h // 4) * (w // 4), 16, 4)
        attn = torch.einsum("b g i d, b g j d -> b g i j", t, t).softmax(-1)
        out = torch.einsum("b g i j, b g j d -> b g i d", attn, t) + t
        return out.reshape(b, h // 4, w // 4, 4, 4, 4).permute(0, 5, 1, 3, 2, 4).reshape(b, 4, h, w)


def test_einsum_window_attention_keeps_the_windows():
    g = rfkit.trace(EinsumWindowAttention(), input_size=(8, 12))
    assert g.unsupported == [] and not g.output.is_global
    assert g.output.window_of((1, 5)) == ((0, 3), (4, 7)) and g.output.dims == (2, 3)
    check_model(EinsumWindowAttention(), (8, 12))
