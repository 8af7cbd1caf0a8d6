"""Tiled vs untiled inference speed and accuracy on a model of realistic cost.

The model: 8 conv layers (3x3, 32 channels, ReLU) + pixel shuffle x2, random weights, built with
onnx.helper (needs the `dev` extra for onnx). The photo: random, ~4 MP by default. Prints, per
configuration, the median seconds over --repeats runs, the ratio to the untiled run measured in the same
process, and the largest difference from the untiled output in 1/255 steps.

    .venv/bin/python benchmarks/tiling.py [--side 2000] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from photosr.engine import EngineOptions, ModelSession, estimate_tiles, run_tiled, run_whole


def build_model(path: Path, layers: int = 8, width: int = 32, scale: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    nodes, inits, src, c_in = [], [], "input", 3
    for i in range(layers):
        c_out = 3 * scale * scale if i == layers - 1 else width
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in)) * 0.5).astype(np.float32)
        b = np.full(c_out, 0.01, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node("Conv", [src, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1] * 4)
        )
        src, c_in = f"c{i}", c_out
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [src], [f"r{i}"]))
            src = f"r{i}"
    nodes.append(helper.make_node("DepthToSpace", [src], ["d2s"], blocksize=scale, mode="CRD"))
    nodes.append(helper.make_node("Sigmoid", ["d2s"], ["output"]))  # keeps values mid-range, not clipped
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, "H", "W"]) for n in ("input", "output")
    ]
    graph = helper.make_graph(nodes, "bench", [io[0]], [io[1]], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=2000, help="photo side in pixels (2000 = 4 MP)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    args = parser.parse_args()
    args.load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())

    with tempfile.TemporaryDirectory() as tmp:
        session = ModelSession(
            build_model(Path(tmp) / "bench.onnx"), EngineOptions(device="cpu", threads=args.threads)
        )
        image = np.random.default_rng(1).random((args.side, args.side, 3), dtype=np.float32)
        run_whole(session, image, scale=2)  # load the model and size ORT's buffers outside the timings

        configs = [(t, 16, 1) for t in (128, 256, 384, 512, 768)] + [(512, 32, 1)]
        configs += [(128, 16, 4), (256, 16, 4)]
        runs = {"untiled (one call)": lambda: run_whole(session, image, scale=2)}
        for tile, overlap, batch in configs:
            runs[f"tile {tile} overlap {overlap} batch {batch}"] = lambda t=tile, o=overlap, b=batch: (
                run_tiled(session, image, scale=2, tile=t, overlap=o, batch=b)
            )
        seconds, outputs = measure_round_robin(runs, args.repeats)
        print_table(args, configs, seconds, outputs)


def measure_round_robin(runs: dict, repeats: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Median seconds per run. Runs take turns, so load from other processes spreads over all of them."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def print_table(args, configs, seconds: dict[str, float], outputs: dict[str, np.ndarray]) -> None:
    base_name = "untiled (one call)"
    base_s, base = seconds[base_name], outputs[base_name]
    print(
        f"photo {args.side}x{args.side} ({args.side**2 / 1e6:.1f} MP) x2, 8 conv x 32 ch, median of {args.repeats}"
    )
    print(f"load average before/after: {args.load_before} / {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| {'run':<28} | {'seconds':>8} | {'vs untiled':>10} | {'tiles':>5} | {'max diff /255':>13} |")
    print(f"|{'-' * 30}|{'-' * 9}:|{'-' * 11}:|{'-' * 6}:|{'-' * 14}:|")
    print(f"| {base_name:<28} | {base_s:8.2f} | {1.0:10.2f} | {1:5d} | {0.0:13.3f} |")
    for tile, overlap, batch in configs:
        name = f"tile {tile} overlap {overlap} batch {batch}"
        diff = float(np.abs(outputs[name] - base).max()) * 255
        tiles = estimate_tiles(args.side, args.side, scale=2, tile=tile, overlap=overlap)
        print(
            f"| {name:<28} | {seconds[name]:8.2f} | {seconds[name] / base_s:10.2f} | {tiles:5d} | {diff:13.3f} |"
        )


if __name__ == "__main__":
    main()
