"""Sensor noise: Gaussian (read noise) and Poisson (shot noise), grey (luminance only) or colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .base import (
    Op,
    Params,
    as_choices,
    as_probability,
    as_range,
    as_weights,
    chance,
    new_seed,
    pick,
    to_float,
    to_image,
    uniform,
)

KINDS = ("gaussian", "poisson")
# Poisson counts per unit of signal: 8-bit photos have 256 levels (Real-ESRGAN rounds the number of
# distinct values up to a power of two; for an 8-bit crop that is 256 or fewer).
_LEVELS = 256.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


class Noise(Op):
    """Add noise. sigma: Gaussian standard deviation in 0..255 units; poisson_scale: multiplier of the
    shot noise; grey: probability the noise is the same in all channels."""

    name = "noise"

    def __init__(
        self,
        kinds: str | Sequence[str] = ("gaussian", "poisson"),
        weights: Sequence[float] | None = None,
        sigma: float | Sequence[float] = (1.0, 25.0),
        poisson_scale: float | Sequence[float] = (0.05, 2.5),
        grey: float = 0.4,
    ):
        self.kinds = as_choices("kinds", kinds, KINDS)
        self.weights = as_weights("weights", weights, len(self.kinds))
        self.sigma = as_range("sigma", sigma, low=0.0, high=255.0)
        self.poisson_scale = as_range("poisson_scale", poisson_scale, low=0.0, high=10.0)
        self.grey = as_probability("grey", grey)

    def sample(self, rng: np.random.Generator) -> Params:
        kind = pick(rng, self.kinds, self.weights)
        strength = uniform(rng, self.sigma if kind == "gaussian" else self.poisson_scale)
        return {"kind": kind, "strength": strength, "grey": chance(rng, self.grey), "seed": new_seed(rng)}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        rgb = to_float(image)
        field_rng = np.random.default_rng(params["seed"])
        shape = rgb.shape[:2] + ((1,) if params["grey"] else (3,))
        if params["kind"] == "gaussian":
            noise = field_rng.standard_normal(shape, dtype=np.float32) * (params["strength"] / 255.0)
        else:
            signal = _luma(rgb)[..., None] if params["grey"] else rgb
            counts = field_rng.poisson(np.clip(signal, 0.0, 1.0) * _LEVELS)
            noise = (counts / _LEVELS - signal).astype(np.float32) * params["strength"]
        return to_image(rgb + noise)
