"""The built-in attribution methods: one :class:`~rfkit.attribution.registry.Method` record each, registered
in the order the docs list them. A new method is a compute function in the module of its library and one
``register(Method(...))`` line here (docs/architecture.md, "Add an attribution method")."""

from __future__ import annotations

from functools import partial

import torch.nn as nn

from rfkit.attribution import blur_ig, cam, gradient, occlusion, pair
from rfkit.attribution.registry import Method, Option, register

CLASS_ONLY = frozenset({"class"})
_GRAD_CAM = "pytorch-grad-cam"


def _no_relu_modules(model: nn.Module) -> str | None:
    """captum's guided backprop changes the backward pass of ``nn.ReLU`` modules only."""
    if any(isinstance(m, nn.ReLU) for m in model.modules()):
        return None
    return (
        "captum's guided backprop changes the backward pass of nn.ReLU modules only, and the model has none: "
        "its guided backprop is the plain gradient"
    )


# gradient family (captum)
register(
    Method(
        "saliency",
        "Saliency",
        family="gradient",
        library="captum",
        call="captum.attr.Saliency(model).attribute(x, target, abs=False)",
        compute=gradient.saliency,
        needs="one forward and backward per batch",
        reference="Simonyan, Vedaldi, Zisserman 2014",
    )
)
register(
    Method(
        "input_x_gradient",
        "Input × Gradient",
        family="gradient",
        library="captum",
        call="captum.attr.InputXGradient",
        compute=gradient.input_x_gradient,
        needs="one forward and backward per batch",
        reference="Shrikumar et al. 2016",
    )
)
register(
    Method(
        "smoothgrad",
        "SmoothGrad",
        family="gradient",
        library="captum",
        call="captum.attr.NoiseTunnel(Saliency(model)), nt_type='smoothgrad'",
        compute=gradient.smoothgrad,
        needs="`samples` (25) noisy copies per image; noise `noise` (0.15) of the input range",
        reference="Smilkov et al. 2017",
    )
)
register(
    Method(
        "guided_backprop",
        "Guided Backprop",
        family="gradient",
        library="captum",
        call="captum.attr.GuidedBackprop",
        compute=gradient.guided_backprop,
        note=_no_relu_modules,
        needs="nn.ReLU modules (a model without them gets plain gradients, and a warning)",
        reference="Springenberg et al. 2015",
    )
)
# path methods: attributions add up to f(x) - f(start)
register(
    Method(
        "ig",
        "Integrated Gradients",
        family="path",
        library="captum",
        call="captum.attr.IntegratedGradients(model).attribute(x, baselines, target, n_steps, method)",
        compute=gradient.integrated_gradients,
        path=True,
        start=pair.baseline_start,
        needs="`steps` path points per image (automatic: 50 doubled until complete); `baseline`, `ig_method`",
        reference="Sundararajan, Taly, Yan 2017",
    )
)
register(
    Method(
        "blur_ig",
        "Blur IG",
        family="path",
        library="rfkit",
        call="rfkit.attribution.blur_ig.blur_ig (midpoint rule on the path increments)",
        compute=blur_ig.blur_ig_call,
        path=True,
        start=blur_ig.blur_start,
        needs="`steps` blurred images per image; `blur_sigma` (50 px at 224 px)",
        reference="Xu, Venugopalan, Sundararajan, Yang 2020",
    )
)
register(
    Method(
        "blur_ig_pair",
        "Blur IG (PAIR)",
        family="path",
        library="saliency (PAIR)",
        call="saliency.core.BlurIG().GetMask(x, call_model_function, max_sigma, steps, grad_step)",
        compute=pair.blur_ig,
        options=(Option("grad_step", 0.01, float, "sigma step of the blur's forward difference", minimum=1e-6),),
        path=True,
        start=pair.blur_ig_start,
        needs="as blur_ig, one image at a time (the authors' rule: see docs/attribution.md, Blur IG)",
        reference="Xu, Venugopalan, Sundararajan, Yang 2020",
    )
)
register(
    Method(
        "guided_ig",
        "Guided IG",
        family="path",
        library="saliency (PAIR)",
        call="saliency.core.GuidedIG().GetMask(x, call_model_function, x_baseline, x_steps, fraction, max_dist)",
        compute=pair.guided_ig,
        options=(
            Option("fraction", 0.25, float, "share of the features moved per step", minimum=1e-6, maximum=1),
            Option("max_dist", 0.02, float, "how far (relative L1) the path may leave the line", minimum=0, maximum=1),
        ),
        path=True,
        start=pair.baseline_start,
        needs="`steps` gradients per image, one image at a time; `baseline`",
        reference="Kapishnikov et al. 2021",
    )
)
# region and perturbation methods
register(
    Method(
        "xrai",
        "XRAI",
        family="region",
        library="saliency (PAIR)",
        call="saliency.core.XRAI().GetMask(x, call_model_function, extra_parameters=XRAIParameters(...))",
        compute=pair.xrai,
        output="pixel",
        options=(
            Option("ig_steps", 100, int, "IG steps from each of the two baselines (black, white)", minimum=1),
            Option("algorithm", "full", str, "'full' or 'fast' region ranking", choices=("full", "fast")),
            Option("area_threshold", 1.0, float, "share of the image the ranked regions cover", minimum=0, maximum=1),
        ),
        input_gradient=False,
        needs="2 x `ig_steps` gradients and Felzenszwalb segmentation per image, one image at a time",
        reference="Kapishnikov, Bolukbasi, Viégas, Terry 2019",
    )
)
register(
    Method(
        "occlusion",
        "Occlusion",
        family="perturbation",
        library="captum",
        call="captum.attr.Occlusion(model).attribute(x, sliding_window_shapes, strides, baselines, target)",
        compute=occlusion.occlusion,
        output="pixel",
        options=(
            Option("window", None, int, "window side in px (default: the larger input side / 14)", minimum=1),
            Option("stride", None, int, "window step in px (default: half the window)", minimum=1),
        ),
        input_gradient=False,
        needs="one forward per window position: about (H / stride) x (W / stride) per image; `baseline` fills",
        reference="Zeiler, Fergus 2014",
    )
)
# CAM family (pytorch-grad-cam): a layer's activations weighted per channel
for name, display, library_class, uses, reference in (
    ("gradcam", "Grad-CAM", "GradCAM", "one backward", "Selvaraju et al. 2017"),
    ("gradcam++", "Grad-CAM++", "GradCAMPlusPlus", "one backward", "Chattopadhay et al. 2018"),
    ("hirescam", "HiResCAM", "HiResCAM", "one backward", "Draelos, Carin 2020"),
    ("xgradcam", "XGrad-CAM", "XGradCAM", "one backward", "Fu et al. 2020"),
    ("layercam", "LayerCAM", "LayerCAM", "one backward", "Jiang et al. 2021"),
    ("scorecam", "Score-CAM", "ScoreCAM", "one forward per channel of the layer", "Wang et al. 2020"),
    ("eigengradcam", "EigenGrad-CAM", "EigenGradCAM", "one backward and an SVD", "pytorch-grad-cam"),
):
    register(
        Method(
            name,
            display,
            family="cam",
            library=_GRAD_CAM,
            call=f"pytorch_grad_cam.{library_class}(...).get_cam_image",
            compute=partial(cam.cam_grid, library_class),
            output="grid",
            layer="grid",
            input_gradient=False,
            signed=False,
            needs=f"a layer with a grid; {uses} per batch",
            reference=reference,
        )
    )
register(
    Method(
        "eigencam",
        "Eigen-CAM",
        family="cam",
        library=_GRAD_CAM,
        call="pytorch_grad_cam.EigenCAM(...).get_cam_image",
        compute=partial(cam.cam_grid, "EigenCAM"),
        output="grid",
        layer="grid",
        input_gradient=False,
        signed=False,
        target_free=True,
        needs="a layer with a grid; one forward and an SVD per image; the map ignores the target",
        reference="Muhammad, Yeasin 2020",
    )
)
register(
    Method(
        "ablationcam",
        "Ablation-CAM",
        family="cam",
        library=_GRAD_CAM,
        call="pytorch_grad_cam.AblationCAM(..., ablation_layer=GridAblationLayer)",
        compute=cam.ablation_cam,
        output="grid",
        layer="grid",
        options=(
            Option(
                "ratio",
                1.0,
                float,
                "share of the channels ablated (pytorch-grad-cam's ratio_channels_to_ablate)",
                minimum=0.01,
                maximum=1,
            ),
        ),
        input_gradient=False,
        signed=False,
        needs="a layer with a grid; one forward of the whole model per channel of the layer, per image",
        reference="Desai, Ramaswamy 2020",
    )
)
register(
    Method(
        "fullgrad",
        "FullGrad",
        family="gradient",
        library=_GRAD_CAM,
        call="pytorch_grad_cam.FullGrad(...).compute_cam_per_layer",
        compute=cam.fullgrad,
        output="pixel",
        targets=CLASS_ONLY,
        input_gradient=False,
        signed=False,
        check=cam.fullgrad_check,
        needs="class targets; every bias on the grid in an nn.Conv2d or nn.BatchNorm2d (else an error)",
        reference="Srinivas, Fleuret 2019",
    )
)
register(
    Method(
        "guided_gradcam",
        "Guided Grad-CAM",
        family="gradient × CAM",
        library="captum",
        call="captum.attr.GuidedGradCam(model, layer).attribute(x, target, interpolate_mode='bilinear')",
        compute=gradient.guided_gradcam,
        note=_no_relu_modules,
        layer="nchw",
        needs="a layer whose output is (N, C, H, W) as it is (token layouts: guided_backprop*gradcam)",
        reference="Selvaraju et al. 2017",
    )
)
