"""Decode any photo into the `Photo` contract, and encode a `Photo` back faithfully.

Loading: every Pillow mode is normalized to HxWx3 float32 sRGB-encoded 0..1 plus straight alpha; the EXIF
orientation is applied (pixels upright, the source value recorded; Pillow turns TIFFs and pillow-heif
turns HEIFs themselves, which is recorded but not repeated); an embedded ICC profile is converted to sRGB
(the bytes kept in `info.icc_profile`); grey stays marked grey; 16-bit stays 16-bit. Value conventions:
I;16 and I are 0..65535 (I clipped to it), F is 0..1 (clipped, NaN -> 0), CMYK without a profile uses
Pillow's formula. Colours outside sRGB are clipped (the contract is 0..1), so a wide-gamut source comes
back from `keep_source_profile` with its most saturated colours pulled in.

Saving puts back what the source had: grey (L / I;16), alpha (JPEG: composited over white, as a viewer
shows it), 16 bits for PNG/TIFF, EXIF via piexif (Orientation=1, PixelX/YDimension = new size, stale
thumbnail dropped; Pillow's EXIF writer as fallback), XMP (its orientation reset too), DPI, and an sRGB
profile - or the source's own with the pixels converted back. Writes are atomic: a dot-named
`.photosr-tmp` file in the destination folder, fsync, `os.replace`.

16-bit colour: Pillow has no 16-bit RGB mode and decodes 16-bit RGB(A) PNG/TIFF to 8 bits by keeping the
high byte of each sample. We decode such files a second time with the byte order of the raw mode swapped
(`RGB;16B` -> `RGB;16L`), which makes Pillow's own unpacker keep the *low* bytes, and join the two; the PNG
filters and TIFF decompression still run in Pillow's C code. Pillow cannot write 16-bit colour either, so
all 16-bit output goes through two small writers at the end of this module (PNG chunks via zlib +
struct, a Deflate TIFF whose IFD Pillow serializes). ICC conversion of 16-bit pixels runs in float32 for
matrix/TRC profiles (LittleCMS via ImageCms only has 8-bit RGB).
"""

from __future__ import annotations

import functools
import io
import os
import re
import secrets
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import piexif
from PIL import (
    Image,
    ImageCms,
    ImageFile,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    features,
)

from photosr.colour import linear_to_srgb, luminance, srgb_to_linear
from photosr.errors import ImageReadError, ImageTooLargeError, ImageWriteError, UsageError
from photosr.image import Photo, SourceInfo
from photosr.jpeg import jpeg_quality

DEFAULT_MAX_PIXELS: int | None = 200_000_000

# photosr checks `max_pixels` itself before any pixel is decoded, so Pillow's own bomb warning (at ~89 MP)
# only repeats that check with a different number.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_PILLOW_LIMIT_LOCK = threading.Lock()
# What Pillow's decoders raise on damaged data (found by fuzzing the tests' files: TIFF alone gives
# TypeError and KeyError for broken tags, PNG zlib.error, others struct.error).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
    zlib.error,
    ZeroDivisionError,
)

_HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif", ".heics", ".heifs"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_heif_registered = False

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# What each EXIF orientation needs to show the pixels upright (EXIF 2.32, tag 0x0112).
_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, k=1),
}


@dataclass
class _Pixels:
    """Decoded pixels before orientation and float conversion (integers keep the copy small)."""

    colour: np.ndarray  # HxWx3, or HxW for grey; uint8, uint16 or float32
    alpha: np.ndarray | None  # HxW float32 0..1
    scale: float  # colour / scale -> 0..1
    grey: bool
    bit_depth: int
    icc_used: bytes | None = None  # the profile the colour was converted from (None: taken as sRGB)


# ---------------------------------------------------------------------------------------------- loading


def load_photo(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Read an image file into a `Photo`: upright, sRGB, float32 0..1, alpha apart, provenance recorded.

    Raises `ImageReadError` (missing, unreadable, not an image, truncated, unsupported) or
    `ImageTooLargeError` when the image has more than `max_pixels` pixels (None or 0 = no limit).
    """
    path = Path(path)
    _check_readable(path)
    _prepare_heif(path)
    with _open_image(path) as img:
        w, h = img.size
        if max_pixels and w * h > max_pixels:
            raise ImageTooLargeError(
                f"{w}x{h} = {w * h / 1e6:.1f} MP is above the {max_pixels / 1e6:.1f} MP limit "
                "(raise it with max_pixels=... / --max-pixels, or None / 0 for no limit)",
                path,
            )
        try:
            return photo_from_pil(img, path=path)
        except _DECODE_ERRORS as err:
            raise ImageReadError(
                f"truncated or corrupt image data ({err or type(err).__name__})", path
            ) from err


def _check_readable(path: Path) -> None:
    if path.is_dir():
        raise ImageReadError("is a directory, not an image file", path)
    if not path.exists():
        raise ImageReadError("no such file", path)


@contextmanager
def _open_image(path: Path) -> Iterator[ImageFile.ImageFile]:
    try:
        img = _pillow_open(path)
    except UnidentifiedImageError as err:
        raise ImageReadError(f"not an image format photosr can read ({_sniff(path)})", path) from err
    except PermissionError as err:
        raise ImageReadError("permission denied", path) from err
    except _DECODE_ERRORS as err:
        raise ImageReadError(f"cannot read the image header ({err or type(err).__name__})", path) from err
    try:
        yield img
    finally:
        img.close()


def _pillow_open(path: Path) -> ImageFile.ImageFile:
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        pass
    # photosr applies its own `max_pixels` to the size read here, before decoding: lift Pillow's
    # (process-wide) limit just for this header parse, under a lock so only one thread does it at a time.
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return "unreadable"
    if not head:
        return "empty file"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        if features.check("avif"):
            return "an AVIF file Pillow could not decode"
        return "AVIF needs a Pillow built with AVIF support (11.2 or later)"
    return f"starts with {head[:8]!r}"


def _prepare_heif(path: Path) -> None:
    """Register pillow-heif's opener the first time a HEIF file shows up (by suffix or by its brand)."""
    global _heif_registered
    if _heif_registered or not _looks_like_heif(path):
        return
    try:
        import pillow_heif
    except ImportError as err:
        raise ImageReadError(
            "HEIC/HEIF needs the pillow-heif package: pip install 'photosr[heif]'", path
        ) from err
    pillow_heif.register_heif_opener()
    _heif_registered = True


def _looks_like_heif(path: Path) -> bool:
    if path.suffix.lower() in _HEIF_SUFFIXES:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def photo_from_pil(img: Image.Image, *, path: str | Path | None = None) -> Photo:
    """Normalize a Pillow image (any mode) into a `Photo`; see the module docstring for what that means.

    An unloaded 16-bit RGB(A) PNG/TIFF opened from a file keeps all 16 bits; an already loaded one has
    been cut to 8 bits by Pillow and comes back as 8 bits.
    """
    path = Path(path) if path is not None else _filename(img)
    fmt = img.format
    frames = _frame_count(img)
    # Decode before reading EXIF: Pillow's PNG getexif() loads the pixels, and the 16-bit path needs the
    # image still unloaded.
    turned_by_decoder = _decoder_orientation(img)
    pixels = _decode(img, path)
    orientation = _orientation(img)
    exif = _exif_bytes(img)
    if turned_by_decoder != 1:
        orientation, turn = turned_by_decoder, 1
    else:
        turn = orientation
    colour = _upright(pixels.colour, turn)
    alpha = None if pixels.alpha is None else _as_float(_upright(pixels.alpha, turn), 1.0)
    rgb = _as_float(colour, pixels.scale)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    info = SourceInfo(
        path=path,
        format=fmt,
        mode=img.mode,
        bit_depth=pixels.bit_depth,
        grey=pixels.grey,
        orientation=orientation,
        icc_profile=pixels.icc_used,
        exif=exif,
        xmp=_xmp_bytes(img),
        dpi=_dpi(img, orientation),
        frames=frames,
        jpeg_quality=jpeg_quality(img),
    )
    return Photo(rgb=rgb, alpha=alpha, info=info)


def _frame_count(img: Image.Image) -> int:
    try:
        return int(getattr(img, "n_frames", 1) or 1)
    except Exception:  # counting walks every frame; a damaged later one must not cost the first
        return 1


def _filename(img: Image.Image) -> Path | None:
    name = getattr(img, "filename", None)
    return Path(name) if name else None


def _decoder_orientation(img: Image.Image) -> int:
    """The orientation a decoder applies by itself while loading (Pillow for TIFF, libheif for HEIF)."""
    value = img.info.get("original_orientation")  # pillow-heif: already turned, EXIF reset to 1
    tags = getattr(img, "tag_v2", None)
    if value is None and tags is not None:
        value = tags.get(0x0112)  # Pillow turns TIFFs upright during load() and drops the tag
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1  # unreadable EXIF is not worth refusing the photo over
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(a: np.ndarray, orientation: int) -> np.ndarray:
    op = _ORIENT_OPS.get(orientation)
    return a if op is None else op(a)


def _as_float(a: np.ndarray, scale: float) -> np.ndarray:
    """A contiguous float32 copy of `a / scale` in one pass, whatever the strides of `a` (turned views)."""
    out = np.empty(a.shape, dtype=np.float32)
    if scale == 1.0:
        np.copyto(out, a, casting="unsafe")
        return np.clip(out, 0.0, 1.0, out=out)
    np.multiply(a, np.float32(1.0 / scale), out=out, casting="unsafe")
    return out


def _decode(img: Image.Image, path: Path | None) -> _Pixels:
    """Pixels of any Pillow mode as integer/float arrays, colour converted to sRGB."""
    mode = img.mode
    kind = _deep_kind(img)
    # The twin decode reads the file the image really came from, whatever name the caller gave it.
    twin = _redecode_swapped(_filename(img)) if kind is not None else None
    img.load()
    if twin is not None and twin.shape[:2] == (img.height, img.width):
        return _deep_grey_alpha(img, twin) if kind == "LA" else _deep_colour(img, twin)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _grey_16(img)
    if mode == "F":
        f = np.asarray(img, dtype=np.float32)
        return _Pixels(np.nan_to_num(f), None, 1.0, grey=True, bit_depth=16)
    return _decode_8bit(img)


def _decode_8bit(img: Image.Image) -> _Pixels:
    img, grey = _canonical_8bit(img)
    alpha = None
    if img.mode in ("LA", "RGBA"):
        alpha = np.asarray(img.getchannel("A"))
        img = img.convert("L" if img.mode == "LA" else "RGB")
    img, icc_used = _to_srgb(img)
    colour = np.asarray(img)
    if colour.ndim == 3 and not grey and _channels_equal(colour):
        grey = True
    if grey and colour.ndim == 3:
        colour = colour[..., 1]
    alpha_f = None if alpha is None else alpha.astype(np.float32) / np.float32(255)
    return _Pixels(colour, alpha_f, 255.0, grey=grey, bit_depth=8, icc_used=icc_used)


def _canonical_8bit(img: Image.Image) -> tuple[Image.Image, bool]:
    """Any 8-bit-ish mode -> L, LA, RGB, RGBA or CMYK (kept for its profile), plus whether it is grey."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:
        # A PNG tRNS colour key: Pillow's conversion turns that one colour transparent.
        return img.convert("LA" if mode == "L" else "RGBA"), mode == "L"
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return img, mode in _GREY_MODES
    if mode in ("1", "La"):
        return img.convert("L" if mode == "1" else "LA"), True
    if mode in ("P", "PA"):
        return _from_palette(img)
    if mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, lab, srgb, outputMode="RGB"), False
    # RGBa, RGBX, YCbCr, HSV and the rest: Pillow's own conversions are exact for these.
    has_alpha = "A" in mode or "a" in mode
    return img.convert("RGBA" if has_alpha else "RGB"), False


def _from_palette(img: Image.Image) -> tuple[Image.Image, bool]:
    has_alpha = img.mode == "PA" or "transparency" in img.info or (img.palette and img.palette.mode == "RGBA")
    rgba = img.convert("RGBA" if has_alpha else "RGB")
    grey = _palette_is_grey(img)
    if grey:
        return rgba.convert("LA" if has_alpha else "L"), True
    return rgba, False


def _palette_is_grey(img: Image.Image) -> bool:
    palette = img.getpalette("RGB")
    if palette is None:
        return False
    entries = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    indices = img if img.mode == "P" else img.getchannel(0)
    used = indices.getcolors(256)
    if used is None:
        return False
    idx = np.asarray([i for _, i in used if i < len(entries)], dtype=np.intp)
    used_entries = entries[idx]
    return bool(np.all(used_entries == used_entries[:, :1]))


def _channels_equal(rgb: np.ndarray) -> bool:
    """True if R == G == B everywhere; a colour photo fails on its first rows, so that exits early."""
    head = rgb[: min(16, rgb.shape[0])]
    if not (np.array_equal(head[..., 0], head[..., 1]) and np.array_equal(head[..., 1], head[..., 2])):
        return False
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _to_srgb(img: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Convert L/RGB/CMYK through the embedded profile to sRGB; CMYK without one via Pillow's formula."""
    icc = img.info.get("icc_profile")
    if icc:
        converted = _icc_to_srgb_8bit(img, icc)
        if converted is not None:
            return converted, icc
    if img.mode == "CMYK":
        # No profile: Pillow's R = (255 - C)(255 - K) / 255, the usual guess for untagged CMYK.
        return img.convert("RGB"), None
    return img, None


def _grey_16(img: Image.Image) -> _Pixels:
    a = np.asarray(img)
    if img.mode == "I":
        # 32-bit integer images in practice hold 16-bit data (old 16-bit PNG decodes, scanner TIFFs).
        a = np.clip(a, 0, 65535).astype(np.uint16)
    a = a.astype(np.uint16, copy=False)  # I;16B arrives big-endian; make it native for the math
    alpha = _colour_key_alpha(img, a)
    icc = img.info.get("icc_profile")
    f = a.astype(np.float32) / np.float32(65535)
    f, used = _icc_float_to_srgb(f, icc)
    return _Pixels(f, alpha, 1.0, grey=True, bit_depth=16, icc_used=used)


def _colour_key_alpha(img: Image.Image, values: np.ndarray) -> np.ndarray | None:
    """PNG tRNS on a non-palette image: one colour is fully transparent."""
    key = img.info.get("transparency")
    if key is None or isinstance(key, bytes):
        return None
    key_arr = np.asarray(key, dtype=values.dtype)
    match = values == key_arr if values.ndim == 2 else np.all(values == key_arr, axis=-1)
    return (~match).astype(np.float32)


# ---------------------------------------------------------------------------------- 16-bit colour decoding


def _swapped_rawmode(rawmode: str) -> str | None:
    """For a 16-bit multi-channel raw mode, the raw mode whose unpacker keeps the low bytes; else None."""
    m = re.fullmatch(r"(RGB|RGBA|RGBa|RGBX|LA);16([BLN])", rawmode)
    if m is None:
        return None
    if m.group(1) == "LA":
        return "RGBA"  # 2 x 16 bits = 4 bytes a pixel: as RGBA they come out as (L hi, L lo, A hi, A lo)
    order = m.group(2)
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return f"{m.group(1)};16{'L' if order == 'B' else 'B'}"


def _tile_rawmode(tile: ImageFile._Tile) -> str | None:
    args = tile.args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _deep_kind(img: Image.Image) -> str | None:
    """ "RGB" or "LA" for an unloaded 16-bit multi-channel image Pillow would cut to 8 bits, else None."""
    tiles = getattr(img, "tile", None)
    if not tiles or img.mode not in ("RGB", "RGBA", "RGBa", "RGBX"):
        return None
    rawmode = _tile_rawmode(tiles[0])
    if rawmode is None or _swapped_rawmode(rawmode) is None:
        return None
    return "LA" if rawmode.startswith("LA;") else "RGB"


def _redecode_swapped(path: Path | None) -> np.ndarray | None:
    """Decode the file again with swapped byte order so Pillow's unpacker keeps the low bytes."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as twin:
            twin.tile = [_swap_tile(t) for t in twin.tile]
            twin.load()
            return np.asarray(twin)
    except (OSError, ValueError, KeyError):
        return None  # a raw mode without a swapped unpacker: the caller falls back to 8 bits


def _swap_tile(tile: ImageFile._Tile) -> ImageFile._Tile:
    rawmode = _tile_rawmode(tile)
    swapped = _swapped_rawmode(rawmode) if rawmode else None
    if swapped is None:
        raise ValueError(f"unexpected raw mode {rawmode!r}")
    args = swapped if isinstance(tile.args, str) else (swapped, *tile.args[1:])
    return tile._replace(args=args)


def _deep_colour(img: Image.Image, low: np.ndarray) -> _Pixels:
    high = np.asarray(img)
    both = (high.astype(np.uint16) << 8) | low
    alpha = None
    if img.mode in ("RGBA", "RGBa"):
        alpha = both[..., 3].astype(np.float32) / np.float32(65535)
    else:
        alpha = _colour_key_alpha(img, both[..., :3])
    colour = both[..., :3].astype(np.float32) / np.float32(65535)
    if img.mode == "RGBa":
        a = alpha[..., None]
        colour = np.divide(colour, a, out=np.zeros_like(colour), where=a > 0)
    colour, used = _icc_float_to_srgb(colour, img.info.get("icc_profile"))
    grey = used is None and _channels_equal(both[..., :3])
    return _Pixels(colour[..., 1] if grey else colour, alpha, 1.0, grey=grey, bit_depth=16, icc_used=used)


def _deep_grey_alpha(img: Image.Image, bytes4: np.ndarray) -> _Pixels:
    b = bytes4.astype(np.uint16)
    grey = ((b[..., 0] << 8) | b[..., 1]).astype(np.float32) / np.float32(65535)
    alpha = ((b[..., 2] << 8) | b[..., 3]).astype(np.float32) / np.float32(65535)
    grey, used = _icc_float_to_srgb(grey, img.info.get("icc_profile"))
    return _Pixels(grey, alpha, 1.0, grey=True, bit_depth=16, icc_used=used)


# --------------------------------------------------------------------------------------------- metadata


# TIFF keeps EXIF as tags of the image's own IFD, mixed with layout tags (strips, sizes, compression)
# that mean nothing for another file: only these descriptive ones are carried over.
_TIFF_DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)


def _exif_bytes(img: Image.Image) -> bytes | None:
    raw = img.info.get("exif")
    if isinstance(raw, bytes) and raw:
        return raw
    if getattr(img, "tag_v2", None) is None:
        return None
    try:
        return _exif_from_tiff_tags(img.getexif())
    except (OSError, ValueError, TypeError, KeyError, struct.error):
        return None


def _exif_from_tiff_tags(tiff: Image.Exif) -> bytes | None:
    exif = Image.Exif()
    for tag in _TIFF_DESCRIPTIVE_TAGS:
        if tag in tiff:
            exif[tag] = tiff[tag]
    for ifd in (0x8769, 0x8825):  # Exif (dates, exposure) and GPS sub-IFDs
        if ifd in tiff:
            exif[ifd] = tiff.get_ifd(ifd)
    return exif.tobytes() if len(exif) else None


def _xmp_bytes(img: Image.Image) -> bytes | None:
    raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return raw or None


def _dpi(img: Image.Image, orientation: int) -> tuple[float, float] | None:
    dpi = img.info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if x <= 0 or y <= 0:
        return None
    # Orientations 5-8 turn the photo a quarter, so horizontal and vertical density swap.
    return (y, x) if orientation >= 5 else (x, y)


# ------------------------------------------------------------------------------------------ ICC profiles
#
# 8-bit pixels go through LittleCMS (ImageCms), which handles every profile kind including CMYK LUTs.
# ImageCms has no 16-bit RGB mode, so 16-bit pixels are converted in float32 here for the profiles photo
# files carry in practice - matrix/TRC RGB (Adobe RGB, ProPhoto, Display P3, Rec. 2020) and grey TRC.
# Anything else (LUT-based RGB profiles) goes through LittleCMS at 8 bits: right colours, 8-bit precision.

_transform_cache: dict[tuple[bytes, str, str, bool], ImageCms.ImageCmsTransform] = {}
_srgb_profile: ImageCms.ImageCmsProfile | None = None


def _srgb() -> ImageCms.ImageCmsProfile:
    global _srgb_profile
    if _srgb_profile is None:
        _srgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _srgb_profile


@functools.lru_cache(maxsize=1)
def _srgb_icc_bytes() -> bytes:
    return _srgb().tobytes()


def _icc_profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


def _icc_colour_space(icc: bytes) -> str:
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else ""


@functools.lru_cache(maxsize=32)
def _icc_is_srgb(icc: bytes) -> bool:
    """Profiles describing themselves as sRGB are taken as sRGB (no conversion: ~0.5 s saved at 12 MP)."""
    if _icc_colour_space(icc) != "RGB":
        return False
    try:
        desc = ImageCms.getProfileDescription(_icc_profile(icc))
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return False
    return "srgb" in desc.lower()


def _cms_transform(icc: bytes, in_mode: str, out_mode: str, to_srgb: bool) -> ImageCms.ImageCmsTransform:
    key = (icc, in_mode, out_mode, to_srgb)
    transform = _transform_cache.get(key)
    if transform is None:
        src, dst = (_icc_profile(icc), _srgb()) if to_srgb else (_srgb(), _icc_profile(icc))
        transform = ImageCms.buildTransform(src, dst, in_mode, out_mode)
        if len(_transform_cache) > 16:
            _transform_cache.clear()
        _transform_cache[key] = transform
    return transform


def _icc_to_srgb_8bit(img: Image.Image, icc: bytes) -> Image.Image | None:
    """`img` (L, RGB or CMYK) from `icc` to sRGB RGB; None if the profile does not fit the pixels."""
    if img.mode == "RGB" and _icc_is_srgb(icc):
        return img
    try:
        return _cms_transform(icc, img.mode, "RGB", True).apply(img)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _s15(data: bytes, offset: int, count: int) -> np.ndarray:
    return np.frombuffer(data, dtype=">i4", count=count, offset=offset).astype(np.float64) / 65536.0


def _icc_tags(icc: bytes) -> dict[str, bytes]:
    count = struct.unpack_from(">I", icc, 128)[0]
    tags = {}
    for i in range(min(count, 200)):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig.decode("latin-1")] = icc[offset : offset + size]
    return tags


def _trc_table(tag: bytes) -> np.ndarray:
    """A 'curv' or 'para' tone curve sampled at the 65536 16-bit input levels."""
    x = np.arange(65536, dtype=np.float64) / 65535.0
    kind = tag[:4]
    if kind == b"curv":
        n = struct.unpack_from(">I", tag, 8)[0]
        if n == 0:
            return x
        if n == 1:
            return x ** (struct.unpack_from(">H", tag, 12)[0] / 256.0)
        table = np.frombuffer(tag, dtype=">u2", count=n, offset=12) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if kind == b"para":
        return _para_curve(x, struct.unpack_from(">H", tag, 8)[0], tag)
    raise ValueError(f"unsupported tone curve type {kind!r}")


def _para_curve(x: np.ndarray, kind: int, tag: bytes) -> np.ndarray:
    n_params = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(kind)
    if n_params is None:
        raise ValueError(f"unsupported parametric curve {kind}")
    g, a, b, c, d, e, f = [*_s15(tag, 12, n_params), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0][:7]
    if kind == 0:
        return x**g
    if kind in (1, 2):
        cut = -b / a if a else 0.0
        return np.where(
            x >= cut, np.maximum(a * x + b, 0.0) ** g + (c if kind == 2 else 0.0), c if kind == 2 else 0.0
        )
    if kind == 3:
        return np.where(x >= d, np.maximum(a * x + b, 0.0) ** g, c * x)
    return np.where(x >= d, np.maximum(a * x + b, 0.0) ** g + e, c * x + f)


@dataclass(frozen=True)
class _MatrixTrc:
    """A matrix/TRC profile as lookup tables over 16-bit codes, plus its 3x3 matrix (None for grey)."""

    curves: tuple[np.ndarray, ...]  # per channel: profile code -> linear light
    inverses: tuple[np.ndarray, ...]  # per channel: sRGB-encoded linear light -> profile code
    to_srgb: np.ndarray | None  # profile linear RGB -> sRGB linear RGB
    from_srgb: np.ndarray | None


_SRGB_D50_MATRIX = np.array(  # sRGB primaries adapted to the D50 PCS (Bradford), as LittleCMS builds them
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)
_matrix_cache: dict[bytes, _MatrixTrc | None] = {}


def _matrix_trc(icc: bytes) -> _MatrixTrc | None:
    if icc not in _matrix_cache:
        if len(_matrix_cache) > 16:
            _matrix_cache.clear()
        _matrix_cache[icc] = _parse_matrix_trc(icc)
    return _matrix_cache[icc]


def _parse_matrix_trc(icc: bytes) -> _MatrixTrc | None:
    try:
        tags = _icc_tags(icc)
        space = _icc_colour_space(icc)
        if space == "GRAY":
            return _tables((_trc_table(tags["kTRC"]),), None)
        if space != "RGB":
            return None
        cols = [_s15(tags[f"{c}XYZ"], 8, 3) for c in "rgb"]
        curves = tuple(_trc_table(tags[f"{c}TRC"]) for c in "rgb")
    except (KeyError, ValueError, struct.error, IndexError):
        return None
    return _tables(curves, np.linalg.solve(_SRGB_D50_MATRIX, np.stack(cols, axis=1)))


def _tables(curves: tuple[np.ndarray, ...], to_srgb: np.ndarray | None) -> _MatrixTrc:
    # Inverse curves are indexed by sRGB-encoded linear light: that spacing resolves the shadows, where
    # a table over plain linear values would be far too coarse for gamma-like curves.
    grid = np.linspace(0.0, 1.0, 65536)
    encoded_grid = srgb_to_linear(grid.astype(np.float32)).astype(np.float64)
    inverses = tuple(np.interp(encoded_grid, c, grid).astype(np.float32) for c in curves)
    from_srgb = None if to_srgb is None else np.linalg.inv(to_srgb).astype(np.float32)
    to = None if to_srgb is None else to_srgb.astype(np.float32)
    return _MatrixTrc(tuple(c.astype(np.float32) for c in curves), inverses, to, from_srgb)


def _lookup(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[round(values * 65535)]: exact for 8- and 16-bit data, whatever the strides of `values`."""
    return table[_quantize(values, 16)]


def _mix(planes: list[np.ndarray], matrix: np.ndarray) -> list[np.ndarray]:
    """3x3 matrix on three planes, as nine in-place multiply-adds (matmul with an inner size of 3 is slow)."""
    out = []
    for row in matrix:
        acc = planes[0] * row[0]
        acc += planes[1] * row[1]
        acc += planes[2] * row[2]
        out.append(acc)
    return out


def _icc_float_to_srgb(f: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """Float pixels (HxW grey or HxWx3) from `icc` to sRGB; returns (pixels, the profile used or None)."""
    if not icc or _icc_is_srgb(icc):
        return f, icc or None
    profile = _matrix_trc(icc)
    grey = f.ndim == 2
    if profile is None or (profile.to_srgb is None) != grey:
        return _icc_float_via_cms(f, icc)
    if grey:
        return linear_to_srgb(_lookup(f, profile.curves[0])), icc
    linear = [_lookup(f[..., c], profile.curves[c]) for c in range(3)]
    out = np.empty(f.shape, dtype=np.float32)
    for c, plane in enumerate(_mix(linear, profile.to_srgb)):
        out[..., c] = linear_to_srgb(plane)
    return out, icc


def _icc_float_via_cms(f: np.ndarray, icc: bytes) -> tuple[np.ndarray, bytes | None]:
    img = Image.fromarray(_quantize(f, 8), "L" if f.ndim == 2 else "RGB")
    converted = _icc_to_srgb_8bit(img, icc)
    if converted is None:
        return f, None
    out = np.asarray(converted, dtype=np.float32) / np.float32(255)
    return (out[..., 1] if f.ndim == 2 else out), icc


def _icc_float_from_srgb(f: np.ndarray, icc: bytes) -> np.ndarray | None:
    """sRGB float pixels (HxW grey or HxWx3) into a matrix/TRC profile's encoding; None if not one."""
    profile = _matrix_trc(icc)
    if profile is None or (profile.to_srgb is None) != (f.ndim == 2):
        return None
    if f.ndim == 2:
        return _lookup(f, profile.inverses[0])
    linear = [srgb_to_linear(f[..., c]) for c in range(3)]
    out = np.empty(f.shape, dtype=np.float32)
    for c, plane in enumerate(_mix(linear, profile.from_srgb)):
        out[..., c] = _lookup(linear_to_srgb(plane), profile.inverses[c])
    return out


# ---------------------------------------------------------------------------------------------- saving

# zlib level for PNG and 16-bit TIFF. Measured on a 2048x1536 photo: level 3 writes in 0.42 s and 3.94 MB,
# Pillow's default 6 in 1.18 s and 3.73 MB - 2.8x the time for 5% smaller files is a bad trade in bulk.
_ZLIB_LEVEL = 3

_FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF"}
_KEEP_AS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "TIFF": "TIFF"}
_SUFFIXES = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
}


def output_format(format: str, source_format: str | None) -> str:
    """Pillow format name to write: `format` is keep|png|jpeg|jpg|webp|tiff|tif (any case).

    "keep" is the source's format when photosr can write it (MPO counts as JPEG), else PNG.
    """
    name = format.lower()
    if name == "keep":
        return _KEEP_AS.get((source_format or "").upper(), "PNG")
    if name not in _FORMAT_NAMES:
        raise UsageError(f"unknown output format {format!r} (choose keep, png, jpeg, webp or tiff)")
    return _FORMAT_NAMES[name]


# Extensions that name an image format: replaced by the output's; any other suffix ("IMG_1.final") is
# part of the name and the output extension is appended after it.
_IMAGE_SUFFIXES = frozenset(
    [
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".mpo",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
        ".bmp",
        ".dib",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
        ".jp2",
        ".j2k",
        ".jxl",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".ico",
        ".psd",
        ".pcx",
        ".qoi",
        ".dng",
    ]
)


def output_suffix(path: Path, fmt: str) -> Path:
    """`path` with the extension of `fmt`, keeping an existing extension that already names it (.jpeg)."""
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES[fmt]:
        return path
    if suffix in _IMAGE_SUFFIXES:
        return path.with_suffix(_SUFFIXES[fmt][0])
    return path.with_name(path.name + _SUFFIXES[fmt][0])


def _quantize(x: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    scaled = np.multiply(x, np.float32(top), dtype=np.float32)
    # fmax/fmin pick the number over a NaN: a NaN from a model becomes 0, never random bytes.
    np.fmax(scaled, np.float32(0.0), out=scaled)
    np.fmin(scaled, np.float32(top), out=scaled)
    scaled += np.float32(0.5)  # then truncation rounds to nearest
    return scaled.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _out_planes(photo: Photo, grey: bool) -> np.ndarray:
    """HxW grey (luminance, so small colour drift from a task cannot tint it) or HxWx3."""
    return luminance(photo.rgb) if grey else photo.rgb


def photo_to_pil(photo: Photo, *, grey: bool | None = None, bit_depth: int = 8) -> Image.Image:
    """The photo as a Pillow image: L / LA / RGB / RGBA at 8 bits, or I;16 for 16-bit grey without alpha.

    `grey=None` follows the source (grey unless a task added colour). Pillow has no 16-bit colour or
    grey+alpha mode; `save_photo` writes those itself, here they raise `ImageWriteError`.
    """
    if bit_depth not in (8, 16):
        raise UsageError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if grey is None:
        grey = photo.info.grey and not photo.colour_added
    planes = _out_planes(photo, grey)
    if bit_depth == 16:
        if not grey or photo.alpha is not None:
            raise ImageWriteError(
                "Pillow has no 16-bit colour or grey+alpha mode; use save_photo", photo.info.path
            )
        deep = _quantize(planes, 16).astype("<u2", copy=False)
        return Image.frombytes("I;16", photo.size, deep.tobytes())
    data = _quantize(planes, 8)
    if photo.alpha is None:
        return Image.fromarray(data, mode="L" if grey else "RGB")
    alpha = _quantize(photo.alpha, 8)
    stacked = np.dstack([data, alpha]) if grey else np.concatenate([data, alpha[..., None]], axis=2)
    return Image.fromarray(stacked, mode="LA" if grey else "RGBA")


def save_photo(
    photo: Photo,
    path: str | Path,
    *,
    format: str = "keep",
    quality: int = 95,
    strip_metadata: bool = False,
    keep_source_profile: bool = False,
) -> Path:
    """Write the photo atomically and return the path written (its extension follows the format).

    Grey stays grey unless colour was added; alpha is kept where the format holds it (JPEG: composited
    over white); 16-bit sources give 16-bit PNG/TIFF; EXIF is kept with orientation 1 and the new size
    (dropped with `strip_metadata`, as is XMP); the output is tagged sRGB, or converted back to the
    source's profile with `keep_source_profile`; DPI is kept. Raises `ImageWriteError` on failure.
    """
    fmt = output_format(format, photo.info.format)
    if not 1 <= quality <= 100:
        raise UsageError(f"quality must be 1..100, got {quality}")
    path = output_suffix(Path(path), fmt)
    if fmt == "JPEG" and photo.alpha is not None:
        photo = _over_white(photo)
    meta = _metadata(photo, strip_metadata)
    grey = photo.info.grey and not photo.colour_added
    deep = photo.info.bit_depth == 16 and fmt in ("PNG", "TIFF")
    icc = photo.info.icc_profile if keep_source_profile else None
    if deep:
        data, out_icc = _deep_pixels(photo, grey, icc)
        encode = _png16_writer if fmt == "PNG" else _tiff16_writer
        _atomic_write(path, lambda f: encode(f, data, out_icc, meta))
    else:
        img, out_icc = _pil_pixels(photo, grey, icc, fmt)
        _atomic_write(path, lambda f: _pil_save(f, img, fmt, quality, out_icc, meta))
    return path


def _over_white(photo: Photo) -> Photo:
    # Composited on the encoded values, as browsers and viewers show a transparent photo on white.
    a = photo.alpha[..., None]
    rgb = photo.rgb * a + (np.float32(1.0) - a)
    return photo.with_pixels(rgb.astype(np.float32, copy=False), None)


@dataclass(frozen=True)
class _Meta:
    exif: bytes | None
    xmp: bytes | None
    dpi: tuple[float, float] | None


def _metadata(photo: Photo, strip: bool) -> _Meta:
    # DPI is print size, not private metadata: kept even when stripping.
    if strip:
        return _Meta(None, None, photo.info.dpi)
    exif = _fixed_exif(photo.info.exif, photo.size) if photo.info.exif else None
    return _Meta(exif, _fixed_xmp(photo.info.xmp), photo.info.dpi)


_JPEG_EXIF_LIMIT = 65533 - 8  # APP1 payload minus the segment length field, with margin


def _fixed_exif(raw: bytes, size: tuple[int, int]) -> bytes | None:
    """EXIF with Orientation=1, the new pixel size, and no thumbnail (it would show the old photo)."""
    try:
        data = piexif.load(raw)
        data["0th"][piexif.ImageIFD.Orientation] = 1
        for tag in (piexif.ImageIFD.ImageWidth, piexif.ImageIFD.ImageLength):
            data["0th"].pop(tag, None)
        data["Exif"][piexif.ExifIFD.PixelXDimension] = size[0]
        data["Exif"][piexif.ExifIFD.PixelYDimension] = size[1]
        data["1st"], data["thumbnail"] = {}, None
        dumped = piexif.dump(data)
        if len(dumped) > _JPEG_EXIF_LIMIT:
            # A JPEG APP1 segment holds 64 KB; the maker note is what usually overflows it.
            data["Exif"].pop(piexif.ExifIFD.MakerNote, None)
            dumped = piexif.dump(data)
        return dumped if len(dumped) <= _JPEG_EXIF_LIMIT else None
    except Exception:  # piexif raises bare ValueError/KeyError/struct.error on odd maker data
        return _fixed_exif_pillow(raw, size)


def _fixed_exif_pillow(raw: bytes, size: tuple[int, int]) -> bytes | None:
    """Pillow's more forgiving EXIF writer, for EXIF that piexif cannot round-trip."""
    try:
        exif = Image.Exif()
        exif.load(raw)
        exif[0x0112] = 1
        sub = exif.get_ifd(0x8769)
        sub[0xA002], sub[0xA003] = size
        out = exif.tobytes()  # Pillow adds the "Exif\0\0" header itself
        return out if len(out) <= _JPEG_EXIF_LIMIT else None
    except Exception:
        return None  # unreadable EXIF is dropped rather than failing the write


_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:=\"|>))\d(\"|<)")


def _fixed_xmp(xmp: bytes | None) -> bytes | None:
    """XMP with its copy of the orientation reset too, so no viewer turns the upright pixels again."""
    return None if not xmp else _XMP_ORIENTATION.sub(rb"\g<1>1\2", xmp)


def _pil_pixels(photo: Photo, grey: bool, icc: bytes | None, fmt: str) -> tuple[Image.Image, bytes | None]:
    img = photo_to_pil(photo, grey=grey)
    if icc:
        converted = _from_srgb_8bit(img, icc, fmt)
        if converted is not None:
            return converted, icc
    # An RGB profile cannot tag grey pixels; untagged grey is read as sRGB-like gamma everywhere.
    return img, (None if grey else _srgb_icc_bytes())


def _from_srgb_8bit(img: Image.Image, icc: bytes, fmt: str) -> Image.Image | None:
    """sRGB pixels converted into the source profile's space (RGB, grey, or CMYK for JPEG/TIFF)."""
    grey = img.mode in ("L", "LA")
    if _icc_is_srgb(icc):
        return None if grey else img
    out_mode = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(_icc_colour_space(icc))
    if out_mode is None or (out_mode == "L") != grey:
        return None
    if out_mode == "CMYK" and (fmt not in ("JPEG", "TIFF") or img.mode != "RGB"):
        return None
    alpha = img.getchannel("A") if img.mode in ("LA", "RGBA") else None
    try:
        out = _cms_transform(icc, "RGB", out_mode, False).apply(img.convert("RGB"))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _deep_pixels(photo: Photo, grey: bool, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """uint16 HxWxC (C = 1..4) plus the profile to embed, for the 16-bit writers."""
    planes = _out_planes(photo, grey)
    out_icc = None if grey else _srgb_icc_bytes()
    if icc and _icc_is_srgb(icc):
        if not grey:
            out_icc = icc  # the source's own sRGB profile bytes, pixels unchanged
    elif icc:
        converted = _icc_float_from_srgb(planes, icc)
        if converted is not None:
            planes, out_icc = converted, icc
    data = _quantize(planes, 16)
    if data.ndim == 2:
        data = data[..., None]
    if photo.alpha is not None:
        data = np.concatenate([data, _quantize(photo.alpha, 16)[..., None]], axis=2)
    return data, out_icc


def _pil_save(f: BinaryIO, img: Image.Image, fmt: str, quality: int, icc: bytes | None, meta: _Meta) -> None:
    kw: dict[str, object] = {}
    if icc:
        kw["icc_profile"] = icc
    if meta.exif:
        kw["exif"] = meta.exif
    if meta.dpi:
        kw["dpi"] = meta.dpi
    if fmt in ("JPEG", "WEBP"):
        kw["quality"] = quality
        if meta.xmp:
            kw["xmp"] = meta.xmp
    if fmt == "PNG":
        kw["compress_level"] = _ZLIB_LEVEL
    if fmt == "PNG" and meta.xmp:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"))
        kw["pnginfo"] = info
    # TIFF stays uncompressed (Pillow's default): compression goes through libtiff, which cannot write
    # the EXIF and GPS sub-IFDs, and keeping date and place matters more than file size.
    img.save(f, format=fmt, **kw)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temp file in the destination folder, then rename over `path` in one step."""
    if path.is_dir():
        raise ImageWriteError("is a directory", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageWriteError(
            f"cannot create the folder {path.parent} ({err.strerror or err})", path
        ) from err
    # Dot-name + .photosr-tmp: batch discovery and the watcher skip it as junk; the random part keeps
    # two workers writing the same name from sharing a temp file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.photosr-tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, ValueError, KeyError, TypeError)):
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise ImageWriteError(f"cannot write ({reason})", path) from err
        raise


# ------------------------------------------------------------------------------------ 16-bit PNG / TIFF
#
# Pillow cannot write 16-bit RGB(A) or grey+alpha, so these two small writers do (all 16-bit output goes
# through them, grey included, so there is one path to test). PNG: rows Up-filtered in numpy, zlib,
# chunks with CRCs. TIFF: little-endian, one Deflate strip with horizontal differencing; the IFD itself
# is serialized by Pillow's ImageFileDirectory_v2, which also writes the EXIF and GPS sub-IFDs.


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16_writer(f: BinaryIO, data: np.ndarray, icc: bytes | None, meta: _Meta) -> None:
    h, w, c = data.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(data, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    filtered = np.empty((h, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # "Up": each byte minus the one above (wrapping), vectorised over whole rows
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)))
    if icc:
        f.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if meta.dpi:
        ppm = [max(1, round(v / 0.0254)) for v in meta.dpi]
        f.write(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if meta.exif:
        exif = meta.exif[6:] if meta.exif.startswith(b"Exif\x00\x00") else meta.exif
        f.write(_png_chunk(b"eXIf", exif))
    if meta.xmp:
        f.write(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    f.write(_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), _ZLIB_LEVEL)))
    f.write(_png_chunk(b"IEND", b""))


def _tiff16_writer(f: BinaryIO, data: np.ndarray, icc: bytes | None, meta: _Meta) -> None:
    if data.shape[2] == 2:
        # Pillow (and so photosr) cannot open 16-bit grey+alpha TIFF; RGBA with equal channels it can,
        # and loading finds the equal channels grey again.
        data = data[..., [0, 0, 0, 1]]
    h, w, c = data.shape
    diff = data.astype("<u2")  # horizontal differencing (Predictor 2) shrinks smooth photos a lot
    diff[:, 1:] -= data[:, :-1]
    strip = zlib.compress(diff.tobytes(), _ZLIB_LEVEL)
    dpi = meta.dpi or (72.0, 72.0)
    # (tag, TIFF type, value): LONG 4, SHORT 3, RATIONAL 5, UNDEFINED 7.
    tags: list[tuple[int, int, object]] = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, (16,) * c),
        (259, 3, 8),  # Adobe Deflate
        (262, 3, 1 if c <= 2 else 2),
        (273, 4, 0),  # Pillow's IFD writer adds the end of the IFD data: the strip follows it
        (277, 3, c),
        (278, 4, h),
        (279, 4, len(strip)),
        (282, 5, float(dpi[0])),
        (283, 5, float(dpi[1])),
        (284, 3, 1),
        (296, 3, 2),  # inches
        (317, 3, 2),
    ]
    if c in (2, 4):
        tags.append((338, 3, 2))  # extra sample = unassociated (straight) alpha
    if icc:
        tags.append((34675, 7, icc))
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, kind, value in tags:
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    _add_exif_tags(ifd, meta.exif)
    f.write(b"II*\x00" + struct.pack("<I", 8))
    f.write(ifd.tobytes(offset=8))
    f.write(strip)


def _add_exif_tags(ifd: TiffImagePlugin.ImageFileDirectory_v2, exif_bytes: bytes | None) -> None:
    """Camera/date tags into the TIFF's own IFD, Exif and GPS as sub-IFDs (Pillow serializes them)."""
    if not exif_bytes:
        return
    try:
        exif = Image.Exif()
        exif.load(exif_bytes)
        for tag in _TIFF_DESCRIPTIVE_TAGS:
            if tag in exif:
                ifd[tag] = exif[tag]
        for sub in (0x8769, 0x8825):
            if exif.get_ifd(sub):
                ifd[sub] = exif.get_ifd(sub)
    except (OSError, ValueError, TypeError, KeyError, struct.error):
        return  # unreadable EXIF: the pixels matter more


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "load_photo",
    "output_format",
    "output_suffix",
    "photo_from_pil",
    "photo_to_pil",
    "save_photo",
]
