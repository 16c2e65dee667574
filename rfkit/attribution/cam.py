"""The CAM family through pytorch-grad-cam, with the layer and its reshape supplied by rfkit.

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
"""

from __future__ import annotations

import contextlib
import io

import networkx as nx
import torch
import torch.nn.functional as F

from rfkit.attribution.errors import CamLayerError
from rfkit.attribution.grid import GridTransform, to_grid
from rfkit.graph.layers import feature_stages, has_grid, is_feature_map, outermost_modules
from rfkit.graph.units import LayoutMismatchError

CAM_CLASSES = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "layercam": "LayerCAM", "scorecam": "ScoreCAM"}
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
    """ScoreCAM draws tqdm progress bars on stderr: keep them out of rfkit's output."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def cam_grid(
    name: str,
    score_model,
    module: torch.nn.Module,
    transform: GridTransform,
    x: torch.Tensor,
    targets: list[int],
    batch_size: int,
) -> torch.Tensor:
    """pytorch-grad-cam's CAM of method ``name`` at the layer's grid, before ReLU: ``(B, *grid)``."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = getattr(pytorch_grad_cam, CAM_CLASSES[name])(
        model=score_model, target_layers=[module], reshape_transform=transform
    )
    cam.batch_size = batch_size  # ScoreCAM's masked inputs per forward
    chosen = [ClassifierOutputTarget(int(t)) for t in targets]
    grabbed = cam.activations_and_grads
    try:
        xin = x.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = grabbed(xin)
            if cam.uses_gradients:
                torch.autograd.grad(sum(t(o) for t, o in zip(chosen, outputs)), xin)
        if not grabbed.activations or (cam.uses_gradients and not grabbed.gradients):
            raise CamLayerError(
                f"{name}: the forward pass did not reach the CAM layer, or the score has no gradient "
                "there; pick another layer"
            )
        acts = grabbed.activations[0].numpy()
        grads = grabbed.gradients[0].numpy() if cam.uses_gradients else None
        with _quiet():
            grid = cam.get_cam_image(xin.detach(), module, chosen, acts, grads, False)
    finally:
        grabbed.release()
    return torch.from_numpy(grid).float()


def upsample(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU, then bilinear upsampling (``align_corners=False``) of ``(B, h, w)`` to ``(B, *size)``.

    >>> upsample(torch.tensor([[[1.0, -1.0]]]), (1, 4)).tolist()
    [[[1.0, 0.75, 0.25, 0.0]]]
    """
    return F.interpolate(grid.clamp(min=0)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
