"""``rfkit.prepare``: a model spec or module turned, once, into everything the measuring stages need.

The model is built (or taken as given) with its weights, its preprocessing is read, and it is traced at
its input size; :class:`Prepared` holds the result. :func:`rfkit.erf`, :func:`rfkit.attribute`,
:func:`rfkit.verify` and :func:`rfkit.estimate_rf` take a :class:`Prepared` as their ``model`` and then build
and trace nothing again; given a spec or a module, they prepare it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch.nn as nn

import rfkit.validate as validate
from rfkit.errors import ArgumentError, ImageSourceError
from rfkit.graph.rfgraph import RFGraph
from rfkit.graph.tracing import FxModel, spatial_rank, trace, trace_fx
from rfkit.models.data_config import data_config_for
from rfkit.models.keras_module import KerasModule
from rfkit.models.onnx_file import is_onnx
from rfkit.models.spec import parse_spec, shown_spec
from rfkit.models.weights import WeightsInfo, load_model
from rfkit.pipeline.capture import LayerCapture


@dataclass(frozen=True)
class Prepared:
    """A model built once, with its weights, preprocessing and RF graph.

    Attributes
    ----------
    model : nn.Module
        The real model (weights loaded; a module passed to :func:`prepare` is this very module).
    weights : WeightsInfo
        Which weights it carries.
    name : str
        Its display name (the spec, or the module's class name).
    source : str or nn.Module
        What :func:`prepare` was given (the spec string, or the module), e.g. to name a report folder.
    data_config : dict or None
        The preprocessing of images for it (timm data config, :mod:`rfkit.models.data_config`); None for
        a model whose input is not an image (1-D or 3-D convolutions).
    graph : RFGraph
        The analytic RF graph at the input size.
    fx : FxModel or None
        The torch.fx trace the graph was computed from (RF graphs at other input sizes, outputs of graph
        nodes of the live model); None for a model recorded with ``make_fx``.
    seed : int
        The seed of random weights.
    """

    model: nn.Module = field(repr=False)
    weights: WeightsInfo
    name: str
    source: str | nn.Module = field(repr=False)
    data_config: dict | None
    graph: RFGraph = field(repr=False)
    fx: FxModel | None = field(default=None, repr=False, compare=False)
    seed: int = 0

    @property
    def input_size(self) -> tuple[int, ...]:
        """Spatial input size of the graph, ``(h, w)`` for images."""
        return tuple(self.graph.input_size)

    @property
    def in_chans(self) -> int:
        return self.graph.in_chans

    def graph_at(self, input_size) -> RFGraph:
        """The RF graph at another input size, from the same trace (traced again only for a model recorded
        with ``make_fx``, whose graph holds one input size)."""
        size = validate.input_size(input_size, len(self.input_size))
        if size == self.input_size:
            return self.graph
        if is_onnx(self.source):  # read from the ONNX graph again, named after the converted module
            from rfkit.graph.onnx_graph import trace_onnx

            if getattr(self.model, "onnx_sized_for", None) not in (None, size):
                raise ArgumentError(
                    f"{self.name} was converted for input size {self.input_size} ('SAME' padding made explicit): "
                    f"prepare it again with input_size={size}"
                )
            names = getattr(self.model, "onnx_module_names", None)
            g = trace_onnx(self.source, size, in_chans=self.in_chans, module_names=names)
        elif self.fx is not None:
            g = self.fx.graph(size)
        else:
            g = trace(self.model, input_size=size, in_chans=self.in_chans)
        g.model_name = self.name
        return g

    def capture(self, live: nn.Module | None = None) -> LayerCapture:
        """Captures of layer outputs of ``live`` (default: :attr:`model`), a copy of the model with the same
        module names (moved to a device, say): hooks on modules, or one GraphModule from the prepared trace
        for graph nodes (:class:`~rfkit.pipeline.capture.LayerCapture`)."""
        return LayerCapture(self.graph, self.model if live is None else live, self.fx)

    def images(
        self,
        images="sample",
        num_images: int = 32,
        batch_size: int = 8,
        *,
        seed: int | None = None,
        stats=None,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator:
        """Batches of ``images`` preprocessed for the model (:func:`rfkit.pipeline.images.image_batches`;
        ``seed`` for noise and sample views, default :attr:`seed`; ``workers`` decoding threads; batches in
        page-locked memory with ``pin_memory``).

        Raises
        ------
        ImageSourceError
            The model takes no images (no data config), or the source is unusable.
        """
        from rfkit.pipeline.images import image_batches

        self._check_images()
        seed = self.seed if seed is None else seed
        return image_batches(
            images,
            self.data_config,
            num_images,
            batch_size,
            seed=seed,
            stats=stats,
            workers=workers,
            pin_memory=pin_memory,
        )

    def image_shards(
        self,
        images="sample",
        num_images: int = 32,
        batch_size: int = 8,
        world=None,
        *,
        seed: int | None = None,
        stats=None,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator:
        """This process's share of :meth:`images` under torchrun (every batch for one process), each batch
        with its images' stream indices (:func:`rfkit.pipeline.sharded.sharded_batches`)."""
        from rfkit.pipeline.distributed import SINGLE
        from rfkit.pipeline.sharded import sharded_batches

        self._check_images()
        return sharded_batches(
            images,
            self.data_config,
            num_images,
            batch_size,
            SINGLE if world is None else world,
            seed=self.seed if seed is None else seed,
            stats=stats,
            workers=workers,
            pin_memory=pin_memory,
        )

    def _check_images(self) -> None:
        if self.data_config is None:
            raise ImageSourceError(
                f"{self.name} takes {len(self.input_size)}-D inputs, not images: rfkit measures images only"
            )


def check_model(model) -> None:
    """Raise :class:`~rfkit.errors.ArgumentError` unless ``model`` is a spec, a module or a :class:`Prepared`."""
    if not isinstance(model, Prepared):
        validate.model(model)


def _data_config(module: nn.Module, input_size, in_chans: int | None) -> dict | None:
    """The model's preprocessing at ``input_size`` with ``in_chans`` channels; None where the input is not an
    image (a model of 1-D or 3-D convolutions, or a size with other than two axes)."""
    rank = spatial_rank(module)
    if rank not in (None, 2):
        return None
    if input_size is not None:
        size = validate.input_size(input_size)
        if len(size) != 2:
            return None
        if in_chans is not None:
            size = (in_chans, *size)
        return data_config_for(module, size)
    cfg = data_config_for(module)
    return cfg if in_chans is None else data_config_for(module, (in_chans, *cfg["input_size"][1:]))


def _module_name(given: nn.Module, module: nn.Module) -> str:
    """A module's display name: its class; a Keras model's own name."""
    return module.label if isinstance(module, KerasModule) else type(given).__name__


def _check_reuse(prepared: Prepared, weights, input_size, in_chans) -> Prepared:
    """A prepared model is used as it is: an input size or weights that differ from its own are an error."""
    if input_size is not None and validate.input_size(input_size, len(prepared.input_size)) != prepared.input_size:
        raise ArgumentError(
            f"{prepared.name} was prepared at input size {prepared.input_size}; to measure at "
            f"{input_size}, prepare it again with that input_size (or leave input_size out)"
        )
    if in_chans is not None and in_chans != prepared.in_chans:
        raise ArgumentError(f"{prepared.name} was prepared with {prepared.in_chans} input channels, not {in_chans}")
    if weights not in (None, "auto") and weights != prepared.weights.kind:
        raise ArgumentError(
            f"{prepared.name} was prepared with {prepared.weights.description}; weights={weights!r} is for "
            "rfkit.prepare (prepare it again with those weights)"
        )
    return prepared


def prepare(
    model: str | nn.Module | Prepared,
    weights: str | None = "auto",
    input_size=None,
    *,
    in_chans: int | None = None,
    seed: int = 0,
    trust: bool = False,
) -> Prepared:
    """Build (or take) a model with its weights, read its preprocessing and trace it, once.

    Parameters
    ----------
    model : str, nn.Module, onnx.ModelProto or Prepared
        A spec (timm name[.tag], ``torchvision:NAME``, ``FILE.py:FACTORY``, ``PATH.onnx``), a module (used as
        given, or copied for a checkpoint), an ONNX model (:func:`prepare_onnx`), or
        a :class:`Prepared` model (returned as it is, after checking that ``input_size``, ``in_chans`` and
        ``weights`` do not ask for something else).
    weights : str or path
        ``"auto"``, ``"pretrained"``, ``"random"``, ``"random-safe"``, ``"as-given"`` or a checkpoint path
        (:func:`rfkit.models.weights.load_model`).
    input_size : int or (h, w), optional
        Spatial input size (the preprocessing follows); default the model's own.
    in_chans : int, optional
        Input channels (default the model's).
    seed : int
        Seeds random weights, and the image stream of :meth:`Prepared.images`.
    trust : bool
        Build a spec whose file runs code: ``FILE.py:FACTORY`` (the file is imported and the factory called),
        ``ultralytics:best.pt`` (unpickling runs the code it names) or an ultralytics yaml rfkit did not ship
        that goes beyond plain layers. Such a spec is refused (:class:`~rfkit.errors.UntrustedFileError`)
        unless you trust the file. A module needs no trust: you already ran its code.

    Returns
    -------
    Prepared

    Raises
    ------
    ArgumentError, InputSizeError
        An argument of the wrong type or value, or a prepared model asked for another size or weights.
    ModelNotFoundError, ModelBuildError, WeightsError, TraceError
        The model cannot be built, loaded or traced.

    Examples
    --------
    >>> import torch.nn as nn, rfkit
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2))
    >>> p = rfkit.prepare(net, input_size=16)
    >>> p.model is net, p.weights.kind, p.input_size, p.graph["2"].size
    (True, 'as-given', (16, 16), (5, 5))
    >>> rfkit.erf(p, images="noise", num_images=2, device="cpu").graph is p.graph
    True
    """
    if isinstance(model, Prepared):
        return _check_reuse(model, weights, input_size, in_chans)
    if is_onnx(model):  # converted for the input size asked for, and an onnx.ModelProto too
        return prepare_onnx(model, weights, input_size, in_chans=in_chans, seed=seed)
    validate.model(model)
    seed = validate.seed(seed)
    in_chans = validate.count(in_chans, "in_chans", optional=True)
    if input_size is not None:
        validate.input_size(input_size)
    weights = "auto" if weights is None else weights
    if isinstance(model, str):
        size = validate.input_size(input_size) if input_size is not None else None
        module, winfo = load_model(
            model, weights, seed=seed, trust=trust, input_size=size if size and len(size) == 2 else None
        )
    else:
        module, winfo = load_model(model, weights)
    name = shown_spec(model) if isinstance(model, str) else _module_name(model, module)
    cfg = _data_config(module, input_size, in_chans)
    if cfg is not None:
        input_size, in_chans = tuple(cfg["input_size"][1:]), cfg["input_size"][0]
    spec = parse_spec(model) if isinstance(model, str) else None  # a source may trace its models its own way
    g, fxm = trace_fx(module, input_size=input_size, in_chans=in_chans, spec=spec)
    g.model_name = name
    return Prepared(module, winfo, name, model, cfg, g, fxm, seed)


def prepare_onnx(model, weights="auto", input_size=None, *, in_chans: int | None = None, seed: int = 0) -> Prepared:
    """:func:`prepare` for an ONNX model (``PATH.onnx`` or an ``onnx.ModelProto``): converted to PyTorch once,
    for the input size asked for (:func:`rfkit.models.sources.onnx_source.load_onnx_model`), with the RF graph read
    from its ONNX graph (:func:`rfkit.graph.onnx_graph.trace_onnx`) and named after the converted module's
    submodules, so that the measuring stages catch every node with a forward hook.

    Raises
    ------
    MissingExtraError, ModelNotFoundError, ModelBuildError
        onnx or onnx2torch missing, no such file, not an ONNX model.
    ConversionError
        onnx2torch cannot convert it (its RF graph still can be read: ``rfkit graph``).
    WeightsError
        Weights other than the file's.
    InputSizeError
        An input size other than the one the file fixes.
    """
    from rfkit.graph.onnx_graph import trace_onnx
    from rfkit.models.onnx_file import image_input, load_onnx, onnx_display_name
    from rfkit.models.sources.onnx_source import load_onnx_model

    name = onnx_display_name(model)
    proto = load_onnx(model)
    image_input(proto, name).concrete(input_size, in_chans, name)  # a size the file refuses: before converting
    module, info = load_onnx_model(proto, weights, name=name, input_size=input_size)
    g = trace_onnx(proto, input_size, in_chans=in_chans, module_names=module.onnx_module_names, name=name)
    cfg = _data_config(module, g.input_size, g.in_chans)
    return Prepared(module, info, name, model, cfg, g, None, seed)
