"""Colorize quality on validation photos turned grey, and on sepia scans, at several render sizes.

    .venv/bin/python benchmarks/colorize.py [--limit 10] [--render-size 256 384 512] [--plugin DIR ...]
        [--sepia 4] [--threads 1] [--sheet out.png] [--time-12mp]

Every validation photo is turned grey (BT.601 luminance, saved as an 8-bit grey PNG, as a scan would be)
and run through photosr's Pipeline.process_file with each bundled colorize plugin and each --plugin DIR, at
each --render-size. Figures (issue 6 targets in the headers):

  colourfulness   mean Hasler-Suesstrunk colourfulness of the outputs / that of the true photos (>= 0.5)
  luminance PSNR  BT.601 Y of the output against the grey input, 8-bit (>= 35 dB: tone and detail kept)
  RGB PSNR        output against the true colour photo, 8-bit RGB, next to the grey input's (no worse
                  than grey - 1.0 dB: wrong colours are worse than none)

Sepia check (--sepia N photos): the true photo sepia-toned (strength 0.7-1) and aged by the `old-scan`
recipe (fade, grain, dust/scratches, soft scan, JPEG), fixed seeds, then colorized as is. Reported:
colourfulness ratio, mean absolute CIELAB hue difference to the true photo over pixels where both have
colour (C* > 5; "covered" is the share of the true photo's coloured pixels that counts), and the share of
coloured output pixels in the sepia hue band (h 50-95 deg) next to the true photos' share: a model that
leaves a sepia scan brown scores a high share and a large hue difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path("/work/shared/data/val/sunhays80")
RENDER_SIZES = (256, 384, 512)
CAP_DB = 60.0
SEPIA_BAND = (50.0, 95.0)  # CIELAB hue angles (degrees) of sepia/brown tones
CHROMA_MIN = 5.0  # C* below this counts as grey: its hue means nothing
TARGET_COLOURFUL, TARGET_LUMA, TARGET_RGB_DROP = 0.5, 35.0, 1.0


# ---- colour measures ------------------------------------------------------------------------------------


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) M on 0..255 RGB: spread plus mean of the opponent channels."""
    x = rgb.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range Y (0..255) of uint8 RGB, as photosr.colour.luminance."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return CAP_DB if mse == 0 else min(CAP_DB, 10.0 * np.log10(255.0**2 / mse))


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of uint8 sRGB."""
    from photosr.colour import srgb_to_linear

    linear = srgb_to_linear(rgb.astype(np.float32) / 255.0).astype(np.float64)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def hue_figures(out: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """(mean |hue difference| deg, covered share, output sepia-band share, truth sepia-band share)."""
    lo, lt = lab(out), lab(truth)
    c_out, c_truth = np.hypot(lo[..., 1], lo[..., 2]), np.hypot(lt[..., 1], lt[..., 2])
    h_out = np.degrees(np.arctan2(lo[..., 2], lo[..., 1])) % 360
    h_truth = np.degrees(np.arctan2(lt[..., 2], lt[..., 1])) % 360
    both = (c_out > CHROMA_MIN) & (c_truth > CHROMA_MIN)
    diff = np.abs((h_out - h_truth + 180) % 360 - 180)[both]
    coloured = max(int((c_truth > CHROMA_MIN).sum()), 1)

    def band(h: np.ndarray, c: np.ndarray) -> float:
        chromatic = c > CHROMA_MIN
        inside = chromatic & (h >= SEPIA_BAND[0]) & (h <= SEPIA_BAND[1])
        return float(inside.sum() / max(int(chromatic.sum()), 1))

    mean_diff = float(diff.mean()) if diff.size else float("nan")
    return mean_diff, float(both.sum() / coloured), band(h_out, c_out), band(h_truth, c_truth)


# ---- cases and methods ----------------------------------------------------------------------------------


@dataclass
class Scores:
    colourful: list[float] = field(default_factory=list)
    luma_psnr: list[float] = field(default_factory=list)
    rgb_psnr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    hue: list[tuple[float, float, float, float]] = field(default_factory=list)


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """8-bit BT.601 luminance, HxW."""
    return np.clip(luma(rgb) + 0.5, 0, 255).astype(np.uint8)


def sepia_scans(truths: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Sepia-toned, aged scans of the true photos (fixed seed per photo)."""
    from photosr.training.degrade import build_recipe

    recipe = {"steps": [{"op": "sepia", "strength": [0.7, 1.0]}, {"op": "preset", "name": "old-scan"}]}
    op = build_recipe(recipe, scale=1)
    return [
        np.asarray(op(Image.fromarray(t), np.random.default_rng(seed + i)).convert("RGB"))
        for i, t in enumerate(truths)
    ]


def colorize_plugins(extra: list[str]) -> list:
    from photosr.plugins import Plugin, default_registry

    found = [p for p in default_registry() if p.manifest.task == "colorize"]
    return found + [Plugin(Path(folder)) for folder in extra]


def run_pipeline(plugin, render_size: int, inputs: list[Image.Image], threads: int, work: Path):
    """Outputs (uint8 RGB) and seconds per photo of `photosr run --task colorize` on `inputs`."""
    from photosr.pipeline import Pipeline, ProcessOptions

    options = ProcessOptions(
        tasks=("colorize",),
        plugins=(str(plugin.folder),),
        render_size=render_size,
        device="cpu",
        threads=threads,
    )
    pipeline = Pipeline(options)
    outputs, seconds = [], []
    for i, image in enumerate(inputs):
        src, dst = work / f"in{i}.png", work / f"out{i}.png"
        image.save(src)
        result = pipeline.process_file(src, dst)
        if not result.ok:
            raise SystemExit(result.error)
        outputs.append(np.asarray(Image.open(dst).convert("RGB")))
        seconds.append(result.seconds)
    return outputs, seconds


def score_grey(scores: Scores, outs: list[np.ndarray], truths: list[np.ndarray]) -> None:
    for out, truth in zip(outs, truths, strict=True):
        scores.colourful.append(colourfulness(out))
        scores.luma_psnr.append(psnr(luma(out), luma(truth)))  # truth's Y is the grey input's Y
        scores.rgb_psnr.append(psnr(out, truth))


# ---- report ---------------------------------------------------------------------------------------------


def mean(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def grey_table(rows: dict[str, Scores], truth_colourful: float, grey_rgb: float) -> str:
    lines = [
        f"| method | colourfulness / truth (>= {TARGET_COLOURFUL}) | luminance PSNR vs grey (dB, >= "
        f"{TARGET_LUMA:.0f}) | RGB PSNR vs truth (dB, >= grey - {TARGET_RGB_DROP}) | vs grey (dB) | s/photo |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        rgb = mean(s.rgb_psnr)
        secs = f"{mean(s.seconds):.2f}" if s.seconds else "-"
        lines.append(
            f"| {name} | {mean(s.colourful) / truth_colourful:.3f} | {mean(s.luma_psnr):.2f} | {rgb:.2f} |"
            f" {rgb - grey_rgb:+.2f} | {secs} |"
        )
    return "\n".join(lines)


def sepia_table(rows: dict[str, Scores], truth_colourful: float, truth_band: float) -> str:
    lines = [
        f"| method | colourfulness / truth | mean hue difference (deg) | covered | sepia-band share"
        f" (truth {truth_band:.2f}) |",
        "|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        hue = np.array(s.hue, dtype=np.float64)
        lines.append(
            f"| {name} | {mean(s.colourful) / truth_colourful:.3f} | {mean(hue[:, 0]):.1f} |"
            f" {mean(hue[:, 1]):.2f} | {mean(hue[:, 2]):.2f} |"
        )
    return "\n".join(lines)


def time_12mp(plugin, render_size: int, truth: np.ndarray, threads: int, work: Path) -> float:
    """Seconds of process_file on a 4000x3000 grey JPEG (load, colorize, save), session already warm."""
    big = Image.fromarray(grey_of(truth)).resize((4000, 3000), Image.Resampling.BICUBIC)
    path = work / "big.jpg"
    big.save(path, quality=92)
    from photosr.pipeline import Pipeline, ProcessOptions

    options = ProcessOptions(
        tasks=("colorize",),
        plugins=(str(plugin.folder),),
        render_size=render_size,
        device="cpu",
        threads=threads,
    )
    pipeline = Pipeline(options)
    pipeline.process_file(work / "in0.png", work / "warm.png")
    start = time.perf_counter()
    result = pipeline.process_file(path, work / "big-out.jpg")
    if not result.ok:
        raise SystemExit(result.error)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    parser.add_argument("--render-size", type=int, nargs="+", default=list(RENDER_SIZES))
    parser.add_argument("--plugin", action="append", default=[], help="a plugin folder to score too")
    parser.add_argument("--sepia", type=int, default=4, help="photos for the sepia-scan check (0 = skip)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, help="write the first 4 photos, every method, here")
    parser.add_argument("--time-12mp", action="store_true", help="also time one 4000x3000 photo")
    args = parser.parse_args()

    from photosr.training.data import find_images, load_rgb_uint8

    paths = find_images([args.data])[: args.limit or None]
    truths = [load_rgb_uint8(p) for p in paths]
    greys = [grey_of(t) for t in truths]
    grey_rgb = [np.repeat(g[..., None], 3, axis=2) for g in greys]
    truth_colourful = mean(colourfulness(t) for t in truths)
    rows: dict[str, Scores] = defaultdict(Scores)
    score_grey(rows["grey input"], grey_rgb, truths)
    sepia = sepia_scans(truths[: args.sepia], args.seed) if args.sepia else []
    sepia_rows: dict[str, Scores] = defaultdict(Scores)
    for out, truth in zip(sepia, truths, strict=False):
        sepia_rows["sepia scan (input)"].colourful.append(colourfulness(out))
        sepia_rows["sepia scan (input)"].hue.append(hue_figures(out, truth))
    columns = {"grey": grey_rgb[:4]}
    timings = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for plugin in colorize_plugins(args.plugin):
            for size in args.render_size:
                name = f"{plugin.manifest.name} @{size}"
                outs, secs = run_pipeline(
                    plugin, size, [Image.fromarray(g) for g in greys], args.threads, work
                )
                score_grey(rows[name], outs, truths)
                rows[name].seconds.extend(secs)
                columns[name] = outs[:4]
                if sepia:
                    souts, _ = run_pipeline(
                        plugin, size, [Image.fromarray(s) for s in sepia], args.threads, work
                    )
                    for out, truth in zip(souts, truths, strict=False):
                        sepia_rows[name].colourful.append(colourfulness(out))
                        sepia_rows[name].hue.append(hue_figures(out, truth))
                if args.time_12mp:
                    timings.append((name, time_12mp(plugin, size, truths[0], args.threads, work)))
    columns["truth"] = truths[:4]
    grey_psnr = mean(rows["grey input"].rgb_psnr)
    print(
        f"{len(truths)} photos from {args.data.name} turned grey; true colourfulness {truth_colourful:.1f}.\n"
    )
    print(grey_table(dict(rows), truth_colourful, grey_psnr))
    if sepia:
        truth_band = mean(hue_figures(t, t)[3] for t in truths[: len(sepia)])
        sepia_colourful = mean(colourfulness(t) for t in truths[: len(sepia)])
        print(
            f"\nSepia scans ({len(sepia)} photos: sepia 0.7-1 + old-scan recipe), against the true photos:\n"
        )
        print(sepia_table(dict(sepia_rows), sepia_colourful, truth_band))
    if timings:
        print(f"\n12-MP grey JPEG through process_file ({args.threads} threads):\n")
        print("| method | seconds |\n|---|---|")
        print("\n".join(f"| {name} | {secs:.2f} |" for name, secs in timings))
    if args.sheet:
        from photosr.training.reports import sample_sheet

        crops = [[centre_square(col[i]) for col in columns.values()] for i in range(min(4, len(truths)))]
        sample_sheet(crops, list(columns)).save(args.sheet)
        print(f"\nsheet: {args.sheet}", file=sys.stderr)


def centre_square(image: np.ndarray) -> np.ndarray:
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


if __name__ == "__main__":
    main()
