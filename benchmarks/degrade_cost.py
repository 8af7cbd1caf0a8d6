"""Per-sample cost of each crappification preset and op on a 192x192 crop (what a DataLoader worker
pays per training sample). Prints a table: median ms over N draws, and the ratio to the plain bicubic
x2 downscale measured in the same process.

    .venv/bin/python benchmarks/degrade_cost.py [--samples 60] [--photo PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from photosr.training.degrade import OPS, load_crappifier, preset_names
from photosr.training.degrade.recipe import RECIPES_DIR, read_recipe
from PIL import Image

PHOTO = Path("/work/shared/data/val/sunhays80/abbey_sun_asztnlqhlrvirneh.jpg")
SIDE = 192


def crop(photo: Path) -> Image.Image:
    if photo.is_file():
        with Image.open(photo) as img:
            img = img.convert("RGB")
        left, top = (img.width - SIDE) // 2, (img.height - SIDE) // 2
        return img.crop((left, top, left + SIDE, top + SIDE))
    rng = np.random.default_rng(0)  # no data folder: textured noise of the same size
    return Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))


def median_ms(fn, image: Image.Image, samples: int) -> float:
    fn(image, np.random.default_rng(10_000))  # warm caches (fonts, kernels' FFT plans)
    times = []
    for seed in range(samples):
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        fn(image, rng)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    args = parser.parse_args()
    image = crop(args.photo)
    rows = []
    for name in preset_names():
        declared = read_recipe(RECIPES_DIR / f"{name}.toml").get("scale")
        free = [3] if name == "upscale" else [1, 4]  # scale-free recipes: a 1x and an x4 model
        for scale in [declared] if declared else free:
            crap = load_crappifier(name, task="upscale" if scale > 1 else "restore", scale=scale)
            rows.append((f"preset {name} x{scale}", median_ms(crap, image, args.samples)))
    for name in ("downscale", "blur", "noise", "jpeg", "fastai_jpeg", "overlay", "greyscale", "sepia"):
        rows.append((f"op {name}", median_ms(OPS[name](), image, args.samples)))
    for name in ("fade", "grain", "scratches", "dust"):
        rows.append((f"op {name}", median_ms(OPS[name](), image, args.samples)))
    baseline = dict(rows)["preset upscale-x2 x2"]
    print(f"crappification cost per {SIDE}x{SIDE} sample, median of {args.samples} draws")
    print(f"{'what':32} {'ms':>8} {'x bicubic':>10}")
    for name, ms in rows:
        print(f"{name:32} {ms:8.2f} {ms / baseline:10.1f}")


if __name__ == "__main__":
    main()
