"""`photosr crappify`: preview a crappification on your own photos before training with it.

Writes each damaged image and a before/after contact sheet (one row per input: the clean photo, then
each damaged variant enlarged with nearest-neighbour so pixels stay visible), plus params.json so any
variant can be replayed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from photosr.errors import ImageReadError, PhotosrError

from .degrade import TASKS, Crappifier, load_crappifier, preset_names, read_recipe
from .degrade.overlay import DEFAULT_FONT, load_font
from .degrade.recipe import RECIPES_DIR

_LABEL_HEIGHT = 18


def load_rgb(path: Path) -> Image.Image:
    """An input photo, upright and 8-bit sRGB, through photosr's loader when it is available."""
    try:
        from photosr.io import load_photo
    except ImportError:  # the runtime loader is optional here; fall back to plain Pillow
        try:
            with Image.open(path) as img:
                return ImageOps.exif_transpose(img).convert("RGB")
        except OSError as err:
            raise ImageReadError(f"cannot read image ({err})", path) from err
    rgb = load_photo(path).rgb
    return Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def declared_scale(spec: str | None) -> int | None:
    """The scale a preset or recipe file declares (None for scale-free recipes and callables)."""
    if spec is None:
        return None
    path = RECIPES_DIR / f"{spec}.toml" if spec in preset_names() else Path(spec)
    return read_recipe(path).get("scale") if path.suffix == ".toml" and path.is_file() else None


def shrink_to(image: Image.Image, max_side: int) -> Image.Image:
    if max_side <= 0 or max(image.size) <= max_side:
        return image
    ratio = max_side / max(image.size)
    size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
    return image.resize(size, Image.Resampling.BOX)


def contact_sheet(rows: list[list[tuple[Image.Image, str]]], cell: int = 256) -> Image.Image:
    """A grid of labelled cells, each image scaled to `cell` pixels wide (nearest-neighbour when
    enlarged, so damage at the small size stays visible); rows are as tall as their tallest image."""
    fitted = [[(_fit_width(image, cell), label) for image, label in row] for row in rows]
    heights = [max(image.height for image, _ in row) + _LABEL_HEIGHT for row in fitted]
    columns = max(len(row) for row in rows)
    sheet = Image.new("RGB", (columns * cell, sum(heights)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    font = load_font(DEFAULT_FONT, 12)
    for r, row in enumerate(fitted):
        top = sum(heights[:r])
        for c, (image, label) in enumerate(row):
            sheet.paste(image, (c * cell, top + _LABEL_HEIGHT))
            draw.text((c * cell + 4, top + 3), label, fill=(230, 230, 230), font=font)
    return sheet


def _fit_width(image: Image.Image, width: int) -> Image.Image:
    ratio = width / image.width
    method = Image.Resampling.NEAREST if ratio > 1 else Image.Resampling.BOX
    return image.resize((width, max(1, round(image.height * ratio))), method)


def _expand(inputs: tuple[Path, ...], out: Path) -> list[Path]:
    """Files as given; folders walked recursively for images (junk skipped) by photosr's discovery."""
    from photosr.batch import discover

    return [job.src for job in discover(inputs, recursive=True, skip_dirs=[out])]


def _short(name: str, limit: int = 24) -> str:
    # Labels share a 256-pixel cell with the next column's label.
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _damage(
    crap: Crappifier, image: Image.Image, seed: int
) -> tuple[Image.Image, dict | None, np.ndarray | None]:
    """(damaged image, params or None for opaque callables, overlay mask or None)."""
    rng = np.random.default_rng(seed)
    if not crap.splittable:
        return crap(image, rng), None, None
    params = crap.sample(rng)
    damaged, mask = crap.apply_with_mask(image, params)
    return damaged, params, mask


def _variants(
    crap: Crappifier, clean: Image.Image, stem: str, out: Path, seeds: range, masks: bool
) -> tuple[list[tuple[Image.Image, str]], list[dict]]:
    """Write one damaged image (and its mask) per seed; the sheet cells and the log entries."""
    cells, log = [], []
    for k, seed in enumerate(seeds):
        damaged, params, mask = _damage(crap, clean, seed)
        target = out / f"{stem}_{k}.png"
        damaged.save(target)
        cells.append((damaged, f"seed {seed} {damaged.width}x{damaged.height}"))
        entry = {"output": target.name, "seed": seed, "params": params}
        if masks and mask is not None and mask.max() > 0:
            mask_image = Image.fromarray((mask * 255.0 + 0.5).astype(np.uint8), "L")
            mask_image.save(out / f"{stem}_{k}_mask.png")
            cells.append((mask_image.convert("RGB"), f"mask {seed}"))
            entry["mask"] = f"{stem}_{k}_mask.png"
        log.append(entry)
    return cells, log


@click.command("crappify")
@click.option(
    "--recipe",
    "-r",
    "recipe",
    default=None,
    metavar="R",
    help=f"Preset ({', '.join(preset_names())}), recipe .toml or file.py:func. Default: the task's preset.",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="Task the pairs are for (default: upscale when the scale is above 1, else restore).",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 16),
    default=None,
    help="Model scale (default: what the recipe declares, else 1).",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the damaged images, sheet.png and params.json.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first variant.")
@click.option(
    "--count",
    type=click.IntRange(1, 64),
    default=3,
    show_default=True,
    help="Damaged variants per input (seeds seed, seed+1, ...).",
)
@click.option(
    "--max-side",
    type=click.IntRange(0),
    default=512,
    show_default=True,
    help="Shrink inputs to this longest side first (training sees crops, so damage sized in "
    "pixels looks right at crop scale); 0 keeps full size.",
)
@click.option("--masks", is_flag=True, help="Also write (and show) the mask of what overlays drew.")
def crappify(recipe, task, scale, inputs, out, seed, count, max_side, masks) -> None:  # noqa: PLR0913
    """Damage INPUT photos (files or folders) with a crappification and write a before/after sheet."""
    try:
        scale = scale or declared_scale(recipe) or 1
        task = task or ("upscale" if scale > 1 else "restore")
        crap = load_crappifier(recipe, task=task, scale=scale)
        out.mkdir(parents=True, exist_ok=True)
        rows, log, stems = [], [], set()
        for path in _expand(inputs, out):
            stem = path.stem if path.stem not in stems else f"{path.stem}-{len(stems)}"
            stems.add(stem)
            clean = shrink_to(load_rgb(path), max_side)
            clean = clean.crop((0, 0, clean.width - clean.width % scale, clean.height - clean.height % scale))
            cells, entries = _variants(crap, clean, stem, out, range(seed, seed + count), masks)
            rows.append([(clean, f"{_short(path.name)} {clean.width}x{clean.height}"), *cells])
            log += [{"input": str(path), **entry} for entry in entries]
        contact_sheet(rows).save(out / "sheet.png")
        info = {"crappifier": crap.describe(), "variants": log}
        (out / "params.json").write_text(json.dumps(info, indent=1, default=str))
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{len(log)} damaged images and sheet.png written to {out} ({crap.name}, x{scale})")
