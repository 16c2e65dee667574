"""``rfkit.erf``: gradient ERFs of chosen layers of a model, over a stream of images."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn as nn

import rfkit.validate as validate
from rfkit.effective.bootstrap import (
    RESAMPLES,
    StopRule,
    bootstrap_cis,
    checked_options,
    convergence,
    no_interval_reason,
)
from rfkit.effective.groups import GroupSums, group_capacity
from rfkit.effective.methods import default_unit, get_method
from rfkit.effective.result import ERFResult
from rfkit.errors import ArgumentError, DeviceMemoryError, ImageWarning, LayerError, NonFiniteWarning, RFKitError
from rfkit.graph import layout as lay
from rfkit.graph.layers import layer_before, missing_rf, resolve_layers, unit_layout
from rfkit.graph.units import grid_shape, select_unit
from rfkit.models.spec import input_dtype
from rfkit.pipeline.capture import frozen, model_device
from rfkit.pipeline.devices import (
    auto_batch_size,
    check_one_image_fits,
    decode_workers,
    is_out_of_memory,
    resolve_device,
)
from rfkit.pipeline.distributed import SINGLE, World, all_reduce_max, all_reduce_sums, current_world, shared_map
from rfkit.pipeline.finite import describe, nonfinite_images
from rfkit.pipeline.images import ImageStats
from rfkit.pipeline.prepare import Prepared, check_model, prepare
from rfkit.pipeline.sharded import IndexedBatch


def _units(layers: dict[str, str], g, layouts: dict, unit, method: str, default_key, model) -> dict[str, tuple]:
    naxes = len(g.input_size)
    if isinstance(unit, dict) and set(unit) - set(layers):
        extra = sorted(set(unit) - set(layers), key=str)[0]
        raise ArgumentError(f"unit names layer {extra!r}, which is not measured (layers: {', '.join(layers)})")
    out = {}
    for key, node in layers.items():
        record = g.records[node]
        grid = grid_shape(layouts[key], naxes)
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

    def __init__(self, make_capture, layers: dict[str, str], layouts, units: dict[str, tuple], g, method, amp) -> None:
        self.make_capture, self.layers, self.layouts, self.units, self.g = make_capture, layers, layouts, units, g
        self.method, self.amp = method, amp
        self._captures: dict[tuple, object] = {}
        self.unit_nonfinite: dict[str, torch.Tensor] = {}  # per layer, per image of the last batch

    def capture(self, keys: tuple[str, ...]):
        if keys not in self._captures:
            self._captures[keys] = self.make_capture(keys)
        return self._captures[keys]

    def maps(
        self, x: torch.Tensor, keys: tuple[str, ...], crops: dict | None = None, per_image: bool = False
    ) -> dict[str, torch.Tensor]:
        """Summed-over-images map of each layer of ``keys`` for the batch ``x`` (on ``crops[key]`` of it when
        given: then the map covers the crop only); with ``per_image``, the ``(b, H, W)`` maps of the images."""
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
                        layout, unit = self.layouts[key], self.units[key]
                    else:
                        layout, unit = lay.plain(tuple(y.shape), self.g[self.layers[key]].dims), crop.unit
                    entries = select_unit(y, layout, unit)
                    flat = entries.detach().reshape(xin.shape[0], -1)
                    self.unit_nonfinite[key] = ~torch.isfinite(flat).all(dim=1).cpu()
                    scores.append(self.method.score(entries.float(), xin.shape[0]))
                grads = [
                    torch.autograd.grad(sc, xin, retain_graph=i < len(scores) - 1, allow_unused=True)[0]
                    for i, sc in enumerate(scores)
                ]
            for key, grad in zip(group, grads):
                if grad is None:
                    out[key] = None
                else:
                    each = self.method.reduce(grad.float())
                    out[key] = each if per_image else each.sum(dim=0)
        return out


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False  # NaN agrees with nothing: measured on the whole input, where it is reported
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


def _first_crops(runner: _Runner, x: torch.Tensor, candidates: dict) -> dict:
    """The candidate crops that give the whole-input map, checked image by image on ``x``: each on the first
    image whose whole-input map of that layer is not all zero (a zero map agrees with anything), so that
    usually one image pays for the whole-input pass instead of a batch."""
    kept, pending = {}, dict(candidates)
    for i in range(x.shape[0]):
        if not pending:
            break
        xi = x[i : i + 1]
        whole = runner.maps(xi, tuple(pending), {})
        ready = {k: c for k, c in pending.items() if whole[k] is not None and bool(whole[k].any())}
        kept.update(_checked_crops(runner, xi, whole, ready))
        pending = {k: c for k, c in pending.items() if k not in ready}
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
    layouts: dict | None = None,
    channels_last: bool = False,
    autocast: bool = False,
    progress=None,
    crop: bool = True,
    stats: GroupSums | None = None,
    world: World = SINGLE,
    stop: StopRule | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, np.ndarray], int, list[str], dict]:
    """Sum of the per-image maps of every layer over ``batches``; one forward per batch for the layers
    measured on the whole input, one backward per layer. With ``crop``, local layers whose RF window is
    small are measured on a crop around it (:mod:`rfkit.effective.crop`), once an image of the first batch has
    shown that the crop gives the same map (:func:`_first_crops`). Returns (sums, images seen, warnings, crops
    used).

    ``batches`` are this rank's share of the stream: :class:`~rfkit.pipeline.sharded.IndexedBatch` es
    (:func:`rfkit.pipeline.sharded.sharded_batches`; an empty one is skipped), or plain tensors (image ``j``
    of this rank is then taken for image ``rank + j * size`` of the stream, its own source).
    ``stats`` also receives each image's maps, by the image's source id (views of one photo share one).
    ``stop`` is asked after each batch whether to stop (with every rank's groups under torchrun: then every
    rank asks, also once its own share has run out, until all have or ``stop`` says so).
    """
    from rfkit.effective.crop import crop_for

    layouts = layouts or {key: g.records[node].layout for key, node in layers.items()}
    runner = _Runner(
        make_capture,
        layers,
        layouts,
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
    found = _NonFinite()
    stream = iter(batches)
    while True:
        batch = next(stream, None)
        if stop is not None:
            more = batch is not None
            if world.distributed:
                more = all_reduce_max(int(more), world) > 0
            if not more:
                break
            if batch is None:  # this rank's share has run out; the others go on: take part in their checks
                if stop.check(stats, world):
                    break
                continue
        elif batch is None:
            break
        if isinstance(batch, IndexedBatch):
            batch, index, sources = batch.images, batch.index, batch.sources
        else:  # every image its own source
            index = sources = world.rank + world.size * (seen + np.arange(batch.shape[0]))
        if batch.shape[0] == 0:  # none of this step's images is this rank's: keep in step with the others
            if progress is not None:
                progress(0)
            if stop is not None and stop.check(stats, world):
                break
            continue
        x = batch.to(device, dtype, non_blocking=True)  # the model's own dtype: float64 models get float64
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            if seen == 0 and candidates:
                crops = _first_crops(runner, x, candidates)
            maps = runner.maps(x, keys, crops, per_image=stats is not None)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            raise DeviceMemoryError(
                f"{device.type} out of memory at batch size {x.shape[0]}: pass a smaller "
                "batch_size (--batch-size), or a smaller input size"
            ) from None
        lead = (x.shape[0],) if stats is not None else ()
        each = {}
        for key in keys:
            m = maps[key]
            if m is None:
                m = torch.zeros((*lead, *x.shape[-2:]), device=x.device)
                if f"{key}: the layer does not depend on the input" not in notes:
                    notes.append(f"{key}: the layer does not depend on the input")
            elif key in crops and tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
                placed = torch.zeros((*lead, *x.shape[-2:]), dtype=m.dtype, device=m.device)
                placed[(Ellipsis, *crops[key].slices)] = m
                m = placed
            arr = m.double().cpu().numpy()
            found.add(key, arr if stats is not None else arr[None], index, runner.unit_nonfinite.get(key))
            if stats is not None:
                each[key] = arr
                arr = arr.sum(axis=0)
            sums[key] = arr if key not in sums else sums[key] + arr
        if stats is not None:
            stats.add(each, sources)
        seen += x.shape[0]
        if progress is not None:
            progress(x.shape[0])
        del maps, x, each
        if stop is not None and stop.check(stats, world):
            break
    return sums, seen, notes + found.notes(seen), crops


class _NonFinite:
    """The first image (by its place in the stream) on which each layer's map is not finite, and how many."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[int, str, bool]] = {}
        self.count: dict[str, int] = {}

    def add(self, key: str, maps: np.ndarray, index, unit_nonfinite: torch.Tensor | None) -> None:
        """``maps``: the batch's ``(b, H, W)`` per-image maps of layer ``key`` (``(1, H, W)``: their sum, then
        the batch's first image stands for it); ``index``: their places in the stream."""
        bad = nonfinite_images(maps)
        if not bad.any():
            return
        self.count[key] = self.count.get(key, 0) + int(bad.sum()) * (len(index) // len(maps))
        if key not in self.first:
            j = int(np.argmax(bad))
            unit_bad = unit_nonfinite is not None and bool(unit_nonfinite[j if len(maps) > 1 else 0])
            self.first[key] = (int(index[j]), describe(maps[j], "pixels"), unit_bad)

    def notes(self, seen: int) -> list[str]:
        """One line per layer whose map is not finite (:func:`is_nonfinite_note` tells them apart)."""
        out = []
        for key, (image, what, unit_bad) in self.first.items():
            cause = "the unit's own value is not finite" if unit_bad else "the unit's value is finite, its gradient not"
            out.append(
                f"{NONFINITE}: layer {key!r}: the input gradient of its unit holds {what} on image {image} ({cause}); "
                f"{min(self.count[key], seen)} of {seen} image(s): the map holds NaN/inf, its metrics count them "
                "as 0 (finite = False in erf.csv and metrics.json)"
            )
        return out


NONFINITE = "non-finite ERF"
"""How the warnings of a layer whose ERF map is not finite begin."""


def is_nonfinite_note(note: str) -> bool:
    """Whether ``note`` says that a layer's map is not finite."""
    return note.startswith(NONFINITE)


def checked_arguments(model, layers, num_images, batch_size, threads, seed, input_size, method, device) -> tuple:
    """:func:`erf`'s arguments that need no model, checked before anything is built: ``(layers, num_images,
    batch_size, threads, seed, device)`` in the form :func:`erf` works with.

    Raises
    ------
    ArgumentError, InputSizeError, DeviceError
        As :func:`erf`.
    """
    check_model(model)
    layers = validate.layer_names(layers)
    num_images = validate.count(num_images, "num_images")
    batch_size = validate.count(batch_size, "batch_size", maximum=validate.MAX_BATCH, optional=True)
    threads = validate.count(threads, "threads", maximum=validate.MAX_THREADS, optional=True)
    seed = validate.seed(seed)
    if input_size is not None:
        validate.input_size(input_size)
    get_method(method)
    return layers, num_images, batch_size, threads, seed, resolve_device(device)


def erf(
    model: str | nn.Module | Prepared,
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
    workers: int | None = None,
    channels_last: bool = False,
    autocast: bool = False,
    seed: int = 0,
    metrics: bool = True,
    crop: bool = True,
    distributed: bool = True,
    bootstrap: int = RESAMPLES,
    until_stable: float | None = None,
    progress=None,
    trust: bool = False,
) -> ERFResult:
    """Effective receptive fields of chosen layers, from input gradients over images.

    For each layer, the gradient of a score on one output unit (by default the centre) with respect to
    the input is reduced to a 2-D map per image (``method``) and averaged over the images. All layers are
    measured from the same forward pass of each batch; parameters are frozen (no weight gradients) and
    the model runs in eval mode.

    Parameters
    ----------
    model : str, nn.Module or Prepared
        A spec (timm name[.tag], ``torchvision:NAME``, ``FILE.py:FACTORY``), a module, or a model prepared
        once by :func:`rfkit.prepare` (then ``weights`` and ``input_size`` are its own, and nothing is built
        or traced again). A module is left exactly as found: device, dtype, train/eval mode and
        ``requires_grad`` are restored, also on error.
    layers : str or list of str, optional
        Module names (``"layer3"``) or graph node names (``"add_3"``); default: the final feature map;
        ``"stages"``: the stage outputs and the final feature map (:func:`rfkit.graph.layers.stage_layers`).
    images : str, path, list of paths or Tensor
        ``"sample"`` (photographs shipped with scikit-image, offline), ``"noise"``, a directory
        (recursive), image paths, or a model-ready tensor (N, C, H, W). See :mod:`rfkit.pipeline.images`.
    num_images : int
        How many images to average over.
    weights : str
        ``"auto"`` (pretrained if obtainable, else random with a warning), ``"pretrained"``, ``"random"``,
        ``"random-safe"`` (random with zero-init traps removed) or a checkpoint path. See
        :mod:`rfkit.models.weights`.
    method : str
        ``"replknet"``, ``"openerf"``, or another name of :data:`rfkit.effective.methods.ERF_METHODS`.
    batch_size : int, optional
        Images per forward pass (default: as many as fit in half the free memory, at most 64 on CUDA and 8
        on the CPU; 16 on MPS: :func:`rfkit.pipeline.devices.auto_batch_size`). Does not change the maps.
    device : str
        ``"auto"`` (CUDA, MPS, else CPU), ``"cpu"``, ``"cuda:1"``, ... (checked to exist on this machine)
    input_size : int or (h, w), optional
        Override the model's input size (the preprocessing follows).
    unit : tuple or dict, optional
        The output unit to measure, per spatial axis of the layer's grid (one tuple for every layer, or a
        dict layer -> tuple); default: the method's centre unit.
    threads : int, optional
        torch CPU threads during the run (restored afterwards).
    workers : int, optional
        Threads decoding image files ahead of the model (default: none on the CPU, one per core but one, at
        most 8, on a GPU: :func:`rfkit.pipeline.devices.decode_workers`). On CUDA the batches are also put in
        page-locked memory, so that their copy to the device overlaps the computation. Does not change the
        maps.
    channels_last, autocast : bool
        Channels-last memory format; bfloat16 autocast (GPU only; ignored with a warning on CPU).
    seed : int
        For ``"noise"`` images, random-resized views of ``"sample"``, and random weights.
    metrics : bool
        Compute :func:`rfkit.effective.metrics.compute_metrics` per layer.
    crop : bool
        Measure local layers with a small RF on a crop of the input around the unit's RF window (exact:
        kept only where the first batch gives the same map as the whole input; :mod:`rfkit.effective.crop`).
    distributed : bool
        Under torchrun (``WORLD_SIZE`` > 1), share the images among the processes and add up their maps
        (:mod:`rfkit.pipeline.distributed`): every process returns the same result over the same images as
        one process would. False: this process measures every image alone.
    bootstrap : int
        Resamples of the bootstrap over independent images (views of one photo resampled together) that
        gives every metric a 95% confidence interval (:attr:`ERFResult.ci <rfkit.effective.result.ERFResult>`;
        :mod:`rfkit.effective.bootstrap`); 0: none. Fewer than 8 independent images give none either, and
        ``bootstrap["reason"]`` of the result says so. The
        statistics it needs (per-group map sums, :mod:`rfkit.effective.groups`) are kept in a bounded memory
        whatever ``num_images``; the per-pixel standard error of the mean map (:attr:`ERFResult.sem`) is
        always kept.
    until_stable : float, optional
        Stop as soon as the 95% confidence interval of the ERF/RF ratio (ERF/input for a global layer) is
        narrower than ``±until_stable`` on every layer and both axes, checked after each batch from
        :data:`~rfkit.effective.bootstrap.MIN_IMAGES` images on (:class:`rfkit.effective.bootstrap.StopRule`), or after
        ``num_images``. Where it stopped and why: :attr:`ERFResult.stopped` (and a warning when it never
        became stable). Under torchrun every process takes the same decision from everyone's images.
    progress : callable, optional
        Called with the number of images read after each batch (under torchrun, of the whole stream: every
        process's images, so a bar on rank 0 ends at the total).
    trust : bool
        Build a spec whose file runs code (``FILE.py:FACTORY``, ``ultralytics:best.pt``; :func:`rfkit.prepare`).

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
    args = checked_arguments(model, layers, num_images, batch_size, threads, seed, input_size, method, device)
    layers, num_images, batch_size, threads, seed, dev = args
    workers = validate.count(workers, "workers", optional=True, minimum=0, maximum=validate.MAX_THREADS)
    validate.count(bootstrap, "bootstrap", minimum=0, maximum=validate.MAX_BOOTSTRAP)
    bootstrap, until_stable = checked_options(bootstrap, until_stable)
    prepared = prepare(model, weights, input_size, seed=seed, trust=trust)
    g = prepared.graph
    resolved, default_key = resolve_layers(g, prepared.model, layers, unknown=True)
    layouts = {key: unit_layout(g.records[node], len(g.input_size)) for key, node in resolved.items()}
    units = _units(resolved, g, layouts, unit, method, default_key, prepared.model)
    missing = {key: why for key, node in resolved.items() if (why := missing_rf(g, node))}
    notes = [f"{key}: no analytic RF to overlay: {why}" for key, why in missing.items()]
    if autocast and dev.type == "cpu":
        notes.append("autocast is for GPUs; ignored on the CPU")
        autocast = False

    stats = ImageStats(source=str(images), requested=num_images)
    world = current_world(dev) if distributed else SINGLE
    check_one_image_fits(g, dev)
    bs = batch_size or auto_batch_size(g, dev)
    centers = _centers(g, resolved, units, notes)
    rf_sizes = {key: g[node].size for key, node in resolved.items()}
    shape = tuple(g.input_size)
    groups = GroupSums(resolved, shape, group_capacity(shape, len(resolved)), num_images)
    stop = StopRule(until_stable, rf_sizes, seed=seed) if until_stable is not None else None
    module = prepared.model
    with frozen(module, dev if model_device(module) != dev else None, channels_last) as live, _threads(threads):
        captures = prepared.capture(live)
        sums, seen, more, crops = accumulate(
            lambda keys: captures({k: resolved[k] for k in keys}),
            prepared.image_shards(
                images,
                num_images,
                bs,
                world,
                seed=seed,
                stats=stats,
                workers=decode_workers(dev) if workers is None else workers,
                pin_memory=dev.type == "cuda",
            ),
            resolved,
            units,
            g,
            method,
            dev,
            layouts=layouts,
            channels_last=channels_last,
            autocast=autocast,
            progress=None if progress is None else _whole_stream(progress, stats),
            crop=crop,
            stats=groups,
            world=world,
            stop=stop,
            dtype=input_dtype(live),
        )
    groups.reduce(world)
    sums, per_rank = all_reduce_sums(sums, seen, list(resolved), tuple(g.input_size), world)
    seen = sum(per_rank)
    if seen == 0:
        raise RFKitError("no images were processed")
    if stop is not None and stop.stable:  # the rule stopped the stream, not a short source
        stats.requested = min(stats.requested, stats.used)
    image_notes = stats.notes()  # skipped files, fewer images than asked for
    notes += more + image_notes
    maps = {key: sums[key] / seen for key in resolved}
    notes += _zero_maps(g, resolved, maps)
    results = _metrics(g, resolved, maps, centers, notes, world) if metrics else {}
    stopped = f"after all {seen} images asked for"
    if seen < num_images:
        stopped = f"after {seen} images, all the source held ({num_images} asked for)"
    if stop is not None:
        stopped = stop.finish(seen, num_images)
        if not stop.stable:
            notes.append(stopped)
    ci = bootstrap_cis(groups, centers, rf_sizes, bootstrap, seed, world=world) if metrics else {}
    for n in notes:  # prepare() has already warned about the weights
        kind = NonFiniteWarning if is_nonfinite_note(n) else UserWarning
        warnings.warn(n, ImageWarning if n in image_notes else kind, stacklevel=2)
    return ERFResult(
        model=prepared.name,
        maps=maps,
        metrics=results,
        num_images=seen,
        data_config=dict(prepared.data_config),
        weights=prepared.weights,
        unit=units,
        method=method,
        nodes=dict(resolved),
        center=centers,
        grid={k: grid_shape(layouts[k], len(g.input_size)) for k in resolved},
        images=stats,
        warnings=tuple(dict.fromkeys([*prepared.weights.warnings, *notes])),
        device=str(dev),
        graph=g,
        crops={k: tuple(zip(c.start, c.stop)) for k, c in crops.items()},
        rf_missing=missing,
        nonfinite={key: n for n in more if is_nonfinite_note(n) for key in resolved if f"layer {key!r}:" in n},
        images_per_rank=per_rank,
        ci=ci,
        sem={key: groups.sem(key) for key in resolved},
        convergence=convergence(groups, rf_sizes, seed=seed) if bootstrap and metrics else {},
        bootstrap=_bootstrap_record(bootstrap if ci else 0, groups, seed, bootstrap > 0 and metrics),
        stopped=stopped,
    )


def _bootstrap_record(resamples: int, groups: GroupSums, seed: int, asked: bool) -> dict:
    """How the intervals were made (:attr:`ERFResult.bootstrap`): ``groups`` is the number of independent
    sources, ``sources_per_group`` how many of them each resampled group pools; ``reason`` says why there is
    no interval where one was asked for and the sources were too few."""
    record = {"resamples": resamples, "groups": groups.sources, "sources_per_group": groups.size, "seed": seed}
    reason = no_interval_reason(groups.sources) if asked else ""
    if reason:
        record["reason"] = reason
    return record


def _whole_stream(progress, stats: ImageStats):
    """``progress`` told the images of the whole stream read so far (``stats.used``: under torchrun, every
    process's), however many of them the batch just measured held."""
    told = 0

    def advance(_: int) -> None:
        nonlocal told
        if stats.used > told:
            progress(stats.used - told)
            told = stats.used

    return advance


def _zero_maps(g, resolved: dict[str, str], maps: dict) -> list[str]:
    """A note for each layer whose unit had no input gradient on any image (an all-zero map), with its cause
    and the layer to measure instead."""
    notes = []
    for key, node in resolved.items():
        if bool((maps[key] != 0).any()):
            continue
        before = layer_before(g, node)
        use = f"measure {before} (the layer before it) or another unit" if before else "measure another layer"
        notes.append(
            f"{key}: the measured unit has zero input gradient on every image, so its ERF map is all zero: "
            f"relu of the unit is 0 on all of them (it never fires: random weights, a zero-initialised last "
            f"norm) or the unit does not depend on the input; {use}"
        )
    return notes


def _centers(g, resolved: dict[str, str], units: dict[str, tuple], notes: list[str]) -> dict[str, tuple]:
    """The analytic RF centre of each measured unit (the image centre, with a note, where it is unknown)."""
    centers = {}
    for key, node in resolved.items():
        c = g[node].center_of(units[key]) if not g[node].unknown else (math.nan,)
        if any(math.isnan(v) for v in c):
            c = tuple((n - 1) / 2 for n in g.input_size)
            notes.append(f"{key}: analytic RF centre unknown; the ERF centre's offset is from the image centre")
        centers[key] = c
    return centers


def _metrics(g, resolved: dict[str, str], maps: dict, centers: dict, notes: list[str], world: World = SINGLE) -> dict:
    """:func:`~rfkit.effective.metrics.compute_metrics` of each map (under torchrun, the layers shared among the
    processes); their warnings go to ``notes``."""
    from rfkit.effective.metrics import compute_metrics

    keys = list(resolved)
    found = shared_map(lambda key: compute_metrics(maps[key], centers[key], rf_size=g[resolved[key]].size), keys, world)
    results = dict(zip(keys, found))
    for key in keys:
        notes += [f"{key}: {w}" for w in results[key].warnings]
    return results
