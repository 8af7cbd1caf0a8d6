"""What the watch daemon costs on top of the pipeline: latency from drop to output, and throughput.

    .venv/bin/python benchmarks/watch.py [--files 1000] [--drops 8] [--size 64x48]

Everything runs in this process: the daemon (`photosr.watch.Daemon` with the real pipeline, `--task
normalize`, in worker processes) in a thread, and the baseline - `Pipeline.process_file` called in a
plain loop on the same files - before it.

Latency: files dropped one at a time (each written under a `.part` name and renamed, as a download
tool does), drop -> final output appearing, for several settle times and for the polling observer.
"beyond model" subtracts the pipeline's own seconds for that file (from the ledger): what the daemon adds
(event delivery, the settle wait, hashing, the ledger, the pipe to the worker, the rename).

Throughput: N small PNGs present at start, start -> last output, with 1 and 2 workers, vs the baseline
loop. The machine's other load (training on shared cores) makes absolute numbers noisy; ratios taken in
the same run are the thing to compare.
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from photosr.pipeline import Pipeline, ProcessOptions
from photosr.watch import Daemon, Ledger, WatchConfig, pipeline_processor
from photosr.watch.status import LEDGER_NAME

OPTIONS = ProcessOptions(tasks=("normalize",), threads=1)


def make_photos(folder: Path, count: int, size: tuple[int, int], prefix: str = "p") -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{i // 250:02d}" / f"{prefix}{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i % 256, (i * 7) % 256, 99)).save(path)
        paths.append(path)
    return paths


def baseline(paths: list[Path], out: Path) -> float:
    """Seconds for the plain pipeline loop over `paths` (the floor any daemon sits on)."""
    pipeline = Pipeline(OPTIONS)
    for path in paths[:20]:  # warm up: imports, codecs and the page cache, as the daemon's workers are
        pipeline.process_file(path, out / f"warm-{path.name}")
    start = time.perf_counter()
    for path in paths:
        result = pipeline.process_file(path, out / path.name)
        assert result.status == "ok", result.error
    return time.perf_counter() - start


class Running:
    """A daemon in a thread; `with Running(config) as daemon:` waits until it is ready."""

    def __init__(self, config: WatchConfig):
        quiet = logging.getLogger("photosr.watch.bench")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        self.daemon = Daemon(config, functools.partial(pipeline_processor, OPTIONS), logger=quiet)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> Daemon:
        self.thread.start()
        if not self.daemon.ready.wait(60):
            raise RuntimeError("daemon did not start")
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        self.thread.join(60)


def wait_until(predicate, timeout: float = 600.0, step: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(step)


def latency(root: Path, drops: int, size: tuple[int, int], settle: float, poll: float | None) -> dict:
    src, out = root / "in", root / "out"
    src.mkdir(parents=True)
    staging = make_photos(root / "staging", drops, size, prefix="d")
    config = WatchConfig(src, out, settle=settle, poll=poll, rescan=0)
    totals = []
    with Running(config):
        for path in staging:
            part = src / (path.name + ".part")
            dropped = time.perf_counter()
            part.write_bytes(path.read_bytes())
            part.rename(src / path.name)
            wait_until(lambda p=path: (out / p.name).exists())
            totals.append(time.perf_counter() - dropped)
    # Read after the stop: the output is renamed into place a moment before its ledger row says done.
    with Ledger(config.state / LEDGER_NAME) as ledger:
        models = [ledger.get(path.name).seconds for path in staging]
    beyond = [t - m for t, m in zip(totals, models, strict=True)]
    return {
        "total": statistics.median(totals),
        "model": statistics.median(models),
        "beyond": statistics.median(beyond),
    }


def throughput(root: Path, paths_root: Path, count: int, workers: int) -> tuple[float, float]:
    """(wall seconds start -> last output, CPU seconds of the daemon process itself, workers excluded)."""
    out = root / f"out{workers}"
    config = WatchConfig(paths_root, out, settle=0.2, workers=workers, rescan=0, queue_size=4 * workers)
    start, cpu = time.perf_counter(), time.process_time()
    with Running(config), Ledger(config.state / LEDGER_NAME) as ledger:
        wait_until(lambda: ledger.counts()["done"] == count, step=0.05)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--drops", type=int, default=8)
    parser.add_argument("--size", default="64x48")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="photosr-bench-watch-") as tmp:
        root = Path(tmp)
        print(f"## latency: drop -> output, {args.drops} files of {args.size} one at a time (medians)\n")
        print("| observer | settle s | drop->output s | pipeline s | beyond pipeline s |")
        print("|---|---|---|---|---|")
        for index, (settle, poll) in enumerate(
            [(0.0, None), (0.2, None), (0.5, None), (2.0, None), (0.5, 1.0)]
        ):
            r = latency(root / f"lat{index}", args.drops, size, settle, poll)
            observer = "native (inotify)" if poll is None else f"polling {poll:g} s"
            print(f"| {observer} | {settle:g} | {r['total']:.3f} | {r['model']:.4f} | {r['beyond']:.3f} |")
        paths = make_photos(root / "bulk", args.files, size)
        base = baseline(paths, root / "baseline-out")
        print(f"\n## throughput: {args.files} PNGs of {args.size} present at start (settle 0.2 s)\n")
        print("| run | seconds | files/s | vs plain loop | daemon-process CPU ms/file |")
        print("|---|---|---|---|---|")
        print(f"| plain Pipeline.process_file loop | {base:.2f} | {args.files / base:.0f} | 1.00 | - |")
        for workers in (1, 2):
            seconds, cpu = throughput(root, root / "bulk", args.files, workers)
            print(
                f"| daemon, {workers} worker{'s' if workers > 1 else ''} | {seconds:.2f} |"
                f" {args.files / seconds:.0f} | {base / seconds:.2f} | {1000 * cpu / args.files:.2f} |"
            )


if __name__ == "__main__":
    main()
