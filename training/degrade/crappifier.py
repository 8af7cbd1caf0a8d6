"""`Crappifier`: what the trainer calls to turn a clean crop into its damaged input, and
`load_crappifier`, which resolves a preset name, a TOML recipe or a custom callable to one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photosr.errors import UsageError

from .base import Op, Params
from .custom import CrappifyFunc, file_sha256, is_callable_spec, load_callable
from .recipe import RECIPES_DIR, build_recipe, preset_names, read_recipe
from .resample import scaled_size

TASKS = ("upscale", "restore", "colorize", "dewatermark")


class Crappifier:
    """Callable `(hr, rng) -> damaged PIL image`; for scale s the result is exactly hr.size // s."""

    def __init__(
        self,
        *,
        spec: str | None,
        task: str,
        scale: int,
        kind: str,
        name: str,
        op: Op | None = None,
        func: CrappifyFunc | None = None,
        source: Path | None = None,
        recipe: dict[str, Any] | None = None,
    ):
        self.spec, self.task, self.scale, self.kind, self.name = spec, task, scale, kind, name
        self.op, self.func, self.source, self.recipe = op, func, source, recipe

    def __call__(self, hr: Image.Image, rng: np.random.Generator) -> Image.Image:
        hr = hr.convert("RGB")
        if self.op is not None:
            return self._checked(hr, self.op.apply(hr, self.op.sample(rng)))
        return self._checked(hr, self.func(hr, rng))

    @property
    def splittable(self) -> bool:
        """Whether `sample`/`apply` exist (recipes and presets; custom callables are opaque)."""
        return self.op is not None

    def sample(self, rng: np.random.Generator) -> Params:
        return self._op().sample(rng)

    def apply(self, hr: Image.Image, params: Params) -> Image.Image:
        hr = hr.convert("RGB")
        return self._checked(hr, self._op().apply(hr, params))

    def apply_with_mask(self, hr: Image.Image, params: Params) -> tuple[Image.Image, np.ndarray]:
        """The damaged image and the float32 HxW (damaged size) 0..1 mask of what overlays drew."""
        hr = hr.convert("RGB")
        out, mask = self._op().apply_masked(hr, None, params)
        out = self._checked(hr, out)
        if mask is None:
            mask = np.zeros((out.height, out.width), np.float32)
        return out, mask

    def describe(self) -> dict[str, Any]:
        """Provenance for manifests and checkpoints: what made the damaged inputs."""
        info: dict[str, Any] = {"kind": self.kind, "name": self.name, "spec": self.spec}
        info.update(task=self.task, scale=self.scale)
        if self.source is not None:
            info["source"] = str(self.source)
            info["sha256"] = self.source_hash()
        if self.recipe is not None:
            info["recipe"] = self.recipe
        return info

    def source_hash(self) -> str | None:
        """sha256 of the recipe TOML or the custom .py file."""
        return file_sha256(self.source) if self.source is not None and self.source.is_file() else None

    def __reduce__(self):
        # DataLoader workers started with `spawn` cannot unpickle functions from a user's file by
        # reference; rebuilding from the spec (made absolute, workers may run elsewhere) works everywhere.
        spec = self.spec
        if self.kind == "recipe" or (self.kind == "callable" and self.source is not None and ".py:" in spec):
            spec = str(self.source) + ("" if self.kind == "recipe" else ":" + spec.rpartition(":")[2])
        return (_rebuild, (spec, self.spec, self.task, self.scale))

    def __repr__(self) -> str:
        return f"Crappifier({self.kind} {self.name!r}, task={self.task}, scale={self.scale})"

    def _op(self) -> Op:
        if self.op is None:
            raise UsageError(
                f"the custom crappify function {self.spec!r} cannot split sample/apply", self.source
            )
        return self.op

    def _checked(self, hr: Image.Image, out: Any) -> Image.Image:
        if not isinstance(out, Image.Image):
            raise UsageError(f"{self.name} returned {type(out).__name__}, not a PIL image", self.source)
        expected = scaled_size(hr.size, self.scale)
        if out.size != expected:
            reason = f"{self.name} made {out.width}x{out.height} from {hr.width}x{hr.height}"
            raise UsageError(f"{reason}; x{self.scale} needs {expected[0]}x{expected[1]}", self.source)
        return out if out.mode == "RGB" else out.convert("RGB")


def load_crappifier(spec: str | None, *, task: str, scale: int = 1) -> Crappifier:
    """Resolve None (the task's preset), a preset name, a .toml recipe path, or `file.py:func` /
    `module:func` to a Crappifier for a model of `scale`."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 16:
        raise UsageError(f"scale must be a whole number 1..16, got {scale!r}")
    if task == "upscale" and scale < 2:
        raise UsageError(f"the upscale task needs a scale of 2 or more, got {scale}")
    if spec is None:
        spec = _default_preset(task, scale)
    if spec.endswith(".toml"):
        return _from_recipe(spec, Path(spec), "recipe", task, scale)
    if is_callable_spec(spec):
        func, source = load_callable(spec)
        return Crappifier(
            spec=spec, task=task, scale=scale, kind="callable", name=spec, func=func, source=source
        )
    if spec in preset_names():
        return _from_recipe(spec, RECIPES_DIR / f"{spec}.toml", "preset", task, scale)
    raise UsageError(
        f"unknown crappification {spec!r}: not a preset ({', '.join(preset_names())}), "
        "a .toml recipe or a file.py:function"
    )


def _rebuild(spec: str, original: str, task: str, scale: int) -> Crappifier:
    crappifier = load_crappifier(spec, task=task, scale=scale)
    crappifier.spec = original
    return crappifier


def _default_preset(task: str, scale: int) -> str:
    if task != "upscale":
        return task
    return f"upscale-x{scale}" if f"upscale-x{scale}" in preset_names() else "upscale"


def _from_recipe(spec: str, path: Path, kind: str, task: str, scale: int) -> Crappifier:
    data = read_recipe(path)
    op = build_recipe(data, scale=scale, path=path)
    name = data.get("name", path.stem)
    crappifier = Crappifier(
        spec=spec,
        task=task,
        scale=scale,
        kind=kind,
        name=str(name),
        op=op,
        source=path.resolve(),
        recipe=data,
    )
    _probe(crappifier)
    return crappifier


def _probe(crappifier: Crappifier) -> None:
    # One run on a small grey square at load time, so a recipe that makes the wrong size fails now,
    # not in a DataLoader worker an hour in.
    side = 24 * crappifier.scale
    crappifier(Image.new("RGB", (side, side), (128, 128, 128)), np.random.default_rng(0))
