"""Peak memory of a 24-MP photo upscaled x2 through `run_tiled` - must stay under 3 GiB.

The x2 output alone is 12000x8000x3 float32 = 1.07 GiB and the input 0.27 GiB, so the budget leaves
~1.6 GiB for everything else. run_tiled adds weighted tiles straight into the final output (its blending
weights are a partition of unity), so beyond input + output it holds only a few tiles and ONNX Runtime's
activations for one tile - memory grows with the tile, not with the photo.

Each run happens in a fresh subprocess that reports its own peak RSS (ru_maxrss), so runs don't mix.
The model is cheap on purpose (3 convs x 16 channels + pixel shuffle): this measures memory, not speed.

    .venv/bin/python benchmarks/memory_24mp.py [--tiles 0,256,1024] [--width 6000 --height 4000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_GIB = 3.0
GIB = 1024**3


def build_model(path: Path, scale: int = 2, width: int = 16, layers: int = 3) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, src, c_in = [], [], "input", 3
    for i in range(layers):
        c_out = 3 * scale * scale if i == layers - 1 else width
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [src, f"w{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1] * 4))
        src, c_in = f"c{i}", c_out
    nodes.append(helper.make_node("DepthToSpace", [src], ["output"], blocksize=scale, mode="CRD"))
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, "H", "W"]) for n in ("input", "output")
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "mem", [io[0]], [io[1]], initializer=inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(model: str, width: int, height: int, tile: int) -> None:
    """Runs in the subprocess: allocate the photo, upscale it, print one JSON line of measurements."""
    import numpy as np

    from photosr.engine import EngineOptions, ModelSession, estimate_tiles, run_tiled

    session = ModelSession(model, EngineOptions(device="cpu"))
    session.run(np.zeros((1, 3, 16, 16), np.float32))  # ORT loaded before the baseline
    baseline = _peak_rss_bytes()
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    start = time.perf_counter()
    out = run_tiled(session, image, scale=2, tile=tile, overlap=16)
    seconds = time.perf_counter() - start
    result = {
        "tile": tile,
        "tiles": estimate_tiles(height, width, scale=2, tile=tile, overlap=16),
        "baseline": baseline,
        "peak": _peak_rss_bytes(),
        "array_bytes": image.nbytes + out.nbytes,
        "out_shape": list(out.shape),
        "seconds": seconds,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--tiles", default="0", help="comma-separated tile sides to try (0 = automatic)")
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "W", "H", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, width, height, tile = args.child
        child(model, int(width), int(height), int(tile))
        return

    mp = args.width * args.height / 1e6
    print(f"{args.width}x{args.height} ({mp:.0f} MP) x2 -> {2 * args.width}x{2 * args.height}, float32 RGB")
    print(
        f"| {'tile':>6} | {'tiles':>5} | {'ORT loaded GiB':>14} | {'input+output GiB':>16} | {'peak RSS GiB':>12} | {'seconds':>7} | < {LIMIT_GIB:.0f} GiB |"
    )
    print(f"|{'-' * 7}:|{'-' * 6}:|{'-' * 15}:|{'-' * 17}:|{'-' * 13}:|{'-' * 8}:|{'-' * 9}|")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "mem.onnx")
        for tile in (int(t) for t in args.tiles.split(",")):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(model),
                str(args.width),
                str(args.height),
                str(tile),
            ]
            r = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            )
            ok = r["peak"] < LIMIT_GIB * GIB
            failed |= not ok
            label = f"{tile or 'auto'}"
            print(
                f"| {label:>6} | {r['tiles']:>5} | {r['baseline'] / GIB:14.2f} | {r['array_bytes'] / GIB:16.2f} "
                f"| {r['peak'] / GIB:12.2f} | {r['seconds']:7.1f} | {'yes' if ok else 'NO':<7} |"
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
