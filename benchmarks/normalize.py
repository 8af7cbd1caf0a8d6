"""Seconds per 12-MP photo for each imaging step, next to a plain-Pillow baseline run in the same process.

    .venv/bin/python benchmarks/normalize.py [photo.jpg ...] [--photos 3] [--repeat 2]

Without arguments it makes `--photos` 12-MP JPEGs (4000x3000, upscaled once from the wikipedia50 training
photos, EXIF orientation 6, one in three tagged with an Adobe-RGB-like profile so the ICC path runs) in a
temp folder. Steps, each timed on its own:

  decode          Pillow open + load, nothing else (the floor for any loader)
  normalize       photo_from_pil on the decoded image: orientation, ICC, grey check, float32
  normalize+ICC   the same for an image whose profile needs a real conversion
  load_photo      the whole public call (decode + normalize)
  resize 2048     fit_within(photo, 2048): linear light, Lanczos, float32
  save jpeg/png   save_photo of the 2048-px result (EXIF fixed, sRGB tag, atomic write)
  save jpeg 12MP  save_photo of the full-size photo
  16-bit rows     with --deep: a 12-MP 16-bit RGB PNG (written once by photosr's own writer) loaded
                  through the two-pass decode, and saved back as 16-bit PNG

Baseline rows do the naive thing with Pillow alone (gamma-space 8-bit Lanczos, plain save). Memory:
tracemalloc peak per step (numpy buffers are traced; Pillow's own image memory is not), and the
process's peak RSS at the end. Medians over photos x repeats.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # imaging_helpers: EXIF and ICC builders

from imaging_helpers import exif_bytes, make_rgb_icc  # noqa: E402

from photosr.io import load_photo, photo_from_pil, save_photo  # noqa: E402
from photosr.resize import fit_within  # noqa: E402

DATA = Path("/work/shared/data/train/wikipedia50")
SIZE = (4000, 3000)


def make_photos(folder: Path, count: int) -> list[Path]:
    sources = sorted(DATA.glob("*.png"))[:count]
    if not sources:
        raise SystemExit(f"no photos in {DATA}; pass JPEG paths instead")
    icc = make_rgb_icc()
    out = []
    for i, src in enumerate(sources):
        with Image.open(src) as img:
            big = img.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
        kwargs = {"icc_profile": icc} if i % 3 == 2 else {}
        path = folder / f"photo{i}.jpg"
        # Stored turned, as a camera held upright would write it, so the orientation path runs.
        big.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif_bytes(6), **kwargs)
        out.append(path)
    return out


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(seconds, tracemalloc peak MiB, result) of one call."""
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return seconds, tracemalloc.get_traced_memory()[1] / 2**20, result


def decoded(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img.copy() if img.mode != "RGB" else img


def run_photo(path: Path, out_dir: Path, rows: dict[str, list[tuple[float, float]]]) -> None:
    def add(name: str, fn: Callable[[], object]) -> object:
        seconds, mib, result = timed(fn)
        rows.setdefault(name, []).append((seconds, mib))
        return result

    img = add("decode (Pillow)", lambda: decoded(path))
    has_icc = bool(img.info.get("icc_profile"))
    add("normalize+ICC" if has_icc else "normalize", lambda: photo_from_pil(img))
    photo = add("load_photo", lambda: load_photo(path))
    small = add("resize 2048 (linear light)", lambda: fit_within(photo, 2048))
    add("save jpeg 2048", lambda: save_photo(small, out_dir / "small.jpg", format="jpeg"))
    add("save png 2048", lambda: save_photo(small, out_dir / "small.png", format="png"))
    add("save jpeg 12MP", lambda: save_photo(photo, out_dir / "big.jpg", format="jpeg"))
    # Baseline: Pillow alone, gamma-space 8-bit resampling, no metadata work.
    base = add("baseline: Pillow resize 2048", lambda: img.resize((2048, 1536), Image.Resampling.LANCZOS))
    add("baseline: Pillow save jpeg 2048", lambda: base.save(out_dir / "base.jpg", quality=95))


def run_deep(folder: Path, rows: dict[str, list[tuple[float, float]]], repeat: int) -> None:
    import numpy as np

    from photosr.image import Photo, SourceInfo

    ramp = np.linspace(0, 1, SIZE[0], dtype=np.float32)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[::-1, None][: SIZE[1]], np.float32(0.3)), axis=-1)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    src = save_photo(Photo(rgb=rgb, info=SourceInfo(bit_depth=16)), folder / "deep.png", format="png")
    for _ in range(repeat):
        seconds, mib, photo = timed(lambda: load_photo(src))
        rows.setdefault("16-bit: load_photo PNG", []).append((seconds, mib))
        seconds, mib, _ = timed(lambda p=photo: save_photo(p, folder / "deep_out.png", format="png"))
        rows.setdefault("16-bit: save png 12MP", []).append((seconds, mib))


def report(rows: dict[str, list[tuple[float, float]]]) -> None:
    decode = statistics.median(s for s, _ in rows["decode (Pillow)"])
    base = {
        "resize 2048 (linear light)": "baseline: Pillow resize 2048",
        "save jpeg 2048": "baseline: Pillow save jpeg 2048",
        "load_photo": "decode (Pillow)",
        "normalize": "decode (Pillow)",
        "normalize+ICC": "decode (Pillow)",
    }
    print(f"{'step':34} {'n':>3} {'median s':>9} {'min s':>7} {'x base':>7} {'py peak MiB':>12}")
    for name, samples in rows.items():
        secs = [s for s, _ in samples]
        med = statistics.median(secs)
        ref = base.get(name)
        ratio = f"{med / statistics.median(s for s, _ in rows[ref]):7.2f}" if ref in rows else f"{'':>7}"
        peak = max(m for _, m in samples)
        print(f"{name:34} {len(secs):3d} {med:9.3f} {min(secs):7.3f} {ratio} {peak:12.0f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS {rss:.0f} MiB; decode alone {decode:.3f} s; photo is {SIZE[0]}x{SIZE[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--photos", dest="count", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--deep", action="store_true", help="also time a 12-MP 16-bit PNG")
    args = parser.parse_args()
    tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="photosr-bench-") as tmp:
        folder = Path(tmp)
        photos = args.photos or make_photos(folder, args.count)
        rows: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for path in photos:
                run_photo(path, folder, rows)
        if args.deep:
            run_deep(folder, rows, args.repeat)
        report(rows)


if __name__ == "__main__":
    main()
