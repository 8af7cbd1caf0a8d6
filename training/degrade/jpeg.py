"""JPEG compression through Pillow's encoder: quality range, chroma subsampling, double compression."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from photosr.jpeg import jpeg_quality

from .base import Op, Params, as_choices, as_probability, as_range, chance, integer, pick, uniform
from .overlay import DEFAULT_FONT, load_font

SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


def jpeg_roundtrip(image: Image.Image, quality: int, subsampling: str) -> Image.Image:
    """Encode as JPEG and decode again. The result's `info["jpeg_quality"]` is the quality photosr reads
    from such a file (`photosr.jpeg.jpeg_quality`), for models that take it as an input. Ops that keep
    Pillow's `info` (resize, filters) carry it on, so such a recipe's JPEG step comes last."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = decoded.convert("RGB")
        out.info["jpeg_quality"] = jpeg_quality(decoded)
        return out


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


class FastaiJpeg(Op):
    """fast.ai lesson 7's crappifier step: the JPEG quality number drawn as white text at a random
    spot in the top-left quarter, then JPEG at that quality (the model learns to remove the text too)."""

    name = "fastai_jpeg"

    def __init__(
        self, quality: int | Sequence[int] = (10, 70), text_size: float | Sequence[float] = (0.08, 0.14)
    ):
        self.quality = as_range("quality", quality, low=1, high=100, integer=True)
        self.text_size = as_range("text_size", text_size, low=0.01, high=1.0)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "quality": integer(rng, self.quality),
            "x": float(rng.uniform(0.0, 0.5)),
            "y": float(rng.uniform(0.0, 0.5)),
            "text_size": uniform(rng, self.text_size),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        stamped = image.convert("RGB")  # convert() copies, so the caller's image stays clean
        font = load_font(DEFAULT_FONT, max(8, round(params["text_size"] * min(image.size))))
        position = (params["x"] * image.width, params["y"] * image.height)
        ImageDraw.Draw(stamped).text(position, str(params["quality"]), fill=(255, 255, 255), font=font)
        return jpeg_roundtrip(stamped, params["quality"], "4:2:0")
