"""Keras 3 models, run on Keras' PyTorch backend (no TensorFlow): ``keras:NAME`` for every model of
``keras.applications``, ``FILE.keras`` / ``FILE.h5`` files saved by Keras, and Keras model objects.

Keras is imported with ``KERAS_BACKEND=torch`` (set here, before the first import; a Keras already imported
with another backend is refused in one line). On that backend a Keras model is a ``torch.nn.Module`` whose
variables are torch parameters, so autograd, devices and rfkit's weight handling work on it; rfkit wraps it in
a :class:`~rfkit.models.keras_module.KerasModule` that takes images as NCHW tensors like every other model.

Weights of a ``keras:NAME`` model: ``pretrained`` downloads Keras' ImageNet weights (online, or from the Keras
cache ``~/.keras/models``), ``random`` is Keras' own initialisation (seeded), ``random-safe`` the same with
init traps set to 1 (ConvNeXt's layer scales start at 1e-6), a ``.weights.h5`` / ``.keras`` path loads those
weights. A saved file carries its own weights. Loading a file never runs code from it unless ``trust`` is
given: Keras' ``safe_mode`` refuses the Python code a ``Lambda`` layer would deserialize.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import sys
from functools import cache
from pathlib import Path

import numpy as np
import torch

from rfkit.errors import (
    CheckpointError,
    InputTooSmallError,
    MissingExtraError,
    ModelBuildError,
    ModelNotFoundError,
    UntrustedFileError,
    WeightsError,
    WeightsUnavailableError,
)
from rfkit.io import shown_path

#: Files Keras saves whole models in (``.weights.h5`` holds weights only: a ``weights=`` checkpoint).
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Where Keras downloads its ImageNet weights from.
WEIGHTS_HOST = "https://storage.googleapis.com/tensorflow/keras-applications/"
INSTALL_HINT = "pip install 'rfkit[keras]' (Keras 3 on its PyTorch backend; TensorFlow is not needed)"


def import_keras():
    """Keras 3 on its PyTorch backend.

    ``KERAS_BACKEND`` is set to ``torch`` when Keras is not imported yet; a Keras already imported with another
    backend cannot be switched, so it is refused.

    Raises
    ------
    MissingExtraError
        Keras is not installed, or is older than 3.
    ModelBuildError
        Keras was imported with another backend before rfkit asked for it.
    """
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as e:
        raise MissingExtraError(f"Keras models need keras: {INSTALL_HINT}") from e
    version = getattr(keras, "__version__", "0")
    if int(version.split(".")[0]) < 3:
        raise MissingExtraError(f"Keras models need keras 3, found keras {version}: {INSTALL_HINT}")
    backend = keras.backend.backend()
    if backend != "torch":
        raise ModelBuildError(
            f"keras was imported with the {backend} backend; rfkit runs Keras models on its torch backend: set "
            "KERAS_BACKEND=torch before importing keras (or let rfkit import it)"
        )
    return keras


def is_keras_model(obj) -> bool:
    """Whether ``obj`` is a Keras model (without importing Keras: a Keras object means Keras is imported).

    >>> import torch.nn as nn
    >>> is_keras_model(nn.Conv2d(1, 1, 1)), is_keras_model("keras:ResNet50")
    (False, False)
    """
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "Model"):
        return False
    return isinstance(obj, keras.Model)


def is_keras_file(text: str) -> bool:
    """Whether a spec names a file Keras saves whole models in.

    >>> is_keras_file("nets/cnn.keras"), is_keras_file("old.h5"), is_keras_file("resnet50")
    (True, True, False)
    """
    return text.lower().endswith(KERAS_SUFFIXES)


# --- keras.applications ------------------------------------------------------------------------------------


class _KerasUnavailable(Exception):
    """Keras' ImageNet weights cannot be had (offline and not cached, or the download failed)."""


@cache
def application_names() -> tuple[str, ...]:
    """The model constructors of ``keras.applications`` (``ResNet50``, ``MobileNetV3Small``, ...), sorted."""
    keras = import_keras()
    apps = keras.applications
    return tuple(sorted(n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n))))


@cache
def unavailable_reason(name: str) -> str | None:
    """Why ``keras.applications.NAME`` cannot be built on Keras' torch backend (None when it can): Keras
    refuses some models there in their constructor (NASNetMobile, 'an outstanding bug'), which its source says.

    >>> unavailable_reason("NASNetMobile"), unavailable_reason("ResNet50")
    ('Keras refuses it on its torch backend', None)
    """
    keras = import_keras()
    try:
        source = inspect.getsource(getattr(keras.applications, name))
    except (OSError, TypeError):
        return None
    return "Keras refuses it on its torch backend" if 'backend.backend() == "torch"' in source else None


def _check_application(name: str) -> None:
    import difflib

    names = application_names()
    if name not in names:
        folded = {n.lower(): n for n in names}
        close = [folded[name.lower()]] if name.lower() in folded else []
        close += [n for n in difflib.get_close_matches(name, names, n=5, cutoff=0.6) if n not in close]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ModelNotFoundError(
            f"unknown Keras model {name!r}: not in keras.applications.{hint} "
            "Run `rfkit list-models --source keras` to list them."
        )


def build_application(name: str, input_size: tuple[int, int] | None = None, *, weights: str | None = None):
    """``keras.applications.NAME`` with ``weights`` (None: Keras' random init; ``"imagenet"``), its classifier
    returning logits (``classifier_activation=None``: targets are pre-softmax, as for every rfkit model), built
    for ``input_size`` (h, w) or its own default size.

    Raises
    ------
    ModelNotFoundError
        No such model (the message lists close matches).
    InputTooSmallError
        Keras refuses the input size (Inception and Xception take 75 px and more).
    ModelBuildError
        Keras failed otherwise.
    """
    keras = import_keras()
    _check_application(name)
    build = getattr(keras.applications, name)
    kwargs: dict = {"weights": weights}
    params = inspect.signature(build).parameters
    if "classifier_activation" in params:
        kwargs["classifier_activation"] = None
    if input_size is not None:
        kwargs["input_shape"] = (*input_size, 3)
    try:
        with keras.device("cpu"):
            return build(**kwargs)
    except _KerasUnavailable:
        raise
    except ValueError as e:
        msg = _first_line(e)
        if input_size is not None and "must be at least" in msg:  # obtain_input_shape's minimum size
            raise InputTooSmallError(f"keras:{name} cannot be built for input {input_size}: {msg}") from e
        raise ModelBuildError(f"building keras:{name} failed: {msg}") from e
    except Exception as e:  # noqa: BLE001 - a download failure, an I/O error...: one line
        raise ModelBuildError(f"building keras:{name} failed: {type(e).__name__}: {_first_line(e)}") from e


def application_preprocessing(name: str) -> tuple[dict, tuple[int, ...] | None]:
    """The preprocessing ``keras.applications.NAME`` expects, measured on its own ``preprocess_input``: the
    mean and std (on images in [0, 1], RGB) and the channel order it takes (``(2, 1, 0)`` for the
    'caffe'-style models that want BGR; None for RGB).

    ``preprocess_input`` is applied to black and to pure red, green and blue images: it must map pixel
    values ``x`` (0-255) to ``a_c * x[perm[c]] + b_c``, and then ``mean = -b / (255 a)``, ``std = 1 / (255 a)``.

    >>> cfg, order = application_preprocessing("ResNet50")
    >>> [round(m * 255, 3) for m in cfg["mean"]], round(cfg["std"][0] * 255, 6), order
    ([123.68, 116.779, 103.939], 1.0, (2, 1, 0))
    """
    keras = import_keras()
    _check_application(name)
    module = sys.modules[getattr(keras.applications, name).__module__]
    probe = np.zeros((4, 1, 1, 3), dtype="float32")
    for c in range(3):
        probe[c + 1, 0, 0, c] = 255.0
    out = np.asarray(keras.ops.convert_to_numpy(module.preprocess_input(probe.copy())), dtype="float64")
    offset = out[0, 0, 0]
    matrix = (out[1:, 0, 0] - offset).T  # matrix[out channel, in channel]: the response to 255 in that channel
    order = tuple(int(np.argmax(np.abs(row))) for row in matrix)
    step = np.array([matrix[c, order[c]] for c in range(3)])  # 255 * a_c
    mask = np.zeros_like(matrix)
    for c in range(3):
        mask[c, order[c]] = 1
    if sorted(order) != [0, 1, 2] or np.abs(matrix * (1 - mask)).max() > 1e-6 or (step <= 0).any():
        raise ModelBuildError(f"keras:{name}'s preprocess_input is not a per-channel affine map rfkit can express")
    # input channel c (RGB) feeds output channel order.index(c): mean = -b / (255 a), std = 1 / (255 a)
    feeds = [order.index(c) for c in range(3)]
    std = tuple(float(1 / step[feeds[c]]) for c in range(3))
    mean = tuple(float(-offset[feeds[c]] / step[feeds[c]]) + 0.0 for c in range(3))
    cfg = {"mean": mean, "std": std, "interpolation": "bilinear", "crop_pct": 0.875, "crop_mode": "center"}
    return cfg, (None if order == (0, 1, 2) else order)


# --- files ----------------------------------------------------------------------------------------------


def load_file(path: str, *, trust: bool = False):
    """The Keras model saved in ``path`` (``.keras``, or a legacy ``.h5``), loaded without compiling it.

    Without ``trust`` Keras loads in ``safe_mode``: a file whose loading would deserialize Python code (a
    ``Lambda`` layer) is refused.

    Raises
    ------
    ModelNotFoundError
        There is no such file, or it holds weights only (``.weights.h5``).
    UntrustedFileError
        Loading would run code from the file and ``trust`` is not set.
    ModelBuildError
        Keras cannot read it.
    """
    keras = import_keras()
    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"Keras model file {path!r} does not exist")
    if file.name.lower().endswith(".weights.h5"):
        raise ModelNotFoundError(
            f"{shown_path(file)} holds weights only, not a model: pass it as the weights of the model it was "
            "saved from (keras:NAME --weights FILE)"
        )
    try:
        with keras.device("cpu"):
            return keras.saving.load_model(file, compile=False, safe_mode=not trust)
    except Exception as e:  # noqa: BLE001 - Keras raises ValueError, OSError, TypeError...: one line
        msg = _first_line(e)
        if not trust and "safe_mode" in str(e):
            raise UntrustedFileError(
                f"{shown_path(file)} holds Python code (a Lambda layer) that Keras would deserialize and run; rfkit "
                "loads it only when told to trust the file (trust=True, --trust)"
            ) from e
        raise ModelBuildError(f"Keras cannot load {shown_path(file)}: {type(e).__name__}: {msg}") from e


def file_label(path: str) -> str:
    return shown_path(Path(path))


def build_spec(spec, *, pretrained: bool = False, trust: bool = False, device="cpu", img_size=None):
    """The :class:`~rfkit.models.keras_module.KerasModule` of a ``keras:`` spec: a ``keras.applications`` model
    (random init, or ImageNet weights with ``pretrained``) built for ``img_size`` (h, w), or a saved file.
    Keras makes its variables on the CPU (a meta ``device`` means: no particular device)."""
    from rfkit.models.keras_module import KerasModule

    if spec.path is not None:
        module = KerasModule(load_file(spec.path, trust=trust), label=file_label(spec.path))
    else:
        size = tuple(img_size) if img_size is not None else None
        model = build_application(spec.name, size, weights="imagenet" if pretrained else None)
        module = KerasModule.for_application(model, spec.name)
    return module.eval() if str(device) == "meta" else module.to(device).eval()


# --- weights --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def keras_seeded(seed: int | None):
    """Keras' initialisers seeded with ``seed`` while the block runs; Python's, NumPy's and torch's global
    random states (which ``keras.utils.set_random_seed`` also sets) are put back afterwards."""
    if seed is None:
        yield
        return
    keras = import_keras()
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        keras.utils.set_random_seed(seed)
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


_NORMS = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization")


def keras_traps(model, tiny: float) -> list[tuple[str, object, str]]:
    """Variables whose initial values make a random Keras model's ERF degenerate: (path, variable, kind) for
    norm scales (``gamma``) and layer scales near zero (every entry below ``tiny``), and convolution or dense
    kernels that are exactly zero."""
    out = []
    for layer in _all_layers(model):
        cls = type(layer).__name__
        for v in layer.weights:
            leaf = v.path.rsplit("/", 1)[-1]
            value = v.value.detach()
            if value.numel() == 0:
                continue
            if cls in _NORMS and leaf == "gamma" and float(value.abs().max()) < tiny:
                out.append((v.path, v, "norm scale"))
            elif "LayerScale" in cls and float(value.abs().max()) < tiny:
                out.append((v.path, v, "layer scale"))
            elif leaf.endswith("kernel") and not bool(value.any()):
                out.append((v.path, v, "zero weight"))
    return out


def make_keras_safe(model, tiny: float) -> list[str]:
    """Set the init traps of a Keras model to neutral values (norm and layer scales to 1, zero kernels drawn
    again with their layer's initialiser); one line per changed variable."""
    changes = []
    for path, v, kind in keras_traps(model, tiny):
        if kind == "zero weight":
            layer = next(lay for lay in _all_layers(model) if any(w is v for w in lay.weights))
            v.assign(layer.kernel_initializer(v.shape, dtype=v.dtype))
            changes.append(f"{path}: zero weight -> redrawn")
        else:
            v.assign(np.ones(v.shape, dtype="float32"))
            changes.append(f"{path}: {kind} -> 1")
    return changes


def _all_layers(model):
    keras = import_keras()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.Model):
            yield layer


def load_keras(spec, mode: str, path: Path | None, device, *, seed=None, trust=False, input_size=None):
    """A ``keras:`` spec (an application or a saved file) with the weights asked for, wrapped for rfkit.

    Parameters follow :func:`rfkit.models.weights.load_model`.

    Returns
    -------
    (KerasModule, WeightsInfo)
    """
    from rfkit.models.keras_module import KerasModule

    if spec.path is not None:
        return _load_saved(spec, mode, path, device, seed=seed, trust=trust)
    name = spec.name
    label = f"keras:{name}"
    _check_application(name)
    notes: list[str] = []
    if mode in ("as-given", "demo"):
        raise WeightsError(
            f"weights={mode!r} is not for {label}: use 'auto', 'pretrained', 'random', 'random-safe' or a "
            "checkpoint path (.weights.h5)"
        )
    if mode in ("auto", "pretrained"):
        try:
            model = _pretrained_application(name, input_size, notes)
        except _KerasUnavailable as e:
            if mode == "pretrained":
                raise WeightsUnavailableError(
                    f"pretrained weights for {label} cannot be loaded: {e}; go online (or fill the Keras cache "
                    "~/.keras/models), pass a .weights.h5 file as weights, or use weights='random-safe'"
                ) from e
            notes.append(
                f"pretrained weights for {label} unavailable ({e}); using random init with the init traps "
                "neutralised (weights='random-safe'): the ERF reflects the architecture, not training"
            )
        else:
            from rfkit.models.weights import WeightsInfo

            info = WeightsInfo("pretrained", f"pretrained (keras ImageNet {name})", tag=f"{label}.imagenet")
            info = _with_notes(info, notes)
            return _finish(KerasModule.for_application(model, name), info, device)
    from rfkit.models.weights import TINY, WeightsInfo

    with keras_seeded(seed):
        model = build_application(name, input_size)
    seeded = f", seed {seed}" if seed is not None else ""
    traps = keras_traps(model, TINY)
    names = tuple(t[0] for t in traps)
    if mode == "checkpoint":
        _load_weights(model, path, label)
        info = WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}", path=str(path.resolve()))
    elif mode in ("random-safe", "auto"):
        changes = make_keras_safe(model, TINY)
        desc = f"random init (keras default{seeded})"
        desc += (
            f", {len(traps)} init trap(s) neutralised: norm scales and layer scales set to 1"
            if traps
            else ", no init traps found"
        )
        info = WeightsInfo("random-safe", desc, warnings=tuple(notes), traps=names, changes=tuple(changes))
    else:
        desc = f"random init (keras default{seeded})"
        if traps:
            desc += f" — WARNING: {len(traps)} init trap(s) make the ERF degenerate"
            notes.append(_keras_trap_warning(traps, f"random {label}"))
        info = WeightsInfo("random", desc, warnings=tuple(notes), traps=names)
    return _finish(KerasModule.for_application(model, name), info, device)


def _pretrained_application(name: str, input_size, notes: list[str]):
    """``keras.applications.NAME`` with ImageNet weights; offline only from Keras' cache (the download host is
    probed first, so that nothing hangs). A size other than the weights' own that Keras refuses with the
    classifier is built without it (noted)."""
    from rfkit.models.weights import _unreachable

    why = _unreachable(WEIGHTS_HOST)
    with _cache_only(why):
        try:
            return build_application(name, input_size, weights="imagenet")
        except _KerasUnavailable:
            raise
        except InputTooSmallError:
            raise
        except ModelBuildError as e:
            if "include_top" not in str(e) or input_size is None:
                raise _KerasUnavailable(str(e).split(": ", 1)[-1]) from e
        keras = import_keras()
        notes.append(f"keras:{name} is built without its classifier: Keras has its ImageNet head for one size only")
        try:
            with keras.device("cpu"):
                return getattr(keras.applications, name)(
                    weights="imagenet", include_top=False, input_shape=(*input_size, 3)
                )
        except _KerasUnavailable:
            raise
        except Exception as e:  # noqa: BLE001
            raise _KerasUnavailable(_first_line(e)) from e


@contextlib.contextmanager
def _cache_only(why: str | None):
    """While the block runs, Keras' downloads come from its cache only when ``why`` says the host is
    unreachable (a missing file raises :class:`_KerasUnavailable` at once instead of hanging)."""
    if why is None:
        yield
        return
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def cached(fname=None, origin=None, *args, cache_subdir="datasets", cache_dir=None, **kwargs):
        base = Path(cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras")
        name = fname or os.path.basename(str(origin))
        if not (base / cache_subdir / name).is_file():
            raise _KerasUnavailable(f"{why}, and {name} is not in the Keras cache")
        return original(fname, origin, *args, cache_subdir=cache_subdir, cache_dir=cache_dir, **kwargs)

    file_utils.get_file = cached
    try:
        yield
    finally:
        file_utils.get_file = original


def _load_saved(spec, mode: str, path: Path | None, device, *, seed=None, trust=False):
    from rfkit.models.keras_module import KerasModule
    from rfkit.models.weights import TINY, WeightsInfo

    label = file_label(spec.path)
    model = load_file(spec.path, trust=trust)
    if mode in ("auto", "as-given"):
        info = WeightsInfo("as-given", f"as saved in {label}")
    elif mode == "checkpoint":
        _load_weights(model, path, label)
        info = WeightsInfo("checkpoint", f"checkpoint {shown_path(path)}", path=str(path.resolve()))
    elif mode in ("random", "random-safe"):
        keras = import_keras()
        with keras_seeded(seed), keras.device("cpu"):
            try:
                model = keras.models.clone_model(model)
            except Exception as e:  # noqa: BLE001 - custom layers without get_config...
                raise WeightsError(f"{label} cannot be re-initialised (Keras clone_model: {_first_line(e)})") from e
        changes = make_keras_safe(model, TINY) if mode == "random-safe" else []
        seeded = f", seed {seed}" if seed is not None else ""
        info = WeightsInfo(mode, f"random init (keras default{seeded}) of {label}", changes=tuple(changes))
    else:
        raise WeightsUnavailableError(
            f"{label} is a saved Keras model with its own weights: use weights='auto' (or a .weights.h5 path)"
        )
    return _finish(KerasModule(model, label=label), info, device)


def _load_weights(model, path: Path, label: str) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {shown_path(path)} does not exist")
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001 - Keras raises ValueError on a mismatch, OSError on a bad file
        raise CheckpointError(
            f"the weights in {shown_path(path)} do not fit {label}: {type(e).__name__}: {_first_line(e)}"
        ) from e


def load_keras_object(model, mode: str, path: Path | None):
    """A Keras model object (or its :class:`KerasModule`) passed to the API: used as given."""
    from rfkit.models.keras_module import as_keras_module
    from rfkit.models.weights import TINY, WeightsInfo

    wrapped = as_keras_module(model)
    if mode not in ("auto", "as-given"):
        raise WeightsError(
            f"weights={mode!r} needs a model spec, not a Keras model object: load weights into it yourself "
            "(model.load_weights(path)) and pass it, or pass a keras:NAME spec"
        )
    traps = keras_traps(wrapped.keras_model, TINY)
    warn = (_keras_trap_warning(traps, f"the given {wrapped.label}"),) if traps else ()
    info = WeightsInfo("as-given", f"as given (Keras {wrapped.label})", warnings=warn, traps=tuple(t[0] for t in traps))
    from rfkit.models.weights import with_warnings

    return with_warnings(wrapped, info)


def _keras_trap_warning(traps, what: str) -> str:
    kinds = sorted({t[2] for t in traps})
    return (
        f"{what} has {len(traps)} init trap(s) ({', '.join(kinds)}: {', '.join(t[0] for t in traps[:3])}"
        f"{', ...' if len(traps) > 3 else ''}) that make its ERF degenerate; use weights='random-safe'"
    )


def _with_notes(info, notes: list[str]):
    import dataclasses

    return dataclasses.replace(info, warnings=(*info.warnings, *notes)) if notes else info


def _finish(module, info, device):
    from rfkit.models.weights import with_warnings

    return with_warnings(module.to(device).eval(), info)


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(e).__name__
