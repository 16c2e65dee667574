"""Named model lists for batch runs (``rfkit analyze --preset NAME``)."""

from __future__ import annotations

from rfkit.errors import RFKitError

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

PRESETS: dict[str, tuple[str, ...]] = {
    "openerf": tuple(m for family in OPENERF_FAMILIES.values() for m in family),
    "cnn-vs-vit": (
        "resnet50.a1_in1k",
        "convnext_tiny.fb_in1k",
        "vit_small_patch16_224.augreg_in1k",
        "swin_tiny_patch4_window7_224.ms_in1k",
    ),
    "tiny": ("test_resnet", "test_convnext", "test_efficientnet", "test_vit"),  # timm's test models: seconds
}

PRESET_HELP = {
    "openerf": "OpenERF's gallery: 33 models in 11 families (resnet ... swinv2)",
    "cnn-vs-vit": "two CNNs and two transformers of similar size, for comparisons",
    "tiny": "timm's tiny test models (fast, for trying things out)",
}


class PresetError(RFKitError, KeyError):
    """An unknown preset name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def preset(name: str) -> tuple[str, ...]:
    """The models of a preset.

    >>> len(preset("openerf")), preset("openerf")[0]
    (33, 'resnet18.a1_in1k')
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}") from None


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
