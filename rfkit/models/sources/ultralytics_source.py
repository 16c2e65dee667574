"""ultralytics: ``ultralytics:yolo11n.yaml`` (a yaml ultralytics ships, random init), ``ultralytics:PATH.yaml``,
``ultralytics:PATH.pt`` (a trained checkpoint, unpickled only with trust): :mod:`rfkit.models.ultralytics`."""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from rfkit.io import shown_path
from rfkit.models.sources.base import ModelSource, ModelSpec, NoPretrained, matches


class UltralyticsSource(ModelSource):
    """YOLO models built from ultralytics' yaml files (random init, offline) or loaded from a trusted ``.pt``
    checkpoint; letterbox preprocessing; layers ``model.N`` (or ``N``, as the YOLO world writes them)."""

    name = "ultralytics"
    description = "ultralytics YOLO / RT-DETR from a yaml (ultralytics:yolo11n.yaml) or a trusted .pt checkpoint"
    layers = "module names; a YOLO layer also as its index in the yaml (13, or 9-1 for element 1 of its output)"

    def list_models(self, pattern="*", *, pretrained=False, left_out=None):
        from rfkit.models.ultralytics import bundled_yaml_names, unavailable_reason

        names = []
        for n in bundled_yaml_names():
            if not matches(n, pattern):
                continue
            why = unavailable_reason(n)
            if why is None:
                names.append(f"ultralytics:{n}")
            elif left_out is not None:
                left_out.append((f"ultralytics:{n}", why))
        return names

    def shown(self, spec: ModelSpec, text: str) -> str:
        return f"ultralytics:{shown_path(spec.name)}" if os.path.isabs(spec.name) else text

    def label(self, spec: ModelSpec) -> str:
        return spec.name

    def build(self, spec: ModelSpec, *, pretrained=False, trust=False, **kwargs) -> nn.Module:
        from rfkit.models.ultralytics import build_yolo

        return build_yolo(spec.name, trust=trust)

    def pretrained(self, spec: ModelSpec, device, **kwargs):
        label = self.label(spec)
        raise NoPretrained(
            f"{label} is built from a yaml file, with random weights: for trained weights pass the "
            "checkpoint as ultralytics:PATH.pt with trust=True (--trust-checkpoint; unpickling runs code), "
            "or use weights='random-safe'",
            f"{label} is built from its yaml file: random init with the init traps neutralised "
            "(weights='random-safe'): the ERF reflects the architecture, not training",
        )

    def load(self, spec: ModelSpec, mode: str, *, trust: bool, device, **kwargs):
        """A ``.pt`` checkpoint carries its own weights: loaded as they are (unpickled only with ``trust``)."""
        if not spec.name.endswith((".pt", ".pth")):
            return None
        from rfkit.errors import WeightsError
        from rfkit.models.spec import build_model
        from rfkit.models.weights import WeightsInfo, with_warnings

        if mode not in ("auto", "as-given"):
            raise WeightsError(f"ultralytics:{spec.name} carries its own weights: use weights='auto', not {mode!r}")
        built = build_model(spec, device="cpu", trust=trust)
        path = Path(spec.name).resolve()
        return with_warnings(
            built.to(device).eval(),
            WeightsInfo("checkpoint", f"ultralytics checkpoint {shown_path(path)}", path=str(path)),
        )
