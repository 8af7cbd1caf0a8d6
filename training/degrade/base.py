"""The op contract, parameter checking and composition (Chain, Maybe, OneOf, Shuffle).

Every op splits sampling from applying: `sample(rng)` draws a plain dict of numbers and strings from an
explicit `numpy.random.Generator`, `apply(image, params)` is a pure function of the image and that dict.
Randomness an op needs while applying (noise fields, scratch shapes) is drawn in `sample` as an integer
`seed`, so a logged params dict replays the exact same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from photosr.errors import UsageError

Params = dict[str, Any]
Mask = np.ndarray | None  # float32 HxW 0..1 alpha of what overlay ops drew, or None


class Op:
    """Base class of every degradation op and composite."""

    name: ClassVar[str] = "op"

    def sample(self, rng: np.random.Generator) -> Params:
        return {}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        raise NotImplementedError(f"{type(self).__name__} must define apply()")

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.apply(image, self.sample(rng))

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        """Apply and carry along the mask of overlaid pixels (float32 HxW 0..1 or None).

        Ops that change the size resize the mask with them; overlay ops add to it.
        """
        out = self.apply(image, params)
        return out, resize_mask(mask, out.size)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# ---- parameter checking: every error names the parameter, the recipe loader prefixes the step ----


def as_range(name: str, value: Any, *, low: float, high: float, integer: bool = False) -> tuple[float, float]:
    """A fixed number or a [low, high] pair, checked against the allowed bounds."""
    if isinstance(value, bool):
        raise UsageError(f"{name}: expected a number or [low, high], got {value!r}")
    pair = (value, value) if isinstance(value, (int, float)) else value
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise UsageError(f"{name}: expected a number or [low, high], got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
        raise UsageError(f"{name}: expected numbers, got {value!r}")
    lo, hi = pair
    if integer and (lo != int(lo) or hi != int(hi)):
        raise UsageError(f"{name}: expected whole numbers, got {value!r}")
    if lo > hi:
        raise UsageError(f"{name}: range {list(pair)} has low > high")
    if lo < low or hi > high:
        raise UsageError(f"{name}: range {list(pair)} outside the allowed {low}..{high}")
    return (int(lo), int(hi)) if integer else (float(lo), float(hi))


def as_choices(name: str, value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    """One name or a list of names, each one of `allowed`."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names:
        raise UsageError(f"{name}: needs at least one of {', '.join(allowed)}")
    for item in names:
        if item not in allowed:
            raise UsageError(f"{name}: unknown value {item!r} (known: {', '.join(allowed)})")
    return names


def as_probability(name: str, value: Any) -> float:
    """A probability 0..1; True/False mean always/never."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise UsageError(f"{name}: expected a probability 0..1, got {value!r}")
    return float(value)


def as_weights(name: str, value: Sequence[float] | None, count: int) -> np.ndarray:
    """Relative weights for `count` choices (None = equal), normalised to sum 1."""
    if value is None:
        return np.full(count, 1.0 / count)
    weights = np.asarray(value, dtype=np.float64)
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise UsageError(f"{name}: expected {count} non-negative weights, got {list(value)!r}")
    return weights / weights.sum()


# ---- sampling helpers: a fixed range draws nothing, so adding an op never shifts a fixed one ----


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[0] != bounds[1] else float(bounds[0])


def integer(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    return int(rng.integers(int(bounds[0]), int(bounds[1]) + 1))


def pick(rng: np.random.Generator, names: Sequence[str], weights: np.ndarray | None = None) -> str:
    return names[int(rng.choice(len(names), p=weights))] if len(names) > 1 else names[0]


def chance(rng: np.random.Generator, probability: float) -> bool:
    return bool(rng.random() < probability) if 0.0 < probability < 1.0 else probability >= 1.0


def new_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


# ---- pixels ----


def to_float(image: Image.Image) -> np.ndarray:
    """HxWx3 float32 0..1 of an RGB image."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) * (1.0 / 255.0)


def to_image(rgb: np.ndarray) -> Image.Image:
    """RGB image from float 0..1 values, clipped and rounded (not truncated, which would darken)."""
    return Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def resize_mask(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if mask is None or (mask.shape[1], mask.shape[0]) == size:
        return mask
    resized = Image.fromarray(mask, "F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# ---- composition ----


class Chain(Op):
    """Apply ops in order."""

    name = "chain"

    def __init__(self, ops: Sequence[Op]):
        self.ops = list(ops)

    def sample(self, rng: np.random.Generator) -> Params:
        return {"steps": [op.sample(rng) for op in self.ops]}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        for op, step in zip(self.ops, params["steps"], strict=True):
            image = op.apply(image, step)
        return image

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        for op, step in zip(self.ops, params["steps"], strict=True):
            image, mask = op.apply_masked(image, mask, step)
        return image, mask


class Maybe(Op):
    """Apply `op` with probability `p`."""

    name = "maybe"

    def __init__(self, op: Op, p: float = 0.5):
        self.op = op
        self.p = as_probability("p", p)

    def sample(self, rng: np.random.Generator) -> Params:
        applied = chance(rng, self.p)
        return {"applied": applied, "params": self.op.sample(rng) if applied else {}}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        return self.op.apply(image, params["params"]) if params["applied"] else image

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        return self.op.apply_masked(image, mask, params["params"]) if params["applied"] else (image, mask)


class OneOf(Op):
    """Apply one of `ops`, chosen with relative `weights` (equal when None)."""

    name = "one_of"

    def __init__(self, ops: Sequence[Op], weights: Sequence[float] | None = None):
        if not ops:
            raise UsageError("ops: one_of needs at least one op")
        self.ops = list(ops)
        self.weights = as_weights("weights", weights, len(self.ops))

    def sample(self, rng: np.random.Generator) -> Params:
        choice = int(rng.choice(len(self.ops), p=self.weights))
        return {"choice": choice, "params": self.ops[choice].sample(rng)}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        return self.ops[params["choice"]].apply(image, params["params"])

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        return self.ops[params["choice"]].apply_masked(image, mask, params["params"])


class Shuffle(Op):
    """Apply all `ops` in a random order (BSRGAN's shuffled degradation)."""

    name = "shuffle"

    def __init__(self, ops: Sequence[Op]):
        self.ops = list(ops)

    def sample(self, rng: np.random.Generator) -> Params:
        order = [int(i) for i in rng.permutation(len(self.ops))]
        return {"order": order, "steps": [op.sample(rng) for op in self.ops]}

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        for index in params["order"]:
            image = self.ops[index].apply(image, params["steps"][index])
        return image

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        for index in params["order"]:
            image, mask = self.ops[index].apply_masked(image, mask, params["steps"][index])
        return image, mask
