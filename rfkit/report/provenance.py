"""Provenance: the columns that say where a row of rfkit's CSV files comes from.

Every CSV rfkit writes (``erf.csv``, ``layers.csv``, ``attribution.csv``, and the frame of ``rfkit collect``)
starts with the same columns, built by one function, :func:`provenance`, from the run record (the header
of ``run.json``, ``metrics.json`` and ``attribution.json``: :func:`rfkit.report.files.run_header`), so that
rows of many runs concatenated can still be told apart (random init from trained weights, one checkpoint
from another). The columns, in this order (:data:`COLUMNS`):

``model``
    The model spec as given; a ``FILE.py:FACTORY`` or ``ultralytics:PATH`` spec keeps the file name only.
``model_name``
    The model it resolved to: the pretrained weights' name for timm (``resnet50`` -> ``resnet50.a1_in1k``),
    ``torchvision:NAME``, ``ultralytics:FILE``, ``FILE.py:FACTORY``, or a module's class name.
``weights``
    Which weights: ``pretrained``, ``checkpoint``, ``random``, ``random-safe`` (init traps neutralised) or
    ``as-given`` (a module or factory used as it came).
``weights_source``
    Where they came from: the pretrained tag; the checkpoint's file name (never its folder); for random and
    given weights the init scheme (``random init (timm default, seed 0), ...``).
``weights_sha256``
    The first :data:`SHA_DIGITS` hex digits of the checkpoint file's SHA-256 (empty for other weights).
``input_h``, ``input_w``
    The input size the model was measured at.
``erf_method``
    ``replknet`` or ``openerf`` (:mod:`rfkit.effective.methods`); empty for contribution maps.
``images``
    The image source: ``sample photos``, ``noise``, ``tensor``, a folder's or a file's name (never its
    path), or ``N paths``.
``n_images``
    Images measured.
``n_sources``
    Independent image sources among them: the distinct photos of ``sample`` (crops and flips of one photo
    are one source), otherwise one per image (a file or a noise draw).
``rfkit_version``
    The rfkit that wrote the row.
``finished``
    When the measurement finished (UTC, ISO 8601).
``seed``
    The run's seed (image order, crops, noise, bootstrap; random init).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

COLUMNS = (
    "model",
    "model_name",
    "weights",
    "weights_source",
    "weights_sha256",
    "input_h",
    "input_w",
    "erf_method",
    "images",
    "n_images",
    "n_sources",
    "rfkit_version",
    "finished",
    "seed",
)
"""The provenance columns, in the order every CSV starts with."""

SHA_DIGITS = 16
"""Hex digits of a checkpoint's SHA-256 kept in ``weights_sha256``."""

_SAMPLE = "sample (scikit-image: "


def provenance(header: Mapping) -> dict:
    """The provenance columns (:data:`COLUMNS`, in order) of a run, from its run record.

    Parameters
    ----------
    header : mapping
        A run header (:func:`rfkit.report.files.run_header`, or ``run.json`` read back). Keys it lacks
        (reports written before a key existed) give empty cells.

    Returns
    -------
    dict
        Column -> value; no value holds an absolute path.

    Examples
    --------
    >>> row = provenance({"model": "/home/me/nets/mine.py:build", "weights_kind": "checkpoint",
    ...                   "weights_file": "best.pth", "weights_sha256": "ab" * 32, "input_size": [224, 192],
    ...                   "method": "replknet", "images": "dir /data/val (recursive)", "num_images": 50,
    ...                   "rfkit_version": "0.1.0", "finished": "2025-01-01T00:00:00Z", "seed": 0})
    >>> row["model"], row["model_name"], row["weights_source"], row["weights_sha256"]
    ('mine.py:build', 'mine.py:build', 'best.pth', 'abababababababab')
    >>> row["input_h"], row["input_w"], row["images"], row["n_images"], row["n_sources"]
    (224, 192, 'val', 50, 50)
    """
    size = header.get("input_size") or [None]
    bootstrap = header.get("bootstrap") if isinstance(header.get("bootstrap"), Mapping) else {}
    return {
        "model": given_spec(header.get("model")),
        "model_name": resolved_name(header),
        "weights": header.get("weights_kind") or "",
        "weights_source": weights_source(header),
        "weights_sha256": (header.get("weights_sha256") or "")[:SHA_DIGITS],
        "input_h": size[0],
        "input_w": size[-1],
        "erf_method": header.get("method") or "",
        "images": image_source(header.get("images")),
        "n_images": header.get("num_images"),
        "n_sources": independent_sources(header),
        "rfkit_version": header.get("rfkit_version") or "",
        "finished": header.get("finished") or "",
        "seed": header.get("seed", bootstrap.get("seed")),
    }


def with_provenance(frame, header: Mapping):
    """``frame`` (a :class:`pandas.DataFrame` of rows of one run) with the :func:`provenance` columns of
    ``header`` first; a column of ``frame`` with a provenance column's name is replaced by it."""
    import pandas as pd

    columns = provenance(header)
    rest = frame.drop(columns=[c for c in columns if c in frame.columns])
    head = pd.DataFrame({c: [v] * len(rest) for c, v in columns.items()}, index=rest.index, columns=list(columns))
    return pd.concat([head, rest], axis=1)


def _file_name(path: str) -> str:
    """The last component of ``path`` (``/`` or ``\\`` separated); ``path`` itself when that is empty.

    >>> _file_name("/data/nets/v1.pth"), _file_name("C:\\\\nets\\\\v1.pth"), _file_name("v1.pth")
    ('v1.pth', 'v1.pth', 'v1.pth')
    """
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def given_spec(spec) -> str:
    """The model spec as given, with the folders of a file path dropped.

    >>> given_spec("resnet50"), given_spec("/home/me/nets/mine.py:build"), given_spec("ultralytics:/w/best.pt")
    ('resnet50', 'mine.py:build', 'ultralytics:best.pt')
    """
    text = str(spec or "")
    if ".py:" in text:
        path, factory = text.rsplit(":", 1)
        return f"{_file_name(path)}:{factory}"
    if text.startswith("ultralytics:"):
        return f"ultralytics:{_file_name(text.split(':', 1)[1])}"
    return text


def resolved_name(header: Mapping) -> str:
    """The model a spec resolved to: the pretrained tag for timm (``resnet50`` -> ``resnet50.a1_in1k``),
    the architecture's name otherwise (``torchvision:NAME``, ``FILE.py:FACTORY``, a class name).

    >>> resolved_name({"model": "resnet50", "weights_kind": "pretrained", "weights_tag": "resnet50.a1_in1k"})
    'resnet50.a1_in1k'
    >>> resolved_name({"model": "timm:resnet50", "weights_kind": "random"})
    'resnet50'
    >>> resolved_name({"model": "torchvision:resnet50", "weights_tag": "ResNet50_Weights.IMAGENET1K_V2"})
    'torchvision:resnet50'
    """
    from rfkit.models.spec import parse_spec

    text = given_spec(header.get("model"))
    if not text:
        return ""
    spec = parse_spec(text)
    if spec.source != "timm":
        return text
    tag = header.get("weights_tag")
    arch = spec.name.split(".")[0]
    if header.get("weights_kind") == "pretrained" and isinstance(tag, str) and tag.split(".")[0] == arch:
        return tag
    return spec.name


def weights_source(header: Mapping) -> str:
    """Where the weights came from: the pretrained tag, the checkpoint's file name, or (random, as given)
    the weights' description, which names the init scheme.

    >>> weights_source({"weights_kind": "checkpoint", "weights": "checkpoint /a/b/x.pth ['model']"})
    'x.pth'
    >>> weights_source({"weights_kind": "random", "weights": "random init (timm default, seed 0)"})
    'random init (timm default, seed 0)'
    """
    kind = header.get("weights_kind")
    description = str(header.get("weights") or "")
    if kind == "pretrained" and header.get("weights_tag"):
        return str(header["weights_tag"])
    if kind == "checkpoint":
        if header.get("weights_file"):
            return _file_name(str(header["weights_file"]))
        found = re.fullmatch(r"(?:ultralytics )?checkpoint (.+?)(?: \[.*\])?", description)  # before weights_file
        return _file_name(found[1]) if found else "checkpoint (file not recorded)"
    return description


def image_source(description) -> str:
    """The image source of a run, from its description (:attr:`rfkit.pipeline.images.ImageStats.source`),
    without any path.

    >>> image_source("sample (scikit-image: astronaut, chelsea)"), image_source("noise (seed 3)")
    ('sample photos', 'noise')
    >>> image_source("dir /data/imagenet/val (recursive)"), image_source("file /tmp/cat.png")
    ('val', 'cat.png')
    >>> image_source("3 paths"), image_source("tensor (8, 3, 224, 224)")
    ('3 paths', 'tensor')
    """
    text = str(description or "")
    for prefix, name in (("sample", "sample photos"), ("noise", "noise"), ("tensor", "tensor")):
        if text.startswith(prefix):
            return name
    if re.fullmatch(r"\d+ paths", text) or not text:
        return text
    found = re.fullmatch(r"dir (.+) \(recursive\)|file (.+)", text)
    return _file_name(found[1] or found[2]) if found else _file_name(text)


def independent_sources(header: Mapping):
    """How many independent image sources a run measured: the count the run recorded (``bootstrap``'s
    ``sources``) when it has one; else the distinct photos its ``sample`` description names (at most
    ``num_images``); else one per image.

    >>> independent_sources({"images": "sample (scikit-image: a, b, c; 5 seeded crop/flip views (seed 0))",
    ...                      "num_images": 8})
    3
    >>> independent_sources({"images": "dir imgs (recursive)", "num_images": 8})
    8
    """
    bootstrap = header.get("bootstrap")
    recorded = bootstrap.get("sources") if isinstance(bootstrap, Mapping) else None
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    n = header.get("num_images")
    text = str(header.get("images") or "")
    if text.startswith(_SAMPLE) and isinstance(n, int):
        photos = text[len(_SAMPLE) :].split(";")[0].removesuffix(")")
        return min(n, len([p for p in photos.split(",") if p.strip()]))
    return n
