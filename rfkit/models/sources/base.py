"""What a model source is: :class:`ModelSpec` (a parsed spec) and :class:`ModelSource` (one library or file
kind rfkit builds models from: timm, torchvision, ultralytics, ``FILE.py:FACTORY``, ...).

A source answers every question rfkit asks about the models it names: which spec strings are its own, what
models it has, how to build one (weights, offline and trust rules), the preprocessing and input layout, the
default input size, how layers are addressed and, where torch.fx is not the way, how the RF graph is made.
Sources live in the registry (:mod:`rfkit.models.sources.registry`).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from rfkit.errors import ArgumentError


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes
    ----------
    source : str
        The name of the source that builds it (``"timm"``, ``"torchvision"``, ``"ultralytics"``, ``"file"``,
        or any registered source: :func:`rfkit.models.sources.source_names`).
    name : str
        Model name (timm name with tag, torchvision name, or factory name).
    path : str or None
        The file the model comes from, for file specs (``"file"``: the Python file).
    """

    source: str
    name: str
    path: str | None = None

    @property
    def display_name(self) -> str:
        """The name people read: the model's name, or ``FILE-STEM:NAME`` for a file spec.

        >>> ModelSpec("file", "build", "nets/mine.py").display_name, ModelSpec("timm", "resnet50").display_name
        ('mine:build', 'resnet50')
        """
        return self.name if self.path is None else f"{Path(self.path).stem}:{self.name}"


class PretrainedUnavailable(Exception):
    """Pretrained weights exist but cannot be had now (offline, not cached, download failed): ``"auto"``
    falls back on a safe random init with a warning, ``"pretrained"`` fails with the reason."""


class NoPretrained(Exception):
    """A source that never has pretrained weights for this spec.

    Parameters
    ----------
    refusal : str
        The error for ``weights="pretrained"``: why, and what to do instead.
    note : str, optional
        The warning for ``weights="auto"``, which then uses a safe random init.
    """

    def __init__(self, refusal: str, note: str | None = None) -> None:
        super().__init__(refusal)
        self.refusal = refusal
        self.note = note


def close_matches(name: str, names) -> str:
    """`` Close matches: a, b.`` for the names most like ``name`` (empty if none), for error messages.

    >>> close_matches("resnet5", ["resnet50", "resnet18", "vgg16"])
    ' Close matches: resnet50, resnet18.'
    """
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f" Close matches: {', '.join(close)}." if close else ""


def matches(name: str, pattern: str | None) -> bool:
    """Whether ``name`` matches the fnmatch ``pattern`` (None matches all).

    >>> matches("resnet50", "resnet*"), matches("vgg16", "resnet*"), matches("vgg16", None)
    (True, False, True)
    """
    return pattern is None or fnmatch.fnmatch(name, pattern)


class ModelSource:
    """One kind of model rfkit builds: a library (timm, torchvision, ...) or a file kind (``FILE.py``).

    A subclass sets :attr:`name` and :attr:`description` and overrides :meth:`build` and
    :meth:`list_models`; everything else has a default that fits a library of ``nn.Module`` s fed NCHW
    tensors. Register an instance with :func:`rfkit.models.sources.register_source`.

    Attributes
    ----------
    name : str
        The source's name, which is also its spec prefix: ``NAME:MODEL`` is always this source's.
    description : str
        One line for ``rfkit list-models --sources``.
    layout : str
        The input layout the model takes: ``"NCHW"`` (rfkit feeds NCHW tensors) or e.g. ``"NHWC"``.
    layers : str
        How layers are addressed in ``layers=`` and reports.
    fallback : bool
        Takes every spec that no source claims (timm: a bare name is a timm name). One source at most.
    builds_for_size : bool
        Built for the input size asked for (:meth:`size_kwargs`), e.g. timm's ViTs with a fixed patch grid.
    tracer : str or None
        ``"module:function"`` of the graph stage that makes this source's RF graph instead of torch.fx
        (called like :func:`rfkit.graph.tracing.trace_fx`, with the :class:`ModelSpec` as model); imported
        only when used, so the models stage does not import the graph stage.
    meta : bool
        Its models can be built on the meta device (no weights) for tracing; False for a library that makes
        its tensors itself (Keras): built on the CPU then, never copied to meta.

    Examples
    --------
    >>> class Tiny(ModelSource):
    ...     name, description = "tiny", "two hand-built nets"
    ...     def list_models(self, pattern="*", *, pretrained=False, left_out=None):
    ...         return [self.spec_text(ModelSpec(self.name, n)) for n in ("a", "b") if matches(n, pattern)]
    >>> Tiny().parse("tiny:a"), Tiny().list_models("b")
    (ModelSpec(source='tiny', name='a', path=None), ['tiny:b'])
    """

    name: str = ""
    description: str = ""
    layout: str = "NCHW"
    layers: str = "module names (model.named_modules()), as in PyTorch"
    fallback: bool = False
    builds_for_size: bool = False
    tracer: str | None = None
    meta: bool = True

    # -- specs ------------------------------------------------------------------------------------------

    def claims(self, text: str) -> bool:
        """Whether ``text`` (without this source's ``NAME:`` prefix, which is always its own) names one of
        this source's models, e.g. ``FILE.py:FACTORY`` for the file source. Default: no."""
        return False

    def parse(self, text: str) -> ModelSpec:
        """The :class:`ModelSpec` of ``text`` (with or without the ``NAME:`` prefix)."""
        prefix = f"{self.name}:"
        return ModelSpec(self.name, text[len(prefix) :] if text.startswith(prefix) else text)

    def spec_text(self, spec: ModelSpec) -> str:
        """The spec string of ``spec``: ``parse(spec_text(spec)) == spec``."""
        return spec.name if self.fallback else f"{self.name}:{spec.name}"

    def shown(self, spec: ModelSpec, text: str) -> str:
        """``text`` (which parsed to ``spec``) as people read it in figures and reports: paths shortened."""
        return text

    def label(self, spec: ModelSpec) -> str:
        """How weights messages name the model (``torchvision:vgg16``, ``mine:build``)."""
        return self.spec_text(spec)

    def list_models(self, pattern: str | None = "*", *, pretrained: bool = False, left_out=None) -> list[str]:
        """The spec strings of this source's models whose name matches the fnmatch ``pattern``.

        Parameters
        ----------
        pattern : str, optional
            Over the model's name (without the ``NAME:`` prefix); None or ``"*"`` lists all.
        pretrained : bool
            List the pretrained variants (timm's ``name.tag``) where the source has such names.
        left_out : list, optional
            Gets ``(spec, reason)`` for each model left out because it cannot be built here.

        Raises
        ------
        ArgumentError
            The source has no list (the default).
        """
        raise ArgumentError(f"the {self.name} source has no list of models: name one as {self.name}:MODEL")

    # -- building ---------------------------------------------------------------------------------------

    def build(self, spec: ModelSpec, *, pretrained: bool = False, trust: bool = False, **kwargs) -> nn.Module:
        """The model of ``spec`` (random init unless ``pretrained``), built on the current default device.

        Raise :class:`~rfkit.errors.ModelNotFoundError` (with :func:`close_matches`) for an unknown name,
        :class:`~rfkit.errors.UntrustedFileError` for a file that would run code without ``trust``.
        """
        raise NotImplementedError(f"the {self.name} source cannot build models")

    def size_kwargs(self, input_size) -> dict:
        """Keyword arguments to :meth:`build` for a model made for ``input_size`` (``builds_for_size``)."""
        return {}

    def default_input_size(self, spec: ModelSpec) -> tuple[int, ...] | None:
        """The input size the model was made for, where the model itself does not say it."""
        return None

    def data_config(self, spec: ModelSpec) -> dict | None:
        """The preprocessing (a timm data config) where the model itself does not carry one; it becomes the
        ``pretrained_cfg`` of the model :func:`rfkit.models.weights.load_model` builds. Default:
        :data:`~rfkit.models.data_config.DEFAULT_DATA_CONFIG` at :meth:`default_input_size` where there is
        one, else None."""
        from rfkit.models.data_config import DEFAULT_DATA_CONFIG

        size = self.default_input_size(spec)
        return {**DEFAULT_DATA_CONFIG, "input_size": (3, *size)} if size and len(size) == 2 else None

    # -- weights ----------------------------------------------------------------------------------------

    def library(self, spec: ModelSpec) -> str:
        """Whose random init it is, for ``random init (LIBRARY default)``."""
        return self.name

    def weights_as_built(self, spec: ModelSpec) -> bool:
        """Whether the built model's own weights are its default (``weights="auto"`` and ``"as-given"``
        keep them): a factory that loads its weights itself."""
        return False

    def pretrained(self, spec: ModelSpec, device, **kwargs) -> tuple[nn.Module, str]:
        """The model with pretrained weights on ``device`` and the tag of those weights.

        Raises
        ------
        PretrainedUnavailable
            They exist but cannot be had now (offline and not cached, ...).
        NoPretrained
            The source has none for this spec.
        """
        label = self.label(spec)
        raise NoPretrained(
            f"rfkit cannot fetch pretrained weights for {label}: pass a checkpoint path, or use weights='random-safe'",
            f"{label} has no pretrained weights rfkit can fetch: random init with the init traps neutralised "
            "(weights='random-safe'): the ERF reflects the architecture, not training",
        )

    def load(self, spec: ModelSpec, mode: str, *, trust: bool, device, seed=None, path=None, input_size=None):
        """``(model, WeightsInfo)`` for a spec that carries its own weights (ultralytics' ``.pt``) or whose
        library initialises its weights its own way (Keras), loaded its own way (``seed``: of random weights,
        ``path``: the checkpoint of ``mode="checkpoint"``, ``input_size``: (h, w) to build for); None (the
        default) for the common path of :func:`rfkit.models.weights.load_model`."""
        return None

    # -- model objects ----------------------------------------------------------------------------------

    def owns(self, model) -> bool:
        """Whether a model object passed to the API is one of this source's library (a Keras model), which
        rfkit then loads (:meth:`adopt`) and traces (:attr:`tracer`) through this source. Default: no."""
        return False

    def adopt(self, model, mode: str, path=None):
        """``(module, WeightsInfo)`` for a model object this source :meth:`owns`, asked for with
        ``weights=mode`` (``path``: the checkpoint of ``mode="checkpoint"``)."""
        raise NotImplementedError(f"the {self.name} source takes no model objects")
