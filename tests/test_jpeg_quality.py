"""JPEG quality read from a file's quantization tables, and quality-aware models fed with it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from onnx_models import nearest_upscale_model, quality_offset_model, write_plugin
from PIL import Image

from photosr.engine import EngineOptions
from photosr.io import load_photo
from photosr.jpeg import QUALITY_INPUT, jpeg_quality, quality_from_tables, with_quality_plane
from photosr.pipeline import Pipeline, ProcessOptions
from photosr.plugins import Plugin, PluginRegistry


def _jpeg(rgb: np.ndarray, **save) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", **save)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("quality", [1, 15, 30, 49, 50, 51, 75, 92, 100])
def test_the_quality_pillow_saved_at_is_read_back(quality: int):
    rgb = np.random.default_rng(quality).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    for subsampling in ("4:2:0", "4:4:4"):
        assert jpeg_quality(_jpeg(rgb, quality=quality, subsampling=subsampling)) == quality
    assert jpeg_quality(_jpeg(rgb[..., 0], quality=quality)) == quality  # grey: one table


def test_tables_of_other_encoders_get_the_nearest_standard_quality():
    tables = _jpeg(np.zeros((8, 8, 3), np.uint8), quality=60).quantization
    scaled = {i: [min(255, round(v * 1.05)) for v in table] for i, table in tables.items()}
    assert quality_from_tables(scaled) in (57, 58, 59)  # a little coarser than 60
    assert quality_from_tables({}) is None and quality_from_tables({0: [1] * 10}) is None


def test_only_jpeg_files_have_a_quality(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=35)
    assert load_photo(tmp_path / "a.png").info.jpeg_quality is None
    photo = load_photo(tmp_path / "a.jpg")
    assert photo.info.jpeg_quality == 35
    # The quality describes the decoded pixels: any new pixels drop it, the rest of the record stays.
    changed = photo.with_pixels(photo.rgb * 0.5)
    assert changed.info.jpeg_quality is None and changed.info.format == "JPEG"


def test_the_plane_holds_a_hundredth_of_the_quality_or_zero():
    rgb = np.full((2, 3, 3), 0.5, np.float32)
    assert with_quality_plane(rgb, 30).shape == (2, 3, 4)
    assert np.all(with_quality_plane(rgb, 30)[..., 3] == np.float32(0.3))
    assert np.all(with_quality_plane(rgb, None)[..., 3] == 0.0)
    assert np.array_equal(with_quality_plane(rgb, 90)[..., :3], rgb)


def _quality_plugin(folder: Path) -> Path:
    return write_plugin(
        folder,
        task="restore",
        scale=1,
        model=quality_offset_model(),
        extra_model_fields={"input": QUALITY_INPUT},
    )


def _run(tmp_path: Path, src: Path, tasks: tuple[str, ...], plugins: tuple[str, ...]) -> np.ndarray:
    options = ProcessOptions(
        tasks=tasks, plugins=plugins, format="png", scale=2 if "upscale" in tasks else None
    )
    out = tmp_path / f"{src.stem}-{len(tasks)}.png"
    assert Pipeline(options, registry=PluginRegistry()).process_file(src, out).status == "ok"
    return np.asarray(Image.open(out), dtype=np.int16)


def test_a_quality_model_gets_the_quality_of_each_file(tmp_path: Path):
    plugin = _quality_plugin(tmp_path / "qoff")
    assert Plugin(plugin).takes_quality
    dark = np.random.default_rng(1).integers(20, 60, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(dark).save(tmp_path / "q40.jpg", quality=40)
    Image.fromarray(dark).save(tmp_path / "plain.png")
    decoded = np.asarray(Image.open(tmp_path / "q40.jpg"), dtype=np.int16)
    # JPEG at quality 40: every level goes up by 0.40 * 255 = 102; a PNG's quality is unknown (plane 0).
    assert (
        np.abs(_run(tmp_path, tmp_path / "q40.jpg", ("restore",), (str(plugin),)) - decoded - 102).max() <= 1
    )
    assert np.array_equal(_run(tmp_path, tmp_path / "plain.png", ("restore",), (str(plugin),)), dark)
    # After an upscale the pixels are no longer the JPEG's: restore is told nothing.
    near = write_plugin(tmp_path / "near2", task="upscale", scale=2, model=nearest_upscale_model(2))
    chained = _run(tmp_path, tmp_path / "q40.jpg", ("upscale", "restore"), (str(near), str(plugin)))
    assert np.array_equal(chained, decoded.repeat(2, axis=0).repeat(2, axis=1))


def test_plugin_infer_takes_the_quality_too(tmp_path: Path):
    plugin = Plugin(_quality_plugin(tmp_path / "qoff"))
    session = plugin.session(EngineOptions(device="cpu", threads=1))
    rgb = np.full((20, 20, 3), 0.25, np.float32)
    np.testing.assert_allclose(plugin.infer(session, rgb, quality=50), 0.75, atol=1e-6)
    np.testing.assert_allclose(plugin.infer(session, rgb), 0.25, atol=1e-6)


def test_the_api_tells_the_model_the_quality_of_an_opened_jpeg(tmp_path: Path):
    import photosr

    plugin = _quality_plugin(tmp_path / "qoff")
    dark = np.random.default_rng(3).integers(0, 20, (16, 24, 3), dtype=np.uint8) + np.uint8([10, 40, 70])
    jpeg = _jpeg(dark, quality=20)  # coloured, so it stays RGB
    decoded = np.asarray(jpeg.convert("RGB"), dtype=np.int16)
    out = photosr.process(jpeg, tasks=["restore"], plugins=[str(plugin)], device="cpu", threads=1)
    assert np.abs(np.asarray(out, dtype=np.int16) - decoded - 51).max() <= 1  # 0.20 * 255
    # A converted copy is no longer the JPEG file's image: nothing to tell.
    out = photosr.process(
        jpeg.convert("RGB"), tasks=["restore"], plugins=[str(plugin)], device="cpu", threads=1
    )
    assert np.array_equal(np.asarray(out, dtype=np.int16), decoded)
