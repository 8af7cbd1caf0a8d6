"""Golden images: every bundled plugin, run through the public API on a small fixed photo, must give back
tests/golden/<plugin>.png within tolerances.

The input is a 96x72 crop (monument, trees, sky) of photosr/examples/washington-monument.jpg, upright.
Upscale plugins get it as it is; restore plugins get it damaged the way benchmarks/quality.py damages
photos: Gaussian noise sigma 10 from a fixed seed, then JPEG quality 30. Colorize plugins get it grey,
dewatermark plugins with a white logo drawn over it at opacity 0.6.

Tolerances, in 8-bit levels: max |diff| <= 3 and mean |diff| <= 0.1. ONNX Runtime thread counts gave
bit-identical outputs when these were set (1, 2, all threads); other CPU kernels may flip the rounding
of a few pixels by a level. What fails, measured on the x2 and x4 upscalers: every weight scaled by
1 + 3% noise (max 4-7, mean 0.14-0.19), tiles of 24 px with 4 px overlap (max 7-12), the output shifted
one pixel, a retrained or swapped model; `test_golden_is_not_the_baseline` checks that plain bicubic /
the untouched input fails too.

A plugin that ships an int8 model (what `photosr run` uses on CPUs with int8 dot products) has a second
image, tests/golden/<plugin>.int8.png, checked against a run with `precision="int8"`; the plain image
is the fp32 model's (`precision="fp32"`, what CUDA runs). The int8 image is only checked on CPUs with int8
dot products (VNNI, AMX, ARM64), the ones where `photosr run` picks the int8 model: elsewhere ONNX
Runtime's int8 convs add uint8 x int8 pairs in int16, which can saturate, so its output there is not
this image's.

Bundled plugins are discovered, so a newly bundled plugin without a golden image fails. After training
or re-exporting a plugin, regenerate the images, look at them, and commit them with the plugin:

    PHOTOSR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import photosr
from photosr.engine import cpu_int8_is_exact
from photosr.plugins import Plugin, PluginRegistry, bundled_plugin_dir

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("PHOTOSR_UPDATE_GOLDEN") == "1"
CROP = (330, 200, 426, 272)  # left, top, right, bottom of the upright 640x481 example: 96x72
MAX_DIFF = 3  # levels, any pixel
MEAN_DIFF = 0.1  # levels, mean over pixels and channels
HOW_TO_UPDATE = "PHOTOSR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py"


def _bundled_registry() -> PluginRegistry:
    registry = PluginRegistry()
    folder = bundled_plugin_dir()
    if folder is not None:
        registry.discover(folder, "bundled")
    return registry


BUNDLED = _bundled_registry()


def _source() -> Image.Image:
    with Image.open(photosr.example_photo()) as img:
        return ImageOps.exif_transpose(img).convert("RGB").crop(CROP)


def _damaged(image: Image.Image) -> Image.Image:
    """The JPEG itself (not a converted copy), so a model that takes the JPEG quality is told it."""
    rng = np.random.default_rng(0)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0.0, 10.0, (image.height, image.width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=30)
    jpeg = Image.open(io.BytesIO(buffer.getvalue()))
    jpeg.load()
    return jpeg


def _stamped(image: Image.Image) -> Image.Image:
    """A white logo at opacity 0.6 (drawn lines and a ring: no font, so no Pillow-version differences)."""
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    draw.ellipse((20, 14, 56, 50), outline=255, width=4)
    draw.line((14, 60, 82, 20), fill=255, width=4)
    draw.line((50, 8, 90, 8), fill=255, width=3)
    alpha = layer.point(lambda v: v * 6 // 10)
    return Image.composite(Image.new("RGB", image.size, (255, 255, 255)), image, alpha)


def golden_input(plugin: Plugin) -> Image.Image:
    """The photo `plugin` is tested on: the crop as it is (upscale), greyed (colorize), stamped with a
    logo (dewatermark), or damaged with noise and JPEG (restore)."""
    source = _source()
    task = plugin.manifest.task
    if task == "upscale":
        return source
    if task == "colorize":
        return source.convert("L").convert("RGB")
    if task == "dewatermark":
        return _stamped(source)
    return _damaged(source)


def run_plugin(
    plugin: Plugin, image: Image.Image, *, threads: int = 1, precision: str = "fp32"
) -> np.ndarray:
    """The plugin on `image` through photosr.process, as uint8 RGB."""
    out = photosr.process(
        image,
        tasks=[plugin.manifest.task],
        plugins=[str(plugin.folder)],
        device="cpu",
        threads=threads,
        precision=precision,
    )
    return np.asarray(out.convert("RGB"))


def baseline(plugin: Plugin, image: Image.Image) -> np.ndarray:
    """What a photo editor would give without the model: bicubic upscale, or the input untouched."""
    s = plugin.manifest.model.scale
    return np.asarray(image.resize((image.width * s, image.height * s), Image.Resampling.BICUBIC))


def difference(out: np.ndarray, golden: np.ndarray) -> tuple[int, float]:
    """(max, mean) absolute difference in levels; shapes must match."""
    assert out.shape == golden.shape, f"output {out.shape} but golden image {golden.shape}"
    diff = np.abs(out.astype(np.int16) - golden.astype(np.int16))
    return int(diff.max()), float(diff.mean())


def skip_int8_without_dot_products(precision: str) -> None:
    if precision == "int8" and not cpu_int8_is_exact():
        pytest.skip("this CPU has no int8 dot products (VNNI/AMX/ARM64); photosr runs the fp32 model here")


def golden_path(plugin: Plugin, precision: str = "fp32") -> Path:
    return GOLDEN / (f"{plugin.name}.png" if precision == "fp32" else f"{plugin.name}.{precision}.png")


def load_golden(plugin: Plugin, precision: str = "fp32") -> np.ndarray:
    path = golden_path(plugin, precision)
    if not path.is_file():
        pytest.fail(
            f"bundled plugin {plugin.name!r} has no golden image {path}; create it with "
            f"`{HOW_TO_UPDATE}`, look at it, and commit it"
        )
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_bundled_plugins_load() -> None:
    assert not BUNDLED.broken, BUNDLED.broken


# Every bundled plugin's fp32 model, and the int8 model of those that ship one.
MODELS = [(p, "fp32") for p in BUNDLED] + [(p, "int8") for p in BUNDLED if p.int8_model_path]
MODEL_IDS = [p.name if precision == "fp32" else f"{p.name}-{precision}" for p, precision in MODELS]


@pytest.mark.parametrize(("plugin", "precision"), MODELS, ids=MODEL_IDS)
def test_golden(plugin: Plugin, precision: str) -> None:
    skip_int8_without_dot_products(precision)
    out = run_plugin(plugin, golden_input(plugin), precision=precision)
    path = golden_path(plugin, precision)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        Image.fromarray(out).save(path, optimize=True)
        pytest.skip(f"wrote {path}")
    worst, mean = difference(out, load_golden(plugin, precision))
    assert worst <= MAX_DIFF and mean <= MEAN_DIFF, (
        f"{plugin.name} ({precision}) moved from its golden image: max |diff| {worst} (<= {MAX_DIFF} allowed), "
        f"mean {mean:.3f} (<= {MEAN_DIFF}). If the model changed on purpose: `{HOW_TO_UPDATE}`"
    )


@pytest.mark.parametrize(("plugin", "precision"), MODELS, ids=MODEL_IDS)
def test_golden_is_not_the_baseline(plugin: Plugin, precision: str) -> None:
    """The tolerances must tell the model from no model: a broken export or swapped model would pass."""
    golden = load_golden(plugin, precision)
    worst, mean = difference(baseline(plugin, golden_input(plugin)), golden)
    assert worst > MAX_DIFF or mean > MEAN_DIFF, (worst, mean)
