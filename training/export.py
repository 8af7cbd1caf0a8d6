"""Checkpoint -> plugin folder: ONNX model, parity check, manifest with provenance, model card, sheet.

The ONNX convention is the one the runtime (and chaiNNer) expects: opset >= 17, one input and one
output, NCHW float32 RGB 0..1, dynamic batch/height/width, no final activation.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from photosr.errors import PluginError, UsageError
from photosr.jpeg import QUALITY_INPUT, with_quality_plane

from .checkpoint import checkpoint_config, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import describe_crappifier, find_images, resolve_crappifier
from .models import count_parameters

OPSET = 17
PARITY_TOLERANCE = 1e-3  # max abs difference on 0..1 outputs; fp32 kernels differ by ~1e-6 in practice
MANIFEST = "photosr.toml"
# Longest side a colorize model sees unless the user gives --render-size: DeOldify's default render
# factor 35 is 560 px. Colour needs the whole scene at the scale of the training crops, and at this size
# the model's cost on any photo is a fixed ~0.2 MP.
COLORIZE_RENDER_SIZE = 512
INT8_FILE = "model.int8.onnx"
# Nodes kept in fp32 in the int8 model: the output conv (its residual is the result; quantizing it put
# steps of ~1/400 in every output pixel) and the plain upscalers' fixed bicubic skip.
INT8_KEEP_FP32 = ("/tail/", "/bicubic/")
INT8_CALIBRATION_PHOTOS = 16
INT8_CALIBRATION_SIDE = 128  # input pixels per calibration crop


def export_onnx(model: nn.Module, path: Path, *, opset: int = OPSET) -> Path:
    """Trace `model` to ONNX with dynamic batch/height/width (TorchScript exporter: no onnxscript needed)."""
    multiple = getattr(model, "size_multiple", 1)
    channels = getattr(model, "in_channels", 3)
    side = 4 * multiple if multiple > 1 else 32
    sample = torch.rand(1, channels, side, side)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    # The legacy exporter warns that it is legacy, and the U-Nets' pad-if-needed branch is traced at a
    # size needing no pad: the manifest's size_multiple makes the engine pad instead.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model.eval().float(),
            (sample,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": dynamic},
        )
    return path


def check_parity(
    model: nn.Module,
    onnx_path: Path,
    *,
    sizes: Sequence[tuple[int, int, int]] = ((1, 32, 32), (2, 48, 80), (1, 96, 64)),
) -> float:
    """Max abs difference between PyTorch and ONNX Runtime over inputs of several (batch, h, w) sizes.

    Sizes are rounded up to the model's size multiple. Raises PluginError above PARITY_TOLERANCE.
    """
    import onnxruntime as ort

    multiple = getattr(model, "size_multiple", 1)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch, h, w in sizes:
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        x = torch.rand(batch, getattr(model, "in_channels", 3), h, w, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        if got.shape != expected.shape:
            raise PluginError(f"ONNX output {got.shape} differs from PyTorch {expected.shape}", onnx_path)
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > PARITY_TOLERANCE:
        raise PluginError(
            f"ONNX/PyTorch parity failed: max abs diff {worst:.2e} > {PARITY_TOLERANCE}", onnx_path
        )
    return worst


def gflops_per_megapixel(model: nn.Module, *, side: int = 64) -> float:
    """Convolution GFLOPs (2 x multiply-adds) per input megapixel, counted with forward hooks."""
    macs = 0

    def count(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        macs += output.numel() * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    multiple = getattr(model, "size_multiple", 1)
    side = -(-side // multiple) * multiple
    try:
        with torch.no_grad():
            model(torch.rand(1, getattr(model, "in_channels", 3), side, side))
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * macs / (side * side) * 1e6 / 1e9


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for manifests: top-level scalars, then one [table] per top-level dict."""
    plain = [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and v is not None
    ]
    lines = plain
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def provenance(payload: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """The manifest's [training] table: command, data, crappification and its hash, steps, time."""
    crappifier = describe_crappifier(resolve_crappifier(cfg.recipe, task=cfg.task, scale=cfg.scale))
    try:
        files = [str(p) for p in find_images(cfg.data)]
    except UsageError:
        files = []  # data moved since training: keep what the checkpoint says
    return {
        "command": payload.get("command", ""),
        "data": list(cfg.data),
        "data_files": len(files),
        "data_list_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest() if files else "",
        "validation": cfg.val or "",
        "recipe": cfg.recipe or "(task preset)",
        "crappifier": crappifier,
        "arch": payload["arch"],
        "hparams": payload["hparams"],
        "steps": int(payload.get("step", 0)),
        "seconds": round(float(payload.get("seconds", 0.0)), 1),
        "batch_size": cfg.batch_size,
        "patch": cfg.patch,
        "lr": cfg.lr,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    """A plugin folder's manifest as plain data to edit and write back (checked by the runtime first)."""
    from photosr.plugins import load_manifest

    path = load_manifest(folder).path
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    path.write_text(to_toml(manifest), encoding="utf-8")
    from photosr.plugins import load_manifest

    load_manifest(path)  # the runtime's own parser must accept what we wrote
    return path


def export_plugin(
    checkpoint: str | Path | dict[str, Any],
    out: Path,
    *,
    name: str | None = None,
    version: str = "0.1.0",
    description: str = "",
    license: str = "Apache-2.0",
) -> dict[str, Any]:
    """Write a plugin folder from a checkpoint: model.onnx (parity-checked), photosr.toml, checkpoint.pt.

    Returns the manifest as a dict (with `metrics.onnx_parity_max_abs_diff`, `metrics.parameters`,
    `metrics.gflops_per_input_mp`); `evaluate.evaluate_plugin` and `write_model_card` add to it.
    """
    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = checkpoint_config(payload)
    model = model_from_checkpoint(payload)
    # What runs: a net trained with re-parameterisable blocks exports their merged convs. The parity
    # check compares ONNX with the net as trained, so it checks the merge too.
    deployed = model.deployed() if hasattr(model, "deployed") else model
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(deployed, out / "model.onnx")
    parity = check_parity(model, onnx_path)
    # Weights only (EMA) + config: small, and enough for `--init-from PLUGIN` to continue from here.
    save_checkpoint(
        out / "checkpoint.pt", cfg=cfg, arch=payload["arch"], model=model, step=payload.get("step", 0)
    )
    manifest = {
        "name": name or cfg.plugin_name,
        "version": version,
        "task": cfg.task,
        "description": description or f"{cfg.plugin_name}: {payload['arch']} net trained by photosr train",
        "license": license,
        "model": {
            "file": "model.onnx",
            "sha256": sha256_of(onnx_path),
            "scale": cfg.scale,
            "input": QUALITY_INPUT if getattr(model, "quality_input", False) else "rgb",
            "output": "rgb",
            "size_multiple": int(getattr(model, "size_multiple", 1)),
            "tile": 0,
            "tile_overlap": 16,
            "render_size": COLORIZE_RENDER_SIZE if cfg.task == "colorize" else 0,
        },
        "training": provenance(payload, cfg),
        "metrics": {
            "parameters": count_parameters(deployed),
            "gflops_per_input_mp": round(gflops_per_megapixel(deployed), 1),
            "onnx_parity_max_abs_diff": float(f"{parity:.3g}"),
            "onnx_opset": OPSET,
        },
    }
    write_manifest(out, manifest)
    return manifest


def quantize_int8(fp32: Path, dst: Path, calibration: Sequence[np.ndarray]) -> Path:
    """An int8 copy of an exported model for ONNX Runtime's CPU provider (QDQ format, static).

    Only the convs are quantized: weights int8 per output channel, inputs and outputs uint8 with the
    min/max ranges seen on `calibration` (a list of NCHW float32 model inputs); ONNX Runtime then runs
    each conv as an integer conv, 2.5-3x faster than fp32 on these CPUs. Adds stay fp32
    (training/qat.py trains against exactly this rounding); quantizing every op was as fast and agreed
    with the fp32 model 5 dB less well (upscale-x2 0.2.0: 51.9 vs 57.1 dB; dewatermark: 41.2 vs 51.7).
    `INT8_KEEP_FP32` nodes (the tail and the bicubic skip) stay fp32.
    """
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(fp32)).graph
    input_name = graph.input[0].name
    keep = [n.name for n in graph.node if n.name.startswith(INT8_KEEP_FP32)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._inputs, None)
            return None if x is None else {input_name: x}

    logging.disable(logging.WARNING)  # the quantizer's advice to run its pre-processing script
    try:
        quantize_static(
            str(fp32), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"], nodes_to_exclude=keep,
        )  # fmt: skip
    finally:
        logging.disable(logging.NOTSET)
    return dst


def calibration_inputs(
    folders: Sequence[str | Path],
    crappifier: Any,
    *,
    scale: int,
    multiple: int = 1,
    takes_quality: bool = False,
) -> list[np.ndarray]:
    """Model inputs for int8 calibration: a centre crop of `INT8_CALIBRATION_PHOTOS` photos spread over
    `folders` (training photos, so the validation photos stay unseen), damaged as in training, with
    the damage's JPEG quality plane for a model that `takes_quality`."""
    from .data import damaged_pair, load_rgb_uint8

    paths = find_images(list(folders))
    if not paths:
        raise UsageError(f"no photos to calibrate the int8 model on in {', '.join(map(str, folders))}")
    step = max(1, len(paths) // INT8_CALIBRATION_PHOTOS)
    unit, side = scale * multiple, INT8_CALIBRATION_SIDE * scale  # target pixels
    inputs = []
    for i, path in enumerate(paths[::step][:INT8_CALIBRATION_PHOTOS]):
        rgb = load_rgb_uint8(path)
        h, w = (min(side, n) // unit * unit for n in rgb.shape[:2])
        top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        lr, _, quality = damaged_pair(rgb[top : top + h, left : left + w], crappifier, scale=scale, seed=i)
        x = lr.astype(np.float32) / 255.0
        if takes_quality:
            x = with_quality_plane(x, quality)
        inputs.append(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
    return inputs


def add_int8_model(out: Path, manifest: dict[str, Any], calibration: Sequence[np.ndarray]) -> float:
    """Write `INT8_FILE` next to the fp32 model, name it in the manifest, and return how closely it
    agrees with the fp32 model (PSNR of int8 vs fp32 output over the calibration inputs, 0..1 scale)."""
    import onnxruntime as ort

    path = quantize_int8(out / manifest["model"]["file"], out / INT8_FILE, calibration)
    manifest["model"]["int8_file"] = INT8_FILE
    manifest["model"]["int8_sha256"] = sha256_of(path)
    sessions = [
        ort.InferenceSession(str(out / f), providers=["CPUExecutionProvider"])
        for f in (manifest["model"]["file"], INT8_FILE)
    ]
    errors = []
    for x in calibration:
        fp32, int8 = (np.clip(s.run(None, {s.get_inputs()[0].name: x})[0], 0, 1) for s in sessions)
        errors.append(float(np.mean((fp32 - int8) ** 2)))
    agreement = round(float(10 * np.log10(1 / max(np.mean(errors), 1e-12))), 2)
    manifest.setdefault("metrics", {})["int8_vs_fp32_psnr"] = agreement
    return agreement


def plugin_sheet(plugin_dir: Path, pairs: Sequence[tuple[np.ndarray, ...]], *, scale: int, crop: int = 192):
    """Before/after sheet of an exported plugin: input (bicubic-enlarged), the plugin's output, target."""
    from .evaluate import bicubic_upscale, plugin_predictor
    from .reports import sample_sheet

    predict, _ = plugin_predictor(plugin_dir)
    rows = []
    for lr, hr, *quality in pairs:
        side = min(crop // scale, *lr.shape[:2])
        top, left = (lr.shape[0] - side) // 2, (lr.shape[1] - side) // 2
        small = lr[top : top + side, left : left + side]
        target = hr[top * scale : (top + side) * scale, left * scale : (left + side) * scale]
        rows.append((bicubic_upscale(small, scale), predict(small, *quality), target))
    labels = ["input (bicubic)" if scale > 1 else "input", "photosr", "original"]
    return sample_sheet(rows, labels, cell=crop)


def time_plugin(plugin_dir: Path, *, side: int = 1000, threads: int = 0, repeats: int = 2) -> float:
    """Median seconds for the runtime engine to run the plugin on one side x side RGB photo (tiled as
    `photosr run` tiles it). A speed figure for the card; it depends on what else the machine runs."""
    import statistics

    from photosr.engine import EngineOptions
    from photosr.plugins import Plugin

    plugin = Plugin(plugin_dir)
    session = plugin.session(EngineOptions(device="cpu", threads=threads))
    rgb = np.random.default_rng(0).random((side, side, 3), dtype=np.float32)
    plugin.infer(session, rgb[:64, :64])  # session creation and kernel selection are not the figure
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        plugin.infer(session, rgb)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_model_card(folder: Path, manifest: dict[str, Any], *, table: str = "") -> Path:
    """README.md: what the plugin does, how it was made (exact command, data, budget) and how it scores."""
    t, m = manifest["training"], manifest["metrics"]
    lines = [
        f"# {manifest['name']} {manifest['version']}",
        "",
        manifest["description"],
        "",
        f"Use: `photosr run --plugin {folder} INPUT... -o OUT` (task `{manifest['task']}`,"
        f" scale {manifest['model']['scale']}).",
        "",
        "## Model",
        "",
        f"- architecture `{t['arch']}` {json.dumps(t['hparams'])}",
        f"- {m['parameters']:,} parameters, {m['gflops_per_input_mp']} GFLOPs per input megapixel",
        f"- ONNX opset {m['onnx_opset']}, NCHW float32 RGB 0..1, dynamic batch/height/width;"
        f" max abs difference to PyTorch {m['onnx_parity_max_abs_diff']:.2g}",
        *(
            [
                f"- int8 copy `{manifest['model']['int8_file']}` (convs quantized; what `photosr run` uses"
                f" on CPU, `--precision fp32` for the other): agrees with the fp32 model to"
                f" {m['int8_vs_fp32_psnr']} dB PSNR"
            ]
            if manifest["model"].get("int8_file")
            else []
        ),
        *(
            [
                f"- {m['seconds_per_input_mp']} s per 1-MP input photo through the runtime engine on this"
                f" project's 2-core CI machine ({m.get('timing_threads', 0) or 'all'} threads)"
            ]
            if "seconds_per_input_mp" in m
            else []
        ),
        "",
        "## Training",
        "",
        f"- command: `{t['command']}`" if t.get("command") else "- command: (not recorded)",
        f"- data: {', '.join(t['data'])} ({t['data_files']} files, list sha256 `{t['data_list_sha256'][:16]}`)",
        f"- degradation: `{t['recipe']}` - {json.dumps(t['crappifier'])[:400]}",
        f"- {t['steps']:,} steps, {t['seconds'] / 60:.1f} min of training, batch {t['batch_size']},"
        f" patch {t['patch']}, peak lr {t['lr']}, precision {t['precision']}, seed {t['seed']}",
        "",
    ]
    if table:
        lines += ["## Validation", "", table, ""]
    if (folder / "sheet.png").is_file():
        lines += ["## Before / after", "", "![before and after](sheet.png)", ""]
    lines += [
        "## Licence and data",
        "",
        f"Model weights: {manifest['license']}. The training photos carry their own terms (see the data"
        " folder's README); BSDS images are for non-commercial research.",
        "",
    ]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def publish_plugin(
    checkpoint: str | Path | dict[str, Any],
    out: Path,
    *,
    val: str | Path | None = None,
    recipe: str | None = None,
    limit: int = 0,
    threads: int = 0,
    timing: bool = False,
    int8: bool = False,
    **manifest_fields: Any,
) -> tuple[dict[str, Any], str]:
    """Export, then score the plugin (through the runtime engine) on `val`, and write sheet and card.

    `int8` adds a quantized copy of the model, calibrated on the run's training photos (else `val`);
    the table then scores both (the int8 row is what `photosr run` uses on CPU).
    Returns the manifest dict and the validation table as Markdown ("" without `val`).
    """
    from .evaluate import evaluate_plugin, format_table, full_pairs

    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    manifest = export_plugin(payload, out, **manifest_fields)
    cfg = checkpoint_config(payload)
    scale = manifest["model"]["scale"]
    if int8:
        folders = [d for d in cfg.data if Path(d).exists()] or ([val] if val else [])
        if not folders:
            raise UsageError("an int8 model needs photos to calibrate on: the run's data or --val")
        crappifier = resolve_crappifier(cfg.recipe, task=cfg.task, scale=scale)
        add_int8_model(
            out,
            manifest,
            calibration_inputs(
                folders,
                crappifier,
                scale=scale,
                multiple=manifest["model"]["size_multiple"],
                takes_quality=manifest["model"]["input"] == QUALITY_INPUT,
            ),
        )
        write_manifest(out, manifest)
    table_md = ""
    if val:
        recipe = recipe or cfg.val_recipe or cfg.recipe
        precisions = ("int8", "fp32") if int8 else ("fp32",)
        table = evaluate_plugin(out, val, recipe=recipe, limit=limit, threads=threads, precisions=precisions)
        border = f"border {scale} px cropped" if scale > 1 else "no border crop"
        damage = f"damage `{recipe}`" if recipe else "the task's damage"
        table_md = format_table(
            table, title=f"{Path(val).name} ({limit or 'all'} photos), {damage}, Y channel, {border}:\n"
        )
        manifest["metrics"]["validation"] = {
            "data": str(val), "images": limit or "all", "recipe": recipe or "(task preset)", **table
        }  # fmt: skip
        pairs = full_pairs(val, resolve_crappifier(recipe, task=cfg.task, scale=scale), scale=scale, limit=3)
        plugin_sheet(out, pairs, scale=scale).save(out / "sheet.png")
        write_manifest(out, manifest)
    if timing:
        manifest["metrics"]["seconds_per_input_mp"] = round(time_plugin(out, threads=threads), 2)
        manifest["metrics"]["timing_threads"] = threads
        write_manifest(out, manifest)
    write_model_card(out, manifest, table=table_md)
    return manifest, table_md


def copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


__all__ = [
    "COLORIZE_RENDER_SIZE",
    "INT8_FILE",
    "add_int8_model",
    "calibration_inputs",
    "quantize_int8",
    "read_manifest",
    "MANIFEST",
    "OPSET",
    "PARITY_TOLERANCE",
    "check_parity",
    "copy_checkpoint",
    "export_onnx",
    "export_plugin",
    "plugin_sheet",
    "publish_plugin",
    "write_model_card",
    "gflops_per_megapixel",
    "provenance",
    "sha256_of",
    "time_plugin",
    "to_toml",
    "write_manifest",
]
