"""Size-changing ops: exact downscale to the model's input size, and a random-scale round trip.

`downscale` gives exactly `(w // scale, h // scale)` for whole scales, the size the trainer expects for
an upscale pair. Plain Pillow BICUBIC in gamma space with antialiasing is the SR papers' protocol
(MATLAB `imresize`); linear light and unfiltered sampling are there to widen what a model has seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from photosr.colour import linear_to_srgb, srgb_to_linear

from .base import (
    Chain,
    Mask,
    Op,
    Params,
    as_choices,
    as_probability,
    as_range,
    chance,
    pick,
    resize_mask,
    to_float,
    to_image,
    uniform,
)

METHODS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}
# Pillow's affine transform samples the kernel at its natural width (no antialiasing, like OpenCV's
# resize); it has no box or Lanczos kernel, so those two always filter.
_UNFILTERED = {"nearest", "bilinear", "bicubic"}


def _resize_plane(plane: Image.Image, size: tuple[int, int], method: str, antialias: bool) -> Image.Image:
    shrinking = size[0] < plane.width or size[1] < plane.height
    if antialias or not shrinking or method not in _UNFILTERED:
        return plane.resize(size, METHODS[method])
    sx, sy = plane.width / size[0], plane.height / size[1]
    return plane.transform(size, Image.Transform.AFFINE, (sx, 0, 0, 0, sy, 0), METHODS[method])


def resize_image(
    image: Image.Image,
    size: tuple[int, int],
    method: str,
    *,
    linear_light: bool = False,
    antialias: bool = True,
) -> Image.Image:
    """Resize an RGB image to `size` with a named method, in gamma (sRGB-encoded) or linear light."""
    if image.size == size:
        return image
    if not linear_light:
        return _resize_plane(image, size, method, antialias)
    linear = srgb_to_linear(to_float(image))
    planes = [Image.fromarray(np.ascontiguousarray(linear[..., c]), "F") for c in range(3)]
    out = np.stack([np.asarray(_resize_plane(p, size, method, antialias)) for p in planes], axis=-1)
    return to_image(linear_to_srgb(out))


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(w // scale, h // scale) for whole scales; never below one pixel."""
    if float(scale).is_integer():
        return max(1, size[0] // int(scale)), max(1, size[1] // int(scale))
    return max(1, int(size[0] / scale)), max(1, int(size[1] / scale))


class Downscale(Op):
    """Shrink by exactly `scale` with a random method, gamma or linear light, filtered or not."""

    name = "downscale"

    def __init__(
        self,
        scale: float = 2,
        methods: str | Sequence[str] = "bicubic",
        linear_light: float = 0.0,
        antialias: float = 1.0,
    ):
        self.scale = as_range("scale", scale, low=1, high=64)[0]
        self.methods = as_choices("methods", methods, tuple(METHODS))
        self.linear_light = as_probability("linear_light", linear_light)
        self.antialias = as_probability("antialias", antialias)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "method": pick(rng, self.methods),
            "linear_light": chance(rng, self.linear_light),
            "antialias": chance(rng, self.antialias),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        size = scaled_size(image.size, self.scale)
        return resize_image(
            image, size, params["method"], linear_light=params["linear_light"], antialias=params["antialias"]
        )


class Rescaled(Op):
    """Resize by a random factor, apply `ops` at that size, and resize back to the exact entry size.

    This is how size-changing damage (Real-ESRGAN's random resizes, noise on a smaller sensor, fastai's
    shrink-and-enlarge) composes without breaking the exact output size an upscale pair needs.
    """

    name = "rescaled"

    def __init__(
        self,
        factor: float | Sequence[float] = (0.5, 1.0),
        methods: str | Sequence[str] = ("area", "bilinear", "bicubic"),
        ops: Sequence[Op] = (),
        linear_light: float = 0.0,
    ):
        self.factor = as_range("factor", factor, low=0.05, high=4.0)
        self.methods = as_choices("methods", methods, tuple(METHODS))
        self.inner = Chain(ops)
        self.linear_light = as_probability("linear_light", linear_light)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "factor": uniform(rng, self.factor),
            "down": pick(rng, self.methods),
            "up": pick(rng, self.methods),
            "linear_light": chance(rng, self.linear_light),
            "inner": self.inner.sample(rng),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        return self.apply_masked(image, None, params)[0]

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        size = image.size
        inner_size = (max(1, round(size[0] * params["factor"])), max(1, round(size[1] * params["factor"])))
        linear = params["linear_light"]
        small = resize_image(image, inner_size, params["down"], linear_light=linear)
        small, mask = self.inner.apply_masked(small, resize_mask(mask, inner_size), params["inner"])
        out = resize_image(small, size, params["up"], linear_light=linear)
        return out, resize_mask(mask, size)
