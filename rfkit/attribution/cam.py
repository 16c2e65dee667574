"""The CAM family through pytorch-grad-cam, with the layer and its reshape supplied by rfkit, and FullGrad.

- **Layer.** By default the final feature map (:func:`rfkit.graph.layers.default_layer`) or, walking back
  block by block, the latest one on which the score depends position by position: with a class-token head
  (ViT) the final norm's and the last block's patch tokens get no gradient at all, so the last block's input
  is used, as the CAM libraries advise for ViTs. For a unit target the walk starts just before the unit's
  layer (on the unit's own layer, only the unit itself has a gradient).
- **Reshape.** The layer's layout from the graph (tokens behind prefix tokens, Swin windows, channels-last,
  heads) gives pytorch-grad-cam its ``reshape_transform`` (:class:`rfkit.attribution.grid.GridTransform`).
- **Map.** pytorch-grad-cam's per-method CAM at the layer's grid (its ``get_cam_image``: channel weights
  times activations, summed over channels), then ReLU, then bilinear upsampling to the input
  (``align_corners=False``). Unlike the library's own ``__call__``, the map is **not** min-max normalised:
  for Grad-CAM it is ``relu(sum_k alpha_k A_k)`` with ``alpha_k`` the mean gradient over the grid, in the
  score's units divided by the grid size.
- **Ablation-CAM** ablates one channel of the layer's grid per copy of the image
  (:class:`GridAblationLayer`, pytorch-grad-cam's ablation layer for every layout the graph knows).
- **FullGrad** needs no layer: pytorch-grad-cam sums ``|input x gradient|`` and ``|bias x gradient|`` of every
  ``nn.Conv2d`` and ``nn.BatchNorm2d`` with a bias, each rescaled to [0, 1] and resized to the input.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import networkx as nx
import torch
import torch.nn as nn
import torch.nn.functional as F

from rfkit.attribution.errors import CamLayerError, MethodError
from rfkit.attribution.grid import to_grid
from rfkit.attribution.registry import Call
from rfkit.graph.layers import feature_stages, has_grid, is_feature_map, outermost_modules
from rfkit.graph.units import LayoutMismatchError

#: How many feature maps the default-layer walk looks at before giving up.
WALK_LIMIT = 8


# ----------------------------------------------------------------------------------------------- layers


def _block_depth(g, model, start_module: str) -> int:
    """Module depth of the model's blocks: the deepest of the start layer and timm's ``feature_info`` stages."""
    stages = [n for n in feature_stages(model) if n in g.module_outputs]
    return max([start_module.count(".")] + [n.count(".") for n in stages])


def candidates(g, model, start: str, *, before: bool = False) -> list[tuple[str, str]]:
    """(module, node) of the feature maps at block level from node ``start`` backwards (without ``start`` when
    ``before``), at most :data:`WALK_LIMIT`."""
    order = list(g.records)
    start_module = outermost_modules(g).get(start, start)
    modules = outermost_modules(g, _block_depth(g, model, start_module))
    out = []
    for node in reversed(order[: order.index(start) + 1]):
        if (before and node == start) or node not in modules or not is_feature_map(g.records[node]):
            continue
        out.append((modules[node], node))
        if len(out) == WALK_LIMIT:
            break
    return out


def check_layer(g, name: str, method: str, target_node: str | None) -> tuple[str, str]:
    """(module, node) of a CAM layer the user named, or :class:`CamLayerError` (no grid, not a module's output,
    after the target unit)."""
    node = g.resolve(name)
    record = g.records[node]
    if not has_grid(record):
        raise CamLayerError(
            f"{method} needs a layer with a spatial grid: {name!r} has none (pooled or flattened); "
            "pick a feature map before the head (`rfkit graph MODEL` lists them)"
        )
    module = name if name in g.module_outputs else outermost_modules(g).get(node)
    if module is None:
        raise CamLayerError(
            f"{method}: {name!r} is a graph node, not a module's output, and pytorch-grad-cam hooks "
            "modules; pick a module name (`rfkit graph MODEL` lists them)"
        )
    try:
        to_grid(torch.zeros(record.info.shape), record.layout, len(g.input_size))
    except (LayoutMismatchError, TypeError) as e:
        raise CamLayerError(
            f"{method}: the output of {name!r} cannot be put on its grid ({e}); pick another layer"
        ) from None
    if target_node is not None and node != target_node and not nx.has_path(g.nx, node, target_node):
        raise CamLayerError(f"{method}: the target unit's layer does not depend on {name!r}; pick a layer before it")
    return module, node


def _capture_outputs(model, names: list[str]):
    """Forward hooks keeping the first output of each named module; returns (outputs dict, handles)."""
    named = dict(model.named_modules())
    outs: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(module, args, out):
            outs.setdefault(name, out[0] if isinstance(out, (tuple, list)) else out)

        return hook

    return outs, [named[n].register_forward_hook(hook_for(n)) for n in names if n in named]


def _score_gradients(score_model, x: torch.Tensor, targets: list[int], found: list[tuple[str, str]]) -> dict:
    """Module -> the gradient of the target scores at its output (None where none reaches it), from one
    forward and backward of ``x``."""
    names = [m for m, _ in found]
    outs, handles = _capture_outputs(score_model.model, names)
    try:
        with torch.enable_grad():
            xin = x.detach().requires_grad_(True)
            scores = score_model(xin)
            total = scores.gather(1, torch.as_tensor(targets, device=x.device).view(-1, 1)).sum()
            seen = [m for m in names if m in outs and outs[m].requires_grad]
            grads = torch.autograd.grad(total, [outs[m] for m in seen], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return {m: dict(zip(seen, grads)).get(m) for m in names}


def _on_grid(grad, g, node: str) -> bool:
    """Whether a gradient is non-zero at some grid position (prefix tokens left out)."""
    return grad is not None and bool(to_grid(grad, g.records[node].layout, len(g.input_size)).abs().sum() > 0)


def positional_layer(score_model, x: torch.Tensor, targets: list[int], found: list[tuple[str, str]], g) -> str | None:
    """The first of ``found`` (module, node) whose output carries a non-zero gradient of the target scores
    at some grid position (prefix tokens left out), from one forward and backward of ``x``."""
    grads = _score_gradients(score_model, x, targets, found)
    return next((m for m, node in found if _on_grid(grads[m], g, node)), None)


def zero_gradient_warning(score_model, x: torch.Tensor, targets: list[int], module: str, node: str, g) -> str | None:
    """A warning naming why the CAM layer ``module`` gets no gradient at any grid position (its maps would be
    all zero) and the latest layer before it that does; None when the layer is fine."""
    grad = _score_gradients(score_model, x, targets, [(module, node)])[module]
    if _on_grid(grad, g, node):
        return None
    if grad is not None and bool(grad.abs().sum() > 0):
        cause = f"the output depends only on the class (prefix) token; the patch tokens of {module} receive no gradient"
    else:
        cause = f"no gradient of the score reaches {module}"
    found = candidates(g, score_model.model, node, before=True)
    instead = positional_layer(score_model, x, targets, found, g) if found else None
    use = f"use {instead} (the latest layer before it that carries one)" if instead else "pick a layer before it"
    return f"CAM layer {module}: {cause}, so its CAM maps are all zero; {use}"


# ------------------------------------------------------------------------------------------------- maps


@contextlib.contextmanager
def _quiet():
    """ScoreCAM and AblationCAM draw tqdm progress bars on stderr: keep them out of rfkit's output."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _targets(call: Call) -> list:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return [ClassifierOutputTarget(int(t)) for t in call.targets]


def cam_grid(library_class: str, call: Call, *, once: bool = False, **kwargs) -> torch.Tensor:
    """pytorch-grad-cam's CAM of ``library_class`` (``"GradCAM"``, ``"HiResCAM"``, ...) at the layer's grid,
    before ReLU: ``(B, *grid)``. ``kwargs`` go to the class (Ablation-CAM's ablation layer); ``once``: the
    layer must run once per forward (:class:`CamLayerError` for a module the model calls several times)."""
    import pytorch_grad_cam

    layer, chosen = call.layer, _targets(call)
    cam = getattr(pytorch_grad_cam, library_class)(
        model=call.model, target_layers=[layer.module], reshape_transform=layer.transform, **kwargs
    )
    cam.batch_size = call.settings.batch_size  # Score-CAM's masked inputs, Ablation-CAM's ablated copies per forward
    grabbed = cam.activations_and_grads
    try:
        xin = call.x.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = grabbed(xin)
            if cam.uses_gradients:
                torch.autograd.grad(sum(t(o) for t, o in zip(chosen, outputs)), xin)
        if not grabbed.activations or (cam.uses_gradients and not grabbed.gradients):
            raise CamLayerError(
                f"{library_class}: the forward pass did not reach the CAM layer, or the score has no gradient "
                "there; pick another layer"
            )
        if once and len(grabbed.activations) > 1:
            raise CamLayerError(
                f"{library_class}: the model runs {layer.name} {len(grabbed.activations)} times per forward (a "
                "shared module), and replacing it would ablate every call; pass a layer that runs once (its block)"
            )
        acts = grabbed.activations[0].numpy()
        grads = grabbed.gradients[0].numpy() if cam.uses_gradients else None
    finally:
        grabbed.release()  # before the methods' own forwards (masked, ablated): no activations piling up
    with _quiet(), _layer_put_back(call.model, layer.module):
        grid = cam.get_cam_image(xin.detach(), layer.module, chosen, acts, grads, False)
    return torch.from_numpy(grid).float()


def ablation_cam(call: Call) -> torch.Tensor:
    """pytorch-grad-cam's ``AblationCAM`` with :class:`GridAblationLayer`: channel weights
    ``(y - y_k) / y``, ``y_k`` the score with channel ``k`` of the layer's grid ablated."""
    layer = GridAblationLayer(call.layer.module, call.layer.layout, len(call.x.shape) - 2)
    return cam_grid(
        "AblationCAM", call, once=True, ablation_layer=layer, ratio_channels_to_ablate=call.options["ratio"]
    )


class GridAblationLayer(nn.Module):
    """pytorch-grad-cam's ablation layer for any layout: it stands in for the CAM layer while Ablation-CAM
    runs, computes the layer on the batch of copies of one image, and ablates channel ``indices[j]`` of the
    layer's grid (:func:`~rfkit.attribution.grid.to_grid`: tokens, windows, channels-last) in copy ``j``.

    The ablated value is pytorch-grad-cam's: 0 where the layer's smallest value is 0 (after a ReLU), else that
    minimum minus ``1e7``, taken once from the un-ablated copies (the library's own layer takes the minimum
    again after each ablation, so the value of copy ``j`` falls by ``1e7`` per copy before it and the weights
    depend on the batch size).
    """

    ABLATION_VALUE = 1e7

    def __init__(self, module: nn.Module, layout, naxes: int) -> None:
        super().__init__()
        self._wrapped = [module]  # a list: not a submodule of this stand-in
        self.layout, self.naxes = layout, naxes
        self.indices = []

    @property
    def wrapped(self) -> nn.Module:
        return self._wrapped[0]

    def activations_to_be_ablated(self, activations, ratio_channels_to_ablate=1.0):
        from pytorch_grad_cam.ablation_layer import AblationLayer

        self.indices = AblationLayer.activations_to_be_ablated(self, activations, ratio_channels_to_ablate)
        return self.indices

    def objectiveness_mask_from_svd(self, activations, threshold=0.01):
        from pytorch_grad_cam.ablation_layer import AblationLayer

        return AblationLayer.objectiveness_mask_from_svd(self, activations, threshold)

    def set_next_batch(self, input_batch_index, activations, num_channels_to_ablate) -> None:
        """Nothing to prepare: the layer is computed again on the copies (the library caches it)."""

    def forward(self, x):
        out = self.wrapped(x)
        y = (out[0] if isinstance(out, (tuple, list)) else out).contiguous()
        index = to_grid(torch.arange(y.numel(), device=y.device).view(y.shape), self.layout, self.naxes)
        low = y.min()
        value = 0.0 if bool(low == 0) else float(low) - self.ABLATION_VALUE
        flat = y.view(-1)
        for j in range(index.shape[0]):  # copy j of the image
            flat[index[j, int(self.indices[j])].reshape(-1)] = value
        return (y, *out[1:]) if isinstance(out, (tuple, list)) else y


@contextlib.contextmanager
def _layer_put_back(model: nn.Module, module: nn.Module):
    """Ablation-CAM puts its ablation layer in place of the CAM layer and back when it ends: put the layer
    back also when it fails."""
    try:
        yield
    finally:
        for parent in model.modules():
            for key, child in parent._modules.items():
                if isinstance(child, GridAblationLayer) and child.wrapped is module:
                    parent._modules[key] = module


def fullgrad(call: Call) -> torch.Tensor:
    """pytorch-grad-cam's ``FullGrad``: ``psi(|x * grad_x|) + sum over bias layers psi(|b * grad_b|)``, psi
    rescaling each map to [0, 1] and resizing it to the input, ``(B, H, W)`` (the library's final rescaling
    of the sum to [0, 1] left out, as for every CAM)."""
    from pytorch_grad_cam import FullGrad

    chosen = _targets(call)
    with contextlib.redirect_stdout(io.StringIO()):
        cam = FullGrad(model=call.model, target_layers=[], reshape_transform=None)
    grabbed = cam.activations_and_grads
    try:
        xin = call.x.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = grabbed(xin)
            xin.grad = torch.autograd.grad(sum(t(o) for t, o in zip(chosen, outputs)), xin)[0]
        if len(grabbed.gradients) != len(cam.bias_data):
            raise MethodError(
                f"fullgrad: {len(cam.bias_data)} bias layers but {len(grabbed.gradients)} of them got a gradient "
                "(a layer that runs twice, or not at all): pytorch-grad-cam's FullGrad cannot pair them; pick "
                "another method"
            )
        per_layer = cam.compute_cam_per_layer(xin, chosen, False)
    finally:
        grabbed.release()
    return torch.from_numpy(per_layer.sum(axis=1)).float()


def fullgrad_check(model: nn.Module, g) -> None:
    """:class:`MethodError` unless pytorch-grad-cam's FullGrad sees every bias on the grid: it reads the bias
    of modules whose type is exactly ``nn.Conv2d`` or ``nn.BatchNorm2d`` (with running statistics); any other
    module with a bias on the grid (timm's ``BatchNormAct2d``, ``Conv2dSame``, LayerNorm, a token MLP)
    would be left out of the sum."""
    from rfkit.graph.layers import has_grid

    used, left_out = 0, Counter()
    for name, m in model.named_modules():
        if not isinstance(getattr(m, "bias", None), torch.Tensor):
            continue
        if type(m) in (nn.Conv2d, nn.BatchNorm2d):
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is None:
                raise MethodError(
                    f"fullgrad: BatchNorm2d {name!r} keeps no running statistics, which FullGrad's bias of a "
                    "BatchNorm needs; pick another method"
                )
            used += 1
            continue
        node = g.module_outputs.get(name)
        if node is not None and has_grid(g.records[node]):
            left_out[type(m).__name__] += 1
    if left_out:
        kinds = ", ".join(f"{k} x{n}" for k, n in left_out.most_common())
        raise MethodError(
            f"fullgrad: pytorch-grad-cam's FullGrad sums the bias gradients of nn.Conv2d and nn.BatchNorm2d "
            f"modules only, and this model has {sum(left_out.values())} other module(s) with a bias on the grid "
            f"({kinds}), which its map would leave out; pick another method"
        )
    if not used:
        raise MethodError(
            "fullgrad: the model has no nn.Conv2d or nn.BatchNorm2d with a bias, whose bias gradients FullGrad "
            "sums; pick another method"
        )


def upsample(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU, then bilinear upsampling (``align_corners=False``) of ``(B, h, w)`` to ``(B, *size)``.

    >>> upsample(torch.tensor([[[1.0, -1.0]]]), (1, 4)).tolist()
    [[[1.0, 0.75, 0.25, 0.0]]]
    """
    return F.interpolate(grid.clamp(min=0)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
