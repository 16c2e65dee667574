"""``rfkit.erf``: gradient ERFs of chosen layers of a model, over a stream of images."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager, nullcontext
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from rfkit.errors import RFKitError
from rfkit.erf.capture import GraphCapture, HookCapture, frozen, model_device
from rfkit.erf.methods import default_unit, get_method
from rfkit.erf.result import ERFResult
from rfkit.graph.units import grid_shape, select_unit

DEFAULT_BATCH = {"cuda": 32, "mps": 16, "cpu": 8}


class LayerError(RFKitError, ValueError):
    """A layer cannot be measured: it has no spatial grid, or the unit asked for is outside it."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None): CUDA, then MPS, then CPU; anything else as ``torch.device`` reads it."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise RFKitError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps ({e})") from None


def _module_of(g, node: str) -> str | None:
    """A module whose output is ``node`` (the outermost one: ``layer4`` rather than ``layer4.2``)."""
    names = [m for m, n in g.module_outputs.items() if n == node and m]
    return min(names, key=lambda m: (m.count("."), len(m))) if names else None


def _has_grid(record) -> bool:
    layout = record.layout
    return layout is not None and any(f.axis is not None for dl in layout for f in dl.factors)


def _feature_map(record) -> bool:
    """A node whose output is a feature map: on a grid, no spatial dim mixed with channels (a flattened
    map is not), not an identity or dropout module (``norm_pre = Identity`` repeats the stage output)."""
    if not _has_grid(record) or record.info.unknown or record.kind == "placeholder":
        return False
    if record.op.endswith(("Identity", "Dropout")):
        return False
    return not any(f.axis is None for dl in record.layout[1:] for f in dl.factors
                   if any(h.axis is not None for h in dl.factors))


def default_layer(g, model: nn.Module) -> str:
    """The final feature map: the last node on the grid of timm's last ``feature_info`` stage (ViT: the
    final norm; ResNet: ``layer4``), or without ``feature_info`` the last node with more than one unit."""
    records = [r for r in g.records.values() if _feature_map(r)]
    if not records:
        raise LayerError("the model has no layer with a spatial grid to measure")
    naxes = len(g.input_size)
    reference = None
    info = getattr(model, "feature_info", None)
    try:
        last = info[-1]["module"] if info else None
    except (TypeError, KeyError, IndexError):
        last = None
    if last is not None and last in g.module_outputs and _has_grid(g.record(last)):
        reference = grid_shape(g.record(last).layout, naxes)
    if reference is None:
        multi = [r for r in records if math.prod(grid_shape(r.layout, naxes)) > 1]
        reference = grid_shape((multi or records)[-1].layout, naxes)
    node = [r for r in records if grid_shape(r.layout, naxes) == reference][-1].name
    return _module_of(g, node) or node


def stage_layers(g, model: nn.Module, limit: int = 6) -> list[str]:
    """The stage outputs (timm's ``feature_info`` modules, else the top-level children with a grid), at
    most ``limit`` of them evenly spaced with the last kept, then the final feature map if it differs."""
    names = []
    info = getattr(model, "feature_info", None)
    try:
        names = [f["module"] for f in info] if info else []
    except (TypeError, KeyError):
        names = []
    if not names:
        names = [n for n, _ in model.named_children()]
    names = [n for n in names if n in g.module_outputs and _has_grid(g.record(n)) and not g[n].unknown]
    if len(names) > limit:
        step = (len(names) - 1) / (limit - 1)
        names = [names[round(i * step)] for i in range(limit)]
    final = default_layer(g, model)
    if not names or g.resolve(final) != g.resolve(names[-1]):
        names.append(final)
    return list(dict.fromkeys(names))


def _units(layers: dict[str, str], g, unit, method: str, default_key: str | None, model) -> dict[str, tuple]:
    naxes = len(g.input_size)
    out = {}
    for key, node in layers.items():
        record = g.records[node]
        grid = grid_shape(record.layout, naxes)
        chosen = unit.get(key) if isinstance(unit, dict) else unit
        if chosen is None:
            tokens = record.info.dims != tuple(range(2, 2 + naxes)) or (
                key == default_key and hasattr(model, "patch_embed"))
            chosen = default_unit(method, grid, tokens)
        chosen = tuple(int(u) for u in chosen)
        if len(chosen) != naxes or any(not 0 <= u < n for u, n in zip(chosen, grid)):
            raise LayerError(f"unit {chosen} is outside the {'x'.join(map(str, grid))} grid of layer {key!r}")
        out[key] = chosen
    return out


def resolve_layers(g, model: nn.Module, layers: str | Sequence[str] | None) -> tuple[dict[str, str], str | None]:
    """Layer name -> graph node for each requested layer (module or node names), and the default's name."""
    default_key = None
    if layers is None:
        default_key = default_layer(g, model)
        layers = [default_key]
    elif layers == "stages":
        layers = stage_layers(g, model)
        default_key = layers[-1]
    elif isinstance(layers, str):
        layers = [layers]
    out = {}
    for name in layers:
        node = g.resolve(name)
        record = g.records[node]
        if not _has_grid(record):
            why = "its RF is unknown (an unsupported op before it)" if record.info.unknown else \
                "its output has no spatial grid (pooled or flattened)"
            raise LayerError(f"layer {name!r} cannot be measured: {why}; pick a layer before the head "
                             f"(`rfkit graph MODEL` lists them)")
        out[name] = node
    if not out:
        raise LayerError("no layers to measure: pass at least one layer name")
    return out, default_key


def _capture(g, model: nn.Module, layers: dict[str, str]):
    """Forward hooks when every layer is a module's output, else a GraphModule returning the nodes."""
    modules = {}
    for key, node in layers.items():
        module = key if key in g.module_outputs else _module_of(g, node)
        if module is None:
            break
        modules[module] = key
    else:
        return HookCapture(model, modules)
    if g.method != "torch.fx":
        raise LayerError(f"{g.model_name} was recorded with make_fx, so only module outputs can be measured; "
                         f"{key!r} is not one")
    from rfkit.graph.tracer import trace_module

    gm, _ = trace_module(model)
    return GraphCapture(gm, {node: key for key, node in layers.items()})


@contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def accumulate(capture, batches: Iterable[torch.Tensor], layers: dict[str, str], units: dict[str, tuple], g,
               method: str, device: torch.device, *, channels_last: bool = False, autocast: bool = False,
               progress=None) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """Sum of the per-image maps of every layer over ``batches``; one forward per batch, one backward
    per layer. Returns (sums, images seen, warnings)."""
    m = get_method(method)
    sums: dict[str, np.ndarray] = {}
    seen, notes = 0, []
    keys = list(layers)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
    for batch in batches:
        x = batch.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        try:
            with torch.enable_grad(), amp:
                outs = capture(x)
                scores = []
                for key in keys:
                    if key not in outs:
                        raise LayerError(f"layer {key!r} was not reached by the forward pass")
                    entries = select_unit(outs[key], g.records[layers[key]].layout, units[key])
                    scores.append(m.score(entries.float(), x.shape[0]))
                grads = [torch.autograd.grad(score, x, retain_graph=i < len(keys) - 1, allow_unused=True)[0]
                         for i, score in enumerate(scores)]
        except torch.OutOfMemoryError:
            raise RFKitError(f"{device.type} out of memory at batch size {x.shape[0]}: pass a smaller batch_size "
                             f"(--batch-size)") from None
        for key, grad in zip(keys, grads):
            if grad is None:
                grad = torch.zeros_like(x)
                if f"{key}: the layer does not depend on the input" not in notes:
                    notes.append(f"{key}: the layer does not depend on the input")
            maps = m.reduce(grad.float()).sum(dim=0).double().cpu().numpy()
            sums[key] = maps if key not in sums else sums[key] + maps
        seen += x.shape[0]
        if progress is not None:
            progress(x.shape[0])
        del outs, scores, grads, x
    return sums, seen, notes


def erf(model: str | nn.Module, layers: str | Sequence[str] | None = None, images="sample", num_images: int = 32,
        weights: str = "auto", method: str = "replknet", batch_size: int | None = None, device="auto",
        input_size=None, *, unit=None, threads: int | None = None, channels_last: bool = False,
        autocast: bool = False, seed: int = 0, metrics: bool = True, progress=None) -> ERFResult:
    """Effective receptive fields of chosen layers, from input gradients over images.

    For each layer, the gradient of a score on one output unit (by default the centre) with respect to
    the input is reduced to a 2-D map per image (``method``) and averaged over the images. All layers are
    measured from the same forward pass of each batch; parameters are frozen (no weight gradients) and
    the model runs in eval mode.

    Parameters
    ----------
    model : str or nn.Module
        A spec (timm name[.tag], ``torchvision:NAME``, ``FILE.py:FACTORY``) or a module. A module is left
        exactly as found: device, dtype, train/eval mode and ``requires_grad`` are restored, also on error.
    layers : str or list of str, optional
        Module names (``"layer3"``) or graph node names (``"add_3"``); default: the final feature map;
        ``"stages"``: the stage outputs and the final feature map (:func:`stage_layers`).
    images : str, path, list of paths or Tensor
        ``"sample"`` (photographs shipped with scikit-image, offline), ``"noise"``, a directory
        (recursive), image paths, or a model-ready tensor (N, C, H, W). See :mod:`rfkit.erf.images`.
    num_images : int
        How many images to average over.
    weights : str
        ``"auto"`` (pretrained if obtainable, else random with a warning), ``"pretrained"``, ``"random"``,
        ``"random-safe"`` (random with zero-init traps removed) or a checkpoint path. See
        :mod:`rfkit.erf.weights`.
    method : str
        ``"replknet"`` or ``"openerf"`` (:mod:`rfkit.erf.methods`).
    batch_size : int, optional
        Images per forward pass (default 32 on CUDA, 16 on MPS, 8 on CPU). Does not change the maps.
    device : str
        ``"auto"`` (CUDA, MPS, else CPU), ``"cpu"``, ``"cuda:1"``, ...
    input_size : int or (h, w), optional
        Override the model's input size (the preprocessing follows).
    unit : tuple or dict, optional
        The output unit to measure, per spatial axis of the layer's grid (one tuple for every layer, or a
        dict layer -> tuple); default: the method's centre unit.
    threads : int, optional
        torch CPU threads during the run (restored afterwards).
    channels_last, autocast : bool
        Channels-last memory format; bfloat16 autocast (GPU only; ignored with a warning on CPU).
    seed : int
        For ``"noise"`` images, random-resized views of ``"sample"``, and random weights.
    metrics : bool
        Compute :func:`rfkit.erf.metrics.compute_metrics` per layer.
    progress : callable, optional
        Called with the number of images after each batch.

    Returns
    -------
    ERFResult

    Examples
    --------
    >>> import torch, torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    >>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=4, input_size=16, device="cpu")
    >>> res.unit["2"], res.center["2"], res.maps["2"].shape
    ((8, 8), (8, 8), (16, 16))
    >>> np.argwhere(res.maps["0"] > 0)[[0, -1]].tolist()  # the 3x3 RF around (8, 8)
    [[7, 7], [9, 9]]
    """
    import rfkit
    from rfkit.erf.images import ImageStats, data_config_for, image_batches
    from rfkit.erf.weights import load_model

    get_method(method)
    dev = resolve_device(device)
    module, winfo = load_model(model, weights, seed=seed) if isinstance(model, str) else load_model(model, weights)
    name = model if isinstance(model, str) else type(model).__name__
    cfg = data_config_for(module, input_size)
    g = rfkit.trace(module, input_size=tuple(cfg["input_size"][1:]), in_chans=cfg["input_size"][0])
    g.model_name = name
    resolved, default_key = resolve_layers(g, module, layers)
    units = _units(resolved, g, unit or {}, method, default_key, module)
    notes = list(winfo.warnings)  # load_model has already warned about these
    already = len(notes)
    if autocast and dev.type == "cpu":
        notes.append("autocast is for GPUs; ignored on the CPU")
        autocast = False

    stats = ImageStats(source=str(images), requested=num_images)
    bs = batch_size or DEFAULT_BATCH.get(dev.type, 8)
    with frozen(module, dev if model_device(module) != dev else None, channels_last) as live, _threads(threads):
        capture = _capture(g, live, resolved)
        batches = image_batches(images, cfg, num_images, bs, seed=seed, stats=stats)
        sums, seen, more = accumulate(capture, batches, resolved, units, g, method, dev,
                                      channels_last=channels_last, autocast=autocast, progress=progress)
    notes += more
    if stats.skipped:
        notes.append(f"{len(stats.skipped)} unreadable image file(s) skipped (first: {stats.skipped[0][0]})")
    if seen == 0:
        raise RFKitError("no images were processed")

    maps = {key: sums[key] / seen for key in resolved}
    centers = {}
    for key, node in resolved.items():
        c = g[node].center_of(units[key]) if not g[node].unknown else (math.nan,)
        if any(math.isnan(v) for v in c):
            c = tuple((n - 1) / 2 for n in g.input_size)
            notes.append(f"{key}: analytic RF centre unknown; metrics centred on the image centre")
        centers[key] = c
    results = {}
    if metrics:
        from rfkit.erf.metrics import compute_metrics

        for key, node in resolved.items():
            results[key] = compute_metrics(maps[key], centers[key], rf_size=g[node].size)
            notes += [f"{key}: {w}" for w in getattr(results[key], "warnings", ())]
    for n in notes[already:]:
        warnings.warn(n, stacklevel=2)
    return ERFResult(
        model=name, maps=maps, metrics=results, num_images=seen, data_config=dict(cfg), weights=winfo,
        unit=units, method=method, nodes=dict(resolved), center=centers,
        grid={k: grid_shape(g.records[n].layout, len(g.input_size)) for k, n in resolved.items()},
        images=stats, warnings=tuple(dict.fromkeys(notes)), device=str(dev), graph=g,
    )
