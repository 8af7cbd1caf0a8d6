"""Export: ONNX convention, parity with PyTorch for every architecture, manifest the runtime accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from photosr.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from photosr.training.config import TrainConfig  # noqa: E402
from photosr.training.export import (  # noqa: E402
    check_parity,
    export_onnx,
    export_plugin,
    gflops_per_megapixel,
    to_toml,
)
from photosr.training.models import build_model  # noqa: E402

from photosr.errors import PluginError  # noqa: E402
from photosr.plugins import Plugin, load_manifest  # noqa: E402

TINY = {
    "plain": {"channels": 8, "convs": 2},
    "plain-unshuffle": {"channels": 8, "convs": 2, "unshuffle": 2},
    "resunet": {"channels": [8, 16], "blocks": 1},
    "effunet": {"depth": 2, "decoder": [8, 16], "full_res": 8, "pretrained": False},
}


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained nets are the identity (zero tails); parity must be checked on a net that does something."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("arch", sorted(TINY))
def test_onnx_convention_and_parity(arch: str, tmp_path: Path) -> None:
    scale = 1 if arch == "effunet" else 2
    model = _randomised(build_model(arch.split("-")[0], scale=scale, **TINY[arch]))
    path = export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert len(proto.graph.input) == 1 and len(proto.graph.output) == 1
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))  # dynamic N, H, W
    assert check_parity(model, path) < 1e-4


def test_parity_failure_is_a_plugin_error(tmp_path: Path) -> None:
    model = _randomised(build_model("plain", scale=2, **TINY["plain"]))
    path = export_onnx(model, tmp_path / "m.onnx")
    with torch.no_grad():
        model.tail.bias.add_(0.1)  # the PyTorch model drifts away from the exported file
    with pytest.raises(PluginError, match="parity"):
        check_parity(model, path)


def test_export_plugin_writes_a_folder_the_runtime_loads(tmp_path: Path) -> None:
    cfg = TrainConfig(
        task="upscale", scale=2, data=(str(tmp_path),), recipe="upscale", arch="plain", model=TINY["plain"]
    )
    model = _randomised(build_model("plain", scale=2, **TINY["plain"]))
    ckpt = save_checkpoint(tmp_path / "c.pt", cfg=cfg, arch="plain", model=model, step=7, seconds=1.5)
    manifest = export_plugin(ckpt, tmp_path / "plugin", name="tiny-x2")
    loaded = load_manifest(tmp_path / "plugin")
    assert loaded.name == "tiny-x2" and loaded.model.scale == 2 and loaded.task == "upscale"
    assert loaded.training["steps"] == 7 and loaded.training["crappifier"]["name"] == "upscale"
    assert manifest["metrics"]["parameters"] == sum(p.numel() for p in model.parameters())
    plugin = Plugin(tmp_path / "plugin")
    plugin.verify()  # sha256 matches
    out = plugin.infer(plugin.session(), np.full((10, 12, 3), 0.5, np.float32))
    assert out.shape == (20, 24, 3)
    again = load_checkpoint(tmp_path / "plugin")  # weights-only copy for --init-from
    assert again["step"] == 7 and "optimizer" not in again


def test_colorize_plugins_render_at_a_fixed_size(tmp_path: Path) -> None:
    from photosr.training.export import COLORIZE_RENDER_SIZE

    cfg = TrainConfig(task="colorize", data=(str(tmp_path),), arch="resunet", model=TINY["resunet"])
    model = build_model("resunet", scale=1, **TINY["resunet"])
    ckpt = save_checkpoint(tmp_path / "c.pt", cfg=cfg, arch="resunet", model=model, step=1)
    export_plugin(ckpt, tmp_path / "plugin")
    assert load_manifest(tmp_path / "plugin").model.render_size == COLORIZE_RENDER_SIZE > 0


def test_gflops_counts_convolutions() -> None:
    model = build_model("plain", scale=2, channels=8, convs=0)
    # head 3->8 and tail 8->12, 3x3 each, at every input pixel
    expected = 2 * (3 * 8 * 9 + 8 * 12 * 9) / 1e3
    assert gflops_per_megapixel(model) == pytest.approx(expected)


def test_toml_writer_roundtrips() -> None:
    from photosr.training.config import tomllib

    data = {"name": "x", "n": 3, "f": 0.5, "ok": True, "model": {"file": "m.onnx", "list": [1, 2]},
            "metrics": {"val": {"a b": {"psnr": 30.1}}, "quote": 'say "hi"\n'}}  # fmt: skip
    assert tomllib.loads(to_toml(data)) == data


def test_export_command_from_a_run_folder(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from photosr.cli import main

    cfg = TrainConfig(
        task="restore", data=(str(tmp_path),), recipe="restore", arch="resunet", model=TINY["resunet"]
    )
    model = _randomised(build_model("resunet", scale=1, **TINY["resunet"]))
    save_checkpoint(tmp_path / "run" / "last.pt", cfg=cfg, arch="resunet", model=model, step=3)
    result = CliRunner().invoke(
        main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "p"), "--time"]
    )
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and "parity" in result.output
    manifest = load_manifest(tmp_path / "p")
    assert manifest.task == "restore" and manifest.model.size_multiple == 2
    assert manifest.metrics["seconds_per_input_mp"] > 0
    assert "s per 1-MP input" in (tmp_path / "p" / "README.md").read_text()
    missing = CliRunner().invoke(main, ["export", str(tmp_path), "--out", str(tmp_path / "q")])
    assert missing.exit_code == 1 and "no checkpoint here" in missing.output


def _tiny_x2_checkpoint(tmp_path: Path, data: Path) -> Path:
    cfg = TrainConfig(
        task="upscale", scale=2, data=(str(data),), recipe="upscale", arch="plain", model=TINY["plain"]
    )
    model = _randomised(build_model("plain", scale=2, **TINY["plain"]))
    return save_checkpoint(tmp_path / "c.pt", cfg=cfg, arch="plain", model=model, step=5)


@pytest.fixture
def smooth_photos(tmp_path: Path) -> Path:
    """Smooth gradients with some texture: calibration ranges like a photo's, unlike pure noise."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:96, 0:112] / 100.0
    for i in range(4):
        rgb = np.stack([xx * (i + 1) % 1, yy, 0.5 + 0.3 * np.sin(6 * xx + i)], -1) * 200
        rgb += rng.normal(0, 6, rgb.shape)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_int8_copy_quantizes_the_convs_and_is_what_runs_on_cpu(
    tmp_path: Path, smooth_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photosr.training.export import INT8_FILE, publish_plugin, sha256_of

    import photosr.plugins
    from photosr.engine import EngineOptions

    ckpt = _tiny_x2_checkpoint(tmp_path, smooth_photos)
    manifest, table = publish_plugin(ckpt, tmp_path / "p", val=smooth_photos, int8=True, name="tiny-x2")
    folder = tmp_path / "p"
    assert manifest["model"]["int8_file"] == INT8_FILE
    assert manifest["model"]["int8_sha256"] == sha256_of(folder / INT8_FILE)
    graph = onnx.load(str(folder / INT8_FILE)).graph
    weights = {i.name for i in graph.initializer}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    tail = next(n for name, n in convs.items() if name.startswith("/tail/"))
    body = [n for name, n in convs.items() if name.startswith("/body/")]
    assert tail.input[1] in weights  # the output conv keeps its float weights
    assert body and all(n.input[1] not in weights for n in body)  # body weights come through DequantizeLinear
    assert 30 < manifest["metrics"]["int8_vs_fp32_psnr"] < 90  # close, and not the same model
    assert "| tiny-x2 |" in table and "| tiny-x2 (fp32) |" in table
    assert "int8 copy `model.int8.onnx`" in (folder / "README.md").read_text()
    plugin = Plugin(folder)
    # "auto" on a CPU with int8 dot products (VNNI, AMX, ARM64) runs the int8 copy; without, the fp32 model.
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: True)
    assert plugin.model_path_for(EngineOptions(device="cpu")) == folder / INT8_FILE
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: False)
    assert plugin.model_path_for(EngineOptions(device="cpu")) == folder / "model.onnx"
    from PIL import Image

    x = np.asarray(Image.open(smooth_photos / "3.png"), np.float32)[:24, :20] / 255  # in calibrated range
    outputs = [
        plugin.infer(plugin.session(EngineOptions(device="cpu", precision=p)), x) for p in ("int8", "fp32")
    ]
    assert outputs[0].shape == outputs[1].shape == (48, 40, 3)
    assert 0 < np.abs(outputs[0] - outputs[1]).max() < 0.1


def test_quantize_command_adds_an_int8_model_to_a_plugin_folder(tmp_path: Path, smooth_photos: Path) -> None:
    from click.testing import CliRunner

    from photosr.cli import main

    export_plugin(_tiny_x2_checkpoint(tmp_path, tmp_path / "gone"), tmp_path / "p")
    before = load_manifest(tmp_path / "p")
    assert before.model.int8_file == ""
    missing = CliRunner().invoke(main, ["quantize", str(tmp_path / "p")])  # training data not on this machine
    assert missing.exit_code == 1 and "give --data" in missing.output
    result = CliRunner().invoke(main, ["quantize", str(tmp_path / "p"), "--data", str(smooth_photos)])
    assert result.exit_code == 0, result.output
    assert "model.int8.onnx" in result.output and "dB" in result.output
    after = load_manifest(tmp_path / "p")
    assert after.model.int8_file == "model.int8.onnx" and after.model.sha256 == before.model.sha256
    assert after.training == before.training and after.metrics["int8_vs_fp32_psnr"] > 30
    Plugin(tmp_path / "p").verify(tmp_path / "p" / "model.int8.onnx")


def test_a_quality_aware_unet_exports_a_plugin_that_takes_the_quality(tmp_path: Path) -> None:
    """Four input channels in the ONNX file, `input = "rgb+quality"` in the manifest, and the runtime
    feeding the plane gives what PyTorch gives for the same quality."""
    from photosr.training.evaluate import plugin_predictor, torch_predictor

    hp = {**TINY["resunet"], "unshuffle": 2, "quality_input": True}
    cfg = TrainConfig(task="restore", data=(str(tmp_path),), arch="resunet", model=hp)
    model = _randomised(build_model("resunet", scale=1, **hp))
    ckpt = save_checkpoint(tmp_path / "c.pt", cfg=cfg, arch="resunet", model=model, step=1)
    manifest = export_plugin(ckpt, tmp_path / "plugin")
    dims = onnx.load(str(tmp_path / "plugin" / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 4 and manifest["model"]["input"] == "rgb+quality"
    assert Plugin(tmp_path / "plugin").takes_quality
    lr = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    runtime, _ = plugin_predictor(tmp_path / "plugin", threads=1)
    reference = torch_predictor(model)
    for quality in (None, 25, 90):
        np.testing.assert_allclose(runtime(lr, quality), reference(lr, quality), atol=1e-4)
    assert np.abs(reference(lr, 25) - reference(lr, 90)).max() > 1e-3  # the plane changes the output
