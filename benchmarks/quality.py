"""The validation table of every bundled plugin, next to classic baselines, as Markdown.

    .venv/bin/python benchmarks/quality.py [--data /work/shared/data/val/sunhays80] [--limit N]
        [--threads 0] [--plugin DIR ...] [--only NAME ...] [--nlm-h 5,7,10,15] [--precision auto,fp32]
        [--ensemble 1,8]

Needs no torch: photosr plus numpy (and opencv-python-headless, the `bench` extra, for the restore
table's NLM baseline). Plugins run through photosr's real pipeline: a file in, `Pipeline.process_file`,
a PNG out, read back - what `photosr run --plugin NAME` does. `--precision` (comma-separated, default
auto) runs each plugin once per precision on the same inputs: the first precision's rows keep the plugin's
row names, later ones read "NAME (fp32)" etc.; the "model" column says which model file (int8 or fp32)
each row ran. A precision that would rerun a model file already measured (fp32 or int8 next to auto on a
plugin without an int8 model) gets no row, and a line under the table says so. `--ensemble 1,8` runs each
of those rows once per self-ensemble size (`photosr run --ensemble N`), the later ones as "NAME (ensemble 8)".

upscale plugins (scale s): HR = the photo cropped to a multiple of s; LR = Pillow BICUBIC downscale
(the SR papers' protocol, and the one the upscalers were validated with). Methods: Pillow bicubic,
Pillow Lanczos, the plugin. PSNR-Y / SSIM-Y (BT.601 studio range) with s pixels cropped from each side.

restore plugins: the input is the photo + Gaussian noise sigma 10 (8-bit levels, each channel its own,
seeded per photo by its file name), clipped, rounded and saved as a JPEG at quality 30 (Pillow, default
4:2:0 subsampling); that JPEG file is what the plugin reads. Methods: the input itself, OpenCV
fastNlMeansDenoisingColored at the usual h = hColor = 10 and at the best h of `--nlm-h` (chosen on this
set's mean PSNR: an oracle setting, fair to NLM; on sunhays80 the optimum is flat between h = 4 and 5,
and h = 3 is 0.1 dB worse, so the default grid misses nothing), the plugin at strength 1.0 and 0.5. PSNR and SSIM on
all three RGB channels (SSIM: mean over channels), nothing cropped.

Every table also gives the colour shift: per channel, the mean over photos of |mean(out) - mean(ref)|
in 8-bit levels, and the signed mean over photos and channels (> 0: brighter than the reference).
The numbers can differ slightly from a manifest's [metrics.validation] where that was drawn with
another noise seed (restore) or a different photo decoder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_plugins import (
    Variant,
    add_ensemble_option,
    add_plugin_options,
    add_precision_option,
    describe,
    find_plugins,
    pipeline_for,
    precision_variants,
    with_ensembles,
)
from PIL import Image
from sr_metrics import colour_shift, psnr, ssim, to_uint8

from photosr.io import load_photo
from photosr.plugins import Plugin

DATA = Path("/work/shared/data/val/sunhays80")
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
NOISE_SIGMA = 10.0
JPEG_QUALITY = 30


@dataclass
class Scores:
    """Per-photo scores of one method."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    shift: list[np.ndarray] = field(default_factory=list)
    model: str = "-"  # which model file a plugin row ran ("int8" / "fp32"); "-" for a baseline

    def add(self, out: np.ndarray, ref: np.ndarray, *, border: int, y_only: bool) -> None:
        if out.shape != ref.shape:
            raise ValueError(f"output {out.shape} does not match the reference {ref.shape}")
        self.psnr.append(psnr(out, ref, border=border, y_only=y_only))
        self.ssim.append(ssim(out, ref, border=border, y_only=y_only))
        self.shift.append(colour_shift(out, ref))

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))


# --- data -------------------------------------------------------------------------------------------------


def load_photos(folder: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    """(file name, HxWx3 uint8) of the photos in `folder`, sorted, decoded as photosr decodes them."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)[: limit or None]
    if not paths:
        raise SystemExit(f"no photos in {folder}")
    return [(p.name, to_uint8(load_photo(p).rgb)) for p in paths]


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def damage(rgb: np.ndarray, name: str, path: Path) -> Path:
    """Noise sigma 10 seeded by `name`, then a quality-30 JPEG written to `path` (the restore input)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    noisy = rgb.astype(np.float64) + rng.normal(0.0, NOISE_SIGMA, rgb.shape)
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(path, quality=JPEG_QUALITY)
    return path


def run_file(pipeline, src: Path, dst: Path) -> np.ndarray:
    result = pipeline.process_file(src, dst)
    if not result.ok:
        raise SystemExit(f"pipeline failed: {result.error}")
    return read_rgb(result.output)


def progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():  # full runs take a while; logs stay clean
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)


# --- the two tables ---------------------------------------------------------------------------------------

DEVICE = "auto"  # the device pipeline_for's pipelines run on (ProcessOptions' default)


def default_variants(plugin: Plugin, variants: Sequence[Variant] | None) -> Sequence[Variant]:
    return precision_variants(plugin, ("auto",), DEVICE)[0] if variants is None else variants


def upscale_scores(
    plugin: Plugin,
    photos: Sequence[tuple[str, np.ndarray]],
    tmp: Path,
    threads: int,
    *,
    variants: Sequence[Variant] | None = None,
) -> dict[str, Scores]:
    """Scores per method; the plugin once per variant (default: precision auto)."""
    s = plugin.manifest.model.scale
    variants = default_variants(plugin, variants)
    pipelines = [
        pipeline_for(plugin, threads=threads, format="png", precision=v.precision, ensemble=v.ensemble)
        for v in variants
    ]
    scores = {"bicubic (Pillow)": Scores(), "Lanczos (Pillow)": Scores()}
    scores.update({v.name(plugin.name): Scores(model=v.model) for v in variants})
    for i, (_, photo) in enumerate(photos):
        h, w = (photo.shape[0] // s) * s, (photo.shape[1] // s) * s
        hr = photo[:h, :w]
        lr = Image.fromarray(hr).resize((w // s, h // s), Image.Resampling.BICUBIC)
        lr.save(tmp / "lr.png")
        outs = [
            np.asarray(lr.resize((w, h), Image.Resampling.BICUBIC)),
            np.asarray(lr.resize((w, h), Image.Resampling.LANCZOS)),
            *(run_file(pipeline, tmp / "lr.png", tmp / "sr.png") for pipeline in pipelines),
        ]
        for rows, out in zip(scores.values(), outs, strict=True):
            rows.add(out, hr, border=s, y_only=True)
        progress(plugin.name, i + 1, len(photos))
    return scores


def nlm(rgb: np.ndarray, h: float) -> np.ndarray:
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21), cv2.COLOR_BGR2RGB)


def restore_scores(
    plugin: Plugin,
    photos: Sequence[tuple[str, np.ndarray]],
    tmp: Path,
    threads: int,
    nlm_hs: Sequence[float],
    *,
    variants: Sequence[Variant] | None = None,
) -> dict[str, Scores]:
    """Scores per method; the plugin at each strength once per variant (default: precision auto)."""
    import cv2  # the bench extra's; only NLM needs it

    if threads:
        cv2.setNumThreads(threads)
    strengths = (1.0, 0.5)
    runs = [(v, st) for v in default_variants(plugin, variants) for st in strengths]
    pipelines = [
        pipeline_for(
            plugin, threads=threads, format="png", strength=st, precision=v.precision, ensemble=v.ensemble
        )
        for v, st in runs
    ]
    hs = sorted(set(nlm_hs) | {10.0})
    per_h = {h: Scores() for h in hs}
    scores = {"input (noise 10 + JPEG 30)": Scores()}
    plugin_rows = {f"{v.name(plugin.name)} strength {st:.1f}": Scores(model=v.model) for v, st in runs}
    for i, (name, ref) in enumerate(photos):
        jpeg = damage(ref, name, tmp / "input.jpg")
        noisy = read_rgb(jpeg)
        scores["input (noise 10 + JPEG 30)"].add(noisy, ref, border=0, y_only=False)
        for h in hs:
            per_h[h].add(nlm(noisy, h), ref, border=0, y_only=False)
        for pipeline, row in zip(pipelines, plugin_rows.values(), strict=True):
            row.add(run_file(pipeline, jpeg, tmp / "out.png"), ref, border=0, y_only=False)
        progress(plugin.name, i + 1, len(photos))
    best = max(hs, key=lambda h: per_h[h].mean_psnr)
    scores["NLM h=10 hColor=10 (OpenCV)"] = per_h[10.0]
    scores[f"NLM best-h: h=hColor={best:g} of {{{', '.join(f'{h:g}' for h in hs)}}}"] = per_h[best]
    scores.update(plugin_rows)
    return scores


# --- output -----------------------------------------------------------------------------------------------


def format_table(scores: dict[str, Scores], baseline: str, *, metric: str) -> str:
    """Markdown: the model file run, mean PSNR, SSIM, gain over `baseline`, colour shift per channel and
    signed."""
    base = scores[baseline].mean_psnr
    lines = [
        f"| method | model | PSNR-{metric} (dB) | SSIM-{metric} | gain (dB) | shift R | shift G | shift B "
        "| mean shift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in scores.items():
        shifts = np.array(rows.shift)
        absolute = np.abs(shifts).mean(axis=0)
        gain = "-" if name == baseline else f"{rows.mean_psnr - base:+.3f}"
        lines.append(
            f"| {name} | {rows.model} | {rows.mean_psnr:.3f} | {np.mean(rows.ssim):.4f} | {gain} | "
            + " | ".join(f"{v:.2f}" for v in absolute)
            + f" | {shifts.mean():+.2f} |"
        )
    return "\n".join(lines)


def manifest_line(plugin: Plugin) -> str:
    """The plugin's own recorded validation scores, for comparison ("" if it has none)."""
    validation = plugin.manifest.metrics.get("validation")
    if not isinstance(validation, Mapping):
        return ""
    parts = [
        f"{key} {row['psnr']:.3f} / {row.get('ssim', float('nan')):.4f}"
        for key, row in validation.items()
        if isinstance(row, Mapping) and "psnr" in row
    ]
    if not parts:
        return ""
    return f"Manifest [metrics.validation] ({validation.get('images', '?')} images): " + ", ".join(parts)


TABLES: dict[str, tuple[Callable[..., dict[str, Scores]], str, str, str]] = {
    # task: (scores function, baseline row, metric label, what the protocol is)
    "upscale": (upscale_scores, "bicubic (Pillow)", "Y", "LR = Pillow bicubic downscale; Y, border = scale"),
    "restore": (restore_scores, "input (noise 10 + JPEG 30)", "RGB", "input = noise 10 + JPEG 30; RGB"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of validation photos")
    parser.add_argument("--limit", type=int, default=0, help="first N photos only (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime and OpenCV threads (0 = all)")
    add_plugin_options(parser)
    parser.add_argument("--nlm-h", default="5,7,10,15", help="h values tried for NLM's best-h row")
    add_precision_option(parser)
    add_ensemble_option(parser)
    args = parser.parse_args(argv)

    plugins = find_plugins(args.plugin, args.only)
    photos = load_photos(args.data, args.limit)
    nlm_hs = [float(h) for h in args.nlm_h.split(",") if h.strip()]
    ensembles = ",".join("plugin default" if n is None else str(n) for n in args.ensemble)
    print(
        f"# Quality: {len(photos)} photos from {args.data}, precision {','.join(args.precision)}, "
        f"ensemble {ensembles}\n"
    )
    with tempfile.TemporaryDirectory(prefix="photosr-quality-") as tmp:
        for plugin in plugins:
            task = plugin.manifest.task
            if task not in TABLES:
                print(f"## {describe(plugin)}\n\nNo quality protocol for task {task!r}; skipped.\n")
                continue
            scores_of, baseline, metric, protocol = TABLES[task]
            start = time.perf_counter()
            extra = (nlm_hs,) if task == "restore" else ()
            variants, notes = precision_variants(plugin, args.precision, DEVICE)
            variants = with_ensembles(variants, args.ensemble)
            scores = scores_of(plugin, photos, Path(tmp), args.threads, *extra, variants=variants)
            print(f"## {describe(plugin)}\n\n{protocol}; {len(photos)} photos.\n")
            print(format_table(scores, baseline, metric=metric))
            if notes:
                print("\n" + "\n".join(notes))
            note = manifest_line(plugin)
            print(f"\n{note}\n" if note else "")
            print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
