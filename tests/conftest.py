"""Shared fixtures: tiny plugin folders, a private plugin registry, tiny photos on disk.

Plugins are built once per session from tests/onnx_models.py (plus two inline one-node models), so
every test can run real ONNX sessions in milliseconds. `use_registry` makes the CLI and the module-level
API see only these plugins, never bundled or user-installed ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import OPSET, conv_model, identity_model, nearest_upscale_model, write_plugin
from PIL import Image


def _affine_model(gain: list[float], bias: list[float], name: str) -> onnx.ModelProto:
    """output = input * gain + bias per channel: a model whose effect on colour is easy to predict."""
    g = numpy_helper.from_array(np.array(gain, dtype=np.float32).reshape(1, 3, 1, 1), "gain")
    b = numpy_helper.from_array(np.array(bias, dtype=np.float32).reshape(1, 3, 1, 1), "bias")
    nodes = [
        helper.make_node("Mul", ["input", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["output"]),
    ]
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, "H", "W"]) for n in ("input", "output")
    ]
    graph = helper.make_graph(nodes, name, io[:1], io[1:], initializer=[g, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="session")
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of test plugins, one per task (two scales for upscale)."""
    root = tmp_path_factory.mktemp("plugins")
    write_plugin(root / "restore-conv", task="restore", scale=1, model=conv_model(1, layers=1))
    write_plugin(root / "restore-id", task="restore", scale=1, model=identity_model(), version="0.1.0")
    write_plugin(root / "upscale-x2", task="upscale", scale=2, model=nearest_upscale_model(2))
    write_plugin(root / "upscale-x4", task="upscale", scale=4, model=nearest_upscale_model(4), tile=32)
    sepia = _affine_model([1.1, 1.0, 0.75], [0.02, 0.0, -0.02], "sepia")
    write_plugin(root / "colorize-sepia", task="colorize", scale=1, model=sepia, render_size=24)
    # Halves contrast around mid grey: changes every pixel that is not close to 0.5 (mask tests).
    flatten = _affine_model([0.5, 0.5, 0.5], [0.25, 0.25, 0.25], "flatten")
    write_plugin(root / "dewatermark-flat", task="dewatermark", scale=1, model=flatten)
    return root


@pytest.fixture(scope="session")
def registry(plugin_root: Path):
    from photosr.plugins import PluginRegistry

    reg = PluginRegistry()
    for folder in sorted(plugin_root.iterdir()):
        reg.discover(folder, "test")
    assert not reg.broken, reg.broken
    return reg


@pytest.fixture
def use_registry(monkeypatch: pytest.MonkeyPatch, registry):
    """Make default_registry() (used by the CLI and the module API) return the test registry."""
    import photosr.pipeline
    import photosr.plugins

    monkeypatch.setattr(photosr.plugins, "default_registry", lambda: registry)
    photosr.pipeline._cached_pipeline.cache_clear()
    yield registry
    photosr.pipeline._cached_pipeline.cache_clear()


def make_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 HxWx3 image (gradients plus noise) - compresses like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), (xx + yy) / max(w + h - 2, 1)], axis=2)
    noisy = base * 200 + 30 + rng.normal(0, 6, (h, w, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_image(path: Path, h: int = 24, w: int = 32, *, mode: str = "RGB", seed: int = 0, **save) -> Path:
    """Write a tiny photo (format from the extension) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(make_rgb(h, w, seed))
    if mode == "RGBA":
        alpha = np.full((h, w), 255, dtype=np.uint8)
        alpha[: h // 2, : w // 2] = 0
        image.putalpha(Image.fromarray(alpha))
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save)
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `root` (to prove inputs are untouched)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
