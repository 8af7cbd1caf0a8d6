"""Engine: providers, lazy sessions, tiled inference matching whole-image inference."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import (
    conv_model,
    float16_identity_model,
    identity_model,
    nearest_upscale_model,
    save_model,
    size_multiple_model,
)

from photosr import engine
from photosr.engine import (
    EngineOptions,
    ModelSession,
    available_providers,
    axis_weights,
    estimate_tiles,
    resolve_tiling,
    run_tiled,
    run_whole,
    tile_starts,
)
from photosr.errors import EngineError, UsageError

TOL = 1 / 255
CPU_ONLY = EngineOptions(device="cpu", threads=1)


def _image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


def _direct(session: ModelSession, image: np.ndarray) -> np.ndarray:
    """The model on the whole image in one call, no engine tiling code involved."""
    out = session.run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    return np.clip(out, 0, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    built = {f"conv{s}": conv_model(s, layers=2) for s in (1, 2, 4)}
    built |= {"conv1_grey": conv_model(1, channels=1), "mult4": size_multiple_model(4)}
    built |= {"identity": identity_model(), "near2": nearest_upscale_model(2)}
    return {name: save_model(model, folder / f"{name}.onnx") for name, model in built.items()}


class FakeSession:
    """A numpy stand-in: nearest upscale times `gain` plus `offset`; counts calls and batch sizes."""

    def __init__(self, scale: int = 1, gain: float = 1.0, offset: float = 0.0, out_scale: int | None = None):
        self.scale, self.gain, self.offset = scale, gain, offset
        self.out_scale = scale if out_scale is None else out_scale
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.shape[0])
        s = self.out_scale
        return batch.repeat(s, axis=2).repeat(s, axis=3) * self.gain + self.offset


# --- tiled equals untiled -------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize(("tile", "overlap"), [(16, 8), (21, 8), (24, 12), (40, 10)])
def test_tiled_matches_untiled_conv(models, scale, tile, overlap):
    session = ModelSession(models[f"conv{scale}"], CPU_ONLY)
    image = _image(37, 53, seed=scale)
    expected = _direct(session, image)
    tiled = run_tiled(session, image, scale=scale, tile=tile, overlap=overlap)
    assert tiled.shape == (37 * scale, 53 * scale, 3)
    assert tiled.dtype == np.float32
    assert np.abs(tiled - expected).max() <= TOL


def test_hard_cut_tiles_do_show_seams(models):
    """The receptive field matters: without overlap, tile edges differ - so the test above can fail."""
    session = ModelSession(models["conv1"], CPU_ONLY)
    image = _image(37, 53)
    naive = run_tiled(session, image, scale=1, tile=16, overlap=0)
    assert np.abs(naive - _direct(session, image)).max() > TOL


def test_one_channel_tiled_matches_untiled(models):
    session = ModelSession(models["conv1_grey"], CPU_ONLY)
    image = _image(29, 41, c=1)
    tiled = run_tiled(session, image, scale=1, tile=16, overlap=8)
    assert tiled.shape == (29, 41, 1)
    assert np.abs(tiled - _direct(session, image)).max() <= TOL


def test_batched_tiles_equal_single_tiles(models):
    session = ModelSession(models["conv2"], CPU_ONLY)
    image = _image(33, 47)
    single = run_tiled(session, image, scale=2, tile=16, overlap=8, batch=1)
    batched = run_tiled(session, image, scale=2, tile=16, overlap=8, batch=4)
    np.testing.assert_allclose(batched, single, atol=1e-6)


def test_batch_size_is_respected():
    fake = FakeSession()
    run_tiled(fake, _image(40, 40), scale=1, tile=16, overlap=4, batch=3)
    assert max(fake.batches) == 3
    assert sum(fake.batches) == estimate_tiles(40, 40, tile=16, overlap=4)


# --- size multiple ---------------------------------------------------------------------------------


def test_size_multiple_pads_and_crops(models):
    session = ModelSession(models["mult4"], CPU_ONLY)
    image = _image(30, 29)
    padded = np.pad(image, ((0, 2), (0, 3), (0, 0)), mode="reflect")
    expected = _direct(session, padded)[:30, :29]
    whole = run_whole(session, image, scale=1, multiple=4)
    assert whole.shape == (30, 29, 3)
    assert np.abs(whole - expected).max() <= 1e-6
    # tile 13 is rounded up to 16, and every tile starts on the model's 4-pixel block grid
    tiled = run_tiled(session, image, scale=1, tile=13, overlap=5, multiple=4)
    assert np.abs(tiled - expected).max() <= TOL


def test_size_multiple_model_fails_without_padding(models):
    session = ModelSession(models["mult4"], CPU_ONLY)
    with pytest.raises(EngineError, match="mult4.onnx"):
        run_whole(session, _image(30, 29), scale=1, multiple=1)


def test_one_pixel_image_is_padded_to_the_multiple(models):
    session = ModelSession(models["mult4"], CPU_ONLY)
    image = _image(1, 6)
    out = run_tiled(session, image, scale=1, tile=16, overlap=4, multiple=4)
    assert out.shape == (1, 6, 3)


# --- small images, clipping, errors ----------------------------------------------------------------


def test_image_smaller_than_tile_runs_in_one_call():
    fake = FakeSession(scale=2)
    image = _image(20, 30)
    out = run_tiled(fake, image, scale=2, tile=64, overlap=16)
    assert fake.batches == [1]
    np.testing.assert_array_equal(out, image.repeat(2, 0).repeat(2, 1))


def test_output_is_clipped_to_unit_range():
    image = _image(40, 40)
    out = run_tiled(FakeSession(gain=3.0, offset=-1.0), image, scale=1, tile=16, overlap=8)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, np.clip(image * 3 - 1, 0, 1), atol=1e-6)


def test_identity_model_is_reproduced_exactly_through_tiles(models):
    session = ModelSession(models["identity"], CPU_ONLY)
    image = _image(50, 35)
    np.testing.assert_allclose(run_tiled(session, image, scale=1, tile=16, overlap=8), image, atol=1e-6)


def test_nearest_x2_through_tiles(models):
    session = ModelSession(models["near2"], CPU_ONLY)
    image = _image(23, 31)
    out = run_tiled(session, image, scale=2, tile=10, overlap=4)
    np.testing.assert_allclose(out, image.repeat(2, 0).repeat(2, 1), atol=1e-6)


def test_wrong_output_scale_is_an_engine_error(models):
    session = ModelSession(models["near2"], CPU_ONLY)
    with pytest.raises(EngineError, match=r"near2\.onnx.*expected x4"):
        run_tiled(session, _image(8, 8), scale=4, tile=16, overlap=4)


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.zeros((8, 8), np.float32), {}),
        (np.zeros((8, 8, 3), np.float64), {}),
        (np.zeros((0, 8, 3), np.float32), {}),
        (np.zeros((8, 8, 3), np.float32), {"tile": 8, "overlap": 8}),
        (np.zeros((8, 8, 3), np.float32), {"overlap": -1}),
    ],
)
def test_bad_arguments_are_usage_errors(image, kwargs):
    with pytest.raises(UsageError):
        run_tiled(FakeSession(), image, scale=1, **{"tile": 16, **kwargs})


# --- the tile grid ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "scale"), [(100, 32, 8, 1), (77, 20, 6, 2), (41, 16, 1, 4)]
)
def test_axis_weights_are_a_partition_of_unity(length, tile, overlap, scale):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    total = np.zeros(length * scale)
    for start, weight in zip(starts, axis_weights(starts, tile, overlap, scale), strict=True):
        assert weight.min() >= 0
        total[start * scale : (start + tile) * scale] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_interior_edges_are_discarded():
    starts = tile_starts(100, 32, 16)
    weights = axis_weights(starts, 32, 16, 1)
    assert weights[0][0] == 1.0  # photo border: kept
    assert np.all(weights[0][-4:] == 0) and np.all(weights[1][:4] == 0)  # overlap/4 dropped


@pytest.mark.parametrize(
    ("tile", "overlap", "multiple"), [(512, 32, 1), (64, 16, 1), (48, 10, 4), (40, 0, 8)]
)
def test_balanced_tile_needs_no_more_tiles_and_never_grows(tile, overlap, multiple):
    for length in range(multiple, 700, multiple * 3 + 1):
        length = engine._round_up(length, multiple)
        side = engine.balanced_tile(length, tile, overlap, multiple)
        assert side <= min(tile, length) and side % multiple == 0 or side == length
        if tile < length:
            wanted = len(tile_starts(length, tile, overlap, multiple))
            assert len(tile_starts(length, side, overlap, multiple)) <= wanted


def test_balanced_tile_saves_work_on_an_awkward_length():
    assert engine.balanced_tile(2000, 512, 32) == 426  # 5 tiles either way
    assert len(tile_starts(2000, 426, 32)) == 5


def test_tile_starts_align_to_the_multiple():
    starts = tile_starts(64, 16, 5, multiple=4)
    assert all(s % 4 == 0 for s in starts)


def test_auto_tile_size_bounds():
    assert engine.auto_tile_size(1) == 512
    assert engine.auto_tile_size(2) == 512
    assert engine.auto_tile_size(4) == 256
    assert engine.auto_tile_size(4, multiple=12) % 12 == 0


def test_estimate_tiles_counts_what_runs():
    fake = FakeSession()
    run_tiled(fake, _image(70, 45), scale=1, tile=20, overlap=6)
    assert len(fake.batches) == estimate_tiles(70, 45, tile=20, overlap=6)


def test_resolve_tiling_prefers_options_over_plugin():
    assert resolve_tiling(EngineOptions(), plugin_tile=128, plugin_overlap=24) == (128, 24)
    assert resolve_tiling(EngineOptions(tile=64, tile_overlap=4), plugin_tile=128, plugin_overlap=24) == (
        64,
        4,
    )
    assert resolve_tiling(EngineOptions()) == (0, engine.DEFAULT_OVERLAP)


# --- providers ----------------------------------------------------------------------------------------


def test_cuda_falls_back_to_cpu_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(engine, "_ort_available", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="photosr.engine"):
        assert available_providers("cuda") == ["CPUExecutionProvider"]
    assert any("CUDA" in r.message for r in caplog.records)


def test_auto_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(engine, "_ort_available", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert available_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert available_providers("cuda")[0] == "CUDAExecutionProvider"
    assert available_providers("cpu") == ["CPUExecutionProvider"]


def test_auto_without_cuda_is_quiet(monkeypatch, caplog):
    monkeypatch.setattr(engine, "_ort_available", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="photosr.engine"):
        assert available_providers("auto") == ["CPUExecutionProvider"]
    assert not caplog.records


@pytest.mark.parametrize("kwargs", [{"device": "tpu"}, {"threads": -1}, {"tile": -5}, {"tile_overlap": -1}])
def test_engine_options_are_validated(kwargs):
    with pytest.raises(UsageError):
        EngineOptions(**kwargs)


def test_unknown_device_is_a_usage_error():
    with pytest.raises(UsageError, match="tpu"):
        available_providers("tpu")


# --- sessions ------------------------------------------------------------------------------------------


@pytest.fixture
def count_sessions(monkeypatch):
    made = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        made.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    return made


def test_session_is_lazy_and_made_once(models, count_sessions):
    checks = []
    session = ModelSession(models["identity"], CPU_ONLY, before_create=lambda: checks.append(1))
    assert not session.created and count_sessions == [] and checks == []
    assert session.providers == ["CPUExecutionProvider"]
    for seed in range(3):
        image = _image(9, 9, seed=seed)
        np.testing.assert_array_equal(run_whole(session, image, scale=1), image)
    assert session.created and len(count_sessions) == 1 and checks == [1]


def test_session_made_once_across_threads(models, count_sessions):
    session = ModelSession(models["identity"], CPU_ONLY)
    barrier = threading.Barrier(4)

    def go(seed: int) -> float:
        barrier.wait()
        return float(session.run(_image(4, 4, seed=seed).transpose(2, 0, 1)[None]).sum())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(go, range(4)))
    assert len(count_sessions) == 1


def test_failed_check_makes_no_session(models, count_sessions):
    def refuse() -> None:
        raise EngineError("hash mismatch", models["identity"])

    session = ModelSession(models["identity"], CPU_ONLY, before_create=refuse)
    with pytest.raises(EngineError, match="hash mismatch"):
        session.run(np.zeros((1, 3, 4, 4), np.float32))
    assert count_sessions == [] and not session.created


def test_missing_model_names_the_path(tmp_path):
    session = ModelSession(tmp_path / "absent.onnx", CPU_ONLY)
    with pytest.raises(EngineError, match="absent.onnx: model file not found"):
        session.run(np.zeros((1, 3, 4, 4), np.float32))


def test_corrupt_model_names_the_path(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(EngineError, match="broken.onnx: cannot load model"):
        ModelSession(bad, CPU_ONLY).session()


def test_inference_error_names_the_path(models):
    session = ModelSession(models["conv1"], CPU_ONLY)
    with pytest.raises(EngineError, match=r"conv1\.onnx: inference failed"):
        session.run(np.zeros((1, 5, 8, 8), np.float32))  # 5 channels into a 3-channel model


def test_float16_model_gets_half_input_and_gives_float32(tmp_path):
    session = ModelSession(save_model(float16_identity_model(), tmp_path / "half.onnx"), CPU_ONLY)
    image = _image(12, 10)
    out = run_tiled(session, image, scale=1, tile=8, overlap=2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-3)  # float16 keeps ~3 decimal digits


def test_run_needs_nchw(models):
    with pytest.raises(EngineError, match="NCHW"):
        ModelSession(models["identity"], CPU_ONLY).run(np.zeros((3, 4, 4), np.float32))


# --- out-of-memory retry ----------------------------------------------------------------------------------


class OomAboveSession(FakeSession):
    """Fails like ONNX Runtime does when a tile side exceeds `limit`."""

    def __init__(self, limit: int, message: str = "Failed to allocate memory for requested buffer"):
        super().__init__()
        self.limit, self.message, self.sides = limit, message, []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.sides.append(batch.shape[2])
        if max(batch.shape[2:]) > self.limit:
            raise EngineError(self.message, "model.onnx")
        return super().run(batch)


def test_out_of_memory_halves_the_tile(caplog):
    fake = OomAboveSession(limit=100)
    image = _image(300, 300)
    with caplog.at_level(logging.WARNING, logger="photosr.engine"):
        out = run_tiled(fake, image, scale=1, tile=256, overlap=8)
    np.testing.assert_allclose(out, image, atol=1e-6)
    messages = [r.message for r in caplog.records]
    assert "with tile 256" in messages[0] and "retrying with tile 128" in messages[0]
    assert "retrying with tile 64" in messages[1] and len(messages) == 2
    assert fake.sides[0] > 100 and fake.sides[-1] <= 64


def test_out_of_memory_gives_up_at_the_minimum_tile():
    with pytest.raises(EngineError, match="allocate"):
        run_tiled(OomAboveSession(limit=10), _image(300, 300), scale=1, tile=256, overlap=8)


def test_other_errors_are_not_retried():
    fake = OomAboveSession(limit=10, message="Invalid rank for input")
    with pytest.raises(EngineError, match="Invalid rank"):
        run_tiled(fake, _image(300, 300), scale=1, tile=256, overlap=8)
    assert len(fake.sides) == 1  # one call, no retry


def test_memory_grows_with_the_tile_not_the_photo():
    """Peak allocation is the output plus a few tiles: no weight map, no second full-size buffer."""
    import tracemalloc

    image = _image(600, 600)
    out_bytes = 1200 * 1200 * 3 * 4
    tracemalloc.start()
    try:
        run_tiled(FakeSession(scale=2), image, scale=2, tile=64, overlap=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tile_bytes = (64 * 2) ** 2 * 3 * 4
    assert peak < out_bytes + 12 * tile_bytes


def test_cuda_dropped_by_onnxruntime_is_logged(models, monkeypatch, caplog):
    """ORT silently falls back when CUDA libraries are missing; we say so."""
    monkeypatch.setattr(engine, "_ort_available", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    real = ort.InferenceSession
    monkeypatch.setattr(
        ort,
        "InferenceSession",
        lambda path, **kw: real(path, sess_options=kw["sess_options"], providers=[engine.CPU]),
    )
    session = ModelSession(models["identity"], EngineOptions(device="cuda"))
    with caplog.at_level(logging.WARNING, logger="photosr.engine"):
        session.session()
    assert session.providers == ["CPUExecutionProvider"]
    assert any("CUDA could not be started" in r.message for r in caplog.records)
