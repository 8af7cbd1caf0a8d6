"""Builders for small synthetic test photos, EXIF blocks and ICC profiles (reusable by any test).

Everything is made in code and seeded: no files from the data folder, nothing downloaded.
"""

from __future__ import annotations

import struct

import numpy as np
import piexif
from PIL import Image

# The Pillow transpose that turns an upright image into what a camera stores with each EXIF orientation
# (the inverse of what a viewer applies: 6 is shown turned 90 degrees clockwise, so it is stored turned
# 90 degrees counter-clockwise... i.e. Pillow's ROTATE_90).
STORED_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

# D50-adapted colorants (as in Adobe's own profile) - an RGB space clearly different from sRGB.
ADOBE_RGB_D50 = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
_D50 = (0.9642, 1.0, 0.8249)


def asymmetric_rgb(width: int = 24, height: int = 16, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 with no symmetry: every flip or turn of it is a different array."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x * y) % 256], axis=-1)
    noise = rng.integers(0, 16, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def asymmetric_image(mode: str = "RGB", width: int = 24, height: int = 16, seed: int = 0) -> Image.Image:
    """An asymmetric picture in any Pillow mode (converted from RGB; alpha modes get a gradient alpha)."""
    rgb = asymmetric_rgb(width, height, seed)
    img = Image.fromarray(rgb, "RGB")
    if mode in ("I;16", "I;16L", "I;16B", "I", "F"):
        return _deep_grey(rgb[..., 1], mode)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.linspace(40, 255, width * height).reshape(height, width).astype(np.uint8)
        img.putalpha(Image.fromarray(alpha, "L"))
        via = {"PA": "P", "La": "LA", "RGBa": "RGBA"}.get(mode, mode)
        return img.convert(via).convert(mode) if via != mode else img.convert(mode)
    return img.convert(mode)


def _deep_grey(grey8: np.ndarray, mode: str) -> Image.Image:
    """Grey 16-bit / 32-bit / float images holding the full range (255 -> 65535, F: 0..1)."""
    size = (grey8.shape[1], grey8.shape[0])
    if mode == "F":
        return Image.frombytes("F", size, (grey8.astype("=f4") / 255).tobytes())
    values = grey8.astype(np.uint32) * 257
    dtype = {"I": "=i4", "I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
    return Image.frombytes(mode, size, values.astype(dtype).tobytes())


def exif_bytes(
    orientation: int = 1,
    make: str = "PhotosrCam",
    taken: str = "2021:06:05 04:03:02",
    gps: bool = True,
    size: tuple[int, int] | None = None,
) -> bytes:
    """A realistic EXIF block: camera, date taken, GPS position, orientation, optional pixel size."""
    zeroth = {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Orientation: orientation}
    exif: dict = {piexif.ExifIFD.DateTimeOriginal: taken.encode()}
    if size is not None:
        exif[piexif.ExifIFD.PixelXDimension], exif[piexif.ExifIFD.PixelYDimension] = size
    gps_ifd = {}
    if gps:
        gps_ifd = {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2999, 100)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (300, 100)),
        }
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps_ifd, "1st": {}, "thumbnail": None})


def _s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_)) + ascii_ + b"\x00" * (4 + 4 + 2 + 1 + 67)


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x, y, z)


def _assemble_icc(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2.1 display profile from (signature, data) tags; data blocks are 4-byte aligned."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += b"\x00" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = 128 + table_size + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", space, b"XYZ ")
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\x00" * 24 + b"\x00" * 4
    header += _s15(*_D50) + b"\x00" * 4
    header += b"\x00" * (128 - len(header))
    return header + table + body


def make_rgb_icc(
    gamma: float = 2.2, primaries: tuple = ADOBE_RGB_D50, description: str = "photosr test RGB"
) -> bytes:
    """A matrix/TRC RGB profile (default: Adobe-RGB-like primaries, gamma 2.2)."""
    tags = [(b"desc", _desc_tag(description)), (b"wtpt", _xyz(*_D50))]
    tags += [(sig, _xyz(*col)) for sig, col in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries, strict=True)]
    tags += [(sig, _gamma_curve(gamma)) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return _assemble_icc(b"RGB ", tags)


def make_grey_icc(gamma: float = 1.8, description: str = "photosr test grey") -> bytes:
    """A grey TRC profile (a plain gamma)."""
    tags = [(b"desc", _desc_tag(description)), (b"wtpt", _xyz(*_D50)), (b"kTRC", _gamma_curve(gamma))]
    return _assemble_icc(b"GRAY", tags)


def png_16bit_bytes(data: np.ndarray, trns: tuple[int, ...] | None = None) -> bytes:
    """An independent minimal 16-bit PNG encoder (filter 0 only) for test inputs: HxWxC uint16, C=1..4.

    `trns`: a 16-bit colour key (1 value for grey, 3 for RGB) written as a tRNS chunk.
    """
    import zlib

    h, w, c = data.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in data)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    key = chunk(b"tRNS", struct.pack(f">{len(trns)}H", *trns)) if trns else b""
    idat = chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + key + idat + chunk(b"IEND", b"")


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: float, what: str = "") -> None:
    """Max absolute difference within `tol`, with a message that says how far off and where."""
    diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    where = np.unravel_index(int(diff.argmax()), diff.shape) if diff.size else ()
    assert worst <= tol, f"{what}: max difference {worst:.5f} > {tol} at {where}"
