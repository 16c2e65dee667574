"""Images for ERF measurement, streamed batch by batch and preprocessed as the model expects.

Sources (the ``images`` argument of :func:`image_batches`):

- ``"sample"``: real photographs shipped with scikit-image (:data:`SAMPLE_PHOTOS`; offline, no download).
  Greyscale photos are converted to RGB. The first ``len(SAMPLE_PHOTOS)`` images are the plain photos;
  beyond that come further *views*: view ``i`` is photo ``i % len(SAMPLE_PHOTOS)`` under a random resized
  crop (area 25-100 %, aspect 3/4-4/3) and a horizontal flip with probability 1/2, drawn from
  ``numpy.random.default_rng([seed, i])``. So ``num_images=32`` works offline and is reproducible; but
  32 views of 10 photos are 10 independent images, not 32 (:func:`source_ids`).
- ``"noise"``: image ``i`` has pixel values uniform in [0, 1) drawn from ``numpy.random.default_rng([seed, i])``
  at the model's input size, then normalised with the model's mean/std (no resize or crop).
- a directory: its image files (``.jpg .jpeg .png .webp .bmp .tif .tiff``, any case), recursively, in sorted
  order (entries of a folder sorted by name, sub-folders visited where they sort; symlinked folders
  followed once). Other files are not read; they are counted in :attr:`ImageStats.ignored`. Only regular
  files are read: a FIFO, socket, device or dangling symlink named like an image is skipped at once (never
  waited on) and listed in :attr:`ImageStats.skipped`; a symlink to a regular image file is read.
- a file path, or a list/tuple of paths (files or directories). The strings ``"sample"`` and ``"noise"``
  always mean the built-in sources (write ``"./sample"`` for a folder of that name).
- a :class:`torch.Tensor` (N, C, H, W), or (C, H, W) for one image: taken as **model-ready** input (already
  resized and normalised); C, H, W must match the data config.

Each file is first read as a viewer shows it (:func:`read_image`): EXIF orientation applied, 16-bit and
float samples scaled to 8 bits (not clipped), transparency composited over white, palette/CMYK converted.
Then it is preprocessed with timm's evaluation transform (:func:`timm.data.create_transform` with
``is_training=False``): resize so that the image covers ``floor(H / crop_pct) x floor(W / crop_pct)``
keeping its aspect ratio (for a square input: shorter side to ``floor(H / crop_pct)``), centre crop to
(H, W), scale to [0, 1], normalise with ``mean``/``std``. A model with one input channel gets greyscale
images (PIL mode ``"L"``) and the mean of the three channel means/stds.

Every image has a **source id** (:func:`source_ids`): images with the same id are views of one picture and
are not independent of each other (the confidence intervals resample sources, not images).

Files that cannot be decoded are skipped and listed in :attr:`ImageStats.skipped`. A folder, file list or
tensor may hold fewer usable images than ``num_images``: then fewer are yielded, and
:meth:`ImageStats.notes` says so (the ERF engine warns with :class:`ImageWarning` and records the line in
the result); ``"sample"`` and ``"noise"`` always yield ``num_images``. Images are read lazily: only the
batch being built and the batch last yielded are in memory, whatever ``num_images`` is.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from rfkit.errors import ImageSourceError, ImageWarning  # noqa: F401 - ImageWarning: exported under its old name
from rfkit.io import shown_path
from rfkit.models.data_config import checked_config
from rfkit.pipeline.devices import is_out_of_memory

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

#: The scikit-image photographs behind ``images="sample"``, in the order they are used
#: (colour: astronaut, chelsea the cat, coffee cup, rocket launch; greyscale: cameraman, coins, moon
#: surface, and three texture photographs).
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "grass", "gravel", "brick")

_CROP_SCALE = (0.25, 1.0)
_CROP_RATIO = (3 / 4, 4 / 3)


#: How many skipped files a warning names before it says "and N more".
NAMED_SKIPS = 3


@dataclass
class ImageStats:
    """Where the images came from and what happened to them; filled while :func:`image_batches` runs.

    Attributes
    ----------
    source : str
        One line: ``"sample (scikit-image: astronaut, chelsea, ...)"``, ``"noise (seed 0)"``,
        ``"dir /data/imgs (recursive)"``, ``"3 paths"``, ``"tensor (8, 3, 224, 224)"``.
    requested : int
        ``num_images`` asked for.
    used : int
        Images actually yielded (fewer than ``requested`` when the source ran out).
    skipped : list of (str, str)
        (path, reason) of each file that could not be read: undecodable, or not a regular file (a FIFO,
        socket, device or dangling symlink named like an image).
    ignored : int
        Files in a directory without an image extension (not read, not listed).
    holder : str
        What held the images, for messages: ``"the folder /data/imgs"``, ``"the file a.png"``,
        ``"the 3 paths"``, ``"the tensor"`` (empty for ``"sample"`` and ``"noise"``, which never run out).
    """

    source: str
    requested: int
    used: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    holder: str = ""

    def as_dict(self) -> dict:
        """Plain-data copy (for JSON reports)."""
        d = asdict(self)
        d["skipped"] = [list(s) for s in self.skipped]
        return d

    def notes(self) -> list[str]:
        """One line per problem a reader of the ERF must know (the messages of :class:`ImageWarning`).

        Files skipped: their count, the first :data:`NAMED_SKIPS` with their reasons. Fewer images used
        than requested: both numbers, and what held the images.

        Examples
        --------
        >>> st = ImageStats("dir imgs (recursive)", requested=32, used=5, holder="the folder imgs",
        ...                 skipped=[("imgs/a.jpg", "not a regular file (a FIFO)")])
        >>> for line in st.notes():
        ...     print(line)
        1 unreadable image file(s) skipped: imgs/a.jpg (not a regular file (a FIFO))
        asked for 32 images, the folder imgs held 5 usable image(s) (1 skipped): the ERF is averaged over 5
        """
        out = []
        if self.skipped:
            named = "; ".join(f"{_printable(p)} ({r})" for p, r in self.skipped[:NAMED_SKIPS])
            more = len(self.skipped) - NAMED_SKIPS
            out.append(
                f"{len(self.skipped)} unreadable image file(s) skipped: {named}"
                + (f"; and {more} more" if more > 0 else "")
            )
        if 0 < self.used < self.requested:
            skipped = f" ({len(self.skipped)} skipped)" if self.skipped else ""
            out.append(
                f"asked for {self.requested} images, {_printable(self.holder or self.source)} held "
                f"{self.used} usable image(s){skipped}: the ERF is averaged over {self.used}"
            )
        return out


def _pil_transform(cfg: dict):
    """timm's eval transform for ``cfg`` (PIL image -> normalised tensor); ``crop_mode="letterbox"``:
    :func:`letterbox` then the same scaling and normalisation."""
    from timm.data import create_transform

    if cfg.get("crop_mode") == "letterbox":
        return lambda img: letterbox(img, tuple(cfg["input_size"][1:]), cfg["mean"], cfg["std"])
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    return create_transform(**{k: cfg[k] for k in keys}, is_training=False)


#: Grey of the padding a letterbox adds (ultralytics' value).
LETTERBOX_PAD = 114


def letterbox(img, size: tuple[int, int], mean, std) -> torch.Tensor:
    """ultralytics' letterbox: ``img`` (PIL) scaled to fit ``size`` (h, w) with its aspect ratio kept
    (bilinear), centred on a grey (:data:`LETTERBOX_PAD`) canvas, scaled to [0, 1] and normalised with
    ``mean``/``std`` (ultralytics: 0 and 1, i.e. none).

    >>> from PIL import Image
    >>> x = letterbox(Image.new("RGB", (40, 20), (255, 0, 0)), (32, 32), (0,) * 3, (1,) * 3)
    >>> tuple(x.shape), round(float(x[0, 0, 0]), 4), float(x[0, 16, 16]), float(x[1, 16, 16])
    ((3, 32, 32), 0.4471, 1.0, 0.0)
    """
    from PIL import Image

    h, w = size
    r = min(h / img.height, w / img.width)
    new_w, new_h = round(img.width * r), round(img.height * r)
    left, top = round((w - new_w) / 2 - 0.1), round((h - new_h) / 2 - 0.1)
    canvas = Image.new(img.mode, (w, h), (LETTERBOX_PAD,) * len(img.getbands()) if img.mode != "L" else LETTERBOX_PAD)
    canvas.paste(img.resize((new_w, new_h), Image.Resampling.BILINEAR), (left, top))
    x = torch.from_numpy(np.asarray(canvas, dtype=np.float32).copy()) / 255.0
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    c = x.shape[0]
    return (x - torch.tensor(mean, dtype=torch.float32).view(c, 1, 1)) / torch.tensor(std, dtype=torch.float32).view(
        c, 1, 1
    )


# ---------------------------------------------------------------------------------------------------------
# sources: each yields (name, loader) pairs; loader() returns a (C, H, W) float tensor or raises


def _walk(root: Path, stats: ImageStats, seen: set | None = None) -> Iterator[Path]:
    """Image files under ``root``, lazily, in sorted order; symlinked folders followed once."""
    seen = set() if seen is None else seen
    real = os.path.realpath(root)
    if real in seen:
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        stats.skipped.append((str(root), f"cannot list folder: {e.strerror or e}"))
        return
    for entry in entries:
        if entry.is_dir():
            yield from _walk(Path(entry.path), stats, seen)
        elif entry.name.lower().endswith(IMAGE_SUFFIXES):
            yield Path(entry.path)
        else:
            stats.ignored += 1


def _printable(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def failure_reason(e: Exception) -> str:
    """Why a file could not be read, on one printable line of at most 160 characters (for ``stats.skipped``)."""
    text = str(e).strip().splitlines()
    if isinstance(e, ImageSourceError) and text:
        return _printable(text[0][:160])
    return f"{type(e).__name__}: {_printable(text[0][:160])}" if text else type(e).__name__


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _not_regular(mode: int) -> str | None:
    """What a file of ``st_mode`` is when it is not a regular file (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def _open_regular(path: Path):
    """``path`` opened for binary reading if it is a regular file (or a symlink to one).

    Checked twice: ``stat`` first (a socket cannot even be opened), then ``fstat`` of the descriptor opened
    with ``O_NONBLOCK``, so a FIFO swapped in between cannot make the read wait for a writer.
    """
    try:
        kind = _not_regular(os.stat(path).st_mode)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageSourceError(f"not a regular file (a symlink to nothing: {os.readlink(path)})") from None
        raise
    if kind is None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        try:
            kind = _not_regular(os.fstat(fd).st_mode)
            if kind is None:
                return open(path, "rb", opener=lambda *_: fd)  # the descriptor checked, named after path
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise ImageSourceError(f"not a regular file ({kind})")


#: Pillow modes with more than 8 bits per sample, and the value each has for white.
_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def to_uint8(values: np.ndarray, white: float) -> np.ndarray:
    """Samples whose nominal range is ``[0, white]`` as 8-bit values, as an image viewer shows them.

    Inside the nominal range the scale is linear, ``round(v / white * 255)`` (halves round up). Data with
    a value outside it (HDR or depth floats, negative numbers) has no fixed scale: it is stretched from its
    minimum (0) to its maximum (255), as viewers auto-contrast it; a constant image is clipped into the range.

    Parameters
    ----------
    values : numpy.ndarray
        Samples of any shape (all channels of an image together, so colours keep their balance).
    white : float
        The value of full intensity: 65535 for 16-bit samples, 1.0 for floats.

    Returns
    -------
    numpy.ndarray
        uint8, the shape of ``values``.

    Raises
    ------
    ImageSourceError
        If a sample is NaN or infinite (no viewer shows those the same way).

    Examples
    --------
    >>> to_uint8(np.array([0, 32896, 65535]), 65535).tolist()
    [0, 128, 255]
    >>> to_uint8(np.array([0.0, 0.5, 1.0]), 1.0).tolist()
    [0, 128, 255]
    >>> to_uint8(np.array([-2.0, 0.0, 2.0]), 1.0).tolist()  # outside [0, 1]: min-max
    [0, 128, 255]
    """
    a = np.asarray(values, dtype=np.float64)
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ImageSourceError(f"{bad} NaN/inf pixel value(s): no picture to show")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if (lo < 0 or hi > white) and hi > lo:
        a = (a - lo) / (hi - lo)
    else:
        a = np.clip(a, 0, white) / white
    return np.floor(a * 255 + 0.5).astype(np.uint8)


def _over_white(im):
    """An image with transparency composited over white: ``round((c * a + 255 * (255 - a)) / 255)``."""
    from PIL import Image

    grey = im.mode in ("L", "LA", "La", "1")
    px = np.asarray(im.convert("LA" if grey else "RGBA"), dtype=np.uint32)
    colour, alpha = px[..., :-1], px[..., -1:]
    out = ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    return Image.fromarray(out[..., 0] if grey else out)


def _viewable(im):
    """A decoded image as an 8-bit ``"L"`` or ``"RGB"`` picture: wide samples scaled (:func:`to_uint8`),
    transparency composited over white, other modes (palette, CMYK, YCbCr, 1-bit) converted by Pillow."""
    from PIL import Image

    if im.mode in _WIDE_MODES:
        return Image.fromarray(to_uint8(np.asarray(im), _WIDE_MODES[im.mode]))
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return _over_white(im)
    return im if im.mode in ("L", "RGB") else im.convert("L" if im.mode == "1" else "RGB")


def read_image(path, mode: str = "RGB"):
    """An image file as a viewer shows it, as an 8-bit PIL image in ``mode``.

    - Only a regular file is read (a symlink to one is followed); a FIFO, socket, device or dangling symlink
      raises :class:`~rfkit.errors.ImageSourceError` at once, without waiting on it.
    - The EXIF orientation is applied (a phone photo stored sideways comes out upright).
    - 16-bit samples (PNG, TIFF; Pillow modes ``I;16`` and ``I``) and 32-bit float samples (TIFF mode
      ``F``) are scaled to 8 bits by :func:`to_uint8`: white is 65535 for integers and 1.0 for floats;
      data outside that range is stretched min-max. 16-bit colour images are reduced to 8 bits by Pillow
      (the high byte). Float TIFFs with several channels or 64-bit samples are not decoded by Pillow.
    - Transparency (RGBA, LA, palette or tRNS transparency) is composited over a white background, as a
      viewer on a white page shows it; the alpha channel itself is not used.
    - Palette, 1-bit, CMYK (Pillow's conversion, without colour profile) and YCbCr images are converted.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    mode : str
        ``"RGB"`` or ``"L"`` (greyscale, for a one-channel model).

    Returns
    -------
    PIL.Image.Image

    Raises
    ------
    ImageSourceError
        Not a regular file, or NaN/inf pixel values.
    OSError
        The file cannot be opened or decoded (``PIL.UnidentifiedImageError`` is one).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "deep.png")
    >>> Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(path)
    >>> np.asarray(read_image(path, "L")).tolist()
    [[0, 128, 255]]
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    with _open_regular(Path(path)) as f:
        try:
            im = Image.open(f)
        except UnidentifiedImageError:  # Pillow's message names the file object, not the path
            raise UnidentifiedImageError("cannot identify image file (not a format Pillow decodes)") from None
        with im:
            im.load()
            return _viewable(ImageOps.exif_transpose(im)).convert(mode)


def _file_loader(path: Path, transform, mode: str):
    return lambda: transform(read_image(path, mode))


@lru_cache(maxsize=len(SAMPLE_PHOTOS))
def _photo(name: str):
    """A scikit-image photograph as an RGB PIL image (cached: ten photos, about 3 MB)."""
    import skimage.data
    from PIL import Image

    arr = getattr(skimage.data, name)()
    img = Image.fromarray(np.asarray(arr))
    return img.convert("RGB")


def sample_view(i: int, seed: int = 0):
    """View ``i`` of the sample photographs, as a PIL image (before the model's preprocessing).

    Views ``0 .. len(SAMPLE_PHOTOS) - 1`` are the plain photos; later ones are seeded random resized crops
    with random horizontal flips (see the module docstring).

    >>> sample_view(0).size, sample_view(1).size
    ((512, 512), (451, 300))
    >>> sample_view(12, seed=1) == sample_view(12, seed=1)
    True
    """
    from PIL import Image

    n = len(SAMPLE_PHOTOS)
    img = _photo(SAMPLE_PHOTOS[i % n])
    if i < n:
        return img.copy()
    rng = np.random.default_rng([seed, i])
    W, H = img.size
    box = (0, 0, W, H)
    for _ in range(10):  # torchvision's RandomResizedCrop recipe, with a numpy generator
        area = H * W * rng.uniform(*_CROP_SCALE)
        ratio = math.exp(rng.uniform(math.log(_CROP_RATIO[0]), math.log(_CROP_RATIO[1])))
        w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < w <= W and 0 < h <= H:
            x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            break
    view = img.crop(box)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return view


def source_ids(images, index) -> np.ndarray:
    """The independent source each image of the stream comes from, by its stream index ``index``.

    Views of one photograph share its source: for ``"sample"``, image ``i`` is a view of photo
    ``i % len(SAMPLE_PHOTOS)``. Every other image is its own source (a file of a folder, a noise image, a
    row of a tensor): its id is its stream index. Ids are dense, ``0 .. S - 1`` for ``S`` sources, so the
    number of sources among the first images is the largest id plus one.

    >>> source_ids("sample", np.arange(8, 13)).tolist(), source_ids("noise", np.arange(8, 13)).tolist()
    ([8, 9, 0, 1, 2], [8, 9, 10, 11, 12])
    """
    index = np.asarray(index, dtype=np.int64)
    if isinstance(images, str) and images == "sample":
        return index % len(SAMPLE_PHOTOS)
    return index.copy()


def _sample_source(n: int, cfg: dict, seed: int, mode: str):
    transform = _pil_transform(cfg)
    for i in range(n):
        name = SAMPLE_PHOTOS[i % len(SAMPLE_PHOTOS)]
        label = name if i < len(SAMPLE_PHOTOS) else f"{name} (view {i})"
        yield label, (lambda i=i: transform(sample_view(i, seed).convert(mode)))


def _noise_image(i: int, cfg: dict, seed: int) -> torch.Tensor:
    c, h, w = cfg["input_size"]
    x = torch.from_numpy(np.random.default_rng([seed, i]).random((c, h, w), dtype=np.float32))
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(c, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(c, 1, 1)
    return (x - mean) / std


def _noise_source(n: int, cfg: dict, seed: int):
    for i in range(n):
        yield f"noise {i}", (lambda i=i: _noise_image(i, cfg, seed))


def _path_source(paths: list[Path], cfg: dict, stats: ImageStats, mode: str):
    transform = _pil_transform(cfg)
    seen: set = set()
    for p in paths:
        files = _walk(p, stats, seen) if p.is_dir() else iter([p])
        for f in files:
            yield str(f), _file_loader(f, transform, mode)


def _resolve(images, cfg: dict, num_images: int, seed: int, stats: ImageStats):
    """(description, source iterator) for ``images``; raises ImageSourceError for what can be seen now."""
    c = cfg["input_size"][0]
    mode = {1: "L", 3: "RGB"}.get(c)
    if isinstance(images, torch.Tensor):
        stats.holder = "the tensor"
        return f"tensor {tuple(images.shape)}", None
    if isinstance(images, str) and images in ("sample", "noise"):
        if images == "noise":
            return f"noise (seed {seed})", _noise_source(num_images, cfg, seed)
        _need_mode(mode, c, "sample")
        try:
            import skimage.data  # noqa: F401
        except ImportError as e:
            raise ImageSourceError(
                "images='sample' needs scikit-image (pip install scikit-image); or pass a "
                "folder of images, or images='noise'"
            ) from e
        views = max(0, num_images - len(SAMPLE_PHOTOS))
        extra = f"; {views} seeded crop/flip views (seed {seed})" if views else ""
        return (
            f"sample (scikit-image: {', '.join(SAMPLE_PHOTOS[:num_images])}{extra})",
            _sample_source(num_images, cfg, seed, mode),
        )
    if isinstance(images, (str, os.PathLike)):
        entries = [images]
    elif isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, os.PathLike)) for p in images):
        entries = list(images)
    elif isinstance(images, (list, tuple)) and not images:
        raise ImageSourceError("the list of image paths is empty: pass at least one file or folder")
    else:
        raise ImageSourceError(
            f"images must be 'sample', 'noise', a path, a list of paths or a tensor; got {type(images).__name__}"
        )
    paths = [Path(os.path.expanduser(os.fspath(p))) for p in entries]
    for p in paths:
        if not p.exists():
            hint = " ('sample' and 'noise' are the built-in sources)" if len(paths) == 1 else ""
            raise ImageSourceError(f"image path {str(p)!r} does not exist{hint}: pass an existing file or folder")
    _need_mode(mode, c, "image files")
    for p in paths:
        if p.is_dir():
            probe = ImageStats(source="", requested=0)
            if next(_walk(p, probe), None) is None:
                raise ImageSourceError(
                    f"no image files in {p} (searched recursively for "
                    f"{' '.join(IMAGE_SUFFIXES)}; {probe.ignored} other file(s)): point "
                    "images at a folder of photos, or use images='sample'"
                )
    if len(paths) == 1:
        shown = shown_path(paths[0])  # never an absolute local path in what people read
        desc = f"dir {shown} (recursive)" if paths[0].is_dir() else f"file {shown}"
        stats.holder = f"the {'folder' if paths[0].is_dir() else 'file'} {paths[0]}"
    else:
        desc = f"{len(paths)} paths"
        stats.holder = f"the {desc}"
    return desc, _path_source(paths, cfg, stats, mode)


def _need_mode(mode, c: int, what: str) -> None:
    if mode is None:
        raise ImageSourceError(
            f"{what} can feed models with 1 or 3 input channels, not {c}: pass a model-ready "
            "tensor (N, C, H, W) or images='noise'"
        )


def checked_tensor(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """A model-ready image tensor as ``(N, C, H, W)`` (one ``(C, H, W)`` image gets a batch axis), checked
    against the data config's input size; :class:`~rfkit.errors.ImageSourceError` when it does not fit."""
    c, h, w = cfg["input_size"]
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ImageSourceError(f"an image tensor must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageSourceError(
            f"an image tensor is taken as model-ready (resized, normalised floats), got "
            f"dtype {x.dtype}: convert and normalise it, or pass image files"
        )
    if x.shape[0] == 0:
        raise ImageSourceError("the image tensor holds no images (N = 0)")
    if x.shape[1] != c or tuple(x.shape[2:]) != (h, w):
        raise ImageSourceError(
            f"image tensor is {tuple(x.shape[1:])} (C, H, W) but the model input is "
            f"{(c, h, w)}: resize it, or set input_size=({x.shape[2]}, {x.shape[3]})"
        )
    return x


# ---------------------------------------------------------------------------------------------------------
# batches


def image_batches(
    images,
    data_config: dict,
    num_images: int,
    batch_size: int,
    *,
    seed: int = 0,
    stats: ImageStats | None = None,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[torch.Tensor]:
    """Stream preprocessed image batches for a model.

    Parameters
    ----------
    images : str, path, list of paths, or torch.Tensor
        ``"sample"``, ``"noise"``, a directory (recursive), a file, a list of files/directories, or a
        model-ready tensor (N, C, H, W) / (C, H, W). See the module docstring for each.
    data_config : dict
        timm data config (:func:`~rfkit.models.data_config.data_config_for`): ``input_size`` (C, H, W),
        ``mean``, ``std``, ``interpolation``, ``crop_pct``, ``crop_mode``.
    num_images : int
        Stop after this many images (fewer if the source runs out; ``stats.used`` tells).
    batch_size : int
        Images per batch (the last batch may be smaller).
    seed : int
        Seeds ``"noise"`` and the extra views of ``"sample"``.
    stats : ImageStats, optional
        Filled while iterating: ``source`` (overwritten with a description), ``used``, ``skipped``, ``ignored``.
    workers : int
        Threads that decode and preprocess images ahead of the batch being built (:func:`decoded_items`); 0:
        decode in the calling thread. The images, their order and the skipped files are the same whatever
        the number.
    pin_memory : bool
        Yield batches in page-locked memory (for asynchronous copies to a CUDA device).

    Yields
    ------
    torch.Tensor
        float32 CPU batches (B, C, H, W), a fresh tensor each (free to modify).

    Raises
    ------
    ImageSourceError
        At the call: a path that does not exist, an empty folder, a tensor of the wrong size, a bad
        data config. While iterating: no file could be read at all.

    Examples
    --------
    >>> cfg = {"input_size": (3, 32, 48), "mean": (0.5,) * 3, "std": (0.5,) * 3,
    ...        "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
    >>> st = ImageStats(source="", requested=5)
    >>> [tuple(b.shape) for b in image_batches("sample", cfg, 5, 2, stats=st)]
    [(2, 3, 32, 48), (2, 3, 32, 48), (1, 3, 32, 48)]
    >>> st.used, st.source
    (5, 'sample (scikit-image: astronaut, chelsea, coffee, rocket, camera)')
    >>> float(next(image_batches("noise", cfg, 1, 1)).min()) >= -1.0  # (U[0,1) - 0.5) / 0.5
    True
    """
    cfg, stats, source = opened(images, data_config, num_images, batch_size, seed, stats, workers)
    if isinstance(images, torch.Tensor):
        batches = _tensor_batches(checked_tensor(images, cfg), num_images, batch_size, stats)
    else:
        batches = _batches(decoded_items(source, workers), num_images, batch_size, stats, cfg)
    return (b.pin_memory() for b in batches) if pin_memory else batches


def opened(images, data_config: dict, num_images: int, batch_size: int, seed: int, stats, workers: int):
    """:func:`image_batches`'s arguments checked and its source opened: ``(config, stats, source)``, the
    source an iterator of ``(name, load)`` (None for a tensor); ``stats`` (new when None) says where the
    images come from.

    Raises
    ------
    ImageSourceError
        A bad count or config, a path that does not exist, an empty folder.
    """
    if not isinstance(num_images, int) or num_images < 1:
        raise ImageSourceError(f"num_images must be a positive int, got {num_images!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ImageSourceError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ImageSourceError(f"workers must be an int >= 0, got {workers!r}")
    cfg = checked_config(data_config)
    stats = stats if stats is not None else ImageStats(source="", requested=num_images)
    stats.requested = num_images
    stats.source, source = _resolve(images, cfg, num_images, seed, stats)
    return cfg, stats, source


def no_readable_image(stats: ImageStats, tried: int) -> ImageSourceError:
    """The error when none of the ``tried`` files of the source could be read."""
    first = f" (first: {stats.skipped[0][0]}: {stats.skipped[0][1]})" if stats.skipped else ""
    return ImageSourceError(
        f"no readable image in {stats.source}: {tried} file(s) tried, all failed"
        f"{first}; pass readable .jpg/.png files or use images='sample'"
    )


def _tensor_batches(x: torch.Tensor, n: int, bs: int, stats: ImageStats) -> Iterator[torch.Tensor]:
    n = min(n, x.shape[0])
    for i in range(0, n, bs):
        stats.used += min(i + bs, n) - i
        yield x[i : min(i + bs, n)].detach().to("cpu", torch.float32, copy=True)


def _pop_batch(buf: list[torch.Tensor]) -> torch.Tensor:
    out = torch.stack(buf)
    buf.clear()
    return out


def _load(load) -> tuple[torch.Tensor | None, Exception | None]:
    try:
        return load(), None
    except Exception as e:  # noqa: BLE001 -- any decoding failure skips the file
        if is_out_of_memory(e):  # the machine's failure, not the file's: the run stops and says so
            raise
        return None, e


def decoded_items(source, workers: int) -> Iterator[tuple[str, torch.Tensor | None, Exception | None]]:
    """``(name, image, error)`` for each ``(name, load)`` of ``source``, in the source's order.

    With ``workers`` > 0 a thread pool decodes up to ``2 * workers`` items ahead of the one yielded: Pillow
    releases the GIL while it decodes and resizes, and torch while it normalises, so threads decode in
    parallel without copying loaders into other processes. Items decoded ahead and never asked for (the
    consumer stops at ``num_images``) are dropped."""
    if workers == 0:
        for name, load in source:
            yield (name, *_load(load))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers, thread_name_prefix="rfkit-decode")
    ahead: deque = deque()
    try:
        for name, load in source:
            ahead.append((name, pool.submit(_load, load)))
            if len(ahead) > 2 * workers:
                first, job = ahead.popleft()
                yield (first, *job.result())
        while ahead:
            first, job = ahead.popleft()
            yield (first, *job.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batches(decoded, n: int, bs: int, stats: ImageStats, cfg: dict) -> Iterator[torch.Tensor]:
    shape = tuple(cfg["input_size"])
    buf: list[torch.Tensor] = []
    tried = 0
    for name, img, error in decoded:
        if stats.used + len(buf) >= n:
            break
        tried += 1
        if error is not None:
            stats.skipped.append((name, failure_reason(error)))
            continue
        if tuple(img.shape) != shape:  # a transform that does not give the configured size is a bug
            raise ImageSourceError(f"preprocessing {name} gave shape {tuple(img.shape)}, expected {shape}")
        buf.append(img.to(torch.float32))
        if len(buf) == bs:
            stats.used += len(buf)
            yield _pop_batch(buf)  # yielded, not kept: the generator holds no reference to it
    decoded.close()  # stop the decoding threads now, not when the generator is collected
    if buf:
        stats.used += len(buf)
        yield _pop_batch(buf)
    if stats.used == 0:
        raise no_readable_image(stats, tried)
