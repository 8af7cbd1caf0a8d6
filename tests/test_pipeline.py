"""The one pipeline: options, plugin resolution, sessions, task chains, files, the module API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_rgb, write_image
from onnx_models import write_plugin
from PIL import Image

import photosr
from photosr.colour import luminance
from photosr.errors import PluginError, PluginNotFoundError, UsageError
from photosr.image import Photo, SourceInfo
from photosr.pipeline import FileResult, Pipeline, ProcessOptions, mask_path, process, process_file


def _photo(h: int = 12, w: int = 16, *, grey: bool = False, alpha: bool = False) -> Photo:
    rgb = make_rgb(h, w).astype(np.float32) / 255
    if grey:
        rgb = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    a = np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w) if alpha else None
    return Photo(rgb, a, SourceInfo(grey=grey, mode="L" if grey else "RGB"))


# --- options ---------------------------------------------------------------------------------------------


def test_options_normalise_and_stay_hashable() -> None:
    o = ProcessOptions(tasks=["restore", "upscale"], plugins="upscale=upscale-x2", format="JPG")
    assert o.tasks == ("restore", "upscale") and o.plugins == ("upscale=upscale-x2",)
    assert o.format == "jpeg"
    assert hash(o) == hash(
        ProcessOptions(tasks=("restore", "upscale"), plugins=("upscale=upscale-x2",), format="jpeg")
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"tasks": ("sharpen",)}, "unknown task 'sharpen'"),
        ({"format": "gif"}, "format must be one of"),
        ({"tasks": ("upscale",), "scale": 0}, "scale must be"),
        ({"tasks": ("restore",), "scale": 2}, "upscale is not among the tasks"),
        ({"outscale": -1.0}, "outscale must be > 0"),
        ({"max_size": 0}, "max size"),
        ({"quality": 101}, "quality"),
        ({"strength": 1.5}, "strength"),
        ({"render_size": -1}, "render size"),
        ({"device": "tpu"}, "device"),
        ({"tile": -8}, "tile must be"),
        ({"suffix": "a/b"}, "path separator"),
        ({"max_pixels": -1}, "max pixels must be >= 0"),
        ({"strength": "high"}, "bad option type"),
    ],
)
def test_bad_option_values_are_usage_errors(bad: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ProcessOptions(**bad)


def test_unknown_keyword_names_it() -> None:
    with pytest.raises(UsageError, match="unknown option.*sharpness"):
        ProcessOptions.from_kwargs(sharpness=2)


# --- plugin resolution -----------------------------------------------------------------------------------


def _names(pipeline: Pipeline) -> list[str | None]:
    return [None if s.plugin is None else s.plugin.name for s in pipeline.steps]


def test_default_task_is_restore_with_the_registry_choice(registry) -> None:
    assert _names(Pipeline(ProcessOptions(), registry)) == ["restore-conv"]  # highest version wins


def test_scale_picks_the_plugin_with_that_scale(registry) -> None:
    assert _names(Pipeline(ProcessOptions(tasks=("upscale",), scale=4), registry)) == ["upscale-x4"]
    assert _names(Pipeline(ProcessOptions(tasks=("upscale",), scale=2), registry)) == ["upscale-x2"]


def test_missing_scale_is_a_usage_error_listing_what_is_installed(registry) -> None:
    with pytest.raises(UsageError, match=r"no plugin for task 'upscale' at scale 3; installed: .*upscale-x4"):
        Pipeline(ProcessOptions(tasks=("upscale",), scale=3), registry)


def test_plugins_match_model_tasks_in_order_or_by_task_name(registry, plugin_root: Path) -> None:
    o = ProcessOptions(tasks=("normalize", "restore", "upscale"), plugins=("restore-id", "upscale-x4"))
    assert _names(Pipeline(o, registry)) == [None, "restore-id", "upscale-x4"]
    o = ProcessOptions(tasks=("restore", "upscale"), plugins=("upscale=upscale-x2",))
    assert _names(Pipeline(o, registry)) == ["restore-conv", "upscale-x2"]
    # A folder path works as well as a name.
    o = ProcessOptions(tasks=("upscale",), plugins=(str(plugin_root / "upscale-x4"),))
    assert _names(Pipeline(o, registry)) == ["upscale-x4"]


def test_tasks_follow_the_plugins_when_none_are_given(registry) -> None:
    o = ProcessOptions(tasks=(), plugins=("restore-id", "upscale-x2"))
    assert [s.task.name for s in Pipeline(o, registry).steps] == ["restore", "upscale"]


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"tasks": ("upscale",), "plugins": ("restore-id",)}, UsageError, "is a restore plugin, not upscale"),
        ({"tasks": ("upscale",), "scale": 2, "plugins": ("upscale-x4",)}, UsageError, "upscales x4, not x2"),
        ({"tasks": ("restore",), "plugins": ("restore-id", "upscale-x2")}, UsageError, "2 plugin"),
        ({"tasks": ("restore",), "plugins": ("upscale=upscale-x2",)}, UsageError, "not in the task list"),
        ({"tasks": ("restore",), "plugins": ("nope",)}, PluginNotFoundError, "no plugin named 'nope'"),
    ],
)
def test_plugin_mismatches_are_refused_up_front(registry, options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Pipeline(ProcessOptions(**options), registry)


def test_corrupt_model_fails_the_pipeline_not_each_photo(tmp_path: Path) -> None:
    from photosr.plugins import PluginRegistry

    folder = write_plugin(tmp_path / "bad-restore", task="restore", scale=1, sha256="0" * 64)
    with pytest.raises(PluginError, match="sha256 mismatch"):
        Pipeline(ProcessOptions(), PluginRegistry([photosr.plugins.Plugin(folder)]))


def test_one_session_per_plugin_for_the_whole_batch(registry) -> None:
    o = ProcessOptions(tasks=("restore", "restore"), plugins=("restore-id", "restore-id"))
    pipeline = Pipeline(o, registry)
    assert pipeline.steps[0].runner.session is pipeline.steps[1].runner.session
    session = pipeline.steps[0].runner.session
    assert not session.created  # lazy: nothing loaded until a photo arrives
    pipeline.process(_photo())
    pipeline.process(_photo())
    assert session.created and pipeline.steps[0].runner.session is session


def test_normalize_only_needs_no_registry() -> None:
    class Exploding:
        def __iter__(self):
            raise AssertionError("registry consulted")

    pipeline = Pipeline(ProcessOptions(tasks=("normalize",), max_size=8), Exploding())
    assert pipeline.process(_photo()).size == (8, 6)


# --- processing in memory --------------------------------------------------------------------------------


def test_upscale_x2_by_model(registry) -> None:
    photo = _photo(alpha=True)
    out = Pipeline(ProcessOptions(tasks=("upscale",), scale=2), registry).process(photo)
    assert out.size == (32, 24) and out.alpha.shape == (24, 32)
    visible = photo.alpha > 0  # colour under fully transparent pixels is filled from neighbours
    np.testing.assert_allclose(out.rgb[::2, ::2][visible], photo.rgb[visible], atol=1e-6)  # nearest model


def test_chain_restore_then_upscale(registry) -> None:
    o = ProcessOptions(tasks=("restore", "upscale"), plugins=("restore-id", "upscale-x2"))
    photo = _photo()
    out = Pipeline(o, registry).process(photo)
    np.testing.assert_allclose(out.rgb[1::2, 1::2], photo.rgb, atol=1e-6)


def test_outscale_resizes_to_input_times_factor_after_the_model(registry) -> None:
    o = ProcessOptions(tasks=("upscale",), scale=4, outscale=3.0)
    assert Pipeline(o, registry).process(_photo(12, 16)).size == (48, 36)
    o = ProcessOptions(tasks=("upscale",), scale=2, outscale=1.5)
    assert Pipeline(o, registry).process(_photo(10, 15)).size == (22, 15)  # round(15*1.5)=22, 10*1.5=15


def test_max_size_caps_the_longest_side_after_everything(registry) -> None:
    o = ProcessOptions(tasks=("upscale",), scale=4, max_size=40)
    assert Pipeline(o, registry).process(_photo(12, 16)).size == (40, 30)


def test_grey_stays_grey_through_upscale(registry) -> None:
    out = Pipeline(ProcessOptions(tasks=("upscale",), scale=2), registry).process(_photo(grey=True))
    assert np.array_equal(out.rgb[..., 0], out.rgb[..., 2]) and not out.colour_added


def test_colorize_plugin_keeps_luminance_and_adds_colour(registry) -> None:
    photo = _photo(30, 40, grey=True)
    out = Pipeline(ProcessOptions(tasks=("colorize",)), registry).process(photo)
    assert out.colour_added and out.size == photo.size
    np.testing.assert_allclose(luminance(out.rgb), luminance(photo.rgb), atol=2e-6)
    assert float(np.abs(out.rgb[..., 0] - out.rgb[..., 2]).mean()) > 0.02
    # render_size comes from the manifest (24) unless overridden.
    assert Pipeline(ProcessOptions(tasks=("colorize",)), registry).steps[0].task.render_size == 24
    assert (
        Pipeline(ProcessOptions(tasks=("colorize",), render_size=64), registry).steps[0].task.render_size
        == 64
    )


def test_strength_blends_restore_output(registry) -> None:
    photo = _photo()
    full = Pipeline(ProcessOptions(plugins=("restore-conv",)), registry).process(photo)
    half = Pipeline(ProcessOptions(plugins=("restore-conv",), strength=0.5), registry).process(photo)
    np.testing.assert_allclose(half.rgb, photo.rgb + 0.5 * (full.rgb - photo.rgb), atol=1e-5)
    assert not np.allclose(full.rgb, photo.rgb)


def test_user_tile_overrides_plugin_default(registry) -> None:
    assert Pipeline(ProcessOptions(tasks=("upscale",), scale=4), registry).steps[0].runner.tile == 32
    o = ProcessOptions(tasks=("upscale",), scale=4, tile=64, tile_overlap=4)
    runner = Pipeline(o, registry).steps[0].runner
    assert (runner.tile, runner.overlap) == (64, 4)
    assert Pipeline(ProcessOptions(tasks=("upscale",), scale=4, tile=0), registry).steps[0].runner.tile == 0
    with pytest.raises(UsageError, match="must exceed the overlap"):
        Pipeline(ProcessOptions(tasks=("upscale",), scale=4, tile=16, tile_overlap=16), registry)


def test_tiled_run_matches_whole_run(registry) -> None:
    photo = _photo(40, 52)
    whole = Pipeline(ProcessOptions(plugins=("restore-conv",), tile=0), registry).process(photo)
    tiled = Pipeline(ProcessOptions(plugins=("restore-conv",), tile=16, tile_overlap=8), registry).process(
        photo
    )
    np.testing.assert_allclose(tiled.rgb, whole.rgb, atol=1e-5)


# --- files -----------------------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_process_file_ok_and_source_untouched(registry, tmp_path: Path) -> None:
    src = write_image(tmp_path / "in.png")
    before = _sha(src)
    result = Pipeline(ProcessOptions(tasks=("upscale",), scale=2), registry).process_file(
        src, tmp_path / "o/in.png"
    )
    assert result.status == "ok" and result.error is None and result.seconds >= 0
    assert Image.open(result.output).size == (64, 48)
    assert _sha(src) == before
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["in.png"]  # no temp left behind


@pytest.mark.parametrize(
    "name, content",
    [("empty.jpg", b""), ("text.jpg", b"this is not a photo\n"), ("cut.jpg", None)],
)
def test_bad_files_fail_with_a_reason_naming_them(registry, tmp_path: Path, name: str, content) -> None:
    src = tmp_path / name
    if content is None:  # a JPEG cut off in the middle, as an interrupted copy leaves it
        write_image(tmp_path / "full.jpg", 64, 64, quality=90)
        src.write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    else:
        src.write_bytes(content)
    result = Pipeline(ProcessOptions(tasks=("normalize",)), registry).process_file(
        src, tmp_path / "out" / name
    )
    assert result.status == "failed" and name in result.error
    assert not (tmp_path / "out" / name).exists()


def test_unexpected_exception_becomes_a_failed_result(registry, tmp_path: Path, monkeypatch) -> None:
    pipeline = Pipeline(ProcessOptions(tasks=("normalize",)), registry)

    def boom(photo):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(pipeline, "_process", boom)
    result = pipeline.process_file(write_image(tmp_path / "a.png"), tmp_path / "out.png")
    assert result.status == "failed" and "RuntimeError: kaboom" in result.error and "a.png" in result.error


def test_skip_existing_and_refusing_to_overwrite_the_source(registry, tmp_path: Path) -> None:
    src = write_image(tmp_path / "a.png")
    dst = tmp_path / "done.png"
    dst.write_bytes(b"previous result")
    skipped = Pipeline(ProcessOptions(tasks=("normalize",), skip_existing=True), registry).process_file(
        src, dst
    )
    assert skipped.status == "skipped" and dst.read_bytes() == b"previous result"
    before = _sha(src)
    same = Pipeline(ProcessOptions(tasks=("normalize",)), registry).process_file(src, src)
    assert same.status == "failed" and "overwrite" in same.error and _sha(src) == before


def test_save_mask_writes_a_mask_next_to_the_output(registry, tmp_path: Path) -> None:
    src = write_image(tmp_path / "a.png")
    o = ProcessOptions(tasks=("dewatermark", "upscale"), scale=2, save_mask=True)
    result = Pipeline(o, registry).process_file(src, tmp_path / "out" / "a.png")
    mask = Image.open(mask_path(result.output))
    assert result.status == "ok" and mask.mode == "L" and mask.size == (64, 48)
    values = np.unique(np.asarray(mask))
    assert set(values.tolist()) == {0, 255}  # the flattening model changes dark/bright pixels, not mid grey


def test_full_disk_is_a_transient_failure(registry, tmp_path: Path, monkeypatch) -> None:
    import errno

    import photosr.pipeline as pipeline_module
    from photosr.errors import ImageWriteError

    def full_disk(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise ImageWriteError("cannot write (No space left on device)", tmp_path / "o.png") from err

    monkeypatch.setattr(pipeline_module, "save_photo", full_disk)
    result = Pipeline(ProcessOptions(tasks=("normalize",)), registry).process_file(
        write_image(tmp_path / "a.png"), tmp_path / "o.png"
    )
    assert result.status == "failed" and result.transient and "No space left" in result.error
    assert "transient" not in result.to_dict()


def test_is_transient() -> None:
    import errno

    from photosr.errors import ImageReadError, TransientError
    from photosr.pipeline import is_transient

    assert is_transient(TransientError("locked"))
    assert is_transient(OSError(errno.EBUSY, "busy"))
    assert not is_transient(OSError(errno.ENOENT, "gone"))
    assert not is_transient(ImageReadError("not an image"))
    assert not is_transient(ValueError("bad"))


def test_file_result_to_dict_is_json_ready(tmp_path: Path) -> None:
    r = FileResult(tmp_path / "a.jpg", None, "failed", "a.jpg: broken", 0.12345)
    assert r.to_dict() == {
        "input": str(tmp_path / "a.jpg"),
        "output": None,
        "status": "failed",
        "error": "a.jpg: broken",
        "seconds": 0.123,
    }
    assert not r.ok and FileResult(tmp_path, tmp_path, "skipped").ok


# --- module-level API ------------------------------------------------------------------------------------


def test_module_process_takes_and_returns_pil(use_registry) -> None:
    image = Image.fromarray(make_rgb(10, 14))
    out = process(image, tasks=["upscale"], scale=2)
    assert isinstance(out, Image.Image) and out.size == (28, 20) and out.mode == "RGB"
    grey = process(image.convert("L"), tasks="upscale", scale=4)
    assert grey.size == (56, 40) and grey.mode == "L"


def test_module_process_file_and_reexports(use_registry, tmp_path: Path) -> None:
    src = write_image(tmp_path / "a.jpg", quality=90)
    result = photosr.process_file(src, tmp_path / "out.jpg", tasks=["restore"], plugins=["restore-id"])
    assert result.status == "ok" and Image.open(tmp_path / "out.jpg").size == (32, 24)
    assert photosr.process is process and photosr.process_file is process_file
    as_png = photosr.process_file(src, tmp_path / "out.png", tasks=["restore"], plugins=["restore-id"])
    assert as_png.output == tmp_path / "out.png" and Image.open(as_png.output).format == "PNG"
    for name in photosr.__all__:
        assert getattr(photosr, name) is not None


def test_module_process_accepts_a_photo(use_registry) -> None:
    out = process(_photo(alpha=True), tasks=("upscale",), scale=2)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == (32, 24)


def test_module_process_reads_a_path_with_its_orientation(use_registry, tmp_path: Path) -> None:
    src = tmp_path / "turned.jpg"
    Image.fromarray(make_rgb(10, 14)).save(src, exif=_exif_orientation(6), quality=95)
    out = process(str(src), tasks="upscale", scale=2)
    assert out.size == (20, 28)  # EXIF 6 applied: 14x10 stored, shown 10x14, then x2
    assert process(src, tasks="upscale", scale=2).size == (20, 28)  # a Path too
    with pytest.raises(photosr.PhotosrError, match="nope.jpg"):
        process(tmp_path / "nope.jpg", tasks="upscale", scale=2)


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_importing_the_runtime_loads_neither_torch_nor_onnxruntime() -> None:
    import subprocess
    import sys

    code = (
        "import sys, photosr, photosr.pipeline, photosr.cli.run; photosr.Pipeline; "
        "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_example_photo_is_bundled_sideways_and_loads_upright() -> None:
    path = photosr.example_photo()
    assert path.is_file() and path.stat().st_size < 150_000
    with Image.open(path) as raw:
        assert raw.getexif().get(0x0112) == 6 and raw.size[0] < raw.size[1]  # stored rotated
    photo = photosr.load_photo(path)
    assert photo.size == (640, 481) and photo.info.orientation == 6
