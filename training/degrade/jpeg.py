"""JPEG compression through Pillow's encoder: quality range, chroma subsampling, double compression."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .base import Op, Params, as_choices, as_probability, as_range, chance, integer, pick

SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


def jpeg_roundtrip(image: Image.Image, quality: int, subsampling: str) -> Image.Image:
    """Encode as JPEG and decode again."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


class Jpeg(Op):
    """Compress at a random quality; with probability `double`, compress again at `quality2`
    (a photo saved, edited and re-saved)."""

    name = "jpeg"

    def __init__(
        self,
        quality: int | Sequence[int] = (30, 95),
        subsampling: str | Sequence[str] = ("4:2:0", "4:4:4"),
        double: float = 0.0,
        quality2: int | Sequence[int] = (30, 95),
    ):
        self.quality = as_range("quality", quality, low=1, high=100, integer=True)
        self.subsampling = as_choices("subsampling", subsampling, SUBSAMPLING)
        self.double = as_probability("double", double)
        self.quality2 = as_range("quality2", quality2, low=1, high=100, integer=True)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "quality": integer(rng, self.quality),
            "subsampling": pick(rng, self.subsampling),
            "quality2": integer(rng, self.quality2) if chance(rng, self.double) else 0,
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        out = jpeg_roundtrip(image, params["quality"], params["subsampling"])
        if params["quality2"]:
            out = jpeg_roundtrip(out, params["quality2"], params["subsampling"])
        return out
