"""Per-image contribution maps (rfkit.attribute) against hand-derived truths: CAM of a GAP + linear head,
IG completeness, saliency of a linear model, a unit's gradient zero outside its analytic RF window, ViT and
Swin Grad-CAM with no reshape function (against hand-written reshapes), batches equal single images, the
model left as found, and one-line errors for bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import rfkit
from rfkit.attribution import BaselineError, CamLayerError, MethodError, TargetError
from rfkit.attribution.sanity import SanityResult, window_mask

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def gap_linear_net(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes)
    )


def images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def attribute(model, x, **kw):
    kw.setdefault("device", "cpu")
    return rfkit.attribute(model, images=x, num_images=len(x), input_size=tuple(x.shape[-2:]), **kw)


def test_gradcam_of_a_gap_linear_head_is_the_class_activation_map():
    """logit_c = sum_k w_ck mean_ij A_k(ij) + b, so Grad-CAM's weights are alpha_k = w_ck / (h w) and
    Grad-CAM = relu(sum_k w_ck A_k) / (h w): the CAM of Zhou et al. (up to 1/(hw)), upsampled bilinearly
    (align_corners=False) from the 8x8 grid to the 16x16 input."""
    net, x = gap_linear_net(), images()
    res = attribute(net, x, methods="gradcam", target=3)
    with torch.no_grad():
        a = torch.relu(net[0](x))  # (4, 6, 8, 8)
        cam = torch.einsum("k,bkhw->bhw", net[4].weight[3], a) / (8 * 8)
        expected = F.interpolate(torch.relu(cam)[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert res.cam_layer == "1" and res.maps["gradcam"].shape == (4, 16, 16)
    np.testing.assert_allclose(res.maps["gradcam"], expected.numpy(), rtol=1e-5, atol=1e-7)
    assert res.maps["gradcam"].max() > 0


def test_ig_completeness_within_one_percent_at_default_steps():
    """sum of IG attributions = f(x) - f(0) (zeros baseline), computed here from the net itself."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    x = images(3, 24, seed=2)
    res = attribute(net, x, methods="ig", target=1)
    with torch.no_grad():
        delta = (net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]).numpy()
    total = res.maps["ig"].sum(axis=(1, 2))
    error = np.abs(total - delta) / np.abs(delta)
    assert res.settings.steps == 50 and res.settings.ig_method == "gausslegendre"
    assert error.max() < 0.01, error
    np.testing.assert_allclose(res.completeness["ig"], error, rtol=1e-3, atol=1e-6)


def test_saliency_of_a_linear_model_is_its_weights():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    x = images(2, 8)
    res = attribute(net, x, methods="saliency,input_x_gradient", target=2)
    w = net[1].weight[2].detach().view(3, 8, 8)
    np.testing.assert_allclose(res.maps["saliency"], np.stack([w.sum(0).numpy()] * 2), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res.maps["input_x_gradient"], (w * x).sum(1).numpy(), rtol=1e-5, atol=1e-6)
    assert res.scores.tolist() == pytest.approx(net(x)[:, 2].tolist(), rel=1e-6)


GRADIENT = "saliency,input_x_gradient,smoothgrad,ig,blur_ig,guided_backprop"


@pytest.mark.parametrize(
    "model, target, size", [("test_resnet", "layer1@3,3", 64), ("test_vit", "patch_embed@1,2", 64)]
)
def test_unit_gradient_attribution_is_zero_outside_its_rf_window(model, target, size):
    res = rfkit.attribute(
        model,
        images="sample",
        num_images=2,
        methods=GRADIENT,
        target=target,
        steps=8,
        samples=4,
        weights="random-safe",
        input_size=size,
        device="cpu",
    )
    if model == "test_vit":  # a 16x16 patch: unit (1, 2) sees rows 16..31 and columns 32..47
        assert res.window == ((16, 31), (32, 47))
    inside = window_mask(res.window, (size, size))
    assert inside.sum() < inside.size / 2  # the window is a small part of the input
    for method, m in res.maps.items():
        assert np.all(m[:, ~inside] == 0), method
        assert np.all(np.abs(m[:, inside]).sum(axis=1) > 0), method
        assert res.outside_rf[method].tolist() == [0.0, 0.0]
    assert not any("FAILED" in w for w in res.warnings)


def _hand_gradcam(model, module, x, target, to_nchw):
    """Grad-CAM by hand: the module's output and gradient put on the grid by ``to_nchw``."""
    store = {}
    handle = module.register_forward_hook(lambda m, a, out: store.update(out=out))
    try:
        xin = x.clone().requires_grad_(True)
        score = model(xin)[:, target].sum()
        grad = torch.autograd.grad(score, store["out"])[0]
    finally:
        handle.remove()
    act, grad = to_nchw(store["out"].detach()), to_nchw(grad)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))
    return F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def test_vit_gradcam_needs_no_reshape_and_uses_the_last_block_input():
    model = timm.create_model("test_vit", img_size=64).eval()
    x = images(2, 64, seed=3)
    res = attribute(model, x, methods="gradcam", target=7)
    last_input = f"blocks.{len(model.blocks) - 2}"
    assert res.cam_layer == last_input and "no gradient" in res.cam_note and "norm" in res.cam_note

    def tokens(t):  # the reshape pytorch-grad-cam's docs ask ViT users to write
        return t[:, 1:, :].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    expected = _hand_gradcam(model, model.blocks[len(model.blocks) - 2], x, 7, tokens)
    np.testing.assert_allclose(res.maps["gradcam"], expected.numpy(), rtol=1e-4, atol=1e-6 * float(expected.max()))
    assert res.maps["gradcam"].max() > 0


def tiny_swin():
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(4)
    return SwinTransformer(
        img_size=56, patch_size=4, window_size=7, embed_dim=8, depths=(2, 2), num_heads=(1, 1), num_classes=10
    ).eval()


def test_swin_gradcam_channels_last_and_windows_need_no_reshape():
    from timm.models.swin_transformer import window_reverse

    model, x = tiny_swin(), images(2, 56, seed=5)
    res = attribute(model, x, methods="gradcam", target=4)  # default: the final norm, (B, 7, 7, C)
    assert res.cam_layer == "norm"
    expected = _hand_gradcam(model, model.norm, x, 4, lambda t: t.permute(0, 3, 1, 2))
    np.testing.assert_allclose(res.maps["gradcam"], expected.numpy(), rtol=1e-4, atol=1e-6 * float(expected.max()))

    layer = "layers.0.blocks.0.attn"  # (B * 4 windows, 49, C) on the 14x14 grid of stage 0
    res = attribute(model, x, methods="gradcam", target=4, layer=layer)

    def windows(t):
        return window_reverse(t.reshape(-1, 7, 7, t.shape[-1]), (7, 7), 14, 14).permute(0, 3, 1, 2)

    expected = _hand_gradcam(model, model.layers[0].blocks[0].attn, x, 4, windows)
    assert res.cam_layer == layer
    np.testing.assert_allclose(res.maps["gradcam"], expected.numpy(), rtol=1e-4, atol=1e-6 * float(expected.max()))


def test_a_batch_of_four_gives_the_maps_of_four_single_images():
    model = timm.create_model("test_resnet").eval()
    x = images(4, 32, seed=6)
    kw = dict(methods="saliency,ig,blur_ig,guided_backprop,gradcam,layercam,gradcam*saliency", steps=6)
    batched = attribute(model, x, batch_size=4, **kw)
    single = attribute(model, x, batch_size=1, **kw)
    assert [t.index for t in batched.targets] == [t.index for t in single.targets]
    for method in batched.methods:
        a, b = batched.maps[method], single.maps[method]
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()), err_msg=method)


def test_combination_is_the_product_of_max_normalised_maps():
    net, x = gap_linear_net(), images(2)
    res = attribute(net, x, methods="guided_backprop,gradcam,guided_backprop*gradcam", target=0)
    gb, cam = res.maps["guided_backprop"], res.maps["gradcam"]
    top = lambda m: np.abs(m).reshape(len(m), -1).max(axis=1)[:, None, None]  # noqa: E731
    np.testing.assert_allclose(
        res.maps["guided_backprop*gradcam"], gb / top(gb) * (cam / top(cam)), rtol=1e-5, atol=1e-7
    )


def test_model_left_as_found_also_on_error():
    net = gap_linear_net().train()
    net[0].weight.grad = torch.ones_like(net[0].weight)
    net[4].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    attribute(net, images(2), methods="saliency,gradcam,guided_backprop", target=1)
    with pytest.raises(BaselineError):
        attribute(net, images(2), methods="ig", baseline=torch.zeros(3, 5, 5))
    assert net.training and all(m.training for m in net.modules())
    assert net[0].weight.requires_grad and not net[4].bias.requires_grad
    assert torch.equal(net[0].weight.grad, torch.ones_like(net[0].weight))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    "kw, error, words",
    [
        (dict(methods="saliancy"), MethodError, "close matches: saliency"),
        (dict(methods="gradcam*layercam"), MethodError, "one gradient method"),
        (dict(target=5), TargetError, "outside the head's 5 classes"),
        (dict(target="0@9,9"), TargetError, "outside the 8x8 grid"),
        (dict(target="nope"), rfkit.NodeNotFoundError, "no node or module named"),
        (dict(methods="gradcam", layer="4"), CamLayerError, "needs a layer with a spatial grid"),
        (dict(methods="ig", baseline=torch.zeros(3, 8, 8)), BaselineError, "does not fit the input"),
        (dict(methods="ig", baseline="grey"), BaselineError, "unknown baseline"),
    ],
)
def test_bad_input_is_a_one_line_error(kw, error, words):
    with pytest.raises(error) as exc:
        attribute(gap_linear_net(), images(1), **kw)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, rfkit.RFKitError)


def test_class_targets_need_class_scores():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    with pytest.raises(TargetError, match="pass a unit target"):
        attribute(net, images(1), target="predicted")
    res = attribute(net, images(1), target="0@2,3", methods="saliency")  # a unit works: its 3x3 window
    assert (np.abs(res.maps["saliency"][0]) > 0).sum() == 9 and res.window == ((1, 3), (2, 4))


def test_predicted_targets_name_imagenet_classes():
    model = timm.create_model("test_resnet").eval()
    x = images(2, 32, seed=7)
    res = attribute(model, x, methods="saliency")
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    assert [t.index for t in res.targets] == predicted
    assert res.targets[0].name == timm.data.ImageNetInfo().index_to_description(predicted[0])
    assert res.logits.shape == (2, 1000)


def test_randomising_the_top_layers_changes_the_saliency():
    net, x = gap_linear_net(), images(2)
    res = attribute(net, x, methods="saliency", target=2, sanity=True, sanity_layers=1)
    check = res.sanity["saliency"]
    assert check.layers == ("4",)  # the head, the top layer with parameters the logit depends on
    # saliency = sum_k w_2k d(mean A_k)/dx: a new head gives other weights, so another map
    assert check.mean < 0.8 and check.model_sensitive


def test_sanity_flag_follows_the_mean_correlation():
    assert not SanityResult("m", ("4",), np.array([0.9, 0.85, np.nan])).model_sensitive
    assert SanityResult("m", ("4",), np.array([0.9, 0.1])).model_sensitive


def test_faithfulness_aucs_are_probabilities_per_image_and_method():
    net, x = gap_linear_net(), images(3)
    res = attribute(net, x, methods="saliency,gradcam", target=1, faithfulness=True, faithfulness_steps=4)
    for method in ("saliency", "gradcam"):
        aucs = res.faithfulness[method]
        assert aucs.shape == (3, 2) and np.all((aucs >= 0) & (aucs <= 1))


def test_deletion_and_insertion_auc_of_a_linear_unit():
    """A 4x4 conv on a 4x4 input: the unit is b + sum_p c_p with c_p = sum_colours w x at pixel p, and its
    saliency is sum_colours w. With 16 steps each step deletes (inserts) the next pixel by saliency."""
    from rfkit.attribution.baselines import default_sigma, gaussian_blur

    torch.manual_seed(5)
    conv = nn.Conv2d(3, 1, 4)
    x = images(1, 4, seed=8)
    res = attribute(
        nn.Sequential(conv), x, methods="saliency", target="0@0,0", faithfulness=True, faithfulness_steps=16
    )
    w, b = conv.weight.detach()[0], float(conv.bias)
    order = np.argsort(-w.sum(0).flatten().numpy(), kind="stable")
    mine = (w * x[0]).sum(0).flatten().numpy()[order]
    canvas = (w * gaussian_blur(x, default_sigma((4, 4)))[0]).sum(0).flatten().numpy()[order]
    kept = np.concatenate([[0], np.cumsum(mine)])  # contribution of the first k pixels
    deletion = b + mine.sum() - kept
    insertion = b + kept + np.concatenate([np.cumsum(canvas[::-1])[::-1], [0]])
    trapezoid = lambda c: float(((c[:-1] + c[1:]) / 2).mean())  # noqa: E731
    np.testing.assert_allclose(res.faithfulness["saliency"][0], [trapezoid(deletion), trapezoid(insertion)], rtol=1e-5)


def test_rows_hold_one_line_per_image_and_method():
    res = attribute(gap_linear_net(), images(2), methods="ig,gradcam", target=0, steps=4)
    rows = res.rows()
    assert len(rows) == 4 and {r["method"] for r in rows} == {"ig", "gradcam"}
    assert np.isfinite(rows[0]["completeness_error"]) and np.isnan(rows[-1]["completeness_error"])


def test_warnings_are_emitted_for_large_completeness_errors():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = attribute(gap_linear_net(), images(1), methods="blur_ig", target=0, steps=2)
    assert any("completeness error" in w for w in res.warnings)
    assert any("completeness error" in str(c.message) for c in caught)


class SteepStep(nn.Module):
    """score = sigmoid(k (mean(x) - 0.3)): along IG's straight path from the zeros baseline the score jumps
    from sigmoid(-0.3 k) to about 1 within a few 1/k of alpha = 0.3 / mean(x), a step 50 Gauss-Legendre nodes
    miss at k = 400 (error about 70%) and 200 resolve."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
            self.conv.bias.zero_()

    def forward(self, x):
        return torch.sigmoid(self.k * (self.conv(x).mean((1, 2, 3)) - 0.3))[:, None]


def step_images() -> torch.Tensor:
    return 0.5 + 0.1 * torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def completeness_by_hand(net: nn.Module, x: torch.Tensor, ig: np.ndarray) -> np.ndarray:
    """|sum of the map - (f(x) - f(0))| / |f(x) - f(0)|, from the net itself."""
    with torch.no_grad():
        delta = (net(x)[:, 0] - net(torch.zeros_like(x))[:, 0]).double().numpy()
    return np.abs(ig.sum(axis=(1, 2), dtype=np.float64) - delta) / np.abs(delta)


def test_default_ig_steps_are_raised_until_the_completeness_error_is_under_5_percent():
    net, x = SteepStep(400.0), step_images()
    given = attribute(net, x, methods="ig", target=0, steps=50)  # as given: 50, and the error shows it
    error_50 = completeness_by_hand(net, x, given.maps["ig"])
    assert (error_50 > 0.05).all() and (given.steps["ig"] == 50).all(), error_50
    assert any("completeness error" in w and "at 50 steps" in w for w in given.warnings)

    auto = attribute(net, x, methods="ig", target=0)  # default: automatic
    error = completeness_by_hand(net, x, auto.maps["ig"])
    assert (error < 0.05).all(), error
    np.testing.assert_allclose(auto.completeness["ig"], error, rtol=1e-3, atol=1e-6)
    assert auto.settings.auto_steps and auto.settings.steps == 50
    assert set(auto.steps["ig"].tolist()) <= {100, 200, 400, 512} and (auto.steps["ig"] > 50).all()
    assert not any("completeness error" in w for w in auto.warnings)
    assert [r["steps"] for r in auto.rows()] == auto.steps["ig"].tolist()


def test_automatic_steps_stop_at_512_and_say_so():
    net, x = SteepStep(1e5), step_images()[:1]  # a step of width 1e-5: no affordable path resolves it
    res = attribute(net, x, methods="ig", target=0)
    assert res.steps["ig"].tolist() == [512]
    assert completeness_by_hand(net, x, res.maps["ig"])[0] > 0.05
    assert any("at 512 steps, the most the automatic steps take" in w for w in res.warnings)


def test_images_already_complete_keep_the_default_steps():
    """A linear score: IG is exact at any steps, so nothing is raised."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    res = attribute(net, images(2, 8), methods="ig,blur_ig", target=1)
    assert res.steps["ig"].tolist() == [50, 50] and res.completeness["ig"].max() < 1e-4


def test_method_display_names_follow_the_literature():
    from rfkit.attribution.methods import display_name

    assert [display_name(m) for m in ("gradcam", "gradcam++", "ig", "smoothgrad", "blur_ig", "input_x_gradient")] == [
        "Grad-CAM",
        "Grad-CAM++",
        "Integrated Gradients",
        "SmoothGrad",
        "Blur IG",
        "Input × Gradient",
    ]
    # captum's Guided Grad-CAM is guided_gradcam; the product of the two maps is named as a product
    assert display_name("guided_gradcam") == "Guided Grad-CAM"
    assert display_name("guided_backprop*gradcam") == display_name("guided_backprop*gradcam") != "Guided Grad-CAM"
    assert display_name("smoothgrad*scorecam") == "SmoothGrad × Score-CAM"
