"""Presets for ``rfkit analyze --preset NAME`` and ``rfkit erf --preset NAME``: named model lists for batch
runs, and presets that also carry settings, one :class:`Preset` record each in the registry :data:`PRESETS`.

A preset's settings (``layers``, ``num_images``, ``area_table``) are defaults: an option given on the command
line wins. A preset with settings reproduces a known recipe, and its models stand in only when no model is
named: ``rfkit analyze ultralytics:best.pt --trust-checkpoint --preset yolo`` runs that checkpoint with the
preset's layers and image count. A preset without settings is a model list, added to the models named.

Adding one is :func:`register_preset`; ``--preset NAME`` and ``rfkit list-models --presets`` then know it.

>>> preset_names()
['openerf', 'cnn-vs-vit', 'tiny', 'yolo']
>>> get_preset("tinny")
Traceback (most recent call last):
...
rfkit.errors.PresetError: unknown preset 'tinny' (close matches: tiny); use one of openerf, cnn-vs-vit, tiny, yolo
"""

from __future__ import annotations

from dataclasses import dataclass

from rfkit.errors import PresetError
from rfkit.registry import NamedRegistry

# OpenERF 0.6's gallery: 33 timm models in 11 families (openerf/model_zoo.py, SUPPORTED_MODEL_GROUPS)
OPENERF_FAMILIES: dict[str, tuple[str, ...]] = {
    "resnet": ("resnet18.a1_in1k", "resnet34.a1_in1k", "resnet50.a1_in1k"),
    "resnext": ("resnext50_32x4d.a1_in1k", "resnext50_32x4d.ra_in1k", "resnext101_32x8d.tv_in1k"),
    "densenet": ("densenet121.ra_in1k", "densenet169.tv_in1k", "densenet201.tv_in1k"),
    "efficientnet": ("efficientnet_b0.ra_in1k", "efficientnet_b2.ra_in1k", "tf_efficientnet_b4.ns_jft_in1k"),
    "vit": (
        "vit_small_patch16_224.augreg_in1k",
        "vit_base_patch16_224.augreg_in1k",
        "vit_base_patch32_224.augreg_in1k",
    ),
    "deit": ("deit_tiny_patch16_224.fb_in1k", "deit_small_patch16_224.fb_in1k", "deit_base_patch16_224.fb_in1k"),
    "cait": ("cait_xxs24_224.fb_dist_in1k", "cait_xxs36_224.fb_dist_in1k", "cait_s24_224.fb_dist_in1k"),
    "xcit": ("xcit_tiny_12_p16_224.fb_in1k", "xcit_small_12_p16_224.fb_in1k", "xcit_medium_24_p16_224.fb_in1k"),
    "beit": (
        "beit_base_patch16_224.in22k_ft_in22k",
        "beit_base_patch16_224.in22k_ft_in22k_in1k",
        "beit_base_patch16_384.in22k_ft_in22k_in1k",
    ),
    "swin": (
        "swin_tiny_patch4_window7_224.ms_in1k",
        "swin_small_patch4_window7_224.ms_in1k",
        "swin_base_patch4_window7_224.ms_in1k",
    ),
    "swinv2": ("swinv2_cr_tiny_ns_224.sw_in1k", "swinv2_cr_small_224.sw_in1k", "swinv2_cr_small_ns_224.sw_in1k"),
}


@dataclass(frozen=True)
class Preset:
    """A preset: its models, and the settings it stands for (None: the command's own default).

    Attributes
    ----------
    name : str
    models : tuple of str
        Model specs.
    help : str
        One line for ``rfkit list-models --presets``.
    layers : tuple of str, optional
        Layers to measure, unless ``--layers`` is given.
    num_images : int, optional
        Images to use, unless ``-n`` is given.
    area_table : bool
        Print the area-ratio table (RepLKNet's side and area ratio at 0.2/0.3/0.5/0.99) of every layer.

    Examples
    --------
    >>> p = get_preset("yolo")
    >>> p.models, p.layers, p.num_images, p.area_table, p.has_settings
    (('ultralytics:yolo11l.yaml',), ('13', '16', '19', '22'), 100, True, True)
    >>> get_preset("tiny").has_settings
    False
    """

    name: str
    models: tuple[str, ...]
    help: str = ""
    layers: tuple[str, ...] | None = None
    num_images: int | None = None
    area_table: bool = False

    @property
    def has_settings(self) -> bool:
        """Whether the preset carries settings (then its models stand in only when none is named)."""
        return self.layers is not None or self.num_images is not None or self.area_table


PRESETS: NamedRegistry[Preset] = NamedRegistry("preset", PresetError)
"""Every preset by name: the model lists first, then the presets with settings (:func:`register_preset`)."""


def register_preset(p: Preset, *, replace: bool = False) -> Preset:
    """Make ``p`` available as ``--preset NAME`` (and to :func:`get_preset`, :func:`apply_preset`).

    Raises
    ------
    PresetError
        Not a :class:`Preset`, no models, or a name taken (without ``replace``).

    Examples
    --------
    >>> with PRESETS.scoped():
    ...     _ = register_preset(Preset("mine", ("resnet18", "resnet50"), "two ResNets", num_images=8))
    ...     apply_preset("mine").models, apply_preset("mine").num_images
    (('resnet18', 'resnet50'), 8)
    """
    if not isinstance(p, Preset):
        raise PresetError(f"register a Preset record, not {type(p).__name__}")
    if isinstance(p.models, str) or not p.models or not all(isinstance(m, str) and m for m in p.models):
        raise PresetError(f"preset {p.name!r}: models must be a non-empty tuple of model specs, got {p.models!r}")
    return PRESETS.register(p.name, p, replace=replace)


register_preset(
    Preset(
        "openerf",
        tuple(m for family in OPENERF_FAMILIES.values() for m in family),
        "OpenERF's gallery: 33 models in 11 families (resnet ... swinv2)",
    )
)
register_preset(
    Preset(
        "cnn-vs-vit",
        (
            "resnet50.a1_in1k",
            "convnext_tiny.fb_in1k",
            "vit_small_patch16_224.augreg_in1k",
            "swin_tiny_patch4_window7_224.ms_in1k",
        ),
        "two CNNs and two transformers of similar size, for comparisons",
    )
)
register_preset(
    Preset(
        "tiny",
        ("test_resnet", "test_convnext", "test_efficientnet", "test_vit"),  # timm's test models: seconds
        "timm's tiny test models (fast, for trying things out)",
    )
)
# the get_model_erf.py script circulating for ultralytics YOLO: YOLO11-L, the neck outputs P3/P4/P5 and the layer
# before them, 100 images letterboxed to 640 (automatic for ultralytics specs), the area ratios
register_preset(
    Preset(
        "yolo",
        ("ultralytics:yolo11l.yaml",),
        "YOLO11-L's neck layers 13, 16, 19, 22 on 100 images, with the area-ratio table (the get_model_erf.py "
        "recipe); name your own checkpoint to use its weights",
        layers=("13", "16", "19", "22"),
        num_images=100,
        area_table=True,
    )
)


def preset_names() -> list[str]:
    """Every preset's name, in the order registered."""
    return PRESETS.names()


def get_preset(name: str) -> Preset:
    """The preset ``name``, with its settings (a model list has none).

    Raises
    ------
    PresetError
        No preset of that name (the message names the close matches).
    """
    return PRESETS.get(name)


def preset(name: str) -> tuple[str, ...]:
    """The models of a preset.

    >>> len(preset("openerf")), preset("openerf")[0]
    (33, 'resnet18.a1_in1k')
    """
    return get_preset(name).models


def family_of(model: str) -> str | None:
    """The OpenERF family of a model name (for the comparison page), if it is in one.

    >>> family_of("swinv2_cr_tiny_ns_224.sw_in1k"), family_of("vit_small_patch16_224"), family_of("foo")
    ('swinv2', 'vit', None)
    """
    base = model.split(".")[0]
    for family, models in OPENERF_FAMILIES.items():
        if any(m.split(".")[0] == base for m in models):
            return family
    return None


@dataclass(frozen=True)
class RunSettings:
    """What a command runs once a preset is applied to the options given (:func:`apply_preset`)."""

    models: tuple[str, ...]
    layers: tuple[str, ...] | None
    num_images: int
    area_table: bool


def apply_preset(
    name: str | None,
    models=(),
    layers=None,
    num_images: int | None = None,
    *,
    area_table: bool = False,
    default_images: int = 32,
) -> RunSettings:
    """The models and settings of a run: the options given (``None``: not given), the preset's settings where
    an option was not given, then the command's defaults.

    A preset with settings supplies its models only when ``models`` is empty; a model list (no settings)
    adds its models to those named.

    Examples
    --------
    >>> apply_preset("yolo")
    RunSettings(models=('ultralytics:yolo11l.yaml',), layers=('13', '16', '19', '22'), num_images=100, area_table=True)
    >>> s = apply_preset("yolo", ["ultralytics:best.pt"], num_images=4)
    >>> s.models, s.layers, s.num_images
    (('ultralytics:best.pt',), ('13', '16', '19', '22'), 4)
    >>> apply_preset("tiny", ["resnet18"]).models
    ('resnet18', 'test_resnet', 'test_convnext', 'test_efficientnet', 'test_vit')
    >>> apply_preset(None, ["resnet18"], ["layer1"])
    RunSettings(models=('resnet18',), layers=('layer1',), num_images=32, area_table=False)
    """
    models = tuple(models or ())
    layers = tuple(layers) if layers else None
    if name is None:
        return RunSettings(models, layers, default_images if num_images is None else num_images, area_table)
    p = get_preset(name)
    if p.has_settings:
        models = models or p.models
    else:
        models = models + tuple(m for m in p.models if m not in models)
    return RunSettings(
        models,
        layers if layers is not None else p.layers,
        num_images if num_images is not None else (p.num_images or default_images),
        area_table or p.area_table,
    )
