"""Seconds per photo, end to end through the pipeline, for every bundled plugin, next to the issue's targets.

    .venv/bin/python benchmarks/speed.py [--repeats 3] [--threads 2] [--plugin DIR ...] [--only NAME ...]
        [--precision auto,fp32] [--ensemble 1,8] [--overlay clean,single,tiled]

Each plugin runs `Pipeline.process_file` (load, process, save a JPEG at quality 95 into a temp folder) on
a photo of the size its target is stated for: upscale x2 and x4 on a 1-MP photo (1000x1000 -> 4 / 16
MP), restore on a 12-MP photo (4000x3000). Other tasks get the 1-MP photo and no target. The model
session is created on a tiny warm-up photo first (a batch pays that once); the median of `--repeats`
runs is reported.

Baselines run in the same process on the same photo, so the ratio survives a busy machine: for upscale,
Pillow alone (open, bicubic resize to the output size, save); for restore, photosr's normalize task
(load + save, no model). Params and GFLOPs per input megapixel come from the manifest's [metrics].

`--precision` (comma-separated, default auto) times each plugin once per precision, one after the other
in the same process, each row with its own baseline run: the first precision's row keeps the plugin's
name, later ones read "NAME (fp32)" etc.; the "model" column says which model file (int8 or fp32) ran. A
precision that would rerun a model file already timed (fp32 or int8 next to auto on a plugin without an
int8 model) gets no row, and a line under the table says so. `--ensemble 1,8` times each of those rows
once per self-ensemble size (`photosr run --ensemble N`), the later ones as "NAME (ensemble 8)".

Photos: a wikipedia50 training photo resized to the size (so JPEG coding costs what it costs on a photo),
or a smooth gradient with texture when that folder is missing. `--overlay single,tiled` also times each
dewatermark row on that photo with one held-out overlay drawn on it (benchmarks/dewatermark.py's recipe,
the first draw of that layout): a self-ensemble runs its other views only on tiles where the first found
an overlay (`DewatermarkTask.views_needed`), so its time depends on how much of the photo is stamped;
the photo column says what share of the pixels the overlay covers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench_plugins import (
    Variant,
    add_ensemble_option,
    add_plugin_options,
    add_precision_option,
    find_plugins,
    pipeline_for,
    precision_variants,
    with_ensembles,
)
from PIL import Image, ImageOps

from photosr.pipeline import Pipeline, ProcessOptions
from photosr.plugins import Plugin, PluginRegistry

PHOTOS = Path("/work/shared/data/train/wikipedia50")
ONE_MP = (1000, 1000)
TWELVE_MP = (4000, 3000)
# (task, scale) -> (input size, target seconds per photo from issues 5 and 6)
TARGETS: dict[tuple[str, int], tuple[tuple[int, int], float | None]] = {
    ("upscale", 2): (ONE_MP, 3.0),
    ("upscale", 4): (ONE_MP, 8.0),
    ("restore", 1): (TWELVE_MP, 15.0),
    ("colorize", 1): (TWELVE_MP, 10.0),
    ("dewatermark", 1): (TWELVE_MP, 15.0),
}
QUALITY = 95
DEVICE = "auto"  # the device pipeline_for's pipelines run on (ProcessOptions' default)
OVERLAYS = ("clean", "single", "tiled")
OVERLAY_RECIPE = "dewatermark-heldout"  # benchmarks/dewatermark.py's RECIPE (not imported: it needs cv2)
_STAMPED: dict[Path, float] = {}  # stamped photo -> share of its pixels under the overlay


def make_photo(path: Path, size: tuple[int, int]) -> Path:
    """A JPEG of `size`: a real photo cropped to the aspect and resized, or a synthetic one."""
    sources = sorted(PHOTOS.glob("*.png")) + sorted(PHOTOS.glob("*.jpg"))
    if sources:
        with Image.open(sources[0]) as img:
            image = ImageOps.fit(img.convert("RGB"), size, Image.Resampling.LANCZOS)
    else:
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rng = np.random.default_rng(0)
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=2) * 180 + 40
        texture = 20 * np.sin(xx / 7)[..., None] * np.cos(yy / 11)[..., None] + rng.normal(0, 4, (h, w, 3))
        image = Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))
    image.save(path, quality=QUALITY)
    return path


def stamp_photo(src: Path, dst: Path, layout: str) -> tuple[Path, float]:
    """`src` with the first held-out overlay of `layout` (seeds 0, 1, ...) drawn on it, saved as a JPEG;
    returns the path and the share of pixels the overlay covers (alpha > 0.01)."""
    from photosr.training.degrade import load_crappifier

    crappifier = load_crappifier(OVERLAY_RECIPE, task="dewatermark")
    rng = np.random.default_rng(0)
    params = crappifier.sample(rng)
    while params["steps"][0]["layout"] != layout:
        params = crappifier.sample(rng)
    with Image.open(src) as img:
        damaged, alpha = crappifier.apply_with_mask(img.convert("RGB"), params)
    damaged.save(dst, quality=QUALITY)
    return dst, float(np.mean(alpha > 0.01))


def median_seconds(run: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pipeline_run(pipeline: Pipeline, src: Path, dst: Path) -> Callable[[], None]:
    def run() -> None:
        result = pipeline.process_file(src, dst)
        if not result.ok:
            raise SystemExit(f"pipeline failed: {result.error}")

    return run


def pillow_resize_run(src: Path, dst: Path, scale: int) -> Callable[[], None]:
    def run() -> None:
        with Image.open(src) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
        rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.BICUBIC).save(
            dst, quality=QUALITY
        )

    return run


def measure(
    plugin: Plugin,
    tmp: Path,
    threads: int,
    repeats: int,
    variant: Variant | None = None,
    overlay: str = "clean",
) -> dict[str, object]:
    """One table row: `plugin` at `variant`'s precision and ensemble (default: auto and the plugin's own
    ensemble size, under the plugin's name), on the clean photo or one with an `overlay` layout on it."""
    m = plugin.manifest
    variant = variant or precision_variants(plugin, ("auto",), DEVICE)[0][0]
    size, target = TARGETS.get((m.task, m.model.scale), (ONE_MP, None))
    src = tmp / f"photo-{size[0]}x{size[1]}.jpg"
    if not src.exists():
        make_photo(src, size)
    label = ""
    if overlay != "clean":
        stamped = tmp / f"photo-{size[0]}x{size[1]}-{overlay}.jpg"
        if stamped not in _STAMPED:  # drawn once per run, for every variant timed on it
            _STAMPED[stamped] = stamp_photo(src, stamped, overlay)[1]
        src, share = stamped, _STAMPED[stamped]
        label = f", {overlay} overlay ({share:.0%} of pixels)"
    pipeline = pipeline_for(plugin, threads=threads, precision=variant.precision, ensemble=variant.ensemble)
    pipeline_run(pipeline, make_photo(tmp / "warmup.jpg", (64, 48)), tmp / "warmup-out.jpg")()
    seconds = median_seconds(pipeline_run(pipeline, src, tmp / "out.jpg"), repeats)
    if m.task == "upscale":
        baseline = "Pillow bicubic"
        base_run = pillow_resize_run(src, tmp / "base.jpg", m.model.scale)
    else:
        baseline = "photosr normalize"
        normalize = Pipeline(ProcessOptions(tasks=("normalize",)), registry=PluginRegistry())
        base_run = pipeline_run(normalize, src, tmp / "base.jpg")
    base_seconds = median_seconds(base_run, repeats)
    metrics = m.metrics
    out_mp = size[0] * size[1] * m.model.scale**2 / 1e6
    return {
        "plugin": variant.name(m.name),
        "model": variant.model,
        "photo": f"{size[0]}x{size[1]} -> {out_mp:g} MP{label}",
        "seconds": seconds,
        "target": target,
        "baseline": baseline,
        "base_seconds": base_seconds,
        "params": metrics.get("parameters"),
        "gflops": metrics.get("gflops_per_input_mp"),
    }


def format_table(rows: Sequence[dict[str, object]], repeats: int) -> str:
    lines = [
        f"| plugin | model | photo | s/photo (median of {repeats}) | target | met | baseline | baseline s "
        "| ratio | params | GFLOPs/MP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target, params, gflops = r["target"], r["params"], r["gflops"]
        met = "-" if target is None else ("yes" if r["seconds"] <= target else "NO")
        cells = [
            r["plugin"],
            r["model"],
            r["photo"],
            f"{r['seconds']:.2f}",
            "-" if target is None else f"<= {target:g}",
            met,
            r["baseline"],
            f"{r['base_seconds']:.2f}",
            f"{r['seconds'] / r['base_seconds']:.1f}x",
            "-" if params is None else f"{params:,}",
            "-" if gflops is None else f"{gflops:g}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per plugin (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (0 = all cores)")
    add_plugin_options(parser)
    add_precision_option(parser)
    add_ensemble_option(parser)
    parser.add_argument(
        "--overlay",
        type=lambda text: tuple(text.split(",")),
        default=("clean",),
        help="photos to time dewatermark rows on, comma-separated from clean, single, tiled (default clean)",
    )
    args = parser.parse_args(argv)
    if bad := [o for o in args.overlay if o not in OVERLAYS]:
        parser.error(f"--overlay takes {', '.join(OVERLAYS)}, got {', '.join(bad)}")

    import onnxruntime

    plugins = find_plugins(args.plugin, args.only)
    print(
        f"# Speed: end to end per photo (load, process, save JPEG q{QUALITY}), {args.threads} thread(s), "
        f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs, precision {','.join(args.precision)}, "
        f"load average {os.getloadavg()[0]:.1f} at start\n"
    )
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="photosr-speed-") as tmp:
        for plugin in plugins:
            variants, skipped = precision_variants(plugin, args.precision, DEVICE)
            variants = with_ensembles(variants, args.ensemble)
            notes += skipped
            overlays = args.overlay if plugin.manifest.task == "dewatermark" else ("clean",)
            for overlay in overlays:
                for variant in variants:
                    print(f"timing {variant.name(plugin.name)} on {overlay} ...", file=sys.stderr, flush=True)
                    rows.append(measure(plugin, Path(tmp), args.threads, args.repeats, variant, overlay))
    print(format_table(rows, args.repeats))
    if notes:
        print("\n" + "\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
