"""Tiny ONNX models built with `onnx.helper`, and a plugin-folder writer, for tests across photosr.

Every model follows the photosr convention: one input "input", one output "output", NCHW float32,
dynamic batch/height/width, opset 17. They are small enough to build and run in milliseconds.

    from onnx_models import conv_model, write_plugin   # pytest puts tests/ on sys.path (no __init__.py)
    folder = write_plugin(tmp_path / "up2", task="upscale", scale=2)

Models:
- `identity_model(channels)`: output == input (a 1x restore/colorize/dewatermark stand-in).
- `nearest_upscale_model(scale, channels)`: pixel replication, exact and easy to predict.
- `conv_model(scale, channels, layers)`: nearest upscale plus a small residual from `layers` 3x3 convs,
  so each output pixel depends on a (2*layers+1)^2 input window - the model that makes tiling matter.
- `size_multiple_model(multiple, channels)`: SpaceToDepth -> 1x1 conv -> DepthToSpace; fails unless
  H and W are multiples of `multiple`, and its output depends on where the block grid falls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; old enough for every onnxruntime >= 1.17


def _value_info(name: str, channels: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, "H", "W"])


def _finish(nodes: list, inits: list, channels_in: int, channels_out: int, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [_value_info("input", channels_in)],
        [_value_info("output", channels_out)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _nearest_resize(src: str, dst: str, scale: int, prefix: str) -> tuple[list, list]:
    """A Resize node replicating pixels `scale` times (exact for integer scales)."""
    scales = _const(f"{prefix}_scales", np.array([1, 1, scale, scale], dtype=np.float32))
    node = helper.make_node(
        "Resize",
        [src, "", scales.name],
        [dst],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return [node], [scales]


def identity_model(channels: int = 3) -> onnx.ModelProto:
    """Output equals input."""
    node = helper.make_node("Identity", ["input"], ["output"])
    return _finish([node], [], channels, channels, "identity")


def float16_identity_model(channels: int = 3) -> onnx.ModelProto:
    """Identity with float16 input and output (half-precision exports exist in the wild)."""
    node = helper.make_node("Identity", ["input"], ["output"])
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT16, ["N", channels, "H", "W"])
        for n in ("input", "output")
    ]
    graph = helper.make_graph([node], "identity_fp16", [io[0]], [io[1]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def nearest_upscale_model(scale: int = 2, channels: int = 3) -> onnx.ModelProto:
    """Each input pixel becomes a scale x scale block (scale 1 is an identity)."""
    if scale == 1:
        return identity_model(channels)
    nodes, inits = _nearest_resize("input", "output", scale, "up")
    return _finish(nodes, inits, channels, channels, f"nearest_x{scale}")


def quality_offset_model() -> onnx.ModelProto:
    """A quality-aware stand-in: RGB plus the fourth (JPEG quality) plane, added to every channel."""
    inits = [
        _const(name, np.array(values, dtype=np.int64))
        for name, values in (("rgb_start", [0]), ("rgb_end", [3]), ("q_end", [4]), ("axis", [1]))
    ]
    nodes = [
        helper.make_node("Slice", ["input", "rgb_start", "rgb_end", "axis"], ["rgb"]),
        helper.make_node("Slice", ["input", "rgb_end", "q_end", "axis"], ["plane"]),
        helper.make_node("Add", ["rgb", "plane"], ["output"]),
    ]
    return _finish(nodes, inits, 4, 3, "quality_offset")


def _conv(src: str, dst: str, c_in: int, c_out: int, kernel: int, rng: np.random.Generator, gain: float):
    weight = _const(
        f"{dst}_w", (rng.standard_normal((c_out, c_in, kernel, kernel)) * gain).astype(np.float32)
    )
    bias = _const(f"{dst}_b", (rng.standard_normal(c_out) * 0.01).astype(np.float32))
    pad = kernel // 2
    node = helper.make_node(
        "Conv", [src, weight.name, bias.name], [dst], kernel_shape=[kernel, kernel], pads=[pad] * 4
    )
    return node, [weight, bias]


def conv_model(
    scale: int = 1, channels: int = 3, layers: int = 2, width: int = 8, seed: int = 0
) -> onnx.ModelProto:
    """nearest_upscale(x) + 0.1 * DepthToSpace(convs(x)): a residual with receptive-field radius `layers`.

    Zero padding inside the convs means border pixels see zeros - the same in a whole run and in a tile
    that touches the photo border, which is why tiled output can equal untiled output exactly.
    """
    rng = np.random.default_rng(seed)
    nodes, inits, src, c_in = [], [], "input", channels
    for i in range(layers):
        last = i == layers - 1
        c_out = channels * scale * scale if last else width
        node, params = _conv(src, f"conv{i}", c_in, c_out, 3, rng, gain=0.3 / np.sqrt(c_in))
        nodes.append(node)
        inits += params
        src, c_in = f"conv{i}", c_out
        if not last:
            nodes.append(helper.make_node("Relu", [src], [f"relu{i}"]))
            src = f"relu{i}"
    if scale > 1:
        nodes.append(helper.make_node("DepthToSpace", [src], ["shuffled"], blocksize=scale, mode="CRD"))
        src = "shuffled"
    gain = _const("residual_gain", np.array(0.1, dtype=np.float32))
    nodes.append(helper.make_node("Mul", [src, gain.name], ["residual"]))
    inits.append(gain)
    if scale > 1:
        up_nodes, up_inits = _nearest_resize("input", "base", scale, "base")
        nodes += up_nodes
        inits += up_inits
        base = "base"
    else:
        base = "input"
    nodes.append(helper.make_node("Add", [base, "residual"], ["output"]))
    return _finish(nodes, inits, channels, channels, f"conv_x{scale}_l{layers}")


def size_multiple_model(multiple: int = 4, channels: int = 3, seed: int = 0) -> onnx.ModelProto:
    """SpaceToDepth(multiple) -> 1x1 conv mixing each block -> DepthToSpace: 1x, needs H, W % multiple == 0.

    The mix is near-identity, so outputs stay close to inputs but differ if the block grid shifts.
    """
    rng = np.random.default_rng(seed)
    c = channels * multiple * multiple
    mix = np.eye(c, dtype=np.float32) * 0.9 + rng.uniform(0, 0.1 / c, (c, c)).astype(np.float32)
    weight = _const("mix_w", mix.reshape(c, c, 1, 1))
    nodes = [
        helper.make_node("SpaceToDepth", ["input"], ["blocks"], blocksize=multiple),
        helper.make_node("Conv", ["blocks", weight.name], ["mixed"], kernel_shape=[1, 1]),
        helper.make_node("DepthToSpace", ["mixed"], ["output"], blocksize=multiple, mode="DCR"),
    ]
    return _finish(nodes, [weight], channels, channels, f"multiple_{multiple}")


def red_mask_model() -> onnx.ModelProto:
    """A dewatermark stand-in with a mask head: RGB = each pixel's left neighbour (zero at the left edge,
    so not flip-equivariant), mask = the input's red channel (flip-equivariant)."""
    shift = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        shift[c, c, 1, 0] = 1.0
    red = np.zeros((1, 3, 1, 1), np.float32)
    red[0, 0] = 1.0
    nodes = [
        helper.make_node("Conv", ["input", "shift"], ["rgb"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["input", "red"], ["mask"]),
        helper.make_node("Concat", ["rgb", "mask"], ["output"], axis=1),
    ]
    return _finish(nodes, [_const("shift", shift), _const("red", red)], 3, 4, "red_mask")


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write `model` to `path` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(top: dict, model: dict, training: dict | None = None, metrics: dict | None = None) -> str:
    """A photosr.toml from plain dicts of scalars (enough for tests; no TOML writer needed)."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for table, values in (("model", model), ("training", training), ("metrics", metrics)):
        if values is not None:
            lines += ["", f"[{table}]"] + [f"{key} = {_toml_value(v)}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


def default_model_for(task: str, scale: int) -> onnx.ModelProto:
    """The stand-in model a test plugin gets: nearest upscale for `upscale`, identity otherwise."""
    return nearest_upscale_model(scale) if task == "upscale" else identity_model()


def write_plugin(
    folder: str | Path,
    *,
    task: str = "upscale",
    scale: int = 2,
    name: str | None = None,
    version: str = "1.0.0",
    model: onnx.ModelProto | None = None,
    size_multiple: int = 1,
    tile: int = 0,
    tile_overlap: int = 8,
    render_size: int = 0,
    sha256: str | None = None,
    metrics: dict | None = None,
    extra_model_fields: dict | None = None,
) -> Path:
    """Write a complete plugin folder (photosr.toml + model.onnx + README.md) and return the folder.

    `name` defaults to the folder name; `sha256` defaults to the real hash of the model file (pass a
    wrong one to test verification); `extra_model_fields` adds keys to [model] (to test unknown keys).
    """
    folder = Path(folder)
    model_path = save_model(
        model if model is not None else default_model_for(task, scale), folder / "model.onnx"
    )
    name = name or folder.name
    top = {
        "name": name,
        "version": version,
        "task": task,
        "description": f"test {task} x{scale} plugin",
        "license": "Apache-2.0",
    }
    model_table = {
        "file": "model.onnx",
        "sha256": sha256 or sha256_of(model_path),
        "scale": scale,
        "input": "rgb",
        "output": "rgb",
        "size_multiple": size_multiple,
        "tile": tile,
        "tile_overlap": tile_overlap,
        "render_size": render_size,
        **(extra_model_fields or {}),
    }
    training = {"command": "tests.onnx_models.write_plugin", "steps": 0}
    text = manifest_text(top, model_table, training, metrics if metrics is not None else {"psnr": 30.5})
    (folder / "photosr.toml").write_text(text, encoding="utf-8")
    (folder / "README.md").write_text(f"# {name}\n\nA test plugin made in code ({task}, x{scale}).\n")
    return folder


__all__ = [
    "OPSET",
    "conv_model",
    "default_model_for",
    "float16_identity_model",
    "identity_model",
    "manifest_text",
    "nearest_upscale_model",
    "quality_offset_model",
    "save_model",
    "sha256_of",
    "size_multiple_model",
    "write_plugin",
]
