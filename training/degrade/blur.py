"""Blur: isotropic/anisotropic Gaussian, generalized and plateau kernels (Real-ESRGAN), motion, sinc.

Kernels are built in numpy and applied with an FFT convolution over reflect-padded pixels, so a 21x21
anisotropic kernel costs about as much as a 3x3 one - no per-pixel Python and no scipy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .base import (
    Op,
    Params,
    as_choices,
    as_range,
    as_weights,
    chance,
    integer,
    pick,
    to_float,
    to_image,
    uniform,
)

KINDS = ("iso", "aniso", "generalized", "plateau", "motion", "sinc")


def _rotated_distance(size: int, sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    """Squared Mahalanobis distance x^T Sigma^-1 x on a size x size grid centred on the middle pixel."""
    r = size // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    u, v = c * x + s * y, -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    # Drawn 4x larger and box-filtered down, so short or diagonal strokes are antialiased.
    big = Image.new("F", (size * 4, size * 4), 0.0)
    centre, half = size * 2, length * 2
    dx, dy = half * np.cos(np.radians(angle)), half * np.sin(np.radians(angle))
    ImageDraw.Draw(big).line([(centre - dx, centre - dy), (centre + dx, centre + dy)], fill=1.0, width=4)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX), dtype=np.float64)


def _sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    # A circular ideal low-pass (cutoff as a fraction of Nyquist) made in the frequency domain and
    # cropped: it rings like the sinc kernels Real-ESRGAN uses for overshoot artefacts.
    n = 64
    f = np.fft.fftfreq(n) * 2.0  # fraction of Nyquist
    disc = (np.hypot(*np.meshgrid(f, f)) <= cutoff).astype(np.float64)
    full = np.fft.fftshift(np.real(np.fft.ifft2(disc)))
    r = size // 2
    return full[n // 2 - r : n // 2 + r + 1, n // 2 - r : n // 2 + r + 1]


def make_kernel(params: Params) -> np.ndarray:
    """The normalised kernel a params dict describes."""
    kind, size = params["kind"], params["size"]
    if kind == "motion":
        kernel = _motion_kernel(size, params["length"], params["angle"])
    elif kind == "sinc":
        kernel = _sinc_kernel(size, params["cutoff"])
    else:
        d2 = _rotated_distance(size, params["sigma_x"], params["sigma_y"], params["angle"])
        if kind == "generalized":
            kernel = np.exp(-0.5 * d2 ** params["beta"])
        elif kind == "plateau":
            kernel = 1.0 / (1.0 + d2 ** params["beta"])
        else:
            kernel = np.exp(-0.5 * d2)
    return kernel / kernel.sum()


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT lengths with a large prime factor are several times slower."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p235 = p35
            while p235 < n:
                p235 *= 2
            best = min(best, p235)
            p35 *= 3
        p5 *= 5
    return best


def convolve(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve HxWxC with a square odd kernel, reflect-padded borders, via the FFT."""
    r = kernel.shape[0] // 2
    h, w = rgb.shape[:2]
    # Reflect-pad by the kernel radius, then zero-pad to a fast FFT size; the zeros only reach output
    # pixels outside the crop we keep.
    # Channels first: contiguous planes make numpy's FFT about twice as fast.
    ph, pw = _fast_length(h + 2 * r), _fast_length(w + 2 * r)
    planes = np.zeros((rgb.shape[2], ph, pw), np.float32)
    planes[:, : h + 2 * r, : w + 2 * r] = np.pad(rgb, ((r, r), (r, r), (0, 0)), mode="reflect").transpose(
        2, 0, 1
    )
    placed = np.zeros((ph, pw), np.float32)
    placed[: kernel.shape[0], : kernel.shape[1]] = kernel
    placed = np.roll(placed, (-r, -r), axis=(0, 1))  # kernel centre at the origin: no shift
    out = np.fft.irfft2(np.fft.rfft2(planes) * np.fft.rfft2(placed), s=(ph, pw))
    return np.ascontiguousarray(out[:, r : r + h, r : r + w].transpose(1, 2, 0), dtype=np.float32)


class Blur(Op):
    """One blur kernel per sample, its kind drawn from `kinds` with `weights`.

    sigma: Gaussian widths in pixels; size: odd kernel side; beta_generalized / beta_plateau: kernel
    shape exponents; length: motion streak in pixels; cutoff: sinc low-pass as a fraction of Nyquist.
    """

    name = "blur"

    def __init__(
        self,
        kinds: str | Sequence[str] = ("iso", "aniso"),
        weights: Sequence[float] | None = None,
        sigma: float | Sequence[float] = (0.2, 3.0),
        size: int | Sequence[int] = (7, 21),
        beta_generalized: float | Sequence[float] = (0.5, 4.0),
        beta_plateau: float | Sequence[float] = (1.0, 2.0),
        length: float | Sequence[float] = (3.0, 15.0),
        cutoff: float | Sequence[float] = (0.33, 0.9),
    ):
        self.kinds = as_choices("kinds", kinds, KINDS)
        self.weights = as_weights("weights", weights, len(self.kinds))
        self.sigma = as_range("sigma", sigma, low=0.05, high=20.0)
        self.size = as_range("size", size, low=3, high=41, integer=True)
        self.beta_generalized = as_range("beta_generalized", beta_generalized, low=0.1, high=8.0)
        self.beta_plateau = as_range("beta_plateau", beta_plateau, low=0.5, high=4.0)
        self.length = as_range("length", length, low=1.0, high=40.0)
        self.cutoff = as_range("cutoff", cutoff, low=0.05, high=1.0)

    def sample(self, rng: np.random.Generator) -> Params:
        kind = pick(rng, self.kinds, self.weights)
        size = 2 * integer(rng, (self.size[0] // 2, self.size[1] // 2)) + 1
        params: Params = {"kind": kind, "size": size, "angle": float(rng.uniform(0.0, 180.0))}
        if kind == "motion":
            params["length"] = min(uniform(rng, self.length), float(size))
        elif kind == "sinc":
            params["cutoff"] = uniform(rng, self.cutoff)
        else:
            sigma_x = uniform(rng, self.sigma)
            isotropic = kind == "iso" or (kind != "aniso" and chance(rng, 0.5))
            params["sigma_x"] = sigma_x
            params["sigma_y"] = sigma_x if isotropic else uniform(rng, self.sigma)
            if kind in ("generalized", "plateau"):
                params["beta"] = uniform(rng, getattr(self, f"beta_{kind}"))
        return params

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        return to_image(convolve(to_float(image), make_kernel(params)))
