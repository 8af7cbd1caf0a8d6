"""Restore plugins across damage strengths, from a light JPEG to heavy noise plus JPEG, as Markdown.

    .venv/bin/python benchmarks/restore_damage.py [--data /work/shared/data/val/sunhays80] [--limit 10]
        [--shrink 1] [--threads 0] [--plugin DIR ...] [--only NAME ...]

A bulk tool meets every kind of photo: one restore model must help a quality-30 web copy and leave a
quality-90 camera JPEG no worse. For each damage below, each photo (decoded as photosr decodes it) gets
Gaussian noise of that sigma (8-bit levels, each channel its own, seeded by file name and damage), is
rounded and saved as a JPEG of that quality (Pillow, 4:2:0); the JPEG file is what the plugin reads,
through photosr's pipeline at strength 1. The table gives the input's RGB PSNR against the photo and each
plugin's gain over it (dB, nothing cropped).

Read the light rows with care: sunhays80's photos are themselves quality-75 JPEGs (camera output), so
the reference carries blocking and noise of its own. Re-encoded at 75 (the same tables) the input is
within 62 dB of it, and a model that cleans up what the reference's own JPEG left loses PSNR against
the reference, not against the scene. Rows at q 60 and below compare damage the photo did not have.
`--shrink 2` weighs that: each reference is first reduced 2x (a 2x2 box average, which halves the
reference's own blocking and lowers its noise by about 6 dB), so the light rows score a cleaner photo.
The first row, "none (PNG)", hands the plugin the reference itself losslessly: what it changes on a
photo with nothing to repair (0 would be ideal, the gain can only be negative).

A plugin that takes the JPEG quality as an input (manifest `input = "rgb+quality"`) gets a second column,
"as PNG": the same decoded pixels saved as a PNG, so the model is not told the quality - what it does
blind, and so what knowing the quality is worth.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bench_plugins import add_plugin_options, describe, find_plugins, pipeline_for
from PIL import Image
from quality import DATA, load_photos, read_rgb, run_file
from sr_metrics import psnr

# (row label, noise sigma in 8-bit levels, JPEG quality)
DAMAGES = (
    ("none (PNG)", 0.0, 0),
    ("JPEG q 90", 0.0, 90),
    ("JPEG q 75", 0.0, 75),
    ("JPEG q 60", 0.0, 60),
    ("JPEG q 45", 0.0, 45),
    ("JPEG q 30", 0.0, 30),
    ("JPEG q 20", 0.0, 20),
    ("noise 5 + JPEG q 75", 5.0, 75),
    ("noise 10 + JPEG q 30", 10.0, 30),
    ("noise 20 + JPEG q 50", 20.0, 50),
)


def damaged_file(rgb: np.ndarray, key: str, sigma: float, quality: int, path: Path) -> Path:
    """The photo with noise `sigma` (seeded by `key`), saved as a JPEG of `quality` at `path`
    (quality 0: saved losslessly, as a PNG, whatever `path`'s suffix)."""
    if sigma:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        rgb = np.clip(np.rint(rgb + rng.normal(0.0, sigma, rgb.shape)), 0, 255).astype(np.uint8)
    if quality:
        Image.fromarray(rgb).save(path, quality=quality)
    else:
        Image.fromarray(rgb).save(path, format="PNG")
    return path


def shrink(rgb: np.ndarray, factor: int) -> np.ndarray:
    """`rgb` reduced `factor` times by averaging factor x factor blocks (edges that do not fill one drop)."""
    return np.asarray(Image.fromarray(rgb).reduce(factor))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of validation photos")
    parser.add_argument("--limit", type=int, default=10, help="first N photos only (0 = all)")
    parser.add_argument(
        "--shrink", type=int, default=1, help="reduce each reference N times (box) before damaging it"
    )
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    add_plugin_options(parser)
    args = parser.parse_args(argv)
    plugins = [p for p in find_plugins(args.plugin, args.only) if p.manifest.task == "restore"]
    if not plugins:
        raise SystemExit("no restore plugin to measure")
    photos = load_photos(args.data, args.limit)
    if args.shrink > 1:
        photos = [(name, shrink(ref, args.shrink)) for name, ref in photos]
    pipelines = {p.name: pipeline_for(p, threads=args.threads, format="png") for p in plugins}
    columns = [(p.name, False) for p in plugins]
    columns += [(p.name, True) for p in plugins if p.takes_quality]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for label, sigma, quality in DAMAGES:
            inputs, gains = [], {column: [] for column in columns}
            for name, ref in photos:
                if quality:
                    jpeg = damaged_file(ref, f"{name}/{label}", sigma, quality, tmp / "in.jpg")
                    decoded = read_rgb(jpeg)
                    base = psnr(decoded, ref, border=0, y_only=False)
                    Image.fromarray(decoded).save(tmp / "in.png")
                else:  # lossless: the input is the photo itself, so score the output (a gain would be -inf)
                    jpeg = damaged_file(ref, name, 0.0, 0, tmp / "in.png")
                    base = 0.0
                inputs.append(base)
                for plugin_name, as_png in columns:
                    src = tmp / "in.png" if as_png else jpeg
                    out = run_file(pipelines[plugin_name], src, tmp / "out.png")
                    gains[(plugin_name, as_png)].append(psnr(out, ref, border=0, y_only=False) - base)
            rows.append((label, quality, np.mean(inputs), {c: float(np.mean(g)) for c, g in gains.items()}))
            print(f"  {label} done", file=sys.stderr)
    print(
        f"Restore across damage, {len(photos)} photos of {args.data}"
        + (f" reduced {args.shrink}x" if args.shrink > 1 else "")
        + "; RGB PSNR (dB), gain over the input (the lossless row: the output's PSNR):\n"
    )
    heads = [f"{name} (as PNG)" if as_png else name for name, as_png in columns]
    print("| damage | input | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for label, quality, base, gains in rows:
        if quality:
            print(f"| {label} | {base:.3f} | " + " | ".join(f"{gains[c]:+.3f}" for c in columns) + " |")
        else:
            print(f"| {label} | lossless | " + " | ".join(f"{gains[c]:.3f}" for c in columns) + " |")
    print()
    for plugin in plugins:
        print(f"- {describe(plugin)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
