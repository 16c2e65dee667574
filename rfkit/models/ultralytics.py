"""Ultralytics YOLO models (the optional extra ``rfkit[yolo]``; ultralytics is imported only when used).

``ultralytics:yolo11n.yaml`` builds a model from one of the yaml files ultralytics ships (YOLOv3 to v12,
YOLO11, YOLO26, RT-DETR; a scale letter picks the size: ``yolov8s.yaml``, ``yolo11l-seg.yaml``) with random
weights, offline; ``ultralytics:PATH.yaml`` builds your own yaml. ``ultralytics:PATH.pt`` is a trained
checkpoint: ultralytics pickles whole model objects, so loading one runs the code it names, and rfkit loads
it only with ``trust=True`` (``--trust-checkpoint``).

A yaml can run code too: ultralytics ``eval()``s its ``activation:`` and looks its layer names and string
arguments up among its own module's globals and locals. rfkit reads the yaml itself (``yaml.safe_load``) and
hands ultralytics the checked dict, never the file name (ultralytics would look the name up in the working
directory first). A yaml ultralytics ships (:func:`is_bundled`: inside the installed package, with the hash
its install record gives) is built as it is; any other yaml only within :func:`untrusted_reason`'s limits
(torch.nn activations, ultralytics layers, literal arguments), unless ``trust=True``.

The model's layers are ``model.0`` ... ``model.N`` (``13`` and ``9-1``, the element 1 of layer 9's tuple
output, are accepted as the YOLO world writes them: :meth:`rfkit.RFGraph.resolve`). Its preprocessing is
ultralytics' own (:data:`LETTERBOX`): a letterbox to 640×640 (a multiple of the model's largest stride),
grey padding, RGB, /255, no mean or std.
"""

from __future__ import annotations

import ast
import base64
import copy
import difflib
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
import torch.nn as nn

from rfkit.errors import CheckpointError, ModelBuildError, ModelNotFoundError, UntrustedFileError

#: Input side of ultralytics' default preprocessing, in pixels.
IMAGE_SIZE = 640
#: Value of the padding the letterbox adds (ultralytics' grey).
PAD_VALUE = 114


def _ultralytics():
    os.environ.setdefault("YOLO_VERBOSE", "False")  # no banner, no per-layer table on stdout
    try:
        with torch.device("cpu"), kept_global_state():  # tensors made at import (Detect.anchors): not on meta
            import ultralytics
            import ultralytics.nn.tasks  # noqa: F401 - imported lazily otherwise, maybe under a meta device
    except ImportError:
        raise ModelBuildError(
            "ultralytics: specs need the ultralytics package: pip install 'rfkit[yolo]' (or pip install ultralytics)"
        ) from None
    return ultralytics


@contextmanager
def kept_global_state() -> Iterator[None]:
    """Undo, when the block ends, what importing ultralytics changes for the whole process: numpy's and
    torch's print options (it sets its own float format, which changes how every array prints) and Pillow's
    ``Image.open`` (:func:`restore_pillow_open`)."""
    import numpy as np

    numpy_options = np.get_printoptions()
    torch_options = copy.copy(torch._tensor_str.PRINT_OPTS)
    try:
        yield
    finally:
        np.set_printoptions(**numpy_options)
        torch.set_printoptions(
            precision=torch_options.precision,
            threshold=torch_options.threshold,
            edgeitems=torch_options.edgeitems,
            linewidth=torch_options.linewidth,
            sci_mode=torch_options.sci_mode,
        )
        restore_pillow_open()


def restore_pillow_open() -> None:
    """Put Pillow's own ``Image.open`` back. ultralytics replaces it when imported with a wrapper that, on a
    file Pillow cannot identify, tries to install the pi-heif package and fails with a ModuleNotFoundError:
    a broken image file must stay one skipped file, and rfkit installs nothing."""
    from PIL import Image

    patched = Image.open
    if getattr(patched, "__module__", "").startswith("ultralytics"):
        original = getattr(sys.modules.get(patched.__module__), "_image_open", None)
        if original is not None:
            Image.open = original


#: torch.nn activations the ``activation:`` of a yaml rfkit did not ship may name (``nn.SiLU()``,
#: ``torch.nn.LeakyReLU(0.1)``; literal arguments only).
ACTIVATIONS = frozenset(
    {"CELU", "ELU", "GELU", "Hardsigmoid", "Hardswish", "Hardtanh", "Identity", "LeakyReLU", "Mish", "PReLU"}
    | {"ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softplus", "Tanh"}
)
#: ultralytics layers that fetch from the network when built (``TorchVision`` downloads weights).
FETCHING_LAYERS = frozenset({"TorchVision"})
#: Names of parse_model's locals that a yaml's string arguments may name (plain data).
DATA_NAMES = frozenset({"nc", "kpt_shape"})


def _cfg_root() -> Path:
    return Path(_ultralytics().__file__).parent / "cfg" / "models"


@cache
def _bundled_index() -> dict[str, tuple[Path, str]]:
    """Bundled model name -> (its yaml file, its scale letter or "")."""
    import yaml  # a dependency of ultralytics

    index = {}
    for path in sorted(_cfg_root().rglob("*.yaml")):
        scales = list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("scales") or {})
        if len(scales) == 1:  # one scale (yolov10n.yaml, yolov10b.yaml): the file's own name
            index[path.name] = (path, scales[0])
            continue
        letters = [s for s in scales if s in "nslmx"] if path.stem.startswith("yolo") else []
        for letter in letters or [""]:
            index[re.sub(r"(\d+)(.*)$", rf"\g<1>{letter}\g<2>", path.stem, count=1) + ".yaml"] = (path, letter)
    return index


def bundled_yaml_names() -> tuple[str, ...]:
    """Every model name ultralytics builds from its bundled yaml files, with each scale letter spelt out
    (``yolo11n.yaml``, ``yolo11s.yaml``, ..., ``rtdetr-l.yaml``), sorted."""
    return tuple(sorted(_bundled_index()))


def unavailable_reason(name: str) -> str | None:
    """Why the bundled model ``name`` (:func:`bundled_yaml_names`) cannot be built on this machine, None if it
    can: a layer that downloads weights when built (``TorchVision``) whose file is not in the torch hub cache
    while its host cannot be reached (offline).

    >>> unavailable_reason("yolo11n.yaml")
    """
    return _fetch_reason(_bundled_index()[name][0])


@cache
def _fetch_reason(path: Path) -> str | None:
    """:func:`unavailable_reason` of a bundled yaml file (all its scales share it)."""
    import yaml

    from rfkit.models.hub import _torch_hub_cached, _unreachable

    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for row in [*(cfg.get("backbone") or []), *(cfg.get("head") or [])]:
        if row[2] not in FETCHING_LAYERS or len(row[3]) < 3 or not row[3][2]:
            continue  # not a fetching layer, or one built without weights
        import torchvision

        url = getattr(torchvision.models.get_model_weights(row[3][1]), str(row[3][2])).url
        if not _torch_hub_cached(url) and (why := _unreachable(url)):
            return f"its {row[2]} layer downloads {os.path.basename(url)}, which is not in the torch hub cache ({why})"
    return None


@cache
def _recorded_hashes() -> dict[Path, str]:
    """Resolved file -> sha256 (urlsafe base64, as wheels record it) from ultralytics' install record."""
    from importlib import metadata

    try:
        dist = metadata.distribution("ultralytics")
    except metadata.PackageNotFoundError:
        return {}
    out = {}
    for f in dist.files or ():
        if f.hash is not None and f.hash.mode == "sha256" and f.suffix == ".yaml":
            out[Path(dist.locate_file(f)).resolve()] = f.hash.value
    return out


def is_bundled(path: Path, data: bytes) -> bool:
    """Whether ``path`` (with content ``data``) is a model yaml ultralytics ships: it resolves to a file inside
    the installed package's ``cfg/models`` folder, and ``data`` has the hash ultralytics' install record gives
    for that file. A copy elsewhere, a file named like a bundled one, or an edited bundled file is not.

    Parameters
    ----------
    path : Path
        The file.
    data : bytes
        Its content, as read once for building.
    """
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(_cfg_root().resolve()):
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return _recorded_hashes().get(resolved) == digest


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _activation_reason(act) -> str | None:
    """Why ``activation: act`` is not a torch.nn activation call with literal arguments (None if it is)."""
    try:
        call = ast.parse(str(act).strip(), mode="eval").body
    except SyntaxError:
        call = None
    func = getattr(call, "func", None)
    dotted = ast.unparse(func) if isinstance(call, ast.Call) and func is not None else ""
    name = dotted.rsplit(".", 1)[-1]
    if dotted not in (f"nn.{name}", f"torch.nn.{name}") or name not in ACTIVATIONS:
        return f"activation {_show(act)} is not a torch.nn activation ({', '.join(sorted(ACTIVATIONS))})"
    try:
        for a in [*call.args, *(k.value for k in call.keywords)]:
            ast.literal_eval(a)
    except ValueError:
        return f"activation {_show(act)} has arguments that are not literals"
    return None


def _layer_reason(row, local_names: frozenset[str]) -> str | None:
    """Why a ``[from, repeats, module, args]`` row could run code or fetch files (None if it cannot)."""
    import torch.nn as tnn
    import ultralytics.nn.tasks as tasks

    if not (isinstance(row, list) and len(row) == 4 and isinstance(row[2], str) and isinstance(row[3], list)):
        return f"layer {_show(row)} is not [from, repeats, module, [args]]"
    module, args = row[2], row[3]
    cls = getattr(tnn, module[3:], None) if module.startswith("nn.") else getattr(tasks, module, None)
    home = getattr(cls, "__module__", "") or ""
    layer = isinstance(cls, type) and issubclass(cls, tnn.Module)
    if not layer or not (module.startswith("nn.") or home.startswith("ultralytics.nn.")):
        return f"module {_show(module)} is not a torch.nn or ultralytics layer"
    if module in FETCHING_LAYERS:
        return f"module {module} downloads weights when built"
    for a in args:
        if isinstance(a, str) and a in local_names and a not in DATA_NAMES:
            return f"argument {_show(a)} of {module} names a variable of ultralytics' parser"
    return None


def untrusted_reason(cfg: dict) -> str | None:
    """Why a model yaml (parsed) could run code or fetch files when ultralytics builds it; None when it
    cannot: its ``activation`` is a torch.nn activation with literal arguments (ultralytics ``eval()``s it),
    every layer's module is a torch.nn or ultralytics layer that fetches nothing (ultralytics looks it up
    among its globals and calls it) and no string argument names a variable of ultralytics' parser (it looks
    them up among its locals).

    >>> untrusted_reason({"activation": "nn.ReLU()", "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": []})
    >>> untrusted_reason({"activation": "nn.SiLU() or exit()"}).split(" (")[0]
    "activation 'nn.SiLU() or exit()' is not a torch.nn activation"
    """
    from ultralytics.nn.tasks import parse_model

    if cfg.get("activation") is not None and (why := _activation_reason(cfg["activation"])):
        return why
    code = parse_model.__code__
    local_names = frozenset(code.co_varnames + code.co_cellvars)
    for part in ("backbone", "head"):
        rows = cfg.get(part)
        if not isinstance(rows, list):
            return f"{part} is not a list of layers"
        for row in rows:
            if why := _layer_reason(row, local_names):
                return why
    return None


def _locate(name: str) -> tuple[Path, str]:
    """The yaml file ``name`` means (a file first, as ultralytics does, then a bundled name) and its scale."""
    path = Path(name)
    if path.is_file():
        from ultralytics.nn.tasks import guess_model_scale

        return path, guess_model_scale(path)
    hit = _bundled_index().get(name)
    if hit is None:
        close = difflib.get_close_matches(name, bundled_yaml_names(), n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ModelNotFoundError(
            f"unknown ultralytics model {name!r}: not a yaml file ultralytics ships.{hint} "
            "`rfkit list-models --ultralytics` lists them."
        )
    return hit


def read_model_yaml(name: str, *, trust: bool = False) -> dict:
    """The model dict of the yaml ``name`` means, read once and checked: a bundled yaml (:func:`is_bundled`)
    or, with ``trust``, any yaml as it is; any other yaml only if :func:`untrusted_reason` finds nothing.

    Raises
    ------
    ModelNotFoundError
        No such file and no such bundled name.
    ModelBuildError
        The file is not a yaml mapping.
    UntrustedFileError
        A yaml rfkit did not ship that could run code, without ``trust``.
    """
    import yaml

    path, scale = _locate(name)
    data = path.read_bytes()
    try:
        cfg = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise ModelBuildError(f"ultralytics:{name}: not a valid yaml file: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or not cfg.get("head"):
        raise ModelBuildError(f"ultralytics:{name}: not a model yaml (no backbone and head)")
    if not trust and not is_bundled(path, data) and (why := untrusted_reason(cfg)):
        raise UntrustedFileError(
            f"ultralytics:{name} ({path.resolve()}) is not a yaml ultralytics ships and its {why}: ultralytics "
            "would evaluate it as Python, so rfkit builds it only when told to trust the file (trust=True, "
            "--trust-checkpoint)"
        )
    cfg["scale"], cfg["yaml_file"] = scale, str(path)
    return cfg


def _model_class(stem: str, cfg: dict) -> type:
    """The ultralytics model class its wrapper (``YOLO``, ``YOLOWorld``, ``YOLOE``, ``RTDETR``) would build."""
    from ultralytics.nn.tasks import guess_model_task

    ul = _ultralytics()
    head = cfg["head"][-1][2] if isinstance(cfg["head"][-1], list) else ""
    wrapper = ul.YOLOWorld if "-world" in stem else ul.YOLOE if "yoloe" in stem else ul.YOLO
    wrapper = ul.RTDETR if "RTDETR" in str(head) else wrapper
    tasks = wrapper.task_map.fget(wrapper.__new__(wrapper))  # a dict of classes: needs no built wrapper
    return tasks[guess_model_task(cfg) or "detect"]["model"]


def build_yolo(name: str, *, trust: bool = False) -> nn.Module:
    """An ultralytics model built from a bundled yaml name (or a yaml file), random init, in eval mode; or,
    with ``trust``, the model pickled in a ``.pt`` checkpoint.

    Raises
    ------
    ModelNotFoundError
        No such bundled yaml and no such file (close matches named).
    UntrustedFileError
        Without ``trust``: a ``.pt`` file (loading it runs the code it names), or a yaml rfkit did not ship
        whose fields would run code (:func:`untrusted_reason`).
    CheckpointError
        A ``.pt`` file that holds no YOLO model.
    ModelBuildError
        ultralytics is not installed.
    """
    if name.endswith((".pt", ".pth")):
        if not trust:
            raise UntrustedFileError(
                f"ultralytics:{name} is a pickled model: loading it runs whatever code it names, so rfkit loads it "
                "only when told to trust it (trust=True, --trust-checkpoint); or build the architecture from its "
                "yaml (ultralytics:yolo11n.yaml)"
            )
        return _load_trusted(Path(name))
    if not name.endswith((".yaml", ".yml")):
        raise ModelNotFoundError(f"ultralytics:{name}: name a yaml file, e.g. ultralytics:yolo11n.yaml")
    _ultralytics()
    cfg = read_model_yaml(name, trust=trust)
    cls = _model_class(Path(name).stem, cfg)
    model = _build_on_meta(cls, cfg) if torch.get_default_device().type == "meta" else None
    if model is None:
        with torch.device("cpu"):  # ultralytics makes tensors as it builds (and imports): on the CPU
            model = cls(copy.deepcopy(cfg), verbose=False)  # a failure is named by build_model
    restore_pillow_open()
    attach_letterbox(traceable_yoloe(model))
    return model.eval()


def _yoloe_predict(self, x, profile=False, tpe=None, augment=False, embed=None, vpe=None, return_vpe=False):
    """YOLOEModel.predict without its branch on a traced value (:func:`traceable_yoloe`)."""
    from ultralytics.nn.modules.head import YOLOEDetect
    from ultralytics.nn.tasks import YOLOEModel

    if profile or embed or vpe is not None or return_vpe:
        return YOLOEModel.predict(self, x, profile, tpe, augment, embed, vpe, return_vpe)
    y, b = [], x.shape[0]
    for m in self.model:
        if m.f != -1:  # as YOLOEModel.predict: inputs from earlier layers
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        if isinstance(m, YOLOEDetect):  # the class embeddings, expanded to the batch whatever their size
            x.append(self.get_cls_pe(m.get_tpe(tpe), None).type_as(x[0]).expand(b, -1, -1))
        x = m(x)
        y.append(x if m.i in self.save else None)
    return x


def _world_predict(self, x, profile=False, txt_feats=None, augment=False, embed=None):
    """WorldModel.predict without its branch on a traced value (:func:`traceable_yoloe`)."""
    from ultralytics.nn.modules.block import C2fAttn, ImagePoolingAttn
    from ultralytics.nn.modules.head import WorldDetect
    from ultralytics.nn.tasks import WorldModel

    if profile or embed:
        return WorldModel.predict(self, x, profile, txt_feats, augment, embed)
    txt_feats = (self.txt_feats if txt_feats is None else txt_feats).type_as(x).expand(x.shape[0], -1, -1)
    ori_txt_feats = txt_feats.clone()
    y = []
    for m in self.model:
        if m.f != -1:  # as WorldModel.predict: inputs from earlier layers
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        if isinstance(m, C2fAttn):
            x = m(x, txt_feats)
        elif isinstance(m, WorldDetect):
            x = m(x, ori_txt_feats)
        elif isinstance(m, ImagePoolingAttn):
            txt_feats = m(x, txt_feats)
        else:
            x = m(x)
        y.append(x if m.i in self.save else None)
    return x


@cache
def _traceable_class(cls: type, predict) -> type:
    """``cls`` (YOLOEModel, YOLOESegModel, WorldModel) with ``predict``, under the same name."""
    return type(cls.__name__, (cls,), {"predict": predict, "__module__": cls.__module__, "_rfkit": True})


def traceable_yoloe(model: nn.Module) -> nn.Module:
    """``model`` itself; a YOLOE model is given a ``predict`` torch.fx can follow. Ultralytics' own compares
    the class embeddings' batch with the input's (``if cls_pe.shape[0] != b``), a branch on a traced value,
    and expands them only when they differ; expanding them always gives the same tensors, so the graph is
    the model's. Prompted calls (``tpe`` aside: ``vpe``, ``embed``, ``profile``) run ultralytics' own. A
    YOLO-World model likewise (``if txt_feats.shape[0] != x.shape[0]``: its text features always expanded)."""
    from ultralytics.nn.tasks import WorldModel, YOLOEModel

    if getattr(type(model), "_rfkit", False):
        return model
    if isinstance(model, YOLOEModel):
        model.__class__ = _traceable_class(type(model), _yoloe_predict)
    elif isinstance(model, WorldModel):
        model.__class__ = _traceable_class(type(model), _world_predict)
    return model


class _DataOnCpu(torch.overrides.TorchFunctionMode):
    """Under ``torch.device("meta")``: ``torch.tensor`` / ``torch.as_tensor`` of Python data still make CPU
    tensors, whose values ultralytics reads while building (the strides it measures, to initialise biases)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is None:
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _build_on_meta(cls: type, cfg: dict) -> nn.Module | None:
    """``cls(cfg)`` with its weights on the meta device (ultralytics runs a forward pass to measure its strides:
    on meta it costs nothing, on the CPU seconds for a large model); None where the model cannot be built
    there (YOLOE and YOLO-World mix in tensors made elsewhere): build it on the CPU instead."""
    try:
        with torch.device("meta"), _DataOnCpu():
            return cls(copy.deepcopy(cfg), verbose=False)
    except Exception:  # noqa: BLE001 - any failure here is retried on the CPU, where it is named
        return None


def _load_trusted(path: Path) -> nn.Module:
    """The model of an ultralytics checkpoint (its ``ema`` or ``model`` entry), unpickled: trusted code."""
    if not path.is_file():
        raise ModelNotFoundError(f"ultralytics checkpoint {path} does not exist")
    _ultralytics()  # the classes the pickle names
    try:
        with torch.device("cpu"):
            ckpt = torch.load(path, map_location="cpu", weights_only=False)  # trusted by the caller
    except Exception as e:  # noqa: BLE001 - an unreadable file is one line
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    model = next((ckpt.get(k) for k in ("ema", "model") if isinstance(ckpt, dict) and ckpt.get(k) is not None), None)
    if not isinstance(model, nn.Module) or not hasattr(model, "model"):
        found = ", ".join(map(str, list(ckpt)[:6])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not an ultralytics YOLO checkpoint: no 'ema' or 'model' entry holding a YOLO model "
            f"(found: {found})"
        )
    restore_pillow_open()
    return attach_letterbox(traceable_yoloe(model.float().eval()))


def attach_letterbox(model: nn.Module, size: int = IMAGE_SIZE) -> nn.Module:
    """Give an ultralytics model the data config of ultralytics' preprocessing (``pretrained_cfg``): letterbox
    to ``size`` rounded up to a multiple of its largest stride, grey padding, RGB, /255, no mean/std."""
    strides = getattr(model, "stride", None)
    stride = int(max(strides.tolist() if hasattr(strides, "tolist") else strides or [32]))
    side = -(-size // stride) * stride
    model.pretrained_cfg = {
        "input_size": (3, side, side),
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "letterbox",
        "input_note": (
            f"ultralytics' preprocessing: letterbox to the input size ({side}×{side} by default, a multiple of the "
            f"model's stride {stride}), grey ({PAD_VALUE}) padding, RGB, /255, no mean or std"
        ),
    }
    return model
