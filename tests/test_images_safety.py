"""Image files read as a viewer shows them, non-regular files never waited on, and fewer images than asked
for said out loud (rfkit.pipeline.images, rfkit.effective.engine).

Expected 8-bit values are computed by hand in the comments: 16-bit v -> round(v / 257), float f in [0, 1]
-> round(255 f), alpha a over white -> round((c a + 255 (255 - a)) / 255), halves rounded up.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import rfkit
from rfkit.errors import ImageSourceError, RFKitWarning
from rfkit.pipeline.images import ImageStats, ImageWarning, image_batches, read_image


def cfg(h: int, w: int) -> dict:
    """Identity preprocessing for an h x w image: no resize, no crop, no normalisation (x * 255 = pixels)."""
    return {
        "input_size": (3, h, w),
        "mean": (0.0,) * 3,
        "std": (1.0,) * 3,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }


def pixels(path, mode="RGB") -> list:
    return np.asarray(read_image(path, mode)).tolist()


def png16(path, arr: np.ndarray):
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit colour PNGs): arr (H, W, C) uint16,
    C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)  # filter 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) if it has not returned in time."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 -- handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked for {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# ---------------------------------------------------------------------------------------------------------
# pixel values


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    # 128 / 257 = 0.498 -> 0, 129 / 257 = 0.502 -> 1 (rounded, not the high byte), 32896 / 257 = 128
    values = np.array([[0, 128, 129, 32896, 65535]], np.uint16)
    path = png16(tmp_path / "deep.png", values[..., None])
    assert Image.open(path).mode == "I;16"
    assert pixels(path, "L") == [[0, 0, 1, 128, 255]]
    x = next(image_batches(path, cfg(1, 5), 1, 1))[0]
    assert (x * 255).round().int().tolist() == [[[0, 0, 1, 128, 255]]] * 3


def test_16bit_rgb_and_rgba_png(tmp_path):
    # Pillow reduces 16-bit colour to 8 bits itself; multiples of 257 are exact: 257 k -> k
    rgb = np.array([[[0, 32896, 65535], [12850, 257, 65535 - 257]]], np.uint16)
    assert pixels(png16(tmp_path / "rgb.png", rgb)) == [[[0, 128, 255], [50, 1, 254]]]
    # alpha 32896 -> 128 over white: R = (200 * 128 + 255 * 127) / 255 = 227.39 -> 227, G = 100 * 128 / 255
    # + 127 = 177.20 -> 177, B = 127; alpha 0 -> white
    rgba = np.array([[[257 * 200, 257 * 100, 0, 32896], [257 * 9, 0, 0, 0]]], np.uint16)
    assert pixels(png16(tmp_path / "rgba.png", rgba)) == [[[227, 177, 127], [255, 255, 255]]]


def test_float_tiff_in_unit_range_is_scaled_by_255(tmp_path):
    # 0.25 * 255 = 63.75 -> 64, 0.5 * 255 = 127.5 -> 128 (half up)
    Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    assert pixels(tmp_path / "f.tif", "L") == [[0, 64, 128, 255]]
    assert pixels(tmp_path / "f.tif") == [[[v] * 3 for v in (0, 64, 128, 255)]]


def test_float_tiff_outside_unit_range_is_stretched_min_max(tmp_path):
    # min -1 -> 0, max 3 -> 255, 0 -> 255 / 4 = 63.75 -> 64, 1 -> 127.5 -> 128
    Image.fromarray(np.array([[-1.0, 0.0, 1.0, 3.0]], np.float32)).save(tmp_path / "depth.tif")
    assert pixels(tmp_path / "depth.tif", "L") == [[0, 64, 128, 255]]
    # a constant image outside [0, 1] has no range to stretch: clipped into it
    Image.fromarray(np.full((1, 2), 5.0, np.float32)).save(tmp_path / "bright.tif")
    Image.fromarray(np.full((1, 2), -5.0, np.float32)).save(tmp_path / "dark.tif")
    assert pixels(tmp_path / "bright.tif", "L") == [[255, 255]]
    assert pixels(tmp_path / "dark.tif", "L") == [[0, 0]]


def test_float_tiff_with_nan_is_skipped_with_the_reason(tmp_path):
    Image.fromarray(np.array([[0.0, np.nan, 1.0]], np.float32)).save(tmp_path / "holes.tif")
    with pytest.raises(ImageSourceError, match="1 NaN/inf pixel value"):
        read_image(tmp_path / "holes.tif")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "ok.png")
    st = ImageStats(source="", requested=0)
    assert sum(b.shape[0] for b in image_batches(tmp_path, cfg(4, 4), 2, 2, stats=st)) == 1
    assert st.skipped == [(str(tmp_path / "holes.tif"), "1 NaN/inf pixel value(s): no picture to show")]


def test_rgba_and_grey_alpha_are_composited_over_white(tmp_path):
    rgba = np.array([[[200, 100, 0, 128], [10, 20, 30, 0], [1, 2, 3, 255]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    # see test_16bit_rgb_and_rgba_png for 227, 177, 127; alpha 0 -> white; alpha 255 -> the colour
    assert pixels(tmp_path / "a.png") == [[[227, 177, 127], [255, 255, 255], [1, 2, 3]]]
    la = np.array([[[100, 0], [100, 255], [0, 128]]], np.uint8)  # 0 over white at 128: 255 * 127 / 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert pixels(tmp_path / "la.png", "L") == [[255, 100, 127]]


def test_palette_images_with_and_without_transparency(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 200, 100, 50])
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    p.save(tmp_path / "pt.png", transparency=0)  # palette entry 0 fully transparent
    assert pixels(tmp_path / "p.png") == [[[10, 20, 30], [200, 100, 50]]]
    assert pixels(tmp_path / "pt.png") == [[[255, 255, 255], [200, 100, 50]]]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    # without black ink, R = 255 - C, G = 255 - M, B = 255 - Y; full black ink is black (JPEG: +-2)
    for cmyk, rgb in [
        ((255, 0, 0, 0), (0, 255, 255)),
        ((0, 128, 255, 0), (255, 127, 0)),
        ((0, 0, 0, 255), (0, 0, 0)),
        ((0, 0, 0, 0), (255, 255, 255)),
    ]:
        Image.new("CMYK", (8, 8), cmyk).save(tmp_path / "c.jpg", quality=100)
        assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
        got = np.asarray(read_image(tmp_path / "c.jpg"), dtype=int)
        assert got.shape == (8, 8, 3) and np.abs(got - rgb).max() <= 2, (cmyk, got[0, 0])


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((2, 3), np.uint8)
    stored[0, 0] = 255  # white top-left of the stored 2 x 3 picture
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    # shown upright: 3 rows x 2 columns, the stored top-left corner now top-right
    assert pixels(tmp_path / "phone.png", "L") == [[0, 255], [0, 0], [0, 0]]


# ---------------------------------------------------------------------------------------------------------
# only regular files


def test_fifo_named_like_an_image_is_skipped_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "a.jpg")  # sorts first: reading it would wait for a writer forever
    Image.fromarray(np.full((4, 4, 3), 60, np.uint8)).save(tmp_path / "b.png")
    st = ImageStats(source="", requested=0)
    x = finishes(lambda: torch.cat(list(image_batches(tmp_path, cfg(4, 4), 3, 2, stats=st))))
    assert x.shape == (1, 3, 4, 4) and round(float(x.mean()) * 255) == 60
    assert st.used == 1 and st.skipped == [(str(tmp_path / "a.jpg"), "not a regular file (a FIFO)")]
    # the FIFO named directly: nothing readable, one line naming it
    with pytest.raises(ImageSourceError, match=r"no readable image .*a\.jpg: not a regular file \(a FIFO\)") as e:
        finishes(lambda: list(image_batches(tmp_path / "a.jpg", cfg(4, 4), 1, 1)))
    assert "\n" not in str(e.value)


def test_symlinks_sockets_and_devices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path for the socket (AF_UNIX paths are limited to ~100 chars)
    d = tmp_path / "imgs"
    d.mkdir()
    os.mkfifo(tmp_path / "pipe")
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "real.png")
    os.symlink(tmp_path / "pipe", d / "1.png")  # symlink to a FIFO
    os.symlink(tmp_path / "real.png", d / "2.png")  # symlink to a regular image: read
    os.symlink(tmp_path / "missing.png", d / "3.png")  # dangling
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind("imgs/4.png")
        os.symlink("/dev/null", d / "5.png")  # symlink to a character device
        st = ImageStats(source="", requested=0)
        x = finishes(lambda: torch.cat(list(image_batches(d, cfg(4, 4), 10, 4, stats=st))))
    finally:
        sock.close()
    assert x.shape[0] == st.used == 1 and round(float(x.mean()) * 255) == 90
    assert st.skipped == [
        (str(d / "1.png"), "not a regular file (a FIFO)"),
        (str(d / "3.png"), f"not a regular file (a symlink to nothing: {tmp_path / 'missing.png'})"),
        (str(d / "4.png"), "not a regular file (a socket)"),
        (str(d / "5.png"), "not a regular file (a character device)"),
    ]


# ---------------------------------------------------------------------------------------------------------
# fewer images than asked for; skipped files named


def test_folder_with_fewer_images_than_asked_says_so(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    st = ImageStats(source="", requested=0)
    assert sum(b.shape[0] for b in image_batches(tmp_path, cfg(4, 4), 5, 4, stats=st)) == 2
    assert st.notes() == [
        (f"asked for 5 images, the folder {tmp_path} held 2 usable image(s): the ERF is averaged over 2")
    ]
    st = ImageStats(source="", requested=0)
    list(image_batches([tmp_path / "0.png", tmp_path / "1.png"], cfg(4, 4), 3, 4, stats=st))
    assert st.notes() == ["asked for 3 images, the 2 paths held 2 usable image(s): the ERF is averaged over 2"]
    st = ImageStats(source="", requested=0)
    list(image_batches(tmp_path / "1.png", cfg(4, 4), 2, 4, stats=st))
    assert st.notes() == [
        (f"asked for 2 images, the file {tmp_path / '1.png'} held 1 usable image(s): the ERF is averaged over 1")
    ]
    st = ImageStats(source="", requested=0)
    list(image_batches(torch.zeros(3, 3, 4, 4), cfg(4, 4), 8, 4, stats=st))
    assert st.notes() == ["asked for 8 images, the tensor held 3 usable image(s): the ERF is averaged over 3"]
    st = ImageStats(source="", requested=0)  # exactly as many: nothing to say
    list(image_batches(tmp_path, cfg(4, 4), 2, 4, stats=st))
    assert st.used == 2 and st.notes() == []


def test_sample_and_noise_never_run_short():
    for source in ("sample", "noise"):  # 12 > the 10 sample photos: augmented views make up the rest
        st = ImageStats(source="", requested=0)
        assert sum(b.shape[0] for b in image_batches(source, cfg(8, 8), 12, 6, stats=st)) == 12
        assert st.used == 12 and st.notes() == []


def test_skipped_files_named_first_three_and_counted_in_one_line(tmp_path):
    for name in ("a.jpg", "b.jpg", "c\nd.jpg", "e.jpg", "f.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "z.png")
    st = ImageStats(source="", requested=0)
    list(image_batches(tmp_path, cfg(4, 4), 2, 2, stats=st))
    skipped, short = st.notes()
    assert "\n" not in skipped and skipped.startswith("5 unreadable image file(s) skipped: ")
    assert skipped.endswith("; and 2 more")
    assert [str(tmp_path / n) in skipped for n in ("a.jpg", "b.jpg", "e.jpg", "f.jpg")] == [True, True, False, False]
    assert str(tmp_path / "c\\nd.jpg") in skipped  # the newline in the name escaped
    assert skipped.count("(UnidentifiedImageError: cannot identify image file (not a format Pillow decodes))") == 3
    assert short == (
        f"asked for 2 images, the folder {tmp_path} held 1 usable image(s) (5 skipped): the ERF is averaged over 1"
    )


def test_erf_warns_and_records_fewer_images_and_skipped_files(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rfkit.erf(net, images=tmp_path, num_images=32, input_size=8, device="cpu", metrics=False)
    assert issubclass(ImageWarning, RFKitWarning)
    mine = [str(w.message) for w in caught if issubclass(w.category, ImageWarning)]
    assert res.num_images == 2 and mine == [w for w in res.warnings if w in mine] and len(mine) == 2
    assert mine[0].startswith(f"1 unreadable image file(s) skipped: {tmp_path / 'broken.jpg'} (")
    assert mine[1] == (
        f"asked for 32 images, the folder {tmp_path} held 2 usable image(s) (1 skipped): the ERF is averaged over 2"
    )
