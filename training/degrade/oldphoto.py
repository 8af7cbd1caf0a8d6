"""Old-photo damage: greyscale, sepia, fading, film grain, scratches and dust.

Shapes (scratch paths, dust specks) and grain fields are drawn from an integer `seed` in the params, so
a logged params dict replays the same damage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .base import Op, Params, as_probability, as_range, chance, integer, new_seed, to_float, to_image, uniform

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as photosr.colour.luminance
_SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
).T  # the classic sepia matrix, transposed for row-vector pixels


class Greyscale(Op):
    """BT.601 luminance in three equal channels (how colorize models see their input)."""

    name = "greyscale"

    def __init__(self, amount: float | Sequence[float] = 1.0):
        self.amount = as_range("amount", amount, low=0.0, high=1.0)

    def sample(self, rng: np.random.Generator) -> Params:
        return {"amount": uniform(rng, self.amount)}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        if params["amount"] >= 1.0:
            return image.convert("L").convert("RGB")  # Pillow's L conversion is BT.601 too, and fast
        rgb = to_float(image)
        grey = (rgb @ _LUMA)[..., None]
        return to_image(rgb + (grey - rgb) * params["amount"])


class Sepia(Op):
    """Sepia toning blended with the original by `strength`."""

    name = "sepia"

    def __init__(self, strength: float | Sequence[float] = (0.3, 1.0)):
        self.strength = as_range("strength", strength, low=0.0, high=1.0)

    def sample(self, rng: np.random.Generator) -> Params:
        return {"strength": uniform(rng, self.strength)}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        rgb = to_float(image)
        return to_image(rgb + (rgb @ _SEPIA - rgb) * params["strength"])


class Fade(Op):
    """A faded print: lower contrast, lifted blacks, dimmer whites and a colour cast (yellowed, cyan
    or magenta dye loss). amount: 0 (none) .. 1 (washed out); cast: strength of the tint."""

    name = "fade"

    def __init__(
        self, amount: float | Sequence[float] = (0.1, 0.5), cast: float | Sequence[float] = (0.0, 0.15)
    ):
        self.amount = as_range("amount", amount, low=0.0, high=1.0)
        self.cast = as_range("cast", cast, low=0.0, high=1.0)

    def sample(self, rng: np.random.Generator) -> Params:
        tints = ([1.0, 0.85, 0.45], [0.55, 0.9, 1.0], [1.0, 0.6, 0.9])  # yellow, cyan, magenta
        return {
            "amount": uniform(rng, self.amount),
            "cast": uniform(rng, self.cast),
            "tint": tints[int(rng.integers(0, len(tints)))],
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        amount = params["amount"]
        black, white = 0.35 * amount, 1.0 - 0.2 * amount
        rgb = black + to_float(image) * (white - black)
        tint = np.asarray(params["tint"], dtype=np.float32)
        return to_image(rgb + (rgb * tint - rgb) * params["cast"] + (tint - 0.5) * 0.1 * params["cast"])


class Grain(Op):
    """Film grain: monochrome noise with a grain size in pixels, strongest in the midtones."""

    name = "grain"

    def __init__(
        self, amount: float | Sequence[float] = (0.02, 0.1), grain_size: float | Sequence[float] = (1.0, 2.5)
    ):
        self.amount = as_range("amount", amount, low=0.0, high=1.0)
        self.grain_size = as_range("grain_size", grain_size, low=0.5, high=8.0)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "amount": uniform(rng, self.amount),
            "grain_size": uniform(rng, self.grain_size),
            "seed": new_seed(rng),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        w, h = image.size
        small = (max(1, round(w / params["grain_size"])), max(1, round(h / params["grain_size"])))
        field = np.random.default_rng(params["seed"]).standard_normal((small[1], small[0]), dtype=np.float32)
        field = np.asarray(Image.fromarray(field, "F").resize((w, h), Image.Resampling.BICUBIC))
        rgb = to_float(image)
        y = rgb @ _LUMA
        weight = 0.3 + 2.8 * y * (1.0 - y)  # midtones carry grain; paper white and deep black less
        return to_image(rgb + (field * weight * params["amount"])[..., None])


class Scratches(Op):
    """Long thin scratches, mostly vertical (film) or anywhere (prints); light (emulsion gone) or dark."""

    name = "scratches"

    def __init__(
        self,
        count: int | Sequence[int] = (1, 8),
        width: float | Sequence[float] = (0.5, 2.5),
        opacity: float | Sequence[float] = (0.4, 1.0),
        light: float = 0.7,
        vertical: float = 0.6,
    ):
        self.count = as_range("count", count, low=0, high=200, integer=True)
        self.width = as_range("width", width, low=0.25, high=20.0)
        self.opacity = as_range("opacity", opacity, low=0.0, high=1.0)
        self.light = as_probability("light", light)
        self.vertical = as_probability("vertical", vertical)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "count": integer(rng, self.count),
            "width": uniform(rng, self.width),
            "opacity": uniform(rng, self.opacity),
            "light": chance(rng, self.light),
            "vertical": chance(rng, self.vertical),
            "seed": new_seed(rng),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        w, h = image.size
        ss = 2  # drawn at twice the size and shrunk: sub-pixel widths come out as faint lines
        layer = Image.new("L", (w * ss, h * ss), 0)
        draw = ImageDraw.Draw(layer)
        rng = np.random.default_rng(params["seed"])
        for _ in range(params["count"]):
            draw.line(
                _scratch_path(rng, w * ss, h * ss, params["vertical"]),
                fill=255,
                width=max(1, round(params["width"] * ss)),
            )
        alpha = np.asarray(layer.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
        return _blend(image, alpha * params["opacity"], 1.0 if params["light"] else 0.0)


def _scratch_path(rng: np.random.Generator, w: int, h: int, vertical: bool) -> list[tuple[float, float]]:
    points = 8
    if vertical:
        x = rng.uniform(0, w) + np.cumsum(rng.normal(0, w * 0.004, points))
        y0 = rng.uniform(-0.2, 0.6) * h
        y = np.linspace(y0, y0 + rng.uniform(0.3, 1.2) * h, points)
    else:
        start, angle, length = (
            rng.uniform(0, 1, 2) * (w, h),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(0.1, 0.6) * max(w, h),
        )
        t = np.linspace(0, 1, points)
        bend = np.cumsum(rng.normal(0, 0.05, points))
        x = start[0] + length * t * np.cos(angle + bend)
        y = start[1] + length * t * np.sin(angle + bend)
    return list(zip(x.tolist(), y.tolist(), strict=True))


class Dust(Op):
    """Dust specks and short hairs, light or dark, a few pixels across."""

    name = "dust"

    def __init__(
        self,
        count: int | Sequence[int] = (5, 60),
        size: float | Sequence[float] = (0.5, 3.0),
        opacity: float | Sequence[float] = (0.5, 1.0),
        light: float = 0.5,
    ):
        self.count = as_range("count", count, low=0, high=2000, integer=True)
        self.size = as_range("size", size, low=0.25, high=20.0)
        self.opacity = as_range("opacity", opacity, low=0.0, high=1.0)
        self.light = as_probability("light", light)

    def sample(self, rng: np.random.Generator) -> Params:
        return {
            "count": integer(rng, self.count),
            "size": uniform(rng, self.size),
            "opacity": uniform(rng, self.opacity),
            "light": chance(rng, self.light),
            "seed": new_seed(rng),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        w, h = image.size
        layer = Image.new("L", (w * 2, h * 2), 0)
        draw = ImageDraw.Draw(layer)
        rng = np.random.default_rng(params["seed"])
        n = params["count"]
        centres = rng.uniform(0, 1, (n, 2)) * (w * 2, h * 2)
        radii = rng.uniform(0.3, 1.0, n) * params["size"] * 2
        hairs = rng.random(n) < 0.15
        for (cx, cy), r, hair in zip(centres.tolist(), radii.tolist(), hairs.tolist(), strict=True):
            if hair:  # a short curl: a few joined segments
                steps = np.cumsum(rng.normal(0, r * 3, (4, 2)), axis=0) + (cx, cy)
                draw.line([(cx, cy), *map(tuple, steps.tolist())], fill=255, width=max(1, round(r / 2)))
            else:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(0.6)).resize((w, h), Image.Resampling.BOX)
        alpha = np.asarray(layer, dtype=np.float32) / 255.0
        return _blend(image, alpha * params["opacity"], 0.95 if params["light"] else 0.05)


def _blend(image: Image.Image, alpha: np.ndarray, value: float) -> Image.Image:
    rgb = to_float(image)
    return to_image(rgb + (value - rgb) * alpha[..., None])
