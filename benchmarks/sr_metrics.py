"""PSNR / SSIM / colour shift in numpy alone, for the benchmarks (a torch-free install runs them).

Same protocol and numbers as `photosr.training.evaluate` (which needs torch): 8-bit images, the Y channel
of BT.601 studio-range YCbCr (MATLAB's `rgb2ycbcr`, 16..235) or the three RGB channels, `border` pixels
cropped from every side, SSIM with Wang et al.'s 11x11 Gaussian window (sigma 1.5, 'valid' filtering),
K1 = 0.01, K2 = 0.03 on the 0..255 range. tests/test_bench_metrics.py checks the two agree.
"""

from __future__ import annotations

import numpy as np

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Quantise like saving a PNG would: float 0..1 -> uint8 (uint8 passes through)."""
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16..235) of a uint8 RGB image, float64."""
    return 16.0 + (rgb.astype(np.float64) / 255.0) @ _Y_WEIGHTS


def _planes(a: np.ndarray, b: np.ndarray, border: int, y_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """HxWxC float64 planes to compare (C = 1 for Y, 3 for RGB), `border` cropped."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if y_only:
        x, y = y_channel(a)[..., None], y_channel(b)[..., None]
    else:
        x, y = a.astype(np.float64), b.astype(np.float64)
    if border:
        x, y = x[border:-border, border:-border], y[border:-border, border:-border]
    return x, y


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_only: bool = True) -> float:
    """PSNR in dB of two uint8 RGB images (Y channel, or all RGB values with `y_only=False`)."""
    x, y = _planes(a, b, border, y_only)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.exp(-((np.arange(size, dtype=np.float64) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(plane: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'valid' separable filtering of a 2-D plane: shifted slices summed (no scipy needed)."""
    n = len(g)
    h, w = plane.shape
    rows = sum(g[i] * plane[i : h - n + 1 + i] for i in range(n))
    return sum(g[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    g = _gaussian()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x**2
    var_y = _filter_valid(y * y, g) - mu_y**2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_only: bool = True) -> float:
    """SSIM of two uint8 RGB images: on Y, or the mean over the R, G, B channels with `y_only=False`."""
    x, y = _planes(a, b, border, y_only)
    return float(np.mean([_ssim_plane(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def colour_shift(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel mean(out) - mean(ref) of two RGB images, in 8-bit levels (signed, float64[3])."""
    mean_out = out.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    return mean_out - ref.reshape(-1, 3).mean(axis=0, dtype=np.float64)


__all__ = ["colour_shift", "psnr", "ssim", "to_uint8", "y_channel"]
