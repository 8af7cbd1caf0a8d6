"""Pure colour math on float32 arrays (channels last, 0..1).

Every function takes and returns float32 numpy arrays and never changes its input. The sRGB curve is the
exact piecewise IEC 61966-2-1 one (linear toe, then a 2.4 power), not a plain 2.2 gamma: the toe matters
for dark pixels, and a pure gamma drifts by up to ~1/255 against what every decoder and viewer assumes.

Y/Cb/Cr is BT.601 full range as JPEG uses it, with Cb and Cr centred at 0.5 so every plane stays in 0..1.
"""

from __future__ import annotations

import numpy as np

# Breakpoints of the sRGB curve (IEC 61966-2-1). The encoded toe ends at 0.04045, the linear one at
# 0.04045 / 12.92 = 0.0031308.
_ENC_TOE = np.float32(0.04045)
_LIN_TOE = np.float32(0.0031308)

# BT.601 luma weights (JPEG / JFIF full range; also the Y the SR papers score, before its studio-range scaling).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_KR, _KG, _KB = LUMA_WEIGHTS


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


# Curves run over 64 Ki-element chunks with in-place arithmetic: on a 12 MP photo whole-array temporaries
# cost ~150 MB each and made the curve 3-5x slower than the arithmetic itself.
_CHUNK = 1 << 16


def _map_chunked(x: np.ndarray, curve) -> np.ndarray:
    # Row blocks of the (possibly strided, e.g. one channel of HxWx3) input: no contiguous copy first.
    src = np.asarray(x, dtype=np.float32)
    out = np.empty(src.shape, dtype=np.float32)
    if src.ndim == 0:
        curve(src.reshape(1), out.reshape(1))
        return out
    rows = max(1, _CHUNK // max(1, src[0].size))
    for start in range(0, src.shape[0], rows):
        curve(src[start : start + rows], out[start : start + rows])
    return out


def _decode_chunk(v: np.ndarray, o: np.ndarray) -> None:
    np.clip(v, 0.0, 1.0, out=o)
    toe = o / np.float32(12.92)
    np.maximum(o, _ENC_TOE, out=o)
    o += np.float32(0.055)
    o /= np.float32(1.055)
    np.power(o, np.float32(2.4), out=o)
    np.copyto(o, toe, where=v <= _ENC_TOE)


def _encode_chunk(v: np.ndarray, o: np.ndarray) -> None:
    np.clip(v, 0.0, 1.0, out=o)
    toe = o * np.float32(12.92)
    np.maximum(o, _LIN_TOE, out=o)
    np.power(o, np.float32(1.0 / 2.4), out=o)
    o *= np.float32(1.055)
    o -= np.float32(0.055)
    np.copyto(o, toe, where=v <= _LIN_TOE)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded 0..1 -> linear light 0..1 (float32, same shape); values outside 0..1 are clipped."""
    return _map_chunked(rgb, _decode_chunk)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light 0..1 -> sRGB-encoded 0..1 (float32, same shape); values outside 0..1 are clipped."""
    return _map_chunked(linear, _encode_chunk)


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour HxWxC times alpha HxW (straight -> premultiplied)."""
    return np.multiply(_as_f32(rgb), _as_f32(alpha)[..., None], dtype=np.float32)


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied colour HxWxC divided by alpha HxW; 0 where alpha is 0, clipped to 0..1.

    The clip matters after resampling: ringing filters leave premultiplied colour slightly above alpha
    at edges, which would otherwise divide into values above 1.
    """
    a = _as_f32(alpha)[..., None]
    out = np.zeros(np.broadcast_shapes(np.shape(rgb), a.shape), dtype=np.float32)
    np.divide(_as_f32(rgb), a, out=out, where=a > 0)
    return np.clip(out, 0.0, 1.0, out=out)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """RGB 0..1 -> Y, Cb, Cr (BT.601 full range) in 0..1, chroma centred at 0.5."""
    x = _as_f32(rgb)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = _KR * r + _KG * g + _KB * b
    cb = (b - y) * np.float32(0.5 / (1.0 - _KB)) + np.float32(0.5)
    cr = (r - y) * np.float32(0.5 / (1.0 - _KR)) + np.float32(0.5)
    return np.stack([y, cb, cr], axis=-1).astype(np.float32, copy=False)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Y, Cb, Cr (BT.601 full range, chroma centred at 0.5) -> RGB, clipped to 0..1."""
    x = _as_f32(ycbcr)
    y = x[..., 0]
    cb = x[..., 1] - np.float32(0.5)
    cr = x[..., 2] - np.float32(0.5)
    r = y + np.float32(2.0 * (1.0 - _KR)) * cr
    b = y + np.float32(2.0 * (1.0 - _KB)) * cb
    g = (y - np.float32(_KR) * r - np.float32(_KB) * b) / np.float32(_KG)
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(np.float32, copy=False)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y of sRGB-encoded RGB (HxWx3 -> HxW), 0..1 - the Y of `rgb_to_ycbcr`."""
    x = _as_f32(rgb)
    y = np.float32(_KR) * x[..., 0] + np.float32(_KG) * x[..., 1]
    y += np.float32(_KB) * x[..., 2]
    return y


__all__ = [
    "LUMA_WEIGHTS",
    "linear_to_srgb",
    "luminance",
    "premultiply",
    "rgb_to_ycbcr",
    "srgb_to_linear",
    "unpremultiply",
    "ycbcr_to_rgb",
]
