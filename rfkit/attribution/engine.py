"""``rfkit.attribute``: per-image contribution maps of a model's class or unit, for several methods."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn

import rfkit.validate as validate
from rfkit.attribution import methods as mth
from rfkit.attribution.baselines import check_baseline, default_sigma, gaussian_blur
from rfkit.attribution.cam import candidates, check_layer, positional_layer, zero_gradient_warning
from rfkit.attribution.channels import to_map
from rfkit.attribution.errors import AttributionError, CamLayerError, TargetError
from rfkit.attribution.grid import GridTransform, is_nchw
from rfkit.attribution.registry import Call, CamLayer
from rfkit.attribution.result import AttributionResult
from rfkit.attribution.targets import (
    ScoreModel,
    Target,
    TargetSpec,
    check_class,
    class_name,
    num_classes,
    parse_target,
    resolve_unit,
    unit_model,
)
from rfkit.errors import DeviceMemoryError, NonFiniteWarning
from rfkit.graph.layers import default_layer
from rfkit.models.spec import input_dtype
from rfkit.pipeline.capture import frozen, model_device
from rfkit.pipeline.devices import (
    auto_batch_size,
    check_one_image_fits,
    decode_workers,
    is_out_of_memory,
    resolve_device,
)
from rfkit.pipeline.distributed import SINGLE, World, current_world, gather_rows
from rfkit.pipeline.finite import describe, first_nonfinite_module, nonfinite_images, origin
from rfkit.pipeline.images import SAMPLE_PHOTOS, ImageStats
from rfkit.pipeline.prepare import Prepared, check_model, prepare
from rfkit.pipeline.sharded import IndexedBatch

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
#: A completeness error above this is reported as a warning (raise ``steps``).
COMPLETENESS_WARN = mth.STEPS_TARGET_ERROR


class _Cam:
    """The CAM layer: given, or chosen on the first batch from the candidates."""

    def __init__(
        self,
        g,
        module: str | None,
        node: str | None,
        found: list[tuple[str, str]],
        note: str,
        first: str = "the final feature map",
    ) -> None:
        self.g, self.module, self.node, self.found, self.note, self.first = g, module, node, found, note, first
        self.warning: str | None = None  # a layer the user named that gets no gradient on its grid
        self.checked = False

    def choose(self, score_model, x: torch.Tensor, targets: list[int]) -> None:
        if self.module is not None:
            if not self.checked and not self.found:  # named by the user: say if its maps will be all zero
                self.warning = zero_gradient_warning(score_model, x, targets, self.module, self.node, self.g)
            self.checked = True
            return
        module = positional_layer(score_model, x, targets, self.found, self.g)
        if module is None:
            tried = ", ".join(m for m, _ in self.found) or "none"
            raise CamLayerError(
                f"no feature map before the target carries a per-position gradient of the score "
                f"(tried {tried}); pass the CAM layer (layer=..., --cam-layer)"
            )
        skipped = [m for m, _ in self.found[: [m for m, _ in self.found].index(module)]]
        self.module, self.node = module, self.g.resolve(module)
        self.note = (
            f"{module}: {self.first}"
            if not skipped
            else f"{module}: the score has no gradient at any grid position of {', '.join(skipped)} (e.g. a "
            f"class-token head reads only the class token), so the latest block input it depends on"
        )

    def transform(self) -> GridTransform:
        return GridTransform(self.g.records[self.node].layout, len(self.g.input_size))


class _Runner:
    """Maps of every method for one batch at a time, collected over batches; each method runs through its
    record (:mod:`rfkit.attribution.registry`)."""

    def __init__(
        self,
        score_model,
        methods: tuple[str, ...],
        settings: mth.Settings,
        data_config: dict,
        sigma: float,
        cam: _Cam | None,
    ) -> None:
        self.score_model, self.methods, self.settings = score_model, methods, settings
        self.data_config, self.sigma, self.cam = data_config, sigma, cam
        self.maps: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
        self.completeness: dict[str, list[torch.Tensor]] = {}
        self.steps: dict[str, list[torch.Tensor]] = {}  # a path method's steps, image by image

    def _call(self, name: str, x, targets: list[int], index, start=None, steps: int | None = None) -> Call:
        rec = mth.record(name)
        settings = self.settings if steps is None else replace(self.settings, steps=steps)
        return Call(
            model=self.score_model,
            x=x,
            targets=list(targets),
            settings=settings,
            options=self.settings.options.get(name) or rec.defaults,
            data_config=self.data_config,
            sigma=self.sigma,
            index=range(x.shape[0]) if index is None else index,
            layer=self._layer(rec) if rec.layer else None,
            start=start,
        )

    def _layer(self, rec) -> CamLayer:
        module = dict(self.score_model.model.named_modules())[self.cam.module]
        _check_layer_kind(rec, self.cam.g, self.cam.module, self.cam.node)
        return CamLayer(self.cam.module, module, self.cam.transform(), self.cam.g.records[self.cam.node].layout)

    def _path(self, name: str, x, targets: list[int], scores, start, steps: int):
        """A path method's attribution at ``steps`` and each image's completeness error."""
        attr = mth.record(name).compute(self._call(name, x, targets, None, start, steps)).detach()
        with torch.no_grad():
            delta = (scores - _chosen(self.score_model(start), targets)).double()
        err = (attr.flatten(1).sum(dim=1).double() - delta).abs() / delta.abs()
        return attr, torch.where(delta != 0, err, torch.nan).cpu()

    def _converged(self, name: str, x, targets: list[int], scores, start):
        """A path method's attribution at the settings' steps; with ``auto_steps``, the images whose
        completeness error is not under :data:`~rfkit.attribution.settings.STEPS_TARGET_ERROR` again at twice
        the steps, until it is or :data:`~rfkit.attribution.settings.MAX_AUTO_STEPS` is reached. Returns the
        attribution, each image's error and the steps it got."""
        steps = self.settings.steps
        attr, err = self._path(name, x, targets, scores, start, steps)
        used = torch.full((x.shape[0],), steps, dtype=torch.int64)
        while self.settings.auto_steps and steps < mth.MAX_AUTO_STEPS:
            todo = (err >= mth.STEPS_TARGET_ERROR).nonzero()[:, 0]  # NaN (f(x) = f(baseline)): nothing to gain
            if not len(todo):
                break
            steps = min(2 * steps, mth.MAX_AUTO_STEPS)
            on = todo.to(x.device)
            part, err[todo] = self._path(name, x[on], [targets[i] for i in todo], scores[on], start[on], steps)
            attr[on] = part
            used[todo] = steps
        return attr, err, used

    def _base(self, name: str, x: torch.Tensor, targets: list[int], scores: torch.Tensor, index) -> torch.Tensor:
        """Method ``name``'s maps of ``x``, ``(B, H, W)``."""
        rec = mth.record(name)
        call = self._call(name, x, targets, index)
        if rec.path:
            attr, err, used = self._converged(name, x, targets, scores, rec.start(call).detach())
            self.completeness.setdefault(name, []).append(err)
            self.steps.setdefault(name, []).append(used)
        else:
            attr = rec.compute(call).detach()
        return to_map(attr, rec.output, self.settings.channels, tuple(x.shape[-2:])).to(x.device)

    def batch(self, x: torch.Tensor, targets: list[int], scores: torch.Tensor, index=None) -> None:
        """Every method's maps for ``x``; ``scores`` are the target scores of ``x``, ``index`` the images'
        places in the stream (SmoothGrad's noise is seeded by them)."""
        if self.cam is not None:
            if self.cam.module is None and not bool(torch.isfinite(scores).any()):
                raise CamLayerError(
                    f"the target's score is {describe(scores.cpu(), 'images')} on the first batch, so no CAM "
                    "layer can be chosen by where its gradient is: fix the model, or pass the CAM layer "
                    "(layer=..., --cam-layer)"
                )
            self.cam.choose(self.score_model, x, targets)
        base = {name: self._base(name, x, targets, scores, index) for name in mth.base_methods(self.methods)}
        for name in self.methods:
            maps = [base[p] for p in mth.parts(name)]
            out = maps[0] if len(maps) == 1 else _normalised(maps[0]) * _normalised(maps[1])
            self.maps[name].append(out.float().cpu())

    def collected(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every method's maps, and each path method's completeness errors and steps, over the batches."""
        maps = {m: torch.cat(v).numpy() for m, v in self.maps.items()}
        completeness = {m: torch.cat(v).numpy() for m, v in self.completeness.items()}
        return maps, completeness, {m: torch.cat(v).numpy() for m, v in self.steps.items()}


def _chosen(scores: torch.Tensor, targets: list[int]) -> torch.Tensor:
    return scores.gather(1, torch.as_tensor(targets, device=scores.device).view(-1, 1))[:, 0]


def _normalised(m: torch.Tensor) -> torch.Tensor:
    """Each image's map divided by its largest absolute value (an all-zero map stays zero)."""
    top = m.flatten(1).abs().amax(dim=1).clamp(min=torch.finfo(m.dtype).tiny)
    return m / top.view(-1, *([1] * (m.dim() - 1)))


def _targets_for(spec: TargetSpec, scores: torch.Tensor, index: list[int], model: nn.Module, x) -> list[int]:
    if spec.kind == "predicted":
        _check_prediction(scores, index, model, x)
        return scores.argmax(dim=1).tolist()
    return [spec.index if spec.kind == "class" else 0] * scores.shape[0]


def _check_prediction(scores: torch.Tensor, index: list[int], model: nn.Module, x: torch.Tensor) -> None:
    """:class:`TargetError` when an image's largest logit is not a finite number (a NaN anywhere, or +inf):
    arg-max would pick a class from NaN (class 0, or the NaN's place) without saying so."""
    bad = torch.isnan(scores).any(dim=1) | torch.isposinf(scores).any(dim=1)
    if not bool(bad.any()):
        return
    j = int(bad.nonzero()[0, 0])
    where = first_nonfinite_module(model, x[j : j + 1])
    raise TargetError(
        f"target 'predicted': the model's output (logits) for image {index[j]} holds "
        f"{describe(scores[j].cpu())}{origin(where)}, so no class "
        "can be predicted from it: fix the model or its weights, or pass a class index (--target N) to compute "
        "the maps of that class all the same"
    )


def _check_settings(settings: mth.Settings) -> None:
    validate.count(settings.steps, "steps", maximum=validate.MAX_STEPS)
    validate.count(settings.samples, "samples", maximum=validate.MAX_STEPS)
    if settings.ig_method not in IG_METHODS:
        raise AttributionError(f"unknown IG integration rule {settings.ig_method!r}: use {', '.join(IG_METHODS)}")
    noise = settings.noise
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise > 0 or not math.isfinite(noise):
        raise AttributionError(f"noise must be a positive number (a fraction of the input range), got {noise!r}")
    if settings.blur_sigma is not None and not (
        isinstance(settings.blur_sigma, (int, float)) and settings.blur_sigma > 0
    ):
        raise AttributionError(f"blur_sigma must be a positive number of pixels, got {settings.blur_sigma!r}")
    mth.check_run(settings.score, settings.channels)


def _check_layer_kind(rec, g, module: str, node: str) -> None:
    """:class:`CamLayerError` when a method that reads ``(N, C, H, W)`` layers as they are (``layer="nchw"``,
    captum's layer methods) meets a layer laid out otherwise."""
    if rec.layer == "nchw" and not is_nchw(g.records[node].layout, len(g.input_size)):
        raise CamLayerError(
            f"{rec.name} ({rec.call.split('(')[0]}) needs a layer whose output is (N, C, H, W) as it is, and the "
            f"output of {module} is laid out otherwise (tokens, windows or channels-last): use "
            "guided_backprop*gradcam, which puts any layout on its grid, or pass another layer"
        )


def _cam_setup(g, model: nn.Module, names: tuple[str, ...], layer: str | None, target: Target | None) -> _Cam | None:
    """The CAM layer: the user's (checked now), or the candidates the first batch chooses from."""
    cams = [n for n in names if mth.uses_layer(n)]
    if not cams:
        return None
    target_node = target.node if target is not None and target.kind == "unit" else None
    if layer is not None:
        module, node = check_layer(g, layer, cams[0], target_node)
        for name in mth.base_methods(cams):
            _check_layer_kind(mth.record(name), g, module, node)
        return _Cam(g, module, node, [], f"{module}: as given")
    start = target_node or g.resolve(default_layer(g, model))
    found = candidates(g, model, start, before=target_node is not None)
    first = "the feature map before the unit's layer" if target_node else "the final feature map"
    if not found and target_node:
        found, first = candidates(g, model, start), "the unit's own layer (no feature map before it)"
    if not found:
        raise CamLayerError(
            f"{cams[0]} needs a feature map with a spatial grid before the target, and the model has "
            "none: pass the CAM layer (layer=..., --cam-layer)"
        )
    return _Cam(g, None, None, found, "", first)


def _labels(images, n: int) -> tuple[str, ...]:
    if isinstance(images, str) and images == "sample":
        k = len(SAMPLE_PHOTOS)
        return tuple(SAMPLE_PHOTOS[i % k] + (f" (view {i})" if i >= k else "") for i in range(n))
    return tuple(f"image {i}" for i in range(n))


def _image_notes(stats) -> list[str]:
    """The image source's notes (skipped files, fewer images than asked for), worded for maps."""
    notes = [n for n in stats.notes() if not n.startswith("asked for")]
    if 0 < stats.used < stats.requested:
        notes.append(
            f"asked for {stats.requested} images, {stats.holder or stats.source} held {stats.used} usable "
            f"image(s): maps for {stats.used}"
        )
    return notes


def _run(
    runner: _Runner, batches, spec: TargetSpec, device: torch.device, progress=None, fixed: list[int] | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int], list[int]]:
    """Run every batch (tensors, or this process's :class:`~rfkit.pipeline.sharded.IndexedBatch` es); returns
    (images, output scores, targets, stream indices) of all batches."""
    xs, outs, chosen, where = [], [], [], []
    dtype = input_dtype(runner.score_model.model)  # a float64 model gets float64 images
    for batch in batches:
        if isinstance(batch, IndexedBatch):
            batch, index = batch.images, batch.index.tolist()
        else:
            index = list(range(len(chosen), len(chosen) + batch.shape[0]))
        if batch.shape[0] == 0:  # none of this step's images is this process's
            continue
        x = batch.to(device, dtype)
        try:
            with torch.no_grad():
                scores = runner.score_model(x)
            targets = (
                fixed[len(chosen) : len(chosen) + len(x)]
                if fixed is not None
                else _targets_for(spec, scores, index, runner.score_model.model, x)
            )
            runner.batch(x, targets, _chosen(scores, targets), index)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            raise DeviceMemoryError(
                f"{device.type} out of memory at batch size {x.shape[0]}: pass a smaller "
                "batch_size (--batch-size), or fewer IG steps / SmoothGrad samples"
            ) from None
        xs.append(batch)
        outs.append(scores.float().cpu())
        chosen += targets
        where += index
        if progress is not None:
            progress(x.shape[0])
    return xs, outs, chosen, where


def _score_model(live: nn.Module, g, target: Target | None, captures, score: str = "logit") -> ScoreModel:
    """The model as the attribution libraries see it (``captures``: how the unit target's layer is caught;
    ``score``: a class target's logit or softmax probability)."""
    if target is not None and target.kind == "unit":
        return unit_model(live, g, target, captures)
    return ScoreModel(live, probability=score == "probability")


def _sanity(
    live,
    prepared: Prepared,
    target,
    runner: _Runner,
    x: torch.Tensor,
    targets: list[int],
    maps: dict,
    k: int,
    seed: int,
    spec: TargetSpec,
    device,
) -> dict:
    from rfkit.attribution.sanity import SanityResult, parameter_layers, randomise, rank_correlation
    from rfkit.models.spec import copy_module

    g = prepared.graph
    target_node = target.node if target is not None and target.kind == "unit" else list(g.records)[-1]
    layers = parameter_layers(g, live, target_node)[-k:]
    twin = copy_module(live)
    randomise(twin, layers, seed)
    other = _Runner(
        _score_model(twin, g, target, prepared.capture(twin), runner.settings.score),
        runner.methods,
        runner.settings,
        runner.data_config,
        runner.sigma,
        runner.cam,
    )
    bs = runner.settings.batch_size
    _run(other, (x[i : i + bs] for i in range(0, len(x), bs)), spec, device, fixed=targets)  # x: stream order
    randomised = other.collected()[0]
    return {m: SanityResult(m, tuple(layers), rank_correlation(maps[m], randomised[m])) for m in maps}


def _faithfulness(
    score_model,
    x: torch.Tensor,
    maps: dict,
    targets: list[int],
    probabilities: bool,
    sigma: float,
    steps: int,
    batch_size: int,
    device,
) -> dict:
    from rfkit.attribution.faithfulness import auc, curves

    def score_fn(t):
        out = score_model(t)
        return out.softmax(dim=1) if probabilities else out

    xd = x.to(device)
    canvas = gaussian_blur(xd, sigma)
    out = {}
    for method, m in maps.items():
        deletion, insertion = curves(score_fn, xd, m, targets, canvas, steps=steps, batch_size=batch_size)
        out[method] = np.stack([auc(deletion), auc(insertion)], axis=1)
    return out


def _cam_notes(cam: _Cam | None) -> list[str]:
    return [cam.warning] if cam is not None and cam.warning else []


def _completeness_note(method: str, err: np.ndarray, steps: np.ndarray, settings: mth.Settings) -> str | None:
    """The warning for a completeness error above :data:`COMPLETENESS_WARN`, or None."""
    worst = np.nanmax(err) if np.isfinite(err).any() else np.nan
    if not worst > COMPLETENESS_WARN:
        return None
    text = f"{method}: completeness error up to {worst:.1%} (> {COMPLETENESS_WARN:.0%})"
    if settings.auto_steps:
        return text + f" at {int(np.max(steps))} steps, the most the automatic steps take: pass more (--steps N)"
    return text + f" at {settings.steps} steps: raise steps (or leave them out: automatic steps)"


def _notes(result_parts: dict, methods, live: nn.Module, settings: mth.Settings) -> list[str]:
    notes = []
    for m, err in result_parts["completeness"].items():
        note = _completeness_note(m, err, result_parts["steps"][m], settings)
        if note:
            notes.append(note)
    for m, share in result_parts["outside_rf"].items():
        if share.max() > 0:
            notes.append(
                f"{m}: RF-window sanity check FAILED: {share.max():.2%} of the map lies outside the unit's "
                "analytic RF window, where the gradient must be zero"
            )
    for m, check in result_parts["sanity"].items():
        if not check.model_sensitive:
            notes.append(
                f"{m}: not model-sensitive (rank correlation {check.mean:.2f} with the maps after "
                f"re-initialising {len(check.layers)} layer(s))"
            )
    for m in mth.base_methods(methods):
        rec = mth.record(m)
        note = rec.note(live) if rec.note is not None else None
        if note:
            notes.append(f"{m}: {note}")
        if rec.target_free:
            notes.append(f"{m}: its map does not depend on the target ({rec.display} reads the layer alone)")
    return notes


def attribute(
    model: str | nn.Module | Prepared,
    images="sample",
    num_images: int = 4,
    methods: str | Sequence[str] = ("saliency",),
    target="predicted",
    layer: str | None = None,
    weights: str = "auto",
    input_size=None,
    baseline="zeros",
    batch_size: int | None = None,
    device="auto",
    *,
    steps: int | None = None,
    ig_method: str = "gausslegendre",
    noise: float = 0.15,
    samples: int = 25,
    blur_sigma: float | None = None,
    score: str = "logit",
    channels: str = "sum",
    options=None,
    sanity: bool = False,
    sanity_layers: int = 3,
    faithfulness: bool = False,
    faithfulness_steps: int = 16,
    seed: int = 0,
    distributed: bool = True,
    progress=None,
    trust: bool = False,
) -> AttributionResult:
    """Per-image contribution maps: which input pixels drove a class logit, or one unit of a layer.

    Parameters
    ----------
    model : str, nn.Module or Prepared
        A spec (timm name[.tag], ``torchvision:NAME``, ``FILE.py:FACTORY``), a module (left exactly as
        found: device, dtype, train/eval mode and ``requires_grad`` are restored, also on error), or a model
        prepared once by :func:`rfkit.prepare` (then ``weights`` and ``input_size`` are its own).
    images : str, path, list of paths or Tensor
        ``"sample"`` (scikit-image photographs, offline), ``"noise"``, a folder, image files, or a
        model-ready tensor (N, C, H, W). See :mod:`rfkit.pipeline.images`.
    num_images : int
        How many images.
    methods : str or list of str
        Registered method names (:func:`rfkit.attribution.methods.method_names`: ``saliency``,
        ``input_x_gradient``, ``smoothgrad``, ``guided_backprop``, ``ig``, ``blur_ig``, ``blur_ig_pair``,
        ``guided_ig``, ``xrai``, ``occlusion``, ``gradcam``, ``gradcam++``, ``hirescam``, ``xgradcam``,
        ``layercam``, ``scorecam``, ``eigengradcam``, ``eigencam``, ``ablationcam``, ``fullgrad``,
        ``guided_gradcam``), or ``GRADIENT*CAM`` products; a list or a comma-separated string.
    target : int, str or (str, tuple)
        A class index, ``"predicted"`` (each image's arg-max class), ``"LAYER"`` (the layer's centre unit,
        the ERF's rule), ``"LAYER@i,j"`` or ``(LAYER, (i, j))``. A unit's score is its channel sum (signed).
    layer : str, optional
        The CAM methods' layer (a module); default: the final feature map the score depends on position by
        position (:mod:`rfkit.attribution.cam`); for a unit target, the one before the unit's layer.
    weights : str
        ``"auto"``, ``"pretrained"``, ``"random"``, ``"random-safe"`` or a checkpoint path
        (:func:`rfkit.models.weights.load_model`).
    input_size : int or (h, w), optional
        Override the model's input size (the preprocessing follows).
    baseline : str or Tensor
        The baseline of IG and Guided IG and Occlusion's fill: ``"zeros"`` (model-input space), ``"black"``,
        ``"blur"``, or a tensor ``(C, H, W)``.
    batch_size : int, optional
        Inputs per forward pass (default: 32 CUDA, 16 MPS, up to 8 CPU as memory allows). Does not change the
        maps.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda:1"``, ...
    steps : int, optional
        Path steps of the path methods (IG, Blur IG, Guided IG), used as given. Default: automatic, from 50
        steps, doubled image by image until the completeness error is under 5%, up to 512 (the steps each
        image got are in ``result.steps``; an error still above 5% at 512 is warned about).
    ig_method : str
        captum's integration rule: ``"gausslegendre"`` or a Riemann rule.
    noise, samples : float, int
        SmoothGrad's noise (fraction of the input range) and number of samples.
    blur_sigma : float, optional
        Blur IG's largest blur in pixels (default 50 at 224 px, in proportion).
    score : str
        What a class target's maps explain: ``"logit"`` (pre-softmax) or ``"probability"`` (its softmax
        probability, seed 002's Blur IG target). Unit targets are the unit's value.
    channels : str
        How a per-channel attribution becomes one map: ``"sum"`` (signed sum over colour channels) or
        ``"max_relu_minmax"`` (seed 002's rule: the largest channel value, ReLU, each map rescaled to [0, 1];
        pixel and CAM maps get the ReLU and the rescaling).
    options : mapping or list of str, optional
        Methods' own options: ``{"occlusion": {"window": 8}}``, ``{"occlusion.window": 8}`` or
        ``["occlusion.window=8"]`` (each record's ``options``; docs/attribution.md lists them).
    sanity : bool
        Run the model-randomisation check (:mod:`rfkit.attribution.sanity`) on ``sanity_layers`` layers.
    faithfulness : bool
        Deletion/insertion AUC per method and image (:mod:`rfkit.attribution.faithfulness`), with
        ``faithfulness_steps`` steps.
    seed : int
        Seeds random weights, ``"noise"`` images, SmoothGrad's noise (image by image: the maps do not depend on
        the batch size) and the sanity check's re-initialisation.
    distributed : bool
        Under torchrun (``WORLD_SIZE`` > 1), each process computes the maps of its share of the images
        (:mod:`rfkit.pipeline.sharded`), and every process returns all of them, in stream order, as one process
        would; the sanity and faithfulness checks then run on every process over all the images. False: this
        process computes every map alone.
    progress : callable, optional
        Called with the number of images after each batch.
    trust : bool
        Build a spec whose file runs code (``FILE.py:FACTORY``: the file is imported; ``ultralytics:PATH.pt``
        or a yaml rfkit did not ship): refused unless you trust the file (:func:`rfkit.prepare`).

    Returns
    -------
    AttributionResult

    Raises
    ------
    MethodError, TargetError, CamLayerError, BaselineError
        Unknown method (close matches named) or option, a model the method cannot run on (FullGrad's bias
        layers), class outside the head, a unit target for a method that takes classes only, unit outside the
        grid, a CAM method on a layer with no grid, an IG baseline of the wrong shape.

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                     nn.Linear(4, 5))
    >>> res = rfkit.attribute(net, images="noise", num_images=2, methods="saliency,ig,gradcam", input_size=16,
    ...                       device="cpu", steps=8)
    >>> res.maps["ig"].shape, res.cam_layer, [t.kind for t in res.targets]
    ((2, 16, 16), '1', ['class', 'class'])
    """
    names, spec, settings = _arguments(
        model,
        methods,
        target,
        num_images,
        batch_size,
        sanity_layers,
        faithfulness_steps,
        mth.Settings(
            steps=mth.DEFAULT_STEPS if steps is None else steps,
            auto_steps=steps is None,
            ig_method=ig_method,
            baseline=baseline,
            noise=noise,
            samples=samples,
            blur_sigma=blur_sigma,
            seed=seed,
            score=score,
            channels=channels,
        ),
        options,
    )
    run = _setup(model, weights, input_size, device, seed, spec, names, layer, batch_size, settings, trust)
    checks = _Checks(sanity, sanity_layers, faithfulness, faithfulness_steps)
    stats = ImageStats(source=str(images), requested=num_images)
    module, dev = run.prepared.model, run.device
    world = current_world(dev) if distributed else SINGLE
    with frozen(module, dev if model_device(module) != dev else None) as live:
        batches = run.prepared.image_shards(
            images,
            num_images,
            run.settings.batch_size,
            world,
            seed=seed,
            stats=stats,
            workers=decode_workers(dev),
            pin_memory=dev.type == "cuda",
        )
        found = _measure(run, live, batches, spec, checks, seed, progress, world)
        notes = _image_notes(stats) + _cam_notes(run.cam) + _notes(found.parts, names, live, run.settings)
        nonfinite = _nonfinite_notes(found, run, live, _labels(images, len(found.chosen)))
    for n in notes:
        warnings.warn(n, stacklevel=2)
    for n in nonfinite:
        warnings.warn(n, NonFiniteWarning, stacklevel=2)
    return _result(run, found, images, stats.source, nonfinite + notes)


def _image(i: int, labels: tuple[str, ...]) -> str:
    """``image 3``, with its label when it says more (``image 0 (astronaut)``)."""
    return f"image {i}" if labels[i] == f"image {i}" else f"image {i} ({labels[i]})"


def _nonfinite_notes(found: _Found, run: _Run, live: nn.Module, labels: tuple[str, ...]) -> list[str]:
    """One warning for a model output that is not finite (NaN anywhere, or the target's score NaN or inf),
    naming the first image and the first module whose output is not finite on it, and one per method whose maps
    are not finite, naming the first image."""
    notes = []
    outputs = found.outputs.numpy()
    scores = _chosen(found.outputs, found.chosen).numpy()
    bad = ~np.isfinite(scores) | np.isnan(outputs).any(axis=1)  # -inf on another class is a mask, not a fault
    if bad.any():
        i = int(np.argmax(bad))
        x = found.x[i : i + 1].to(run.device, input_dtype(live))
        where = first_nonfinite_module(live, x)
        what = "the unit's score" if run.unit else "the logits"
        notes.append(
            f"non-finite model output: {what} of {_image(i, labels)} {'holds' if run.unit else 'hold'} "
            f"{describe(outputs[i])}{origin(where)}; "
            f"{int(bad.sum())} of {len(bad)} image(s) (score_finite = False in attribution.csv where the target's "
            "score is not a number)"
        )
    for m, maps in found.maps.items():
        bad = nonfinite_images(maps)
        if bad.any():
            i = int(np.argmax(bad))
            notes.append(
                f"non-finite map: {m} of {_image(i, labels)} holds {describe(maps[i], 'pixels')}; "
                f"{int(bad.sum())} of {len(bad)} image(s) (map_finite = False in attribution.csv, marked "
                "'non-finite' in the figure)"
            )
    return notes


@dataclass(frozen=True)
class _Checks:
    """Which checks to run on the maps, and their sizes."""

    sanity: bool
    sanity_layers: int
    faithfulness: bool
    faithfulness_steps: int


@dataclass
class _Found:
    """What one run measured: the images, their scores and targets, every method's maps and checks."""

    x: torch.Tensor
    outputs: torch.Tensor
    chosen: list[int]
    maps: dict
    aucs: dict
    window: tuple | None
    parts: dict


def _measure(
    run: _Run, live: nn.Module, batches, spec: TargetSpec, checks: _Checks, seed: int, progress, world: World = SINGLE
) -> _Found:
    """Every method's maps over ``batches`` on the live model (under torchrun: this process's share, then
    every process's, in stream order), then the checks asked for."""
    g, dev, unit_target = run.prepared.graph, run.device, run.unit
    score_model = _score_model(live, g, unit_target, run.prepared.capture(live), run.settings.score)
    runner = _Runner(score_model, run.names, run.settings, run.prepared.data_config, run.sigma, run.cam)
    xs, outs, chosen, where = _run(runner, batches, spec, dev, progress)
    maps, completeness, steps = runner.collected() if xs else ({}, {}, {})
    rows = {"x": torch.cat(xs).numpy() if xs else None, "outs": torch.cat(outs).numpy() if outs else None}
    rows |= {f"map:{m}": v for m, v in maps.items()} | {f"completeness:{m}": v for m, v in completeness.items()}
    rows |= {f"steps:{m}": v for m, v in steps.items()}
    rows["chosen"] = np.asarray(chosen, dtype=np.int64)
    where, rows = gather_rows(np.asarray(where, dtype=np.int64), rows, world)
    if not len(where):
        raise AttributionError("no images were processed")
    x, outs, chosen = torch.from_numpy(rows["x"]), [torch.from_numpy(rows["outs"])], rows["chosen"].tolist()
    maps = {k.split(":", 1)[1]: v for k, v in rows.items() if k.startswith("map:")}
    completeness = {k.split(":", 1)[1]: v for k, v in rows.items() if k.startswith("completeness:")}
    steps = {k.split(":", 1)[1]: v for k, v in rows.items() if k.startswith("steps:")}
    sanity = (
        _sanity(live, run.prepared, unit_target, runner, x, chosen, maps, checks.sanity_layers, seed, spec, dev)
        if checks.sanity
        else {}
    )
    aucs = (
        _faithfulness(
            score_model,
            x,
            maps,
            chosen,
            unit_target is None and run.settings.score == "logit",  # softmax of logits; probabilities as they are
            run.sigma,
            checks.faithfulness_steps,
            run.settings.batch_size,
            dev,
        )
        if checks.faithfulness
        else {}
    )
    window = _window(g, unit_target)
    parts = {
        "completeness": completeness,
        "steps": steps,
        "outside_rf": _outside(maps, run.names, window),
        "sanity": sanity,
    }
    return _Found(x, torch.cat(outs), chosen, maps, aucs, window, parts)


def _result(run: _Run, found: _Found, images, source: str, notes: list[str]) -> AttributionResult:
    unit_target, chosen, outputs = run.unit, found.chosen, found.outputs
    weights = run.prepared.weights
    return AttributionResult(
        model=run.prepared.name,
        maps=found.maps,
        targets=_targets(unit_target, chosen, run.classes),
        scores=_chosen(outputs, chosen).numpy().astype(np.float64),
        logits=None if unit_target else outputs.numpy(),
        images=found.x.numpy(),
        labels=_labels(images, len(chosen)),
        source=source,
        weights=weights,
        data_config=dict(run.prepared.data_config),
        settings=run.settings,
        cam_layer=run.cam.module if run.cam else None,
        cam_note=run.cam.note if run.cam else "",
        window=found.window,
        completeness=found.parts["completeness"],
        steps=found.parts["steps"],
        outside_rf=found.parts["outside_rf"],
        sanity=found.parts["sanity"],
        faithfulness=found.aucs,
        warnings=tuple(dict.fromkeys(list(weights.warnings) + notes)),
        device=str(run.device),
        graph=run.prepared.graph,
    )


def _arguments(
    model, methods, target, num_images, batch_size, sanity_layers, faithfulness_steps, settings: mth.Settings, options
) -> tuple[tuple[str, ...], TargetSpec, mth.Settings]:
    """The arguments that need no model, checked: method names, the target as asked for, the settings (with
    every method's options)."""
    check_model(model)
    names = mth.parse_methods(methods)
    settings = replace(settings, options=mth.parse_options(options, names))
    spec = parse_target(target)
    validate.count(num_images, "num_images")
    validate.count(batch_size, "batch_size", maximum=validate.MAX_BATCH, optional=True)
    validate.count(sanity_layers, "sanity_layers")
    validate.count(faithfulness_steps, "faithfulness_steps", maximum=validate.MAX_STEPS)
    _check_settings(settings)
    return names, spec, settings


@dataclass
class _Run:
    """The prepared model, with everything checked against it."""

    prepared: Prepared
    names: tuple[str, ...]
    device: torch.device
    unit: Target | None
    classes: int | None
    cam: _Cam | None
    settings: mth.Settings
    sigma: float


def _setup(
    model,
    weights,
    input_size,
    device,
    seed,
    spec: TargetSpec,
    names,
    layer,
    batch_size,
    settings: mth.Settings,
    trust: bool = False,
) -> _Run:
    """Prepare the model (or take it prepared); check the baseline, the target and the CAM layer against it."""
    dev = resolve_device(device)
    prepared = prepare(model, weights, input_size, seed=seed, trust=trust)
    if prepared.data_config is None:
        raise AttributionError(f"{prepared.name} takes {len(prepared.input_size)}-D inputs: attribution needs images")
    check_baseline(settings.baseline, tuple(prepared.data_config["input_size"]))
    g, module = prepared.graph, prepared.model
    unit = resolve_unit(spec, g, module) if spec.kind == "unit" else None
    classes = None if unit else num_classes(g)
    if spec.kind == "class":
        check_class(spec.index, classes)
    _check_methods(names, spec, settings, module, g)
    cam = _cam_setup(g, module, names, layer, unit)
    check_one_image_fits(g, dev)
    settings = mth.Settings(**{**settings.__dict__, "batch_size": batch_size or auto_batch_size(g, dev)})
    sigma = settings.blur_sigma or default_sigma(prepared.input_size)
    return _Run(prepared, names, dev, unit, classes, cam, settings, sigma)


def _check_methods(names, spec: TargetSpec, settings: mth.Settings, module: nn.Module, g) -> None:
    """Each method's record against the target and the model: the target kinds it takes, its model check."""
    if spec.kind == "unit" and settings.score != "logit":
        raise TargetError(
            f"score={settings.score!r} is for class targets; a unit target's score is the unit's value: "
            "pass a class index or 'predicted', or leave score as 'logit'"
        )
    kind = "unit" if spec.kind == "unit" else "class"
    for name in mth.base_methods(names):
        rec = mth.record(name)
        if kind not in rec.targets:
            raise TargetError(
                f"{name} takes {' or '.join(sorted(rec.targets))} targets only ({rec.needs}); "
                f"pass a class index or 'predicted'"
            )
        if rec.check is not None:
            rec.check(module, g)


def _targets(unit: Target | None, chosen: list[int], classes: int | None) -> tuple[Target, ...]:
    if unit is not None:
        return tuple(unit for _ in chosen)
    return tuple(Target("class", index=t, name=class_name(t, classes)) for t in chosen)


def _outside(maps: dict, names, window) -> dict:
    """The RF-window check of every gradient method's maps (empty without a window)."""
    from rfkit.attribution.sanity import outside_fraction

    if window is None:
        return {}
    return {m: outside_fraction(maps[m], window) for m in names if mth.zero_outside_rf(m)}


def _window(g, target: Target | None):
    """The unit's analytic RF window, or None (class target, or a unit with no local RF)."""
    if target is None:
        return None
    info = g[target.node]
    if info.is_global or info.unknown or info.windows is None:
        return None
    return info.window_of(target.unit)
