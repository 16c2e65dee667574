"""Hugging Face transformers vision models (extra ``rfkit[transformers]``).

A ``transformers:`` spec names one of

- a model class, built from its default config at random init, offline: ``transformers:ViTModel``,
  ``transformers:SegformerForSemanticSegmentation``;
- a hub checkpoint, ``transformers:ORG/NAME`` (optionally ``@REVISION``): its config and, for pretrained weights,
  its weights, from the hub or the local Hugging Face cache;
- a local folder holding ``config.json`` (and, for pretrained weights, ``model.safetensors`` or
  ``pytorch_model.bin``, optionally sharded): ``transformers:./my-segformer``.

Any of them takes config overrides after ``?``, ``KEY=VALUE`` pairs joined by ``&``; a dotted key reaches into a
sub-config, values are Python literals (numbers, lists, ``True``):
``transformers:ViTModel?image_size=64&hidden_size=32``,
``transformers:UperNetForSemanticSegmentation?backbone_config.depths=[1,1,1,1]``.

A transformers model takes ``pixel_values`` and returns a ``ModelOutput``; rfkit sees it through
:func:`rfkit.models.transformers_view.tensor_view` (the image tensor in, one tensor out), with its image
processor as the data config (:mod:`rfkit.models.transformers_processor`).

Code runs only from the transformers package: a config that names custom modelling code (``auto_map``) is
refused unless ``trust=True``. Weight files are data: ``model.safetensors``, and ``pytorch_model.bin``, which
transformers reads with ``torch.load(weights_only=True)``, as rfkit reads ``.pt`` checkpoints (a pickle that
names code is refused).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch.nn as nn

from rfkit.errors import CheckpointError, ModelBuildError, ModelNotFoundError, UntrustedFileError
from rfkit.models.transformers_view import tensor_view

PREFIX = "transformers:"
INSTALL = "pip install 'rfkit[transformers]' (or pip install transformers)"
#: Weight files of a checkpoint folder, in the order transformers prefers them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: transformers' task mappings (``modeling_auto``) whose classes take images only.
VISION_MAPPINGS = (
    "MODEL_FOR_IMAGE_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
    "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
    "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES",
    "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES",
    "MODEL_FOR_BACKBONE_MAPPING_NAMES",
    "MODEL_FOR_MASKED_IMAGE_MODELING_MAPPING_NAMES",
    "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
    "MODEL_FOR_KEYPOINT_DETECTION_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES",
)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")
_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def require_transformers():
    """The transformers package, or a one-line :class:`~rfkit.errors.ModelBuildError` saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ModelBuildError(f"transformers: specs need the transformers package: {INSTALL}") from None
    return transformers


# ---------------------------------------------------------------------------------------------------------
# specs


@dataclass(frozen=True)
class HFTarget:
    """What a ``transformers:`` spec names.

    Attributes
    ----------
    kind : str
        ``"class"``, ``"hub"`` or ``"folder"``.
    name : str
        The class name, the hub repository id, or the folder.
    revision : str or None
        A hub revision (``ORG/NAME@REVISION``).
    overrides : tuple of (key, value)
        Config overrides, in the order given.
    """

    kind: str
    name: str
    revision: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()


def parse_target(text: str) -> HFTarget:
    """Parse what follows ``transformers:`` in a spec.

    An existing folder wins over a hub id of the same spelling (as in transformers' ``from_pretrained``); a
    name that starts with ``.``, ``/`` or ``~`` is a folder even when it does not exist (so that the error
    says so).

    Raises
    ------
    ModelNotFoundError
        Nothing after the colon, or malformed overrides.

    Examples
    --------
    >>> parse_target("ViTModel?image_size=64&hidden_size=32")
    HFTarget(kind='class', name='ViTModel', revision=None, overrides=(('image_size', 64), ('hidden_size', 32)))
    >>> parse_target("facebook/dinov2-small@main").kind, parse_target("./no/such/folder").kind
    ('hub', 'folder')
    """
    base, sep, query = text.strip().partition("?")
    overrides = parse_overrides(query, text) if sep else ()
    if not base:
        raise ModelNotFoundError(
            "transformers: needs a model: transformers:CLASS (e.g. transformers:ViTModel), transformers:ORG/NAME "
            "or transformers:FOLDER"
        )
    path = Path(base).expanduser()
    if path.is_dir() or base.startswith((".", "/", "~")) or path.is_file():
        return HFTarget("folder", str(path), None, overrides)
    if _HUB_ID.fullmatch(base):
        repo, _, revision = base.partition("@")
        return HFTarget("hub", repo, revision or None, overrides)
    if base.isidentifier():
        return HFTarget("class", base, None, overrides)
    raise ModelNotFoundError(
        f"transformers:{base} is neither a model class (transformers:ViTModel), a hub id (transformers:ORG/NAME) "
        "nor an existing folder"
    )


def parse_overrides(query: str, spec: str = "") -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE&KEY=VALUE`` -> ((key, value), ...); values are Python literals where they parse as one
    (``64``, ``0.1``, ``[1, 1]``, ``True``; also ``true``/``false``/``none``), else strings.

    >>> parse_overrides("depths=[1,1]&hidden_act=gelu&qkv_bias=false&backbone_config.out_indices=(1,2)")
    (('depths', [1, 1]), ('hidden_act', 'gelu'), ('qkv_bias', False), ('backbone_config.out_indices', (1, 2)))
    """
    out = []
    for part in query.split("&"):
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise ModelNotFoundError(
                f"config override {part!r} in {PREFIX}{spec} is not KEY=VALUE: write "
                f"{PREFIX}CLASS?KEY=VALUE&KEY=VALUE (e.g. {PREFIX}ViTModel?image_size=64&hidden_size=32)"
            )
        out.append((key, _literal(raw.strip())))
    return tuple(out)


def _literal(raw: str) -> Any:
    words = {"true": True, "false": False, "none": None, "null": None}
    if raw.lower() in words:
        return words[raw.lower()]
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


# ---------------------------------------------------------------------------------------------------------
# names


@cache
def vision_classes() -> tuple[str, ...]:
    """Names of the model classes transformers maps to a vision task (images in, no text), sorted.

    >>> "SegformerForSemanticSegmentation" in vision_classes(), "BertModel" in vision_classes()
    (True, False)
    """
    auto = _modeling_auto()
    names: set[str] = set()
    for mapping in VISION_MAPPINGS:
        for value in getattr(auto, mapping, {}).values():
            names.update([value] if isinstance(value, str) else value)
    return tuple(sorted(names))


def image_classes(pattern: str | None = None, left_out: list | None = None) -> list[str]:
    """The :func:`vision_classes` matching the wildcard ``pattern`` whose forward takes images alone (each one's
    module is imported to read its signature: a few seconds for all of them); ``left_out`` gets ``(name, why)``
    for the others.

    >>> image_classes("Segformer*")
    ['SegformerForImageClassification', 'SegformerForSemanticSegmentation', 'SegformerModel']
    """
    import fnmatch

    tf = require_transformers()
    out = []
    for name in vision_classes():
        if pattern is not None and not fnmatch.fnmatch(name, pattern):
            continue
        try:
            check_takes_images(getattr(tf, name))
        except (ModelBuildError, AttributeError, ImportError, RuntimeError) as e:
            if left_out is not None:
                left_out.append((name, str(e) if isinstance(e, ModelBuildError) else _first_line(e)))
            continue
        out.append(name)
    return out


def _modeling_auto():
    require_transformers()
    from transformers.models.auto import modeling_auto

    return modeling_auto


def _close(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.6)
    return f" Close matches: {', '.join(close)}." if close else ""


def model_class(name: str) -> type:
    """The transformers model class ``name``, checked to take images.

    Raises
    ------
    ModelNotFoundError
        transformers has no model class of that name (close matches listed).
    ModelBuildError
        The class does not take ``pixel_values`` alone (a text model, or one that needs more inputs).
    """
    tf = require_transformers()
    try:
        cls = getattr(tf, name)
    except (AttributeError, ImportError, RuntimeError):
        cls = None
    if not (inspect.isclass(cls) and issubclass(cls, tf.PreTrainedModel)):
        raise ModelNotFoundError(
            f"unknown transformers model class {name!r}.{_close(name, vision_classes())} "
            "`rfkit list-models --source transformers` lists the vision classes."
        )
    check_takes_images(cls)
    return cls


def check_takes_images(cls: type) -> None:
    """Raise :class:`~rfkit.errors.ModelBuildError` unless ``cls.forward`` takes ``pixel_values`` and nothing else
    it needs."""
    params = list(inspect.signature(cls.forward).parameters.values())[1:]
    names = [p.name for p in params]
    if "pixel_values" not in names:
        raise ModelBuildError(
            f"transformers {cls.__name__} does not take images (its forward has no pixel_values): "
            "use a vision class (`rfkit list-models --source transformers`)"
        )
    if names[0] != "pixel_values":
        raise ModelBuildError(
            f"transformers {cls.__name__} takes {names[0]} before pixel_values; rfkit feeds images only: "
            "use its vision model (e.g. CLIPVisionModel rather than CLIPModel)"
        )
    needed = [
        p.name
        for p in params[1:]
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if needed:
        raise ModelBuildError(
            f"transformers {cls.__name__} needs {', '.join(needed)} besides pixel_values; rfkit feeds images only: "
            "use its vision model (e.g. CLIPVisionModel rather than CLIPModel)"
        )


# ---------------------------------------------------------------------------------------------------------
# configs


def _config_key_error(cls: type, key: str, known) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{cls.__name__} has no config field {key!r}.{_close(key, known)} Fields: see {cls.__name__}().to_dict()"
    )


def configured(cls: type, raw: dict | None, overrides) -> Any:
    """A config of class ``cls`` from ``raw`` (a config.json's dict; None: the class defaults) with
    ``overrides`` applied.

    Fields the config computes from others (Swin's ``hidden_size`` from ``embed_dim``) are computed again:
    a field of ``raw`` that the overrides change in the default config is dropped from ``raw``.

    Raises
    ------
    ModelNotFoundError
        An override names no field of the config (close matches listed).
    ModelBuildError
        The config refuses a value.
    """
    overrides = list(overrides)
    try:
        default = cls()
        if not overrides:
            return cls.from_dict(dict(raw)) if raw is not None else default
        known = set(default.to_dict()) | {n for n in dir(default) if not n.startswith("_")}
        top: dict[str, Any] = {}
        nested: dict[str, list] = {}
        for key, value in overrides:
            head, _, rest = key.partition(".")
            if head not in known:
                raise _config_key_error(cls, head, known)
            if rest:
                nested.setdefault(head, []).append((rest, value))
            else:
                top[head] = value
        data = dict(raw) if raw is not None else {}
        if top:
            base, changed = default.to_dict(), cls(**top).to_dict()
            derived = {k for k, v in changed.items() if k not in top and base.get(k) != v}
            data = {k: v for k, v in data.items() if k not in derived}
        data.update(top)
        for head, items in nested.items():
            data[head] = _sub_config(cls, default, head, data.get(head), items)
        return cls.from_dict(data) if raw is not None else cls(**data)
    except (ModelNotFoundError, ModelBuildError):
        raise
    except Exception as e:  # noqa: BLE001 - the config's own validation
        raise ModelBuildError(f"{cls.__name__} refuses the overrides {dict(overrides)}: {_first_line(e)}") from e


def _sub_config(cls: type, default, head: str, current, items) -> Any:
    from transformers import CONFIG_MAPPING, PretrainedConfig

    sub_default = getattr(default, head, None)
    if isinstance(current, PretrainedConfig):
        current = current.to_dict()
    if isinstance(current, dict) and current.get("model_type") in CONFIG_MAPPING:
        sub_cls = CONFIG_MAPPING[current["model_type"]]
    elif isinstance(sub_default, PretrainedConfig):
        sub_cls = type(sub_default)
        current = current if isinstance(current, dict) else sub_default.to_dict()
    else:
        raise ModelNotFoundError(f"{cls.__name__}.{head} is not a sub-config: {head}.KEY=VALUE cannot set it")
    return configured(sub_cls, current, items)


def _offline_config(config) -> None:
    """Build without fetching anything: no pretrained backbone (DETR, Mask2Former, ... would download one)."""
    from transformers import PretrainedConfig

    for name in ("use_pretrained_backbone",):
        if getattr(config, name, False):
            setattr(config, name, False)
    for value in list(vars(config).values()):
        if isinstance(value, PretrainedConfig):
            _offline_config(value)


def _set_image_size(config, img_size) -> None:
    """Build a model with a fixed input grid (position embeddings) for the asked input size."""
    if img_size is None or not isinstance(getattr(config, "image_size", None), (int, list, tuple)):
        return
    h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    kind = type(config.image_size)  # strict configs (Hiera) take only the type they declare
    config.image_size = h if kind is int and h == w else kind([h, w]) if kind in (list, tuple) else [h, w]


# ---------------------------------------------------------------------------------------------------------
# hub and folders


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelBuildError(f"cannot read {what} {path}: {_first_line(e)}") from e
    if not isinstance(data, dict):
        raise ModelBuildError(f"{what} {path} is not a JSON object")
    return data


def _folder(target: HFTarget) -> Path:
    folder = Path(target.name)
    if not folder.exists():
        raise ModelNotFoundError(
            f"{PREFIX}{target.name}: no such folder (a transformers checkpoint folder holds config.json and "
            "model.safetensors: model.save_pretrained(FOLDER))"
        )
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"{PREFIX}{target.name} is a file, not a folder: name the folder that holds config.json"
        )
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"{PREFIX}{target.name} holds no config.json: not a transformers checkpoint folder "
            "(model.save_pretrained(FOLDER) writes one)"
        )
    return folder


def _hub_file(target: HFTarget, filename: str, offline_why: str | None) -> Path | None:
    """A file of a hub repository: from the local cache, or downloaded when online; None if the repository
    has no such file."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    cached = try_to_load_from_cache(target.name, filename, revision=target.revision)
    if isinstance(cached, str):
        return Path(cached)
    if offline_why:
        if filename == "config.json":
            raise ModelBuildError(
                f"{PREFIX}{target.name} cannot be built: {offline_why}, and its config.json is not in the local "
                f"Hugging Face cache; go online once, or save it to a folder (model.save_pretrained(FOLDER)) "
                f"and use {PREFIX}FOLDER, or use {PREFIX}CLASS for random init"
            )
        return None
    try:
        return Path(hf_hub_download(target.name, filename, revision=target.revision))
    except EntryNotFoundError:
        return None
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"{PREFIX}{target.name}: no such model repository on the Hugging Face hub (or it is private: "
            "log in with `hf auth login`)"
        ) from e
    except LocalEntryNotFoundError:
        return None


def hub_offline_reason() -> str | None:
    """Why the Hugging Face hub cannot be reached (HF_HUB_OFFLINE, or no answer within rfkit's network
    timeout), or None when it can."""
    from huggingface_hub import constants

    from rfkit.models.weights import _hub_offline_env, _unreachable

    return "HF_HUB_OFFLINE is set" if _hub_offline_env() else _unreachable(constants.ENDPOINT)


def raw_config(target: HFTarget) -> dict:
    """The config.json of a hub or folder target, as a dict."""
    if target.kind == "folder":
        return _read_json(_folder(target) / "config.json", "config")
    return _read_json(_hub_file(target, "config.json", hub_offline_reason()), "config")


def processor_dict(target: HFTarget) -> dict | None:
    """The image processor config (preprocessor_config.json) of a hub or folder target; None without one."""
    if target.kind == "folder":
        path = _folder(target) / "preprocessor_config.json"
        return _read_json(path, "image processor config") if path.is_file() else None
    if target.kind == "hub":
        path = _hub_file(target, "preprocessor_config.json", hub_offline_reason())
        return _read_json(path, "image processor config") if path else None
    return None


def weight_file(target: HFTarget) -> str | None:
    """The weight file a hub or folder checkpoint has (the first of :data:`WEIGHT_FILES`), or None."""
    if target.kind == "folder":
        folder = _folder(target)
        return next((n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    why = hub_offline_reason()
    for name in WEIGHT_FILES:
        if _hub_file(target, name, why):
            return name
    return None


def _architecture(target: HFTarget, raw: dict, trust: bool) -> tuple[type, type]:
    """(model class, config class) of a checkpoint's config.json: its ``architectures[0]`` from transformers, or
    its custom code (``auto_map``) with ``trust``."""
    from transformers import CONFIG_MAPPING

    arch = (raw.get("architectures") or [None])[0]
    auto_map = raw.get("auto_map") or {}
    model_type = raw.get("model_type")
    if auto_map and (model_type not in CONFIG_MAPPING or not _in_transformers(arch)):
        if not trust:
            raise UntrustedFileError(
                f"{PREFIX}{target.name}: its config names custom modelling code (auto_map), which rfkit runs only "
                "when told to trust it (trust=True, --trust)"
            )
        return _custom_classes(target, raw, arch, auto_map)
    if model_type not in CONFIG_MAPPING:
        raise ModelBuildError(
            f"{PREFIX}{target.name}: config.json has model_type {model_type!r}, which this transformers "
            f"does not know.{_close(str(model_type), CONFIG_MAPPING.keys())} Upgrade transformers?"
        )
    config_cls = CONFIG_MAPPING[model_type]
    if arch is None:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

        arch = MODEL_MAPPING_NAMES.get(model_type)
        arch = arch if isinstance(arch, str) else (arch or [None])[0]
    if not _in_transformers(arch):
        raise ModelBuildError(f"{PREFIX}{target.name}: config.json names no transformers model class ({arch!r})")
    return model_class(arch), config_cls


def _in_transformers(name) -> bool:
    import transformers

    try:
        return isinstance(name, str) and inspect.isclass(getattr(transformers, name))
    except (AttributeError, ImportError, RuntimeError):
        return False


def _custom_classes(target: HFTarget, raw: dict, arch, auto_map: dict) -> tuple[type, type]:
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    refs = list(auto_map.values())
    model_ref = next((r for r in refs if isinstance(r, str) and r.rsplit(".", 1)[-1] == arch), None)
    model_ref = model_ref or auto_map.get("AutoModel")
    if not model_ref or "AutoConfig" not in auto_map:
        raise ModelBuildError(f"{PREFIX}{target.name}: its auto_map names no model class and config class")
    try:
        model_cls = get_class_from_dynamic_module(model_ref, target.name, revision=target.revision)
        config_cls = get_class_from_dynamic_module(auto_map["AutoConfig"], target.name, revision=target.revision)
    except Exception as e:  # noqa: BLE001 - the custom code's import
        raise ModelBuildError(f"{PREFIX}{target.name}: importing its custom code failed: {_first_line(e)}") from e
    check_takes_images(model_cls)
    return model_cls, config_cls


# ---------------------------------------------------------------------------------------------------------
# building


def build_transformers(name: str, *, pretrained: bool = False, trust: bool = False, img_size=None) -> nn.Module:
    """Build the model a ``transformers:`` spec names (``name``: what follows the colon), as a
    :func:`~rfkit.models.transformers_view.tensor_view`, in eval mode.

    Parameters
    ----------
    name : str
        ``CLASS``, ``ORG/NAME[@REVISION]`` or a folder, with optional ``?KEY=VALUE&...`` config overrides.
    pretrained : bool
        Load the checkpoint's weights (hub or folder; a class has none). Otherwise the model is built from its
        config at random init (transformers' own init scheme), without fetching weights.
    trust : bool
        Allow custom modelling code a config names (``auto_map``; ``trust_remote_code``).
    img_size : int or (h, w), optional
        For a model built from its config, the ``image_size`` of configs that have one (a fixed grid of
        position embeddings); pretrained weights keep theirs and are interpolated in the forward instead.

    Raises
    ------
    ModelNotFoundError, ModelBuildError, UntrustedFileError, CheckpointError

    Examples
    --------
    >>> import torch
    >>> m = build_transformers("ViTModel?image_size=32&patch_size=8&hidden_size=16&num_hidden_layers=1"
    ...                        "&num_attention_heads=2&intermediate_size=32")
    >>> y = m(torch.zeros(1, 3, 32, 32))
    >>> type(m).__name__, tuple(y.shape), m.pretrained_cfg["input_size"]
    ('ViTModel', (1, 17, 16), (3, 32, 32))
    """
    target = parse_target(name)
    require_transformers()
    if target.kind == "class":
        if pretrained:
            raise ModelBuildError(f"{PREFIX}{name} names a class, which has no pretrained weights")
        cls = model_class(target.name)
        config = configured(cls.config_class, None, target.overrides)
        processor = None
    else:
        raw = raw_config(target)
        cls, config_cls = _architecture(target, raw, trust)
        config = configured(config_cls, raw, target.overrides)
        processor = processor_dict(target)
    _offline_config(config)
    if pretrained:
        model = _from_pretrained(cls, target, config, trust)
    else:
        _set_image_size(config, img_size)
        model = _from_config(cls, config)
    view = tensor_view(model)
    view.rfkit_processor = processor
    return view.eval()


def _from_config(cls: type, config) -> nn.Module:
    try:
        return cls(config)
    except Exception as e:  # noqa: BLE001 - the model's own constructor
        raise ModelBuildError(f"building transformers {cls.__name__} failed: {_first_line(e)}") from e


def _from_pretrained(cls: type, target: HFTarget, config, trust: bool) -> nn.Module:
    """The checkpoint's weights (``from_pretrained``; weights-only loading). Parameters the checkpoint lacks
    are listed in ``model.rfkit_loading_notes``."""
    if target.kind == "folder" and not weight_file(target):
        raise CheckpointError(
            f"{PREFIX}{target.name} holds no weights ({', '.join(WEIGHT_FILES[::2])}): only its config"
        )
    try:
        model, info = cls.from_pretrained(
            target.name,
            config=config,
            revision=target.revision,
            trust_remote_code=trust,
            output_loading_info=True,
        )
    except Exception as e:  # noqa: BLE001
        raise _load_error(target, e) from e
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} parameter(s) not in the checkpoint, at random init: {', '.join(sorted(missing)[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    if mismatched:
        notes.append(f"{len(mismatched)} parameter(s) of another shape in the checkpoint, at random init")
    model.rfkit_loading_notes = tuple(notes)
    return model


def _load_error(target: HFTarget, e: Exception) -> Exception:
    import pickle

    from rfkit.models.weights import _refusal

    cause = e
    while cause is not None and not isinstance(cause, pickle.UnpicklingError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None or "weights_only" in str(e):
        path = Path(target.name) / "pytorch_model.bin"
        return CheckpointError(_refusal(path, cause or e))
    return CheckpointError(f"loading the weights of {PREFIX}{target.name} failed: {_first_line(e)}")
