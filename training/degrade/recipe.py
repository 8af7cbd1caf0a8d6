"""TOML recipes: ops composed by name with parameter ranges. The format is documented in README.md.

Every error names the recipe file and the key path of the bad value (`steps[2].quality: ...`), because a
recipe typo found after an hour of training is an hour lost.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photosr.errors import UsageError

from .base import Chain, Maybe, OneOf, Op, Shuffle, as_probability
from .blur import Blur
from .jpeg import FastaiJpeg, Jpeg
from .noise import Noise
from .oldphoto import Dust, Fade, Grain, Greyscale, Scratches, Sepia
from .overlay import Overlay
from .resample import Downscale, Rescaled

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

OPS: dict[str, type[Op]] = {
    cls.name: cls
    for cls in (Chain, OneOf, Shuffle, Downscale, Rescaled, Blur, Noise, Jpeg, FastaiJpeg, Overlay)
    + (Greyscale, Sepia, Fade, Grain, Scratches, Dust)
}
_TOP_KEYS = {"name", "description", "scale", "steps"}
# Understood by the loader on every step, not passed to the op: p = probability the step runs;
# min_scale/max_scale = the step exists only for models of those scales (fastai shrinks differently at 1x).
_STEP_KEYS = {"op", "p", "min_scale", "max_scale"}


def register_op(cls: type[Op]) -> type[Op]:
    """Make an op class usable from recipes under `cls.name` (refuses to replace another class)."""
    if OPS.get(cls.name, cls) is not cls:
        raise UsageError(f"op name {cls.name!r} is already taken by {OPS[cls.name].__name__}")
    OPS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class _Context:
    path: Path | None  # the recipe file, named in every error
    scale: int  # the model's scale: `downscale` steps without a `scale` key use it
    depth: int = 0  # preset includes may nest, but not forever


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))


def read_recipe(path: str | Path) -> dict[str, Any]:
    """Parse a recipe file (no building), raising UsageError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError("recipe file not found", path) from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"not a readable TOML recipe ({err})", path) from err
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise UsageError(
            f"unknown top-level key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})", path
        )
    if not isinstance(data.get("steps"), list) or not data["steps"]:
        raise UsageError("steps: a recipe needs at least one [[steps]] table", path)
    return data


def build_recipe(data: dict[str, Any], *, scale: int, path: Path | None = None) -> Op:
    """The op a parsed recipe describes, for a model of the given scale."""
    declared = data.get("scale")
    if declared is not None and declared != scale:
        raise UsageError(f"scale: this recipe makes x{declared} pairs, but x{scale} was asked for", path)
    return Chain(_build_steps(data["steps"], "steps", _Context(path, scale)))


def _build_steps(steps: Any, where: str, ctx: _Context) -> list[Op]:
    if not isinstance(steps, list):
        raise UsageError(f"{where}: expected a list of step tables", ctx.path)
    ops = [_build_step(step, f"{where}[{i}]", ctx) for i, step in enumerate(steps)]
    return [op for op in ops if op is not None]


def _build_step(step: Any, where: str, ctx: _Context) -> Op | None:
    if not isinstance(step, dict) or "op" not in step:
        raise UsageError(f"{where}: expected a table with an 'op' key", ctx.path)
    if not _in_scale_range(step, where, ctx):
        return None
    name = step["op"]
    kwargs = {k: v for k, v in step.items() if k not in _STEP_KEYS}
    op = _include_preset(kwargs, where, ctx) if name == "preset" else _make_op(name, kwargs, where, ctx)
    try:
        p = as_probability("p", step.get("p", 1.0))
    except UsageError as err:
        raise UsageError(f"{where}.{err.reason}", ctx.path) from None
    return op if p >= 1.0 else Maybe(op, p)


def _in_scale_range(step: dict[str, Any], where: str, ctx: _Context) -> bool:
    low, high = step.get("min_scale", 1), step.get("max_scale", 64)
    for key, value in (("min_scale", low), ("max_scale", high)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{where}.{key}: expected a whole number >= 1, got {value!r}", ctx.path)
    return low <= ctx.scale <= high


def _make_op(name: Any, kwargs: dict[str, Any], where: str, ctx: _Context) -> Op:
    cls = OPS.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted([*OPS, "preset"]))
        raise UsageError(f"{where}.op: unknown op {name!r} (known: {known})", ctx.path)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key in kwargs:
        if key not in accepted:
            known = ", ".join(sorted(accepted | _STEP_KEYS))
            raise UsageError(f"{where}.{key}: unknown key for op {name!r} (known: {known})", ctx.path)
    if "ops" in accepted:
        kwargs["ops"] = _build_steps(kwargs.get("ops", []), f"{where}.ops", ctx)
    if cls is Downscale:
        kwargs.setdefault("scale", ctx.scale)
    try:
        return cls(**kwargs)
    except UsageError as err:
        raise UsageError(f"{where}.{err.reason}", ctx.path) from None


def _include_preset(kwargs: dict[str, Any], where: str, ctx: _Context) -> Op:
    name = kwargs.get("name")
    if set(kwargs) != {"name"} or name not in preset_names():
        raise UsageError(f"{where}.name: expected one of the presets {', '.join(preset_names())}", ctx.path)
    if ctx.depth > 4:
        raise UsageError(f"{where}: presets include each other too deeply", ctx.path)
    path = RECIPES_DIR / f"{name}.toml"
    data = read_recipe(path)
    return Chain(_build_steps(data["steps"], "steps", _Context(path, ctx.scale, ctx.depth + 1)))
