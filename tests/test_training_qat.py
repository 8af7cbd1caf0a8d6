"""Quantization-aware training: the fake-quantized net computes what the int8 ONNX model means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from photosr.training.export import export_onnx, quantize_int8  # noqa: E402
from photosr.training.models import build_model  # noqa: E402
from photosr.training.qat import fake_quantize_convs, set_rounding  # noqa: E402
from photosr.training.trainer import EMA  # noqa: E402


def _net(block: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # the fresh net's init
    model = build_model("plain", scale=2, channels=8, convs=2, act="leaky", block=block)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a fresh net is its bicubic skip (zero tail, zero edge branches)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def _literal_session(path: Path) -> ort.InferenceSession:
    """The QDQ graph run op by op (no fusing into integer kernels): its meaning, the same on any CPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("block", ["conv", "ecb"])
def test_fake_quantized_net_matches_the_int8_model(block: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # 8-bit photos with white in the calibration set: the input's uint8 grid is then k / 255, so the
    # bicubic skip, which reads the int8 model's rounded input, sees the photo unchanged, as in use
    calibration = rng.integers(0, 256, (1, 3, 24, 20)).astype(np.float32) / 255
    calibration[..., 0, 0] = 1.0
    photo = rng.integers(0, 256, (1, 3, 16, 18)).astype(np.float32) / 255
    model = _net(block).eval()
    fp32 = export_onnx(model.deployed(), tmp_path / "m.onnx")
    int8 = _literal_session(quantize_int8(fp32, tmp_path / "m.int8.onnx", [calibration]))
    int8_out = int8.run(None, {int8.get_inputs()[0].name: photo})[0]
    with torch.no_grad():
        fp32_out = model(torch.from_numpy(photo)).numpy()
        names = fake_quantize_convs(model)
        set_rounding(model, False)  # ranges as the calibration sees them: on the fp32 net
        model.train()(torch.from_numpy(calibration))  # the first batch sets each range
        set_rounding(model, True)
        qat_out = model.eval()(torch.from_numpy(photo)).numpy()
    assert names == ["body.0", "body.2", "body.4"]  # head and body; the tail stays fp32 as in the int8 model
    rounding = np.abs(fp32_out - int8_out)
    off = np.abs(qat_out - int8_out)
    assert rounding.mean() > 1e-3  # int8 rounding shows at this size
    # The same rounding: most outputs agree to float precision; the rest differ by a step where a sum
    # summed in another order fell on the other side of a rounding boundary.
    # (seeds 0-7 here: 60-100 % of the outputs within 1e-5, mean off 7-700,000x below the rounding's)
    assert (off < 1e-5).mean() > 0.5
    assert off.mean() < rounding.mean() / 5


def test_ranges_follow_batches_in_training_only_and_the_ema_copies_them() -> None:
    model = _net("conv")
    keys = set(model.state_dict())
    fake_quantize_convs(model)
    assert set(model.state_dict()) == keys  # checkpoints, --init-from and export see the same weights
    ema = EMA(model, decay=0.9)
    head = model.body[0]
    with torch.no_grad():
        model.train()(torch.full((1, 3, 8, 8), 0.5))
        assert head.qat_range[0].tolist() == [0.5, 0.5]  # the input's (min, max)
        model(torch.full((1, 3, 8, 8), 1.5))
        assert head.qat_range[0].tolist() == pytest.approx([0.51, 0.51])  # 1 % of each batch
        model.eval()(torch.full((1, 3, 8, 8), 9.0))
        assert head.qat_range[0].tolist() == pytest.approx([0.51, 0.51])
    ema.update(model, step=1000)
    assert torch.equal(ema.model.body[0].qat_range, head.qat_range)


def test_rounding_passes_gradients_straight_through() -> None:
    model = _net("ecb")
    fake_quantize_convs(model)
    x = torch.rand(2, 3, 12, 12)
    model.train()(x).abs().mean().backward()
    # every weight but the edge branches' 1x1 biases, which the merged kernel does not use (its filters sum to 0)
    grads = [p.grad for name, p in model.named_parameters() if not name.endswith(".edge.bias")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.body[0].expand_weight.grad.abs().sum() > 0  # through the merged kernel to the branches


def test_a_qat_run_trains_and_saves_the_plain_weights(tmp_path: Path) -> None:
    from photosr.training.checkpoint import load_checkpoint
    from photosr.training.config import TrainConfig
    from photosr.training.trainer import train
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    cfg = TrainConfig(
        task="upscale", scale=2, data=(str(photos),), recipe="bicubic", arch="plain",
        model={"channels": 8, "convs": 2, "act": "leaky"}, steps=3, patch=8, batch_size=2,
        workers=0, threads=1, qat=True,
    )  # fmt: skip
    result = train(cfg, tmp_path / "run")
    payload = load_checkpoint(result.checkpoint)
    assert payload["config"]["qat"] is True
    fresh = build_model("plain", scale=2, channels=8, convs=2, act="leaky")
    fresh.load_state_dict(payload["ema"])  # strict: the same keys as a net trained without QAT
