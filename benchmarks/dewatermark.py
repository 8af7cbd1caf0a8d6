"""Dewatermark quality on held-out watermarks: PSNR inside and outside the true overlay mask.

    .venv/bin/python benchmarks/dewatermark.py [--limit 10] [--plugin DIR ...] [--threads 1] [--sheet out.png]
        [--time-12mp] [--precision auto,fp32] [--ensemble 1,2] [--per-photo]

Each validation photo gets overlays from the `dewatermark-heldout` recipe (fonts and words no dewatermark
model trains on, training/degrade/splits.py; the same layouts, opacities and JPEG as the training recipe),
drawn with a fixed seed per photo, which also returns the true overlay alpha. Methods:

  input             the watermarked photo itself
  telea / ns        OpenCV inpainting (cv2.inpaint, radius 3) given the TRUE mask: an oracle a blind model
                    does not have; it changes nothing outside the mask by construction
  <plugin>          every bundled dewatermark plugin and each --plugin DIR, run through photosr's
                    Pipeline.process_file with --save-mask, as `photosr run --save-mask` does
  <plugin> in-mask  the same output kept only where the plugin's own mask says it changed something
                    (the input elsewhere): what a task that trusts its mask would give

`--precision` (comma-separated, default auto) runs each plugin once per precision on the same photos: the
first precision's rows keep the names above, later ones read "<plugin> (fp32)" and "<plugin> (fp32)
in-mask"; the "model" column says which model file (int8 or fp32) each row ran. A precision that would
rerun a model file already measured (fp32 or int8 next to auto on a plugin without an int8 model) gets no
row, and a line under the table says so. `--ensemble 1,2` runs each of those rows once per self-ensemble
size (`photosr run --ensemble N`), the later ones as "<plugin> (ensemble 2)".

Regions: "inside" = true alpha > 0.01 (antialiased edges included); "outside" = pixels more than 8 px (one
JPEG block: the ringing the overlay itself left in the input) from any inside pixel. PSNR is on 8-bit RGB
per photo, capped at 60 dB (an untouched region is infinite), then averaged. Targets (issue 6): inside at
least +6 dB over the input; outside >= 38 dB against the input (the photo stays untouched). Mask IoU is the
plugin's --save-mask mask against the true inside mask.

`--per-photo` adds a table with a line per photo: what its first overlay was (content, layout, colour,
opacity, glyph size as a share of the short side), whether a second overlay and a JPEG followed, and each
method's gain inside (and each plugin's mask IoU): where the averages come from.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from bench_plugins import (
    add_ensemble_option,
    add_precision_option,
    model_kind,
    pipeline_for,
    precision_variants,
    with_ensembles,
)
from PIL import Image

DATA = Path("/work/shared/data/val/sunhays80")
RECIPE = "dewatermark-heldout"
INSIDE_ALPHA = 0.01
GUARD = 8  # px between the mask and the "outside" region
CAP_DB = 60.0  # above ~50 dB a difference is invisible; caps keep untouched regions from dominating means
TARGET_GAIN, TARGET_OUTSIDE = 6.0, 38.0


@dataclass
class Case:
    """One watermarked photo: clean truth, damaged input, true alpha, what the overlay was."""

    name: str
    truth: np.ndarray
    damaged: np.ndarray
    alpha: np.ndarray
    layout: str
    overlay: str = ""  # the first overlay and what followed it, for --per-photo

    @property
    def inside(self) -> np.ndarray:
        return self.alpha > INSIDE_ALPHA

    @property
    def outside(self) -> np.ndarray:
        kernel = np.ones((2 * GUARD + 1, 2 * GUARD + 1), np.uint8)
        return cv2.dilate(self.inside.astype(np.uint8), kernel) == 0


@dataclass
class Row:
    """Per-photo figures of one method."""

    inside: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    outside: list[float] = field(default_factory=list)
    outside_truth: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    model: str = "-"  # which model file a plugin row ran ("int8" / "fp32"); "-" for the others
    by_layout: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def region_psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """PSNR (dB) of two uint8 RGB images over the pixels of `region`, capped at CAP_DB."""
    if not region.any():
        return float("nan")
    diff = a[region].astype(np.float64) - b[region].astype(np.float64)
    mse = float(np.mean(diff**2))
    return CAP_DB if mse == 0 else min(CAP_DB, 10.0 * np.log10(255.0**2 / mse))


def make_cases(data: Path, limit: int, seed: int) -> list[Case]:
    """The held-out watermarked photos, one fixed draw per photo (seed + index)."""
    from photosr.training.data import find_images, load_rgb_uint8
    from photosr.training.degrade import load_crappifier

    crappifier = load_crappifier(RECIPE, task="dewatermark")
    cases = []
    for i, path in enumerate(find_images([data])[: limit or None]):
        truth = load_rgb_uint8(path)
        params = crappifier.sample(np.random.default_rng(seed + i))
        damaged, alpha = crappifier.apply_with_mask(Image.fromarray(truth), params)
        first = params["steps"][0]
        cases.append(Case(path.stem, truth, np.asarray(damaged), alpha, first["layout"], describe(params)))
    return cases


def describe(params: dict) -> str:
    """One cell for --per-photo: the first overlay of a `dewatermark-heldout` draw and the steps after it."""
    first, *rest = params["steps"]
    colour = "grey" if len(set(first["colour"])) == 1 else "colour"
    text = f"{first['content']} {first['layout']}, {colour} {int(np.mean(first['colour']))}"
    text += f", opacity {first['opacity']:.2f}, size {first['size']:.2f}"
    for step in rest:
        if step["applied"] and "opacity" in step["params"]:
            text += f"; + overlay at {step['params']['opacity']:.2f}"
        elif step["applied"] and "quality" in step["params"]:
            text += f"; JPEG q{step['params']['quality']}"
    return text


def inpaint(case: Case, method: int) -> np.ndarray:
    # The mask is widened by a pixel so inpainting also replaces the faintest antialiased edge.
    mask = cv2.dilate((case.alpha > 0).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    bgr = cv2.cvtColor(case.damaged, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.inpaint(bgr, mask, 3, method), cv2.COLOR_BGR2RGB)


def score(row: Row, case: Case, out: np.ndarray) -> None:
    baseline = region_psnr(case.damaged, case.truth, case.inside)
    inside = region_psnr(out, case.truth, case.inside)
    row.inside.append(inside)
    row.gain.append(inside - baseline)
    row.outside.append(region_psnr(out, case.damaged, case.outside))
    row.outside_truth.append(region_psnr(out, case.truth, case.outside))
    row.by_layout[case.layout].append(inside - baseline)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def dewatermark_plugins(extra: list[str]) -> list:
    """Bundled (and installed) dewatermark plugins, then the --plugin folders."""
    from photosr.plugins import Plugin, default_registry

    found = [p for p in default_registry() if p.manifest.task == "dewatermark"]
    return found + [Plugin(Path(folder)) for folder in extra]


def dewatermark_pipeline(plugin, threads: int, precision: str, ensemble: int = 1):
    """`plugin` for the dewatermark task on the CPU, writing the found-overlay mask next to each output."""
    return pipeline_for(
        plugin, threads=threads, save_mask=True, device="cpu", precision=precision, ensemble=ensemble
    )


def run_plugin(
    plugin,
    cases: list[Case],
    rows: dict[str, Row],
    threads: int,
    work: Path,
    precision: str = "auto",
    name: str | None = None,
    ensemble: int = 1,
) -> list[np.ndarray]:
    """Each case through photosr's pipeline (PNG in, PNG + mask out) at `precision` and self-ensemble
    size `ensemble`, scored into the rows `name` (default: the plugin's name) and "`name` in-mask";
    returns the outputs."""
    from photosr.pipeline import mask_path

    pipeline = dewatermark_pipeline(plugin, threads, precision, ensemble)
    name = name or plugin.manifest.name
    row, kept = rows[name], rows[f"{name} in-mask"]
    row.model = kept.model = model_kind(plugin, precision, "cpu")[0]
    outputs = []
    for case in cases:
        src = work / f"{case.name}.png"
        dst = work / f"{case.name}-{plugin.manifest.name}-{precision}-{ensemble}.png"
        Image.fromarray(case.damaged).save(src)
        result = pipeline.process_file(src, dst)
        if not result.ok:
            raise SystemExit(result.error)
        out = np.asarray(Image.open(dst).convert("RGB"))
        mask = np.asarray(Image.open(mask_path(dst))) > 127
        score(row, case, out)
        row.iou.append(iou(mask, case.inside))
        row.seconds.append(result.seconds)
        score(kept, case, np.where(mask[..., None], out, case.damaged))
        outputs.append(out)
    return outputs


def time_12mp(
    plugin, case: Case, threads: int, work: Path, precision: str = "auto", ensemble: int = 1
) -> float:
    """Seconds of process_file (load, dewatermark, mask, save) on the first case enlarged to 4000x3000
    and saved as JPEG, at `precision` and self-ensemble size `ensemble`; the session is warmed on the
    small photo first."""
    big = work / "big.jpg"
    if not big.exists():
        Image.fromarray(case.damaged).resize((4000, 3000), Image.Resampling.BICUBIC).save(big, quality=92)
    pipeline = dewatermark_pipeline(plugin, threads, precision, ensemble)
    pipeline.process_file(work / f"{case.name}.png", work / "warm.png")
    result = pipeline.process_file(big, work / "big-out.jpg")
    if not result.ok:
        raise SystemExit(result.error)
    return result.seconds


def fmt(values: list[float], spec: str = ".2f") -> str:
    values = [v for v in values if not np.isnan(v)]
    return format(float(np.mean(values)), spec) if values else "-"


def report(rows: dict[str, Row], cases: list[Case], notes: list[str] | tuple[str, ...] = ()) -> str:
    """The Markdown tables; `notes` (precisions left out) go right under the first."""
    inside = np.mean([c.inside.mean() for c in cases])
    outside = np.mean([c.outside.mean() for c in cases])
    layouts = sorted({c.layout for c in cases})
    counts = ", ".join(f"{sum(c.layout == lay for c in cases)} {lay}" for lay in layouts)
    lines = [
        f"{len(cases)} photos ({counts}), recipe `{RECIPE}`; inside = {100 * inside:.1f}% of pixels,"
        f" outside (> {GUARD} px away) = {100 * outside:.1f}%. PSNR on 8-bit RGB, capped at {CAP_DB:.0f} dB.",
        "",
        f"| method | model | PSNR inside (dB) | gain inside (dB, target >= +{TARGET_GAIN:.0f}) |"
        f" PSNR outside vs input (dB, target >= {TARGET_OUTSIDE:.0f}) | PSNR outside vs truth (dB) |"
        " mask IoU | s/photo |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        gain = fmt(row.gain, "+.2f") if name != "input" else "-"
        lines.append(
            f"| {name} | {row.model} | {fmt(row.inside)} | {gain} | {fmt(row.outside)} | {fmt(row.outside_truth)} |"
            f" {fmt(row.iou, '.3f')} | {fmt(row.seconds)} |"
        )
    if notes:
        lines += ["", *notes]
    lines += ["", "Gain inside by layout (dB):", "", "| method | " + " | ".join(layouts) + " |"]
    lines.append("|---|" + "---|" * len(layouts))
    for name, row in rows.items():
        if name != "input":
            cells = " | ".join(fmt(row.by_layout.get(lay, []), "+.2f") for lay in layouts)
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def per_photo(rows: dict[str, Row], cases: list[Case]) -> str:
    """A line per photo: its overlay, each method's gain inside and each plugin's mask IoU."""
    methods = [name for name in rows if name != "input"]
    with_iou = [name for name in methods if rows[name].iou]
    head = " | ".join([*methods, *(f"{name} IoU" for name in with_iou)])
    lines = [
        f"| photo | overlay | input inside (dB) | {head} |",
        "|---|---|---|" + "---|" * (len(methods) + len(with_iou)),
    ]
    for i, case in enumerate(cases):
        cells = [f"{rows[name].gain[i]:+.2f}" for name in methods]
        cells += [f"{rows[name].iou[i]:.2f}" for name in with_iou]
        lines.append(
            f"| {case.name} | {case.overlay} | {region_psnr(case.damaged, case.truth, case.inside):.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def crop_around(image: np.ndarray, case: Case, side: int = 256) -> np.ndarray:
    ys, xs = np.nonzero(case.inside)
    h, w = case.alpha.shape
    side = min(side, h, w)
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (h // 2, w // 2)
    top = min(max(cy - side // 2, 0), h - side)
    left = min(max(cx - side // 2, 0), w - side)
    return image[top : top + side, left : left + side]


def save_sheet(path: Path, cases: list[Case], columns: dict[str, list[np.ndarray]]) -> None:
    from photosr.training.reports import sample_sheet

    rows = [[crop_around(out[i], case) for out in columns.values()] for i, case in enumerate(cases[:4])]
    sample_sheet(rows, list(columns)).save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    parser.add_argument("--plugin", action="append", default=[], help="a plugin folder to score too")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, help="write crops of the first 4 photos, every method, here")
    parser.add_argument("--time-12mp", action="store_true", help="also time one 4000x3000 photo per plugin")
    parser.add_argument("--per-photo", action="store_true", help="also print a line per photo")
    add_precision_option(parser)
    add_ensemble_option(parser)
    args = parser.parse_args(argv)

    cv2.setNumThreads(args.threads)
    cases = make_cases(args.data, args.limit, args.seed)
    rows: dict[str, Row] = defaultdict(Row)
    columns: dict[str, list[np.ndarray]] = {"input": [c.damaged for c in cases]}
    for case in cases:
        score(rows["input"], case, case.damaged)
    for label, method in (("telea (true mask)", cv2.INPAINT_TELEA), ("ns (true mask)", cv2.INPAINT_NS)):
        columns[label] = [inpaint(case, method) for case in cases]
        for case, out in zip(cases, columns[label], strict=True):
            score(rows[label], case, out)
    timings, notes = [], []
    with tempfile.TemporaryDirectory() as work:
        for plugin in dewatermark_plugins(args.plugin):
            variants, skipped = precision_variants(plugin, args.precision, "cpu")
            notes += skipped
            for v in with_ensembles(variants, args.ensemble):
                name = v.name(plugin.manifest.name)
                columns[name] = run_plugin(
                    plugin, cases, rows, args.threads, Path(work), v.precision, name, v.ensemble
                )
                if args.time_12mp:
                    secs = time_12mp(plugin, cases[0], args.threads, Path(work), v.precision, v.ensemble)
                    timings.append((name, v.model, secs))
    columns["truth"] = [c.truth for c in cases]
    print(report(dict(rows), cases, notes))
    if args.per_photo:
        print("\nPer photo, gain inside (dB) and mask IoU:\n")
        print(per_photo(dict(rows), cases))
    if timings:
        print(
            f"\n12-MP JPEG through process_file with --save-mask ({args.threads} threads, target <= 15 s):\n"
        )
        print("| plugin | model | seconds |\n|---|---|---|")
        print("\n".join(f"| {name} | {model} | {secs:.2f} |" for name, model, secs in timings))
    if args.sheet:
        save_sheet(args.sheet, cases, columns)
        print(f"\nsheet: {args.sheet}", file=sys.stderr)


if __name__ == "__main__":
    main()
