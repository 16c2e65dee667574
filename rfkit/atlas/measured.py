"""The measured columns of the atlas: each stage's ERF at initialisation and with trained weights.

Both kinds of rows repeat the analytic rows of the size they were measured at, with the ERF metrics of each
stage (:data:`ERF_COLUMNS`), ``erf_weights`` (which weights and images: ``random-safe init, 4 noise images``;
``pretrained resnet50.a1_in1k, 8 sample images``; ``resnet50.safetensors sha256:0c1f..., 8 images from
photos``) and ``erf_warnings``; ``input_from`` is ``erf_init`` or ``erf_trained``. The stage grid of the maps
(the figure of ``rfkit analyze``) is written beside the model's rows for the site.

Trained weights come from a file the user gives (:func:`given_weights`: ``--weights-dir`` holding
``MODEL.safetensors`` / ``.pth`` / ``.pt`` / ``.bin``, or a mapping file), read as
:func:`~rfkit.models.checkpoint.load_checkpoint` reads any checkpoint (tensors only: a pickle naming code is
refused), else from the model's pretrained weights where they can be had (the Hugging Face / torch hub cache
offline, a download online: :func:`~rfkit.models.weights.load_model`). A model with neither is not a failure:
:class:`NoTrainedWeights` says why, in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rfkit.errors import AtlasError, CheckpointError, NoTrainedWeights, WeightsUnavailableError

#: The ERF metrics an atlas row keeps (:meth:`rfkit.effective.metrics.ERFMetrics.as_dict` keys).
ERF_COLUMNS = ("erf_side_h", "erf_side_w", "erf_rf_ratio_h", "erf_rf_ratio_w", "erf_mass", "r50", "r90")

#: Weight files looked for in ``--weights-dir``, in this order (``MODEL`` + suffix): the first that exists.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass(frozen=True)
class ErfAtInit:
    """How to measure the ERF at initialisation: random-safe weights (zero-init traps removed), ``images``
    noise images of ``size`` px, on the CPU (:func:`rfkit.erf`)."""

    size: tuple[int, int] = (64, 64)
    images: int = 4

    @property
    def label(self) -> str:
        return f"random-safe init, {self.images} noise images"

    @property
    def key(self) -> str:
        """What a stored model must have been measured with to be kept by a resumed build."""
        return f"erf-init {'x'.join(map(str, self.size))}"


@dataclass(frozen=True)
class ErfTrained:
    """How to measure trained ERFs.

    Attributes
    ----------
    images : str
        ``"sample"`` (the photographs rfkit ships, offline) or a folder of images.
    num_images : int
        How many images (views of the sample photographs beyond their number).
    size : (h, w) or None
        Input size; None: each model's default.
    weights : tuple of (name, path)
        Weight files given by the user, by model name (:func:`weights_table`).
    hub : bool
        For a model without a given file, load its pretrained weights where they can be had (cache, or
        online).
    """

    images: str = "sample"
    num_images: int = 8
    size: tuple[int, int] | None = None
    weights: tuple[tuple[str, str], ...] = ()
    hub: bool = True

    def images_label(self, seen: int) -> str:
        """``8 sample images``, ``8 images from photos`` (the folder's name)."""
        if self.images == "sample":
            return f"{seen} sample images"
        return f"{seen} images from {Path(self.images).name or self.images}"

    def key(self, name: str) -> str:
        """What a stored model must have been measured with to be kept by a resumed build: the size, the images
        and the weight file (its name, size and modification time: a file replaced is measured again)."""
        size = "default" if self.size is None else "x".join(map(str, self.size))
        path = given_weights(self, name)
        if path is not None:
            stat = path.stat()
            source = f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}"
        else:
            source = "pretrained" if self.hub else "none"
        return f"erf-trained {size}, {self.num_images} of {self.images}, weights {source}"


def weights_table(weights_dir=None, weights_map=None) -> tuple[tuple[str, str], ...]:
    """The weight files given for trained ERFs: every ``MODEL.<suffix>`` of ``weights_dir`` (suffixes in the
    order of :data:`WEIGHT_SUFFIXES`: the first one found of a model is its file), then the entries of the JSON
    file ``weights_map`` (``{"model": "path", ...}``, a relative path read from the file's folder), which win.

    Raises
    ------
    AtlasError
        The folder or the mapping file does not exist, the mapping is not a JSON object of strings, or it
        names a file that does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "resnet18.pth").write_bytes(b""), (d / "resnet18.safetensors").write_bytes(b"")
    >>> [(m, pathlib.Path(p).name) for m, p in weights_table(d)]
    [('resnet18', 'resnet18.safetensors')]
    """
    found: dict[str, str] = {}
    if weights_dir is not None:
        folder = Path(weights_dir).expanduser()
        if not folder.is_dir():
            raise AtlasError(f"--weights-dir {folder} is not a folder; give the folder holding MODEL.safetensors files")
        for suffix in reversed(WEIGHT_SUFFIXES):
            for path in sorted(folder.glob(f"*{suffix}")):
                if path.is_file():
                    found[path.name[: -len(suffix)]] = str(path.resolve())
    if weights_map is not None:
        found.update(_read_map(Path(weights_map).expanduser()))
    return tuple(sorted(found.items()))


def _read_map(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise AtlasError(f'--weights-map {path} does not exist; give a JSON file {{"MODEL": "PATH", ...}}')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AtlasError(
            f'--weights-map {path} is not JSON ({str(e).splitlines()[0]}); write {{"MODEL": "PATH"}}'
        ) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise AtlasError(f"--weights-map {path} must be one JSON object of model names to file paths (strings)")
    out = {}
    for model, file in data.items():
        target = (path.parent / Path(file).expanduser()).resolve()
        if not target.is_file():
            raise AtlasError(f"--weights-map {path}: the file of {model!r}, {file}, does not exist")
        out[model] = str(target)
    return out


def given_weights(how: ErfTrained, name: str) -> Path | None:
    """The weight file given for the model ``name`` (None: none was)."""
    path = dict(how.weights).get(name)
    return None if path is None else Path(path)


def file_hash(path: Path, chars: int = 16) -> str:
    """The first ``chars`` hex digits of the SHA-256 of the file ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:chars]


def _layer_warnings(res, layer: str) -> str:
    """The warnings of ``res`` about its weights (every layer's) and those naming ``layer`` (``layer 'x': ...``,
    ``x: ...``), not those of a layer whose name merely contains it."""
    mine = [w for w in res.warnings if f"{layer!r}" in w or w.startswith(f"{layer}:")]
    return " | ".join(dict.fromkeys([*res.weights.warnings, *mine]))


def measured_rows(rows: list[dict], res, input_from: str, label: str) -> list[dict]:
    """``rows`` (analytic rows at the size ``res`` was measured at) with each layer's ERF metrics, ``erf_weights``
    ``label`` and the warnings naming the layer."""
    out = []
    for r in rows:
        metrics = res.metrics[r["layer"]].as_dict()
        extra = {k: metrics.get(k) for k in ERF_COLUMNS}
        warned = _layer_warnings(res, r["layer"])
        out.append({**r, "input_from": input_from, **extra, "erf_weights": label, "erf_warnings": warned})
    return out


def draw_grid(res, path: Path) -> str:
    """The stage grid of ``res`` (the figure ``rfkit analyze`` draws: each stage's ERF with its RF box) written
    to ``path``; "" or, where it could not be drawn, why (the rows stand without it)."""
    import matplotlib

    matplotlib.use("Agg")
    from rfkit.report.figures.stage_grid import save_stage_grid

    try:
        save_stage_grid(res, path)
    except Exception as e:  # noqa: BLE001 - a figure is not worth the rows
        return f"stage grid not drawn: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
    return ""


def _measure(spec: str, rows: list[dict], own_size: bool = False, *, source, num_images: int, weights: str):
    """rfkit.erf of the layers of ``rows`` at their input size (``own_size``: the model's default, with its own
    preprocessing, as ``rfkit erf MODEL`` measures it; checked to be the rows' size)."""
    from rfkit.effective.engine import erf
    from rfkit.effective.options import ERFOptions
    from rfkit.pipeline.options import Images, Runtime

    size = (int(rows[0]["input_h"]), int(rows[0]["input_w"]))
    layers = [r["layer"] for r in rows]
    images = Images(source, num_images, input_size=None if own_size else size)
    # distributed=False: under torchrun the ranks measure different models, never one model together
    res = erf(
        spec,
        layers=layers,
        images=images,
        weights=weights,
        options=ERFOptions(bootstrap=0),
        runtime=Runtime("cpu", distributed=False),
    )
    if tuple(res.graph.input_size) != size:
        raise AtlasError(
            f"the ERF was measured at {'x'.join(map(str, res.graph.input_size))}, not at the rows' "
            f"{'x'.join(map(str, size))}: give the size with --trained-size"
        )
    return res


def init_rows(spec: str, rows: list[dict], how: ErfAtInit, grid: Path | None = None) -> list[dict]:
    """``rows`` (the analytic rows at ``how.size``) with the ERF at initialisation of each layer."""
    res = _measure(spec, rows, source="noise", num_images=how.images, weights="random-safe")
    note = draw_grid(res, grid) if grid is not None else ""
    return _noted(measured_rows(rows, res, "erf_init", how.label), note)


def trained_rows(name: str, spec: str, rows: list[dict], how: ErfTrained, grid: Path | None = None) -> list[dict]:
    """``rows`` (the analytic rows at the size to measure) with each layer's ERF with trained weights: the file
    given for ``name``, else its pretrained weights.

    Raises
    ------
    NoTrainedWeights
        None given and none obtainable (offline and not cached, none published, ``how.hub`` off), or the given
        file cannot be loaded into the model (does not fit, holds code: refused as
        :func:`~rfkit.models.checkpoint.load_checkpoint` refuses it).
    """
    path = given_weights(how, name)
    if path is None and not how.hub:
        raise NoTrainedWeights(f"no weight file given for {name} (--weights-dir / --weights-map)")
    try:
        res = _measure(
            spec,
            rows,
            how.size is None,
            source=how.images,
            num_images=how.num_images,
            weights=str(path) if path else "pretrained",
        )
    except (WeightsUnavailableError, CheckpointError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if isinstance(e, WeightsUnavailableError):  # its advice is rfkit.erf's: say the atlas's
            why = why.split("; go online")[0] + "; give a weight file (--weights-dir, --weights-map), or go online"
        raise NoTrainedWeights(why) from None
    if path is not None:
        weights = f"{path.name} sha256:{file_hash(path)}"
    else:
        weights = f"pretrained {res.weights.tag or res.weights.description}"
    label = f"{weights}, {how.images_label(res.num_images)}"
    note = draw_grid(res, grid) if grid is not None else ""
    return _noted(measured_rows(rows, res, "erf_trained", label), note)


def _noted(rows: list[dict], note: str) -> list[dict]:
    if note:
        for r in rows:
            r["erf_warnings"] = " | ".join(w for w in (r["erf_warnings"], note) if w)
    return rows


def images_option(images) -> str:
    """``--images``: ``"sample"`` or an existing folder (made absolute: the build's children may run elsewhere).

    Raises
    ------
    AtlasError
        Not a folder.
    """
    if images in (None, "sample"):
        return "sample"
    folder = Path(os.path.expanduser(os.fspath(images)))
    if not folder.is_dir():
        raise AtlasError(f"--images {images}: not a folder; give a folder of images, or 'sample'")
    return str(folder.resolve())
