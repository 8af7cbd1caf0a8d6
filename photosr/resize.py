"""Resizing in linear light, with alpha premultiplied.

Averaging sRGB-encoded values darkens fine detail (1-px black/white stripes halve to 0.5 instead of the
0.735 the eye sees), and averaging straight-alpha colour pulls the colour of invisible pixels into edges
(dark fringes around cut-outs). So colour goes to linear light, is multiplied by alpha, resampled, divided
back and re-encoded; alpha is resampled on its own.

Resampling is Pillow's float "F" mode per plane, which is antialiased when shrinking (the kernel widens
with the scale): LANCZOS to shrink, BICUBIC to enlarge (fewer ringing halos than Lanczos when the kernel
is not widened). `reducing_gap=None` keeps it one exact pass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from photosr.colour import linear_to_srgb, srgb_to_linear, unpremultiply
from photosr.errors import UsageError
from photosr.image import Photo


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise UsageError(f"resize target must be at least 1x1, got {size!r}")
    return w, h


def _method(src_shape: tuple[int, ...], size: tuple[int, int]) -> Image.Resampling:
    shrinking = size[0] * size[1] < src_shape[0] * src_shape[1]
    return Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC


def _resample_plane(plane: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """One HxW float32 plane resampled by Pillow's F mode (Pillow copies it in; F cannot be mapped)."""
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    img = Image.frombuffer("F", (plane.shape[1], plane.shape[0]), plane, "raw", "F", 0, 1)
    return np.asarray(img.resize(size, method, reducing_gap=None), dtype=np.float32)


def _resample_planes(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW or HxWxC float32 -> h x w (x C) float32, plane by plane."""
    if planes.shape[1] == size[0] and planes.shape[0] == size[1]:
        return planes.astype(np.float32, copy=True)
    method = _method(planes.shape, size)
    if planes.ndim == 2:
        return _resample_plane(planes, size, method)
    out = np.empty((size[1], size[0], planes.shape[2]), dtype=np.float32)
    for c in range(planes.shape[2]):
        out[..., c] = _resample_plane(planes[..., c], size, method)
    return out


def _resample_linear(rgb: np.ndarray, size: tuple[int, int], alpha: np.ndarray | None) -> np.ndarray:
    """Each colour channel decoded to linear light (times alpha) and resampled, one plane at a time.

    Working per channel keeps the temporaries at one plane (48 MB at 12 MP instead of 144 MB) and feeds
    Pillow contiguous planes without an extra interleaved copy.
    """
    method = _method(rgb.shape, size)
    out = np.empty((size[1], size[0], 3), dtype=np.float32)
    for c in range(3):
        plane = srgb_to_linear(rgb[..., c])
        if alpha is not None:
            plane *= alpha
        out[..., c] = _resample_plane(plane, size, method)
    return out


def linear_light_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 sRGB-encoded float32 0..1 -> resized to `size` = (width, height), resampled in linear light."""
    size = _check_size(size)
    if size == (rgb.shape[1], rgb.shape[0]):
        return np.array(rgb, dtype=np.float32)
    return linear_to_srgb(_resample_linear(rgb, size, None))


def resize_photo(photo: Photo, size: tuple[int, int]) -> Photo:
    """The photo resized to `size` = (width, height): colour in linear light premultiplied by alpha."""
    size = _check_size(size)
    if size == photo.size:
        return photo
    if photo.alpha is None:
        return photo.with_pixels(linear_light_resize(photo.rgb, size), None)
    alpha = np.clip(_resample_planes(photo.alpha, size), 0.0, 1.0)
    linear = _resample_linear(photo.rgb, size, np.ascontiguousarray(photo.alpha, dtype=np.float32))
    return photo.with_pixels(linear_to_srgb(unpremultiply(linear, alpha)), alpha)


def fit_within(photo: Photo, max_side: int) -> Photo:
    """The photo shrunk (never enlarged) so its longer side is at most `max_side`, keeping the aspect."""
    if max_side < 1:
        raise UsageError(f"max_side must be at least 1, got {max_side}")
    w, h = photo.size
    longest = max(w, h)
    if longest <= max_side:
        return photo
    scale = max_side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Rounding must not push the longer side past the limit (e.g. 1001 x 1000 into 500).
    size = (min(size[0], max_side), min(size[1], max_side))
    return resize_photo(photo, size)


__all__ = ["fit_within", "linear_light_resize", "resize_photo"]
