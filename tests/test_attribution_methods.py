"""The attribution methods of the registry against hand-derived values or the owning library's own call, made
here independently on tiny nets: the CAM family and FullGrad (pytorch-grad-cam), Occlusion and Guided Grad-CAM
(captum), Guided IG, XRAI and the authors' Blur IG (PAIR's saliency); the Blur IG measurement (rfkit's rule,
the library's, an independent reference); the softmax score and seed 002's channel rule; options, errors, the
CLI, and the registry recipe of docs/architecture.md."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from typer.testing import CliRunner

import rfkit
from rfkit.attribution import CamLayerError, MethodError, TargetError
from rfkit.attribution.methods import display_name, method_names, record
from rfkit.attribution.registry import registered

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DOCS = Path(__file__).resolve().parents[1] / "docs"


def images(n: int = 2, size: int = 12, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def cnn(classes: int = 4, seed: int = 0) -> nn.Module:
    """conv (bias) -> BN (random statistics) -> ReLU -> conv /2 -> ReLU -> GAP -> linear, in eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.Conv2d(5, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, classes),
    )
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return net.eval()


def gap_linear(classes: int = 4, seed: int = 1) -> nn.Module:
    """conv /2 -> ReLU -> GAP -> linear: logit_c = b_c + sum_k w_ck mean(A_k)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes)
    ).eval()


class ChannelsLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class MeanHW(nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2))


def gap_linear_channels_last(seed: int = 1) -> nn.Module:
    """gap_linear with its feature map channels-last: conv -> (B, H, W, C) -> ReLU -> mean over H, W -> linear."""
    twin = gap_linear(seed=seed)
    return nn.Sequential(twin[0], ChannelsLast(), nn.ReLU(), MeanHW(), twin[4]).eval()


def attribute(model, x, **kw):
    kw.setdefault("device", "cpu")
    return rfkit.attribute(model, images=x, num_images=len(x), input_size=tuple(x.shape[-2:]), **kw)


def up(grid: torch.Tensor, size) -> np.ndarray:
    return F.interpolate(grid.clamp(min=0)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def affine_equal(ours: np.ndarray, theirs: np.ndarray, rtol: float = 1e-4) -> None:
    """Per image, ``ours = a * theirs + b`` with ``a > 0`` (the library rescales its maps to [0, 1])."""
    for o, t in zip(ours, theirs):
        assert np.abs(o).max() > 0
        a, b = np.polyfit(t.ravel().astype(np.float64), o.ravel().astype(np.float64), 1)
        assert a > 0
        np.testing.assert_allclose(o, a * t + b, atol=rtol * np.abs(o).max())


# ------------------------------------------------------------------------------------------------ registry


def test_every_method_has_a_complete_record_and_a_row_in_the_docs():
    table = (DOCS / "attribution.md").read_text(encoding="utf-8")
    records = registered()
    assert len({m.display for m in records.values()}) == len(records)  # titles tell the columns apart
    for name, m in records.items():
        assert m.display and m.family and m.library and m.call and m.reference, name
        assert f"| `{name}` |" in table, f"{name} missing from the method table of docs/attribution.md"
    assert {"hirescam", "xgradcam", "ablationcam", "eigencam", "eigengradcam", "fullgrad", "occlusion"} <= set(records)
    assert {"guided_gradcam", "guided_ig", "xrai", "blur_ig", "blur_ig_pair"} <= set(records)


def test_the_recipe_in_architecture_md_runs_and_leaves_the_registry_as_it_was():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    section = text.split("### Add an attribution method", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    before = set(registered())
    exec(compile(blocks[0], "architecture.md", "exec"), {})
    assert set(registered()) == before


def test_the_cli_help_names_every_registered_method():
    from rfkit_cli.attribute_cmd import METHOD_IDS

    assert METHOD_IDS == method_names()


# ---------------------------------------------------------------------------------- CAM (pytorch-grad-cam)

CAM_CLASSES = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "ablationcam": "AblationCAM",
}


def test_cam_methods_are_the_librarys_own_call():
    """pytorch-grad-cam's own ``cam(x, targets)`` on the net itself: ReLU, min-max on the grid, resized; rfkit's
    map is ReLU and bilinear upsampling without the min-max, so the two agree up to a positive scale and an
    offset per image."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    assert {n for n, m in registered().items() if m.family == "cam"} == set(CAM_CLASSES)
    net, x = cnn(), images()
    res = attribute(net, x, methods=",".join(CAM_CLASSES), target=2, layer="4", batch_size=4)
    for name, cls in CAM_CLASSES.items():
        cam = getattr(pytorch_grad_cam, cls)(model=net, target_layers=[net[4]])
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(2)] * len(x))
        affine_equal(res.maps[name], theirs)


def test_hirescam_xgradcam_ablationcam_eigencam_of_a_gap_linear_head_by_hand():
    """With logit_c = b_c + sum_k w_ck mean(A_k), the gradient at every grid position is w_ck / (h w): HiResCAM
    and XGrad-CAM are then Grad-CAM, relu(sum_k w_ck A_k) / (h w). Ablation-CAM zeroes channel k (a ReLU layer:
    pytorch-grad-cam ablates with 0), so y_k = y - w_ck mean(A_k) and its weights are w_ck mean(A_k) / y.
    Eigen-CAM projects the centred activations on their first right-singular vector (numpy's SVD)."""
    net, x = gap_linear(), images(2, 16)
    res = attribute(net, x, methods="hirescam,xgradcam,ablationcam,eigencam,gradcam", target=3)
    with torch.no_grad():
        a = torch.relu(net[0](x))  # (2, 6, 8, 8)
        w, y = net[4].weight[3], net(x)[:, 3]
        gradcam = torch.einsum("k,bkhw->bhw", w, a) / 64
        ablation = torch.einsum("bk,bkhw->bhw", w * a.mean(dim=(2, 3)) / y[:, None], a)
    flat = a.numpy().reshape(2, 6, 64).transpose(0, 2, 1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    eigen = np.stack([f @ np.linalg.svd(f, full_matrices=True)[2][0] for f in flat]).reshape(2, 8, 8)
    for name, grid in (("hirescam", gradcam), ("xgradcam", gradcam), ("ablationcam", ablation)):
        np.testing.assert_allclose(res.maps[name], up(grid, (16, 16)), rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(res.maps["eigencam"], up(torch.from_numpy(eigen), (16, 16)), rtol=1e-4, atol=1e-5)
    assert any("eigencam: its map does not depend on the target" in w for w in res.warnings)


def test_ablationcam_on_a_channels_last_layer_by_hand():
    """The ablation layer ablates channel k of the layer's grid whatever the layout: the same net with its
    feature map (B, H, W, C) gives the NCHW maps."""
    x = images(2, 16)
    nchw = attribute(gap_linear(), x, methods="ablationcam,gradcam", target=1)
    last = attribute(gap_linear_channels_last(), x, methods="ablationcam,gradcam", target=1, layer="2")
    assert last.cam_layer == "2"
    for name in ("ablationcam", "gradcam"):
        np.testing.assert_allclose(last.maps[name], nchw.maps[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_ablationcam_puts_the_layer_back_when_it_fails(monkeypatch):
    from rfkit.attribution.cam import GridAblationLayer

    def broken(self, x):
        raise RuntimeError("ablation failed")

    net = gap_linear()
    layer = net[1]
    monkeypatch.setattr(GridAblationLayer, "forward", broken)
    with pytest.raises(RuntimeError, match="ablation failed"):
        attribute(net, images(1, 16), methods="ablationcam", target=0)
    assert net[1] is layer and not any(isinstance(m, GridAblationLayer) for m in net.modules())


class SharedReLU(nn.Module):
    """One nn.ReLU module called after both convs (as torchvision's ResNet blocks call self.relu)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def test_ablationcam_refuses_a_module_that_runs_twice():
    with pytest.raises(CamLayerError, match="runs relu 2 times per forward") as e:
        attribute(SharedReLU().eval(), images(1), methods="ablationcam", layer="relu", target=0)
    assert "\n" not in str(e.value)


def _psi(m: torch.Tensor) -> torch.Tensor:
    """FullGrad's post-processing per image and channel: minus the minimum, over (1e-7 + the maximum)."""
    flat = m.flatten(2)
    flat = flat - flat.min(dim=2, keepdim=True).values
    return (flat / (1e-7 + flat.max(dim=2, keepdim=True).values)).view_as(m)


def test_fullgrad_by_hand():
    """FullGrad = sum_c psi(|x_c * dy/dx_c|) + sum over conv and BN channels psi(|b_k * dy/dz_k|), z the layer's
    output and, for a BN in eval mode, b = bias - running_mean * weight / sqrt(running_var + eps)."""
    net = cnn()
    net[3] = nn.Conv2d(5, 6, 3, padding=1)  # stride 1: every bias map is at input resolution
    x = images(2, 12).requires_grad_(True)
    res = attribute(net.eval(), x.detach(), methods="fullgrad", target=1)
    outs = {}
    hooks = [net[i].register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o)) for i in (0, 1, 3)]
    y = net(x)[:, 1].sum()
    for h in hooks:
        h.remove()
    gx, *gz = torch.autograd.grad(y, [x, outs[0], outs[1], outs[3]])
    bn = net[1]
    biases = [net[0].bias, bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps), net[3].bias]
    with torch.no_grad():
        total = _psi((x * gx).abs()).sum(1)
        for b, g in zip(biases, gz):
            total += _psi((b[None, :, None, None] * g).abs()).sum(1)
    np.testing.assert_allclose(res.maps["fullgrad"], total.numpy(), rtol=1e-4, atol=1e-5)


def test_fullgrad_refuses_models_and_targets_it_cannot_explain():
    from timm.layers import BatchNormAct2d

    x = images(1)
    fused = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNormAct2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(MethodError, match=r"BatchNormAct2d x1\), which its map would leave out") as e:
        attribute(fused.eval(), x, methods="fullgrad", target=0)
    assert "\n" not in str(e.value)
    bare = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(MethodError, match="no nn.Conv2d or nn.BatchNorm2d with a bias"):
        attribute(bare, x, methods="fullgrad", target=0)
    with pytest.raises(TargetError, match="fullgrad takes class targets only"):
        attribute(cnn(), x, methods="fullgrad", target=("4", (1, 1)))


# --------------------------------------------------------------------------------------- captum: occlusion


@pytest.mark.parametrize("window, stride", [(2, 2), (3, 1)])
def test_occlusion_of_a_linear_model_by_hand(window, stride):
    """For y = w . x + b and a zero fill, a window's drop is the sum of w * x inside it (all channels); a pixel's
    attribution is the mean drop of the windows that cover it."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    x = images(2, 8)
    res = attribute(net, x, methods="occlusion", target=2, options={"occlusion": {"window": window, "stride": stride}})
    contrib = (net[1].weight[2].detach().view(3, 8, 8) * x).sum(1)  # (2, 8, 8)
    total, count = torch.zeros_like(contrib), torch.zeros(8, 8)
    for i in range(0, 8 - window + 1, stride):
        for j in range(0, 8 - window + 1, stride):
            drop = contrib[:, i : i + window, j : j + window].sum(dim=(1, 2))
            total[:, i : i + window, j : j + window] += drop[:, None, None]
            count[i : i + window, j : j + window] += 1
    np.testing.assert_allclose(res.maps["occlusion"], (total / count).numpy(), rtol=1e-5, atol=1e-6)
    assert res.settings.options["occlusion"] == {"window": window, "stride": stride}


def test_occlusion_window_larger_than_the_image_is_a_one_line_error():
    with pytest.raises(MethodError, match="occlusion.window: 20 px is larger than the 12x12 input"):
        attribute(cnn(), images(1), methods="occlusion", options=["occlusion.window=20"], target=0)


# -------------------------------------------------------------------------------- captum: guided grad-cam


def test_guided_gradcam_is_captums_and_the_product_up_to_a_scale_per_image():
    """captum's GuidedGradCam (bilinear) on the net itself; rfkit's guided_backprop*gradcam divides both
    factors by their largest value first, so it is guided_gradcam / (max|GB| max CAM) image by image."""
    from captum.attr import GuidedGradCam

    net, x = cnn(), images()
    res = attribute(
        net, x, methods="guided_gradcam,guided_backprop*gradcam,guided_backprop,gradcam", target=1, layer="4"
    )
    theirs = GuidedGradCam(net, net[4]).attribute(x.clone().requires_grad_(True), target=1, interpolate_mode="bilinear")
    np.testing.assert_allclose(res.maps["guided_gradcam"], theirs.sum(1).detach().numpy(), rtol=1e-4, atol=1e-7)
    scale = np.abs(res.maps["guided_backprop"]).max(axis=(1, 2)) * res.maps["gradcam"].max(axis=(1, 2))
    product = res.maps["guided_backprop*gradcam"] * scale[:, None, None]
    np.testing.assert_allclose(product, res.maps["guided_gradcam"], rtol=1e-4, atol=1e-6 * np.abs(product).max())
    assert display_name("guided_gradcam") == "Guided Grad-CAM"
    assert display_name("guided_backprop*gradcam") == "Guided Backprop × Grad-CAM"


def test_guided_gradcam_on_a_channels_last_layer_is_a_one_line_error():
    with pytest.raises(CamLayerError, match="needs a layer whose output is \\(N, C, H, W\\)") as e:
        attribute(gap_linear_channels_last(), images(1, 16), methods="guided_gradcam", layer="2", target=0)
    assert "guided_backprop*gradcam" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------- PAIR's saliency


def _pair_gradients(net):
    from saliency.core import INPUT_OUTPUT_GRADIENTS

    def call_model(batch, call_model_args=None, expected_keys=None):
        x = torch.from_numpy(np.asarray(batch, dtype=np.float64)).permute(0, 3, 1, 2).requires_grad_(True)
        score = net(x)[:, call_model_args["target"]].sum()
        return {INPUT_OUTPUT_GRADIENTS: torch.autograd.grad(score, x)[0].permute(0, 2, 3, 1).numpy()}

    return call_model


def _hwc(x: torch.Tensor, i: int) -> np.ndarray:
    return x[i].permute(1, 2, 0).numpy()


def test_pair_methods_are_the_librarys_own_call():
    """saliency.core's GetMask, image by image, with a gradient function written here (float64 throughout)."""
    from saliency.core import XRAI, BlurIG, GuidedIG, XRAIParameters

    from rfkit.attribution.pair import _guided_ig_numpy

    net, x = cnn().double(), images(2, 12, dtype=torch.float64)
    res = attribute(net, x, methods="blur_ig_pair,guided_ig", target=1, steps=6, blur_sigma=3.0)
    fn = _pair_gradients(net)
    for i in range(2):
        blur = BlurIG().GetMask(_hwc(x, i), fn, {"target": 1}, max_sigma=3.0, steps=6, batch_size=4)
        np.testing.assert_allclose(res.maps["blur_ig_pair"][i], blur.sum(-1), rtol=1e-5, atol=1e-9)
        with _guided_ig_numpy():  # the library calls np.quantile(interpolation=), a keyword NumPy 2.4 removed
            guided = GuidedIG().GetMask(_hwc(x, i), fn, {"target": 1}, x_steps=6)
        np.testing.assert_allclose(res.maps["guided_ig"][i], guided.sum(-1), rtol=1e-5, atol=1e-9)
    assert set(res.completeness) == {"blur_ig_pair", "guided_ig"}  # path methods
    one = attribute(net, x[:1], methods="xrai", target=1, options={"xrai.ig_steps": 5})  # 6 segmentations at 224 px
    region = XRAI().GetMask(_hwc(x, 0), fn, {"target": 1}, batch_size=8, extra_parameters=XRAIParameters(steps=5))
    np.testing.assert_allclose(one.maps["xrai"][0], region, rtol=1e-5, atol=1e-9)
    assert not one.completeness  # XRAI is no path method


def test_guided_ig_on_the_straight_line_is_captums_left_riemann_ig():
    """With max_dist = 0 the Guided IG path cannot leave the straight line: it is IG with the left Riemann rule,
    which captum computes independently."""
    from captum.attr import IntegratedGradients

    net, x = cnn().double(), images(2, 12, dtype=torch.float64)
    res = attribute(net, x, methods="guided_ig", target=0, steps=16, options={"guided_ig": {"max_dist": 0.0}})
    ig = IntegratedGradients(net).attribute(x, target=0, n_steps=16, method="riemann_left")
    np.testing.assert_allclose(res.maps["guided_ig"], ig.sum(1).numpy(), rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------------------- Blur IG: the measurement


def test_blur_ig_rfkits_rule_the_librarys_rule_and_an_independent_reference():
    """Why rfkit keeps its Blur IG next to the authors' (``blur_ig_pair``): they are not the same maps.

    For a linear score y = w . x the Blur IG path integral is exactly w * (x - blur(x, max_sigma)). rfkit's
    midpoint rule on the path increments telescopes to it; the authors' rule (the gradient at sigma_i times a
    forward difference of the blur in sigma, Delta sigma each) does not: its first term is zero (a blur of 0.01
    px is the image), so the piece from sigma 0 to Delta sigma is lost. Its value, computed here from scipy,
    is the library's map. On a CNN rfkit's error falls with the steps; the library's stalls at the bias of its
    forward difference in sigma.
    """
    from scipy import ndimage

    sigma, steps = 2.0, 8
    torch.manual_seed(4)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 10 * 10, 2)).double()
    x = images(1, 10, dtype=torch.float64)
    res = attribute(lin, x, methods="blur_ig,blur_ig_pair", target=1, steps=steps, blur_sigma=sigma)
    w = lin[1].weight[1].detach().view(3, 10, 10)
    from rfkit.attribution.baselines import gaussian_blur

    exact = (w * (x[0] - gaussian_blur(x, sigma)[0])).sum(0).numpy()
    np.testing.assert_allclose(res.maps["blur_ig"][0], exact, rtol=1e-5, atol=1e-8)

    def blur(s):  # saliency.core's blur: zero padding, truncated at 4 sigma
        return ndimage.gaussian_filter(_hwc(x, 0), sigma=[s, s, 0], mode="constant") if s else _hwc(x, 0)

    sigmas = [sigma * k / steps for k in range(steps + 1)]
    theirs = -sum((sigmas[k + 1] - sigmas[k]) * (blur(sigmas[k] + 0.01) - blur(sigmas[k])) / 0.01 for k in range(steps))
    np.testing.assert_allclose(res.maps["blur_ig_pair"][0], (theirs * _hwc(w[None], 0)).sum(-1), rtol=1e-6, atol=1e-9)
    assert np.abs(blur(0.01) - blur(0)).max() == 0  # the first term of the library's sum
    assert res.completeness["blur_ig"][0] < 1e-6 and res.completeness["blur_ig_pair"][0] > 0.01

    net, xs = cnn().double(), images(2, 12, seed=5, dtype=torch.float64)

    def run(n, **options):
        kw = dict(target=1, steps=n, blur_sigma=sigma, options={"blur_ig_pair": options})
        return attribute(net, xs, methods="blur_ig,blur_ig_pair", **kw)

    few, many, fine = run(8), run(128), run(128, grad_step=0.001)
    corr = np.corrcoef(few.maps["blur_ig"].ravel(), few.maps["blur_ig_pair"].ravel())[0, 1]
    assert corr < 0.999  # not the same maps: keep both
    assert (few.completeness["blur_ig"] < few.completeness["blur_ig_pair"]).all()
    # rfkit's error falls with the steps; the library's stops near 1-2 %: its forward difference in sigma
    # (grad_step 0.01) is biased by O(grad_step), which a finer grad_step removes
    assert many.completeness["blur_ig"].max() < 0.005 < many.completeness["blur_ig_pair"].max()
    assert fine.completeness["blur_ig_pair"].max() < 0.5 * many.completeness["blur_ig_pair"].max()


# ------------------------------------------------------------------------- score and channel rule options


def test_probability_score_is_the_softmax_gradient_and_ig_adds_up_to_its_change():
    net, x = cnn(), images()
    res = attribute(net, x, methods="saliency,ig", target=2, score="probability", steps=64)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg).softmax(1)[:, 2].sum(), xg)
    np.testing.assert_allclose(res.maps["saliency"], g.sum(1).numpy(), rtol=1e-4, atol=1e-9)
    with torch.no_grad():
        p = net(x).softmax(1)[:, 2]
        delta = (p - net(torch.zeros_like(x)).softmax(1)[:, 2]).numpy()
    np.testing.assert_allclose(res.scores, p.numpy(), rtol=1e-5)
    np.testing.assert_allclose(res.maps["ig"].sum(axis=(1, 2)), delta, rtol=0.01)
    assert res.settings.score == "probability"
    with pytest.raises(TargetError, match="is for class targets"):
        attribute(net, x, methods="saliency", target=("4", (1, 1)), score="probability")


def test_seed_channel_rule_is_max_over_rgb_relu_minmax():
    """Seed 002's normalize_saliency: the largest (signed) channel value, ReLU, minus the minimum, over the
    maximum, per image; a CAM map (one channel) is ReLU'd and min-maxed."""
    net, x = cnn(), images()
    res = attribute(net, x, methods="saliency,gradcam", target=0, layer="4", channels="max_relu_minmax")
    plain = attribute(net, x, methods="gradcam", target=0, layer="4")
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg)[:, 0].sum(), xg)
    m = torch.relu(g.max(dim=1).values).flatten(1)
    m = (m - m.min(1, keepdim=True).values) / (m.max(1, keepdim=True).values - m.min(1, keepdim=True).values)
    np.testing.assert_allclose(res.maps["saliency"], m.view(2, 12, 12).numpy(), rtol=1e-5, atol=1e-6)
    cam = plain.maps["gradcam"]
    low, high = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(res.maps["gradcam"], (cam - low) / (high - low), rtol=1e-5, atol=1e-6)


def test_figure_titles_and_signs_follow_the_records():
    from rfkit.report.figures.attribution import grid_record

    net, x = cnn(), images(1)
    res = attribute(net, x, methods="hirescam,occlusion,guided_gradcam", target=0, layer="4")
    rec = grid_record(res)
    assert rec.titles == ("HiResCAM", "Occlusion", "Guided Grad-CAM") and rec.signed == (False, True, True)
    seed = attribute(net, x, methods="saliency", target=0, channels="max_relu_minmax")
    assert grid_record(seed).signed == (False,)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(methods="occlusion", options={"occlusion": {"size": 3}}), "occlusion has no option 'size'"),
        (dict(methods="occlusion", options=["occlusion.window=big"]), "occlusion.window must be an integer"),
        (dict(methods="saliency", options={"xrai.algorithm": "fast"}), "options given for xrai, which is not"),
        (dict(methods="xrai", options={"xrai.algorithm": "slow"}), "must be one of full, fast"),
        (dict(methods="saliency", score="softmax"), "score must be one of logit, probability"),
        (dict(methods="saliency", channels="max"), "channels must be one of sum, max_relu_minmax"),
        (dict(methods="hirescam*occlusion"), "multiply one gradient method"),
    ],
)
def test_bad_options_are_one_line_errors(kw, words):
    with pytest.raises(MethodError) as e:
        attribute(cnn(), images(1), target=0, **kw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_record_of_an_unknown_method_names_close_matches():
    with pytest.raises(MethodError, match="close matches: hirescam"):
        record("hirecam")


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_runs_new_methods_with_options_score_and_channel_rule(tmp_path):
    import pandas as pd

    from rfkit_cli.app import app, normalise_argv

    out = tmp_path / "maps"
    args = ["attribute", "test_resnet", "-n", "2", "--weights", "random-safe", "--input-size", "32", "--device", "cpu"]
    more = ["-m", "occlusion,hirescam", "--option", "occlusion.window=8", "--score", "probability", "-o", str(out)]
    r = CliRunner().invoke(app, normalise_argv([*args, *more, "--channels", "max_relu_minmax"]))
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "attribution.csv")
    assert set(df.method) == {"occlusion", "hirescam"}
    for name in ("occlusion", "hirescam"):
        m = np.load(out / "maps" / f"{name}.npy")
        assert m.shape == (2, 32, 32) and m.min() == 0 and np.allclose(m.max(axis=(1, 2)), 1)
    report = (out / "report.md").read_text()
    assert "Occlusion (`occlusion`)" in report and "HiResCAM (`hirescam`)" in report
    assert "softmax probability" in report and "seed 002's rule" in report and "occlusion: window=8" in report
    bad = CliRunner().invoke(app, normalise_argv([*args, "-m", "occlusion", "--option", "occlusion.size=3"]))
    assert bad.exit_code == 1 and "occlusion has no option 'size'" in str(bad.exception)
