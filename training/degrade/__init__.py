"""Crappification: composable, seeded degradation ops, presets and recipes that make training pairs.

Each op splits `sample(rng) -> params` from `apply(image, params) -> image` with an explicit
`numpy.random.Generator`; params are plain dicts, logged and replayed. `load_crappifier` turns a preset
name, a TOML recipe or a custom `crappify(image, rng)` callable into the `Crappifier` the trainer calls.
See README.md in this folder for the recipe format.
"""

from __future__ import annotations

from .base import Chain, Maybe, OneOf, Op, Params, Shuffle
from .blur import Blur, make_kernel
from .crappifier import TASKS, Crappifier, load_crappifier
from .jpeg import FastaiJpeg, Jpeg
from .noise import Noise
from .oldphoto import Dust, Fade, Grain, Greyscale, Scratches, Sepia
from .overlay import Overlay, find_fonts
from .recipe import OPS, build_recipe, preset_names, read_recipe, register_op
from .resample import Downscale, Rescaled, resize_image

__all__ = [
    "OPS",
    "TASKS",
    "Blur",
    "Chain",
    "Crappifier",
    "Downscale",
    "Dust",
    "Fade",
    "FastaiJpeg",
    "Grain",
    "Greyscale",
    "Jpeg",
    "Maybe",
    "Noise",
    "OneOf",
    "Op",
    "Overlay",
    "Params",
    "Rescaled",
    "Scratches",
    "Sepia",
    "Shuffle",
    "build_recipe",
    "find_fonts",
    "load_crappifier",
    "make_kernel",
    "preset_names",
    "read_recipe",
    "register_op",
    "resize_image",
]
