"""How long `photosr run` takes per 12-MP photo, and how much memory, with no model and a tiny model.

    .venv/bin/python benchmarks/run_tiny.py [--photos 4] [--megapixels 12] [--threads 0]

Makes N 12-MP JPEGs in a temp folder, then runs each configuration in its own child process (so peak
RSS belongs to that configuration alone) through the real CLI, `photosr run ... --json`:

- `pillow`: Pillow decode + encode of the same files (JPEG q95), the floor for any tool - and the
  baseline every child times first, in its own process, for the "x pillow" ratio;
- `normalize`: `--task normalize` (decode, orientation, ICC, float32, encode back);
- `conv1x`: `--task restore` with a tiny 1x conv plugin (tests/onnx_models.py conv_model, 1 layer),
  i.e. all of photosr's own overhead around a model: tiling, blending, alpha/grey handling.

Prints seconds per photo (median over photos, from the --json report), the ratio to the baseline, the
whole child's wall time and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    """`count` photo-like JPEGs (smooth gradients + grain, so they compress like photos)."""
    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([xx / w, yy / h, (xx + yy * (i + 1)) % w / w], axis=2) * 200 + 25
        pixels = np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:02d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def make_plugin(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from onnx_models import conv_model, write_plugin

    return write_plugin(folder / "conv1x", task="restore", scale=1, model=conv_model(1, layers=1))


def pillow_seconds(inputs: Path, out: Path) -> list[float]:
    """The baseline: Pillow decode + JPEG q95 encode of each photo, nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = []
    for src in sorted(inputs.glob("*.jpg")):
        start = time.perf_counter()
        with Image.open(src) as image:
            image.convert("RGB").save(out / src.name, quality=95)
        seconds.append(time.perf_counter() - start)
    return seconds


def child(config: str, inputs: Path, out: Path, plugin: Path, threads: int) -> None:
    """Run one configuration in this process; print {"seconds", "baseline", "rss_mb"} as JSON.

    Every child first times the Pillow baseline on the same files, so each ratio compares two runs made
    in the same process under the same machine load (the CPU is shared; absolute times drift).
    """
    baseline = pillow_seconds(inputs, out.with_name(out.name + "-pillow"))
    if config == "pillow":
        seconds = pillow_seconds(inputs, out)
    else:
        from click.testing import CliRunner

        from photosr.cli import main

        task = (
            ["--task", "normalize"]
            if config == "normalize"
            else ["--task", "restore", "--plugin", str(plugin)]
        )
        args = ["run", *task, str(inputs), "-o", str(out), "--json", "--threads", str(threads)]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        report = json.loads(result.stdout)
        if report["summary"]["failed"]:
            raise SystemExit(f"{config}: failures: {[f['error'] for f in report['files'] if f['error']]}")
        seconds = [f["seconds"] for f in report["files"]]
    print(json.dumps({"seconds": seconds, "baseline": baseline, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a
    child started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def run_config(config: str, inputs: Path, work: Path, plugin: Path, threads: int) -> dict:
    start = time.perf_counter()
    cmd = [
        sys.executable,
        __file__,
        "--child",
        config,
        str(inputs),
        str(work / config),
        str(plugin),
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall"] = time.perf_counter() - start
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=0, help="model threads (0 = all cores)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, inputs, out, plugin, threads = args.child
        child(config, Path(inputs), Path(out), Path(plugin), int(threads))
        return
    with tempfile.TemporaryDirectory(prefix="photosr-bench-") as tmp:
        work = Path(tmp)
        inputs = work / "in"
        inputs.mkdir()
        photos = make_photos(inputs, args.photos, args.megapixels)
        plugin = make_plugin(work)
        size = Image.open(photos[0]).size
        print(
            f"{len(photos)} JPEGs {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP), threads={args.threads}"
        )
        rows = [
            (c, run_config(c, inputs, work, plugin, args.threads)) for c in ("pillow", "normalize", "conv1x")
        ]
    print_table(rows)
    print_fill_cost(args.megapixels)


def print_fill_cost(megapixels: float, repeats: int = 3) -> None:
    """photosr's own per-photo extra for RGBA: filling colour under transparent pixels before a model."""
    from photosr.tasks import fill_transparent

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    rgb = np.random.default_rng(1).random((h, w, 3), dtype=np.float32)
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[h // 6 : -h // 6, w // 5 : -w // 5] = 1.0  # an opaque cut-out in a transparent frame
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fill_transparent(rgb, alpha)
        times.append(time.perf_counter() - start)
    holes = float((alpha == 0).mean())
    print(
        f"\nalpha fill (fill_transparent) {w}x{h}, {holes:.0%} transparent: median {statistics.median(times):.2f} s"
    )


def print_table(rows: list[tuple[str, dict]]) -> None:
    print(f"{'config':<10} {'s/photo (median)':>17} {'x pillow':>9} {'child wall s':>13} {'peak RSS MB':>12}")
    for name, data in rows:
        med = statistics.median(data["seconds"])
        ratio = med / statistics.median(data["baseline"])
        print(f"{name:<10} {med:>17.2f} {ratio:>9.1f} {data['wall']:>13.1f} {data['rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
