"""Which models a zoo holds, and how to bound the time one model may take.

Shared by :mod:`rfkit.atlas.build` and ``benchmarks/zoo_coverage.py``: the timm architectures, torchvision's
classification, segmentation and detection models (a detector by its backbone, which takes a tensor) and
the yaml models ultralytics ships.
"""

from __future__ import annotations

import fnmatch
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rfkit.errors import ArgumentError, ModelTimeout
from rfkit.models.sources import ModelSpec, get_source, source_names
from rfkit.models.spec import parse_spec

#: The sources an atlas can be built from, in the order they are listed.
SOURCES = ("timm", "torchvision", "ultralytics")

#: Input size of a torchvision detector's backbone (its forward takes image lists; the backbone a tensor).
DETECTION_SIZE = (320, 320)


@dataclass(frozen=True)
class ZooModel:
    """One model of a zoo.

    Attributes
    ----------
    source : str
        ``timm``, ``torchvision-classification``, ``torchvision-segmentation``, ``torchvision-detection`` or
        ``ultralytics``.
    name : str
        The model's name in its library.
    family : str
        timm's module, torchvision's family (``resnet``), ultralytics' version (``yolov8``).
    """

    source: str
    name: str
    family: str

    @property
    def library(self) -> str:
        """The registered model source it comes from (:mod:`rfkit.models.sources`): ``torchvision`` for
        every ``torchvision-*`` kind."""
        return "torchvision" if self.source.startswith("torchvision-") else self.source

    @property
    def spec(self) -> str | None:
        """The rfkit spec that builds it (None for a detector, built by :func:`build_detection_backbone`)."""
        if self.source == "torchvision-detection":
            return None
        return get_source(self.library).spec_text(ModelSpec(self.library, self.name))


def parse_sources(value: str) -> tuple[str, ...]:
    """The sources named in a comma-separated ``value``: each of :data:`SOURCES` or any other registered
    model source that lists its models (:func:`rfkit.models.sources.source_names`).

    >>> parse_sources("timm, torchvision")
    ('timm', 'torchvision')
    """
    known = tuple(dict.fromkeys((*SOURCES, *(s for s in source_names() if s != "file"))))
    names = tuple(dict.fromkeys(s.strip() for s in str(value).split(",") if s.strip()))
    bad = [s for s in names if s not in known]
    if bad or not names:
        raise ArgumentError(
            f"unknown source {', '.join(map(repr, bad)) or repr(value)} for --source; choose from {', '.join(known)}"
        )
    return names


def timm_models(pattern: str = "*") -> list[ZooModel]:
    """timm's architectures whose name matches the fnmatch ``pattern``, with their module as family."""
    import timm
    from timm.models._registry import _model_to_module

    return [ZooModel("timm", n, _model_to_module.get(n, "?")) for n in timm.list_models(pattern)]


def torchvision_models(pattern: str = "*") -> list[ZooModel]:
    """torchvision's classification, segmentation and detection models matching ``pattern``."""
    import torchvision.models as tvm

    rows = []
    for kind, module in (("classification", tvm), ("segmentation", tvm.segmentation), ("detection", tvm.detection)):
        for name in tvm.list_models(module=module):
            if fnmatch.fnmatch(name, pattern):
                rows.append(ZooModel(f"torchvision-{kind}", name, name.split("_")[0].rstrip("0123456789")))
    return rows


def ultralytics_models(pattern: str = "*") -> list[ZooModel]:
    """The model yaml files ultralytics ships (``yolov8n.yaml`` ...) matching ``pattern``; empty without
    ultralytics."""
    from rfkit.models.ultralytics import bundled_yaml_names

    try:
        names = bundled_yaml_names()
    except ImportError:  # ultralytics is not installed
        return []
    return [ZooModel("ultralytics", n, _yolo_family(n)) for n in names if fnmatch.fnmatch(n, pattern)]


def _yolo_family(name: str) -> str:
    """``yolov8`` for ``yolov8s-seg.yaml``, ``rtdetr`` for ``rtdetr-l.yaml``.

    >>> _yolo_family("yolov8s-seg.yaml"), _yolo_family("rtdetr-l.yaml"), _yolo_family("yolo11n.yaml")
    ('yolov8', 'rtdetr', 'yolo11')
    """
    m = re.match(r"[a-z]+(?:v?\d+)?", name)
    return m.group(0) if m else name


def zoo_models(sources=("timm",), pattern: str = "*") -> list[ZooModel]:
    """Every model of ``sources`` (names from :func:`parse_sources`) matching ``pattern``, source by source."""
    listers = {"timm": timm_models, "torchvision": torchvision_models, "ultralytics": ultralytics_models}
    return [m for s in sources for m in (listers[s](pattern) if s in listers else registered_models(s, pattern))]


def registered_models(source: str, pattern: str = "*") -> list[ZooModel]:
    """The models of any registered model source matching ``pattern`` (its own listing), family unknown."""
    listed = get_source(source)
    return [ZooModel(source, parse_spec(text).name, "?") for text in listed.list_models(pattern)]


def build_detection_backbone(name: str):
    """A torchvision detector's backbone on the meta device."""
    import torch
    import torchvision.models as tvm

    with torch.device("meta"):
        model = tvm.get_model(name, weights=None, weights_backbone=None)
    return model.backbone.eval()


@contextmanager
def time_limit(seconds: int | None, what: str = "the model") -> Iterator[None]:
    """Raise :class:`ModelTimeout` when the block runs longer than ``seconds`` (a SIGALRM; not bounded in
    a thread other than the main one, or when ``seconds`` is None or 0)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum, frame):
        raise ModelTimeout(f"{what} took longer than {seconds} s; raise the limit with --timeout")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
