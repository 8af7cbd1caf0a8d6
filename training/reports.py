"""Pictures for people: before/after sheets and the loss curve, drawn with Pillow only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .evaluate import to_uint8


def sample_sheet(
    rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], *, cell: int = 256
) -> Image.Image:
    """A grid with one row per example and one column per label (input, baseline, model, target...).

    Every cell is resized to the target's size with nearest neighbour, so pixels are shown as they are.
    """
    pad, header = 4, 18
    sheet = Image.new(
        "RGB", (len(labels) * (cell + pad) + pad, header + len(rows) * (cell + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for col, label in enumerate(labels):
        draw.text((pad + col * (cell + pad), 3), label, fill="black")
    for r, row in enumerate(rows):
        for col, image in enumerate(row):
            tile = Image.fromarray(to_uint8(image)).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (pad + col * (cell + pad), header + pad + r * (cell + pad)))
    return sheet


def loss_curve(
    steps: Sequence[int], losses: Sequence[float], val: Sequence[tuple[int, float]] = (), *, size=(640, 360)
) -> Image.Image:
    """Training loss (log scale, blue) and validation PSNR (red dots, right axis) against steps."""
    w, h, m = size[0], size[1], 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([m, m // 2, w - m, h - m], outline="black")
    if not steps:
        return img
    x_max = max(max(steps), max((s for s, _ in val), default=0), 1)

    def x_of(step: int) -> float:
        return m + (w - 2 * m) * step / x_max

    logs = [math.log10(max(v, 1e-12)) for v in losses]
    lo, hi = min(logs), max(logs)
    span = (hi - lo) or 1.0
    points = [(x_of(s), h - m - (h - 1.5 * m) * (v - lo) / span) for s, v in zip(steps, logs, strict=True)]
    if len(points) > 1:
        draw.line(points, fill=(30, 90, 200), width=2)
    draw.text((m, h - m + 4), f"step 0..{x_max}   loss {10**lo:.3g}..{10**hi:.3g} (log)", fill=(30, 90, 200))
    if val:
        vals = [v for _, v in val]
        vlo, vhi = min(vals), max(vals)
        vspan = (vhi - vlo) or 1.0
        for s, v in val:
            x, y = x_of(s), h - m - (h - 1.5 * m) * (v - vlo) / vspan
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(200, 40, 40))
        draw.text((w // 2, h - m + 16), f"val PSNR {vlo:.2f}..{vhi:.2f} dB", fill=(200, 40, 40))
    return img


def save_png(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


__all__ = ["loss_curve", "sample_sheet", "save_png"]
