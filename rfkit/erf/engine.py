"""``rfkit.erf``: gradient ERFs of chosen layers of a model, over a stream of images."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn as nn

from rfkit import validate
from rfkit.erf.capture import GraphCapture, HookCapture, frozen, model_device
from rfkit.erf.devices import auto_batch_size, is_out_of_memory, resolve_device
from rfkit.erf.methods import default_unit, get_method
from rfkit.erf.result import ERFResult
from rfkit.errors import ArgumentError, DeviceMemoryError, RFKitError
from rfkit.graph import layout as lay
from rfkit.graph.units import grid_shape, select_unit


class LayerError(RFKitError, ValueError):
    """A layer cannot be measured: it has no spatial grid, or the unit asked for is outside it."""


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
    return not any(
        f.axis is None for dl in record.layout[1:] for f in dl.factors if any(h.axis is not None for h in dl.factors)
    )


_HEAD_POOLS = ("adaptiveavgpool", "adaptivemaxpool", "selectadaptivepool", "flatten", ".mean", "amax")


def _is_head_pool(op: str) -> bool:
    return any(p in op.lower() for p in _HEAD_POOLS)


def default_layer(g, model: nn.Module) -> str:
    """The final feature map: from timm's last ``feature_info`` stage (ResNet: ``layer4``), the last module
    output after it, before the head's pooling, that is on the same grid and just as local or global (ViT:
    the final ``norm``); without ``feature_info``, the last feature map with more than one
    unit. Module outputs are preferred to bare graph nodes."""
    records = [r for r in g.records.values() if _feature_map(r)]
    if not records:
        raise LayerError("the model has no layer with a spatial grid to measure")
    naxes = len(g.input_size)
    info = getattr(model, "feature_info", None)
    try:
        last = info[-1]["module"] if info else None
    except (TypeError, KeyError, IndexError):
        last = None
    if last is not None and last in g.module_outputs and _feature_map(g.record(last)):
        ref = g.record(last)
        position = {name: i for i, name in enumerate(g.records)}
        pools = [
            position[r.name]
            for r in g.records.values()
            if position[r.name] > position[ref.name] and _is_head_pool(r.op)
        ]
        stop = min(pools, default=len(position))  # the head's pooling (identity on a 1x1 map) is not a stage
        after = [r for r in records if position[ref.name] <= position[r.name] < stop]
        same = [
            r
            for r in after
            if grid_shape(r.layout, naxes) == grid_shape(ref.layout, naxes) and r.info.is_global == ref.info.is_global
        ]
        named = [r for r in same if _module_of(g, r.name)]
        return last if not named or named[-1].name == ref.name else _module_of(g, named[-1].name)
    multi = [r for r in records if math.prod(grid_shape(r.layout, naxes)) > 1] or records
    named = [r for r in multi if _module_of(g, r.name)]
    chosen = (named or multi)[-1].name
    return _module_of(g, chosen) or chosen


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
    if isinstance(unit, dict) and set(unit) - set(layers):
        extra = sorted(set(unit) - set(layers), key=str)[0]
        raise ArgumentError(f"unit names layer {extra!r}, which is not measured (layers: {', '.join(layers)})")
    out = {}
    for key, node in layers.items():
        record = g.records[node]
        grid = grid_shape(record.layout, naxes)
        chosen = unit.get(key) if isinstance(unit, dict) else unit
        if chosen is None:
            tokens = record.info.dims != tuple(range(2, 2 + naxes)) or (
                key == default_key and hasattr(model, "patch_embed")
            )
            chosen = default_unit(method, grid, tokens)
        chosen = validate.unit_index(chosen, naxes, "unit" if not isinstance(unit, dict) else f"unit[{key!r}]")
        if any(u >= n for u, n in zip(chosen, grid)):
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
            why = (
                "its RF is unknown (an unsupported op before it)"
                if record.info.unknown
                else "its output has no spatial grid (pooled or flattened)"
            )
            raise LayerError(
                f"layer {name!r} cannot be measured: {why}; pick a layer before the head "
                f"(`rfkit graph MODEL` lists them)"
            )
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
        raise LayerError(
            f"{g.model_name} was recorded with make_fx, so only module outputs can be measured; {key!r} is not one"
        )
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


class _Runner:
    """One forward for a set of layers, then one backward per layer: each layer's per-image maps."""

    def __init__(self, make_capture, layers: dict[str, str], units: dict[str, tuple], g, method, amp) -> None:
        self.make_capture, self.layers, self.units, self.g = make_capture, layers, units, g
        self.method, self.amp = method, amp
        self._captures: dict[tuple, object] = {}

    def capture(self, keys: tuple[str, ...]):
        if keys not in self._captures:
            self._captures[keys] = self.make_capture(keys)
        return self._captures[keys]

    def maps(self, x: torch.Tensor, keys: tuple[str, ...], crops: dict | None = None) -> dict[str, torch.Tensor]:
        """Summed-over-images map of each layer of ``keys`` for the batch ``x`` (on ``crops[key]`` of it when
        given: then the map covers the crop only)."""
        crops = crops or {}
        groups = [(None, tuple(k for k in keys if k not in crops))] + [(crops[k], (k,)) for k in keys if k in crops]
        out = {}
        for crop, group in groups:
            if not group:
                continue
            xin = x if crop is None else x[(Ellipsis, *crop.slices)].detach().clone()
            xin.requires_grad_(True)
            with torch.enable_grad(), self.amp:
                outs = self.capture(group)(xin)
                scores = []
                for key in group:
                    if key not in outs:
                        raise LayerError(f"layer {key!r} was not reached by the forward pass")
                    y = outs[key]
                    if crop is None:
                        layout, unit = self.g.records[self.layers[key]].layout, self.units[key]
                    else:
                        layout, unit = lay.plain(tuple(y.shape), self.g[self.layers[key]].dims), crop.unit
                    entries = select_unit(y, layout, unit)
                    scores.append(self.method.score(entries.float(), xin.shape[0]))
                grads = [
                    torch.autograd.grad(sc, xin, retain_graph=i < len(scores) - 1, allow_unused=True)[0]
                    for i, sc in enumerate(scores)
                ]
            for key, grad in zip(group, grads):
                out[key] = None if grad is None else self.method.reduce(grad.float()).sum(dim=0)
        return out


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.abs(b).max()), 1e-30)
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-4 * scale))


def _checked_crops(runner: _Runner, x: torch.Tensor, maps: dict, candidates: dict) -> dict:
    """The candidate crops whose map on ``x`` equals the whole-input map ``maps[key]``."""
    kept = {}
    for key, c in candidates.items():
        if maps[key] is None:
            continue
        try:
            part = runner.maps(x, (key,), {key: c})[key]
        except Exception as e:  # noqa: BLE001 - e.g. a model that takes one input size only: no crop
            if is_out_of_memory(e):
                raise
            continue
        if part is None:
            continue
        placed = torch.zeros_like(maps[key])
        placed[c.slices] = part
        if _agree(placed.double().cpu().numpy(), maps[key].double().cpu().numpy()):
            kept[key] = c
    return kept


def accumulate(
    make_capture,
    batches: Iterable[torch.Tensor],
    layers: dict[str, str],
    units: dict[str, tuple],
    g,
    method: str,
    device: torch.device,
    *,
    channels_last: bool = False,
    autocast: bool = False,
    progress=None,
    crop: bool = True,
) -> tuple[dict[str, np.ndarray], int, list[str], dict]:
    """Sum of the per-image maps of every layer over ``batches``; one forward per batch for the layers
    measured on the whole input, one backward per layer. With ``crop``, local layers whose RF window is
    small are measured on a crop around it (:mod:`rfkit.erf.crop`), once the first batch has shown that the
    crop gives the same map. Returns (sums, images seen, warnings, crops used)."""
    from rfkit.erf.crop import crop_for

    runner = _Runner(
        make_capture,
        layers,
        units,
        g,
        get_method(method),
        torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext(),
    )
    keys = tuple(layers)
    candidates = {k: c for k in keys if crop and (c := crop_for(g[layers[k]], units[k], g.input_size))}
    crops: dict = {}
    sums: dict[str, np.ndarray] = {}
    seen, notes = 0, []
    for batch in batches:
        x = batch.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            maps = runner.maps(x, keys, crops)
            if seen == 0 and candidates:
                crops = _checked_crops(runner, x, maps, candidates)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            raise DeviceMemoryError(
                f"{device.type} out of memory at batch size {x.shape[0]}: pass a smaller "
                "batch_size (--batch-size), or a smaller input size"
            ) from None
        for key in keys:
            m = maps[key]
            if m is None:
                m = torch.zeros(x.shape[-2:], device=x.device)
                if f"{key}: the layer does not depend on the input" not in notes:
                    notes.append(f"{key}: the layer does not depend on the input")
            elif key in crops and tuple(m.shape) != tuple(x.shape[-2:]):
                placed = torch.zeros(x.shape[-2:], dtype=m.dtype, device=m.device)
                placed[crops[key].slices] = m
                m = placed
            arr = m.double().cpu().numpy()
            sums[key] = arr if key not in sums else sums[key] + arr
        seen += x.shape[0]
        if progress is not None:
            progress(x.shape[0])
        del maps, x
    return sums, seen, notes, crops


def erf(
    model: str | nn.Module,
    layers: str | Sequence[str] | None = None,
    images="sample",
    num_images: int = 32,
    weights: str = "auto",
    method: str = "replknet",
    batch_size: int | None = None,
    device="auto",
    input_size=None,
    *,
    unit=None,
    threads: int | None = None,
    channels_last: bool = False,
    autocast: bool = False,
    seed: int = 0,
    metrics: bool = True,
    crop: bool = True,
    progress=None,
) -> ERFResult:
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
        Images per forward pass (default 32 on CUDA, 16 on MPS, 8 on CPU or as many as fit in half the
        available memory: :func:`rfkit.erf.devices.auto_batch_size`). Does not change the maps.
    device : str
        ``"auto"`` (CUDA, MPS, else CPU), ``"cpu"``, ``"cuda:1"``, ... (checked to exist on this machine)
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
    crop : bool
        Measure local layers with a small RF on a crop of the input around the unit's RF window (exact:
        kept only where the first batch gives the same map as the whole input; :mod:`rfkit.erf.crop`).
    progress : callable, optional
        Called with the number of images after each batch.

    Returns
    -------
    ERFResult

    Raises
    ------
    ArgumentError, InputSizeError
        An argument of the wrong type or value (``threads=0``, ``input_size=16.0``, ``layers=123``, ...).
    DeviceError
        The device is not on this machine.
    DeviceMemoryError
        A batch does not fit in memory (pass a smaller ``batch_size``).
    LayerError, NodeNotFoundError
        A layer cannot be measured or is not in the graph, or the unit is outside its grid.

    Examples
    --------
    >>> import torch, torch.nn as nn, rfkit
    >>> _ = torch.manual_seed(0)  # random weights: a weight of exactly the wrong sign can zero a pixel
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    >>> res = rfkit.erf(net, layers=["0", "2"], images="noise", num_images=4, input_size=16, device="cpu")
    >>> res.unit["2"], res.center["2"], res.maps["2"].shape
    ((8, 8), (8, 8), (16, 16))
    >>> np.argwhere(res.maps["0"] > 0)[[0, -1]].tolist()  # the 3x3 RF around (8, 8)
    [[7, 7], [9, 9]]
    """
    import rfkit
    from rfkit.erf.images import ImageStats, ImageWarning, data_config_for, image_batches
    from rfkit.erf.weights import load_model

    validate.model(model)
    layers = validate.layer_names(layers)
    num_images = validate.count(num_images, "num_images")
    batch_size = validate.count(batch_size, "batch_size", optional=True)
    threads = validate.count(threads, "threads", optional=True)
    seed = validate.count(seed, "seed", minimum=0)
    input_size = None if input_size is None else validate.input_size(input_size)
    get_method(method)
    dev = resolve_device(device)
    module, winfo = load_model(model, weights, seed=seed) if isinstance(model, str) else load_model(model, weights)
    name = model if isinstance(model, str) else type(model).__name__
    cfg = data_config_for(module, input_size)
    g = rfkit.trace(module, input_size=tuple(cfg["input_size"][1:]), in_chans=cfg["input_size"][0])
    g.model_name = name
    resolved, default_key = resolve_layers(g, module, layers)
    units = _units(resolved, g, unit, method, default_key, module)
    notes = list(winfo.warnings)  # load_model has already warned about these
    already = len(notes)
    if autocast and dev.type == "cpu":
        notes.append("autocast is for GPUs; ignored on the CPU")
        autocast = False

    stats = ImageStats(source=str(images), requested=num_images)
    bs = batch_size or auto_batch_size(g, dev)
    with frozen(module, dev if model_device(module) != dev else None, channels_last) as live, _threads(threads):

        def make_capture(keys):
            return _capture(g, live, {k: resolved[k] for k in keys})

        batches = image_batches(images, cfg, num_images, bs, seed=seed, stats=stats)
        sums, seen, more, crops = accumulate(
            make_capture,
            batches,
            resolved,
            units,
            g,
            method,
            dev,
            channels_last=channels_last,
            autocast=autocast,
            progress=progress,
            crop=crop,
        )
    notes += more
    image_notes = stats.notes()  # skipped files, fewer images than asked for
    notes += image_notes
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
        warnings.warn(n, ImageWarning if n in image_notes else UserWarning, stacklevel=2)
    return ERFResult(
        model=name,
        maps=maps,
        metrics=results,
        num_images=seen,
        data_config=dict(cfg),
        weights=winfo,
        unit=units,
        method=method,
        nodes=dict(resolved),
        center=centers,
        grid={k: grid_shape(g.records[n].layout, len(g.input_size)) for k, n in resolved.items()},
        images=stats,
        warnings=tuple(dict.fromkeys(notes)),
        device=str(dev),
        graph=g,
        crops={k: tuple(zip(c.start, c.stop)) for k, c in crops.items()},
    )
