"""Tile seams of every bundled plugin on real photos: its tiled output against the same model run whole.

    .venv/bin/python benchmarks/seams.py [--data /work/shared/data/train/wikipedia50] [--limit 3]
        [--side 1024] [--overlaps 16,32,64] [--threads 0] [--plugin DIR ...] [--only NAME ...]

photosr runs every model in blended tiles (`engine.run_tiled`) so that any photo fits in memory. Near its
edges a tile's output sees padding instead of the photo; the blend hides that only where the overlap is
wider than the model's edge effect, and a U-Net that looks far (a 1/16-resolution bottleneck) needs more
than a shallow upscaler. For each plugin this takes the central crop (at most `--side` a side) of each
photo - for a restore plugin damaged as quality.py damages it (noise sigma 10, then JPEG quality 30), for
an upscaler as it is - runs the plugin's model (the file `photosr run` picks: int8 on CPU when shipped)
once whole and once tiled at the plugin's tile side (manifest, else automatic) for each overlap, and
prints per overlap, over all photos: the worst pixel difference from the whole run, the highest photo's
99.9th percentile of it (8-bit levels), and the PSNR of the tiled output against the whole one (the lowest
photo's).
"*" marks the plugin's own overlap, the one `photosr run` uses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bench_plugins import add_plugin_options, describe, find_plugins
from quality import damage, load_photos, read_rgb

from photosr.engine import EngineOptions, estimate_tiles, resolve_tiling, run_tiled, run_whole
from photosr.plugins import Plugin

DATA = Path("/work/shared/data/train/wikipedia50")


def parse_overlaps(text: str) -> tuple[int, ...]:
    """ "16, 32,16" -> (16, 32): non-negative overlaps in the order given, each once."""
    try:
        values = tuple(dict.fromkeys(int(v) for v in text.split(",") if v.strip()))
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(
            f"overlaps must be non-negative integers, e.g. 16,32,64; got {text!r}"
        )
    return values


def central_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    h, w = min(height, side), min(width, side)
    top, left = (height - h) // 2, (width - w) // 2
    return rgb[top : top + h, left : left + w]


def model_input(plugin: Plugin, name: str, rgb: np.ndarray, tmp: Path) -> np.ndarray:
    """What the plugin's model gets for this photo, float32 0..1: restore inputs go through the JPEG."""
    if plugin.manifest.task == "restore":
        rgb = read_rgb(damage(rgb, name, tmp / "input.jpg"))
    return rgb.astype(np.float32) / 255


def seam_rows(
    plugin: Plugin, photos: Sequence[tuple[str, np.ndarray]], overlaps: Sequence[int], threads: int
) -> list[dict[str, object]]:
    """One row per overlap: tiles (first photo), worst difference, highest photo 99.9th percentile, lowest PSNR."""
    options = EngineOptions(device="cpu", threads=threads)
    model = plugin.manifest.model
    tile, own = resolve_tiling(options, plugin_tile=model.tile, plugin_overlap=model.tile_overlap)
    session = plugin.session(options)
    # Per photo, not pooled: an x4 crop's differences are 200 MB, and three overlaps of three photos add up.
    worst: dict[int, list[float]] = {o: [] for o in overlaps}
    p999: dict[int, list[float]] = {o: [] for o in overlaps}
    psnrs: dict[int, list[float]] = {o: [] for o in overlaps}
    with tempfile.TemporaryDirectory() as tmp:
        for name, rgb in photos:
            x = model_input(plugin, name, rgb, Path(tmp))
            whole = run_whole(session, x, scale=model.scale, multiple=model.size_multiple)
            for overlap in overlaps:
                tiled = run_tiled(
                    session, x, scale=model.scale, tile=tile, overlap=overlap, multiple=model.size_multiple
                )
                diff = np.abs(tiled - whole) * 255
                worst[overlap].append(float(diff.max()))
                p999[overlap].append(float(np.percentile(diff, 99.9)))
                mse = float(np.mean((diff / 255) ** 2))
                psnrs[overlap].append(float("inf") if mse == 0 else 10 * np.log10(1 / mse))
            print(f"  {plugin.manifest.name}: {name} done", file=sys.stderr)
    height, width = photos[0][1].shape[:2]
    rows = []
    for overlap in overlaps:
        tiles = estimate_tiles(
            height, width, scale=model.scale, tile=tile, overlap=overlap, multiple=model.size_multiple
        )
        rows.append(
            {
                "overlap": f"{overlap}{' *' if overlap == own else ''}",
                "tiles": tiles,
                "max": max(worst[overlap]),
                "p999": max(p999[overlap]),
                "psnr": min(psnrs[overlap]),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    lines = [
        "| overlap | tiles (1st photo) | max diff /255 | 99.9 % diff /255 | PSNR vs whole, lowest (dB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['overlap']} | {r['tiles']} | {r['max']:.2f} | {r['p999']:.2f} | {r['psnr']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="folder of photos")
    parser.add_argument("--limit", type=int, default=3, help="first N photos only (0 = all)")
    parser.add_argument("--side", type=int, default=1024, help="central crop side in input pixels")
    parser.add_argument("--overlaps", type=parse_overlaps, default=(16, 32, 64), help="e.g. 16,32,64")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    add_plugin_options(parser)
    args = parser.parse_args(argv)

    photos = [(name, central_crop(rgb, args.side)) for name, rgb in load_photos(args.data, args.limit)]
    for plugin in find_plugins(args.plugin, args.only):
        own = plugin.manifest.model.tile_overlap
        overlaps = tuple(dict.fromkeys([*args.overlaps, own]))
        print(f"## {describe(plugin)}\n")
        print(
            f"{len(photos)} photos from {args.data}, central crops of at most {args.side} px, whole vs tiled:\n"
        )
        print(format_table(seam_rows(plugin, photos, overlaps, args.threads)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
