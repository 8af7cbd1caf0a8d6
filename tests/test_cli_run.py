"""`photosr run` through click's CliRunner on real tiny files and test plugins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tree_hashes, write_image
from PIL import Image

from photosr.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def _json(result) -> dict:
    document = json.loads(result.stdout)  # exactly one JSON document: json.loads refuses trailing text
    _check_schema(document)
    return document


def _check_schema(doc: dict) -> None:
    """The --json contract, checked by hand (jsonschema is not a dependency)."""
    assert set(doc) == {"files", "summary"}
    assert isinstance(doc["files"], list)
    for entry in doc["files"]:
        assert set(entry) == {"input", "output", "status", "error", "seconds"}
        assert isinstance(entry["input"], str)
        assert entry["output"] is None or isinstance(entry["output"], str)
        assert entry["status"] in {"ok", "failed", "skipped"}
        assert (entry["error"] is None) == (entry["status"] != "failed")
        assert entry["error"] is None or isinstance(entry["error"], str)
        assert isinstance(entry["seconds"], (int, float)) and entry["seconds"] >= 0
    s = doc["summary"]
    assert set(s) == {"ok", "failed", "skipped", "total", "seconds"}
    assert all(isinstance(s[k], int) for k in ("ok", "failed", "skipped", "total"))
    assert s["ok"] + s["failed"] + s["skipped"] == s["total"] == len(doc["files"])
    for status in ("ok", "failed", "skipped"):
        assert s[status] == sum(f["status"] == status for f in doc["files"])
    assert isinstance(s["seconds"], (int, float)) and s["seconds"] >= 0


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    write_image(root / "a.jpg", quality=85)
    write_image(root / "b.png", seed=1)
    write_image(root / "sub" / "c.png", seed=2, mode="RGBA")
    write_image(root / "sub" / "deep" / "d.jpg", seed=3, mode="L", quality=85)
    for junk in ("Thumbs.db", ".DS_Store", "._a.jpg", "e.jpg.part", "notes.txt"):
        (root / junk).write_bytes(b"junk")
    (root / "sub" / "desktop.ini").write_text("[.ShellClassInfo]")
    return root


def test_recursive_tree_is_mirrored_junk_skipped_inputs_unchanged(
    use_registry, photos: Path, tmp_path: Path
) -> None:
    before = tree_hashes(photos)
    out = tmp_path / "out"
    result = _run("--task", "upscale", "--scale", "2", "-r", photos, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert _files(out) == ["a.jpg", "b.png", "sub/c.png", "sub/deep/d.jpg"]  # no temps, no junk
    assert Image.open(out / "sub/deep/d.jpg").size == (64, 48)
    assert Image.open(out / "sub/deep/d.jpg").mode == "L"  # grey stays grey
    assert Image.open(out / "sub/c.png").mode == "RGBA"
    doc = _json(result)
    assert doc["summary"] == {**doc["summary"], "ok": 4, "failed": 0, "skipped": 0, "total": 4}
    assert tree_hashes(photos) == before


def test_not_recursive_by_default_and_include_exclude(use_registry, photos: Path, tmp_path: Path) -> None:
    result = _run("--task", "normalize", photos, "-o", tmp_path / "flat", "--quiet")
    assert result.exit_code == 0 and _files(tmp_path / "flat") == ["a.jpg", "b.png"]
    result = _run(
        "--task",
        "normalize",
        "-r",
        "--include",
        "*.png",
        "--exclude",
        "sub/deep",
        photos,
        "-o",
        tmp_path / "png",
    )
    assert result.exit_code == 0 and _files(tmp_path / "png") == ["b.png", "sub/c.png"]


def test_suffix_and_format_conversion(use_registry, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "--task",
        "normalize",
        photos / "b.png",
        photos / "sub",
        "-o",
        out,
        "--format",
        "jpeg",
        "--suffix",
        "_n",
        "--quality",
        "80",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    # A folder on the command line maps to OUT itself; the RGBA PNG becomes a JPEG too.
    assert _files(out) == ["b_n.jpg", "c_n.jpg"]
    assert Image.open(out / "c_n.jpg").format == "JPEG"
    assert [Path(f["output"]).name for f in _json(result)["files"]] == ["b_n.jpg", "c_n.jpg"]


def test_skip_existing_resumes(use_registry, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run("--task", "normalize", photos, "-o", out, "-q").exit_code == 0
    (out / "b.png").unlink()
    stamp = (out / "a.jpg").stat().st_mtime_ns
    result = _run("--task", "normalize", photos, "-o", out, "--skip-existing", "--json")
    assert result.exit_code == 0
    statuses = {Path(f["input"]).name: f["status"] for f in _json(result)["files"]}
    assert statuses == {"a.jpg": "skipped", "b.png": "ok"}
    assert (out / "a.jpg").stat().st_mtime_ns == stamp


def test_bad_inputs_fail_with_reasons_while_the_rest_complete(
    use_registry, photos: Path, tmp_path: Path
) -> None:
    good = (photos / "a.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photos / "text.jpg").write_text("hello, I am not a JPEG\n")
    (photos / "empty.png").write_bytes(b"")
    before = tree_hashes(photos)
    out = tmp_path / "out"
    result = _run("--task", "normalize", photos, "-o", out, "--json")
    assert result.exit_code == 1
    doc = _json(result)
    failed = {Path(f["input"]).name: f["error"] for f in doc["files"] if f["status"] == "failed"}
    assert set(failed) == {"truncated.jpg", "text.jpg", "empty.png"}
    assert doc["summary"]["ok"] == 2 and _files(out) == ["a.jpg", "b.png"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("photosr: ")]
    assert len(lines) == 3
    for name, error in failed.items():
        assert name in error and any(name in line for line in lines)
    assert tree_hashes(photos) == before


def test_output_over_inputs_is_refused_per_file(use_registry, photos: Path) -> None:
    before = tree_hashes(photos)
    result = _run("--task", "normalize", photos, "-o", photos)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert tree_hashes(photos) == before
    # With a suffix the results may sit beside the inputs; they are not picked up as inputs again.
    result = _run("--task", "normalize", photos, "-o", photos, "--suffix", "_n", "--json")
    assert result.exit_code == 0 and _json(result)["summary"]["total"] == 2


def test_output_folder_inside_input_is_not_walked(use_registry, photos: Path) -> None:
    out = photos / "out"
    assert _run("--task", "normalize", "-r", photos, "-o", out, "-q").exit_code == 0
    result = _run("--task", "normalize", "-r", photos, "-o", out, "--json")
    assert _json(result)["summary"]["total"] == 4


def test_plugins_by_name_chain_and_save_mask(use_registry, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "-t",
        "dewatermark",
        "-t",
        "upscale",
        "-p",
        "dewatermark-flat",
        "-p",
        "upscale=upscale-x4",
        photos / "a.jpg",
        "-o",
        out,
        "--save-mask",
        "--format",
        "png",
    )
    assert result.exit_code == 0, result.stderr
    assert _files(out) == ["a.png", "a_mask.png"]
    assert Image.open(out / "a.png").size == Image.open(out / "a_mask.png").size == (128, 96)


def test_outscale_and_max_size(use_registry, photos: Path, tmp_path: Path) -> None:
    result = _run(
        "-t", "upscale", "--scale", "4", "--outscale", "1.5", photos / "b.png", "-o", tmp_path / "o1"
    )
    assert result.exit_code == 0 and Image.open(tmp_path / "o1/b.png").size == (48, 36)
    result = _run(
        "-t", "upscale", "--scale", "4", "--max-size", "50", photos / "b.png", "-o", tmp_path / "o2"
    )
    assert result.exit_code == 0 and Image.open(tmp_path / "o2/b.png").size == (50, 38)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "sharpen"], "unknown task 'sharpen'"),
        (["--task", "upscale", "--scale", "3"], "no plugin for task 'upscale' at scale 3; installed:"),
        (["--plugin", "no-such-plugin"], "no plugin named 'no-such-plugin'"),
        (["--strength", "2"], "strength"),
        (["--format", "gif"], "gif"),
    ],
)
def test_usage_errors_exit_2(use_registry, photos: Path, tmp_path: Path, args: list, message: str) -> None:
    result = _run(*args, photos, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 2 and message in result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_missing_input_and_missing_output_option_exit_2(use_registry, tmp_path: Path) -> None:
    assert _run(tmp_path / "nope.jpg", "-o", tmp_path / "out").exit_code == 2
    assert _run(tmp_path).exit_code == 2


def test_plugin_from_environment_path(monkeypatch, plugin_root: Path, photos: Path, tmp_path: Path) -> None:
    import photosr.plugins

    monkeypatch.setenv("PHOTOSR_PLUGIN_PATH", str(plugin_root))
    photosr.plugins.clear_default_registry()
    try:
        result = _run("--plugin", "upscale-x2", photos / "a.jpg", "-o", tmp_path / "out", "--json")
    finally:
        photosr.plugins.clear_default_registry()
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "out/a.jpg").size == (64, 48)  # task inferred from the plugin


def test_empty_input_folder_is_not_an_error(use_registry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run("--task", "normalize", tmp_path / "empty", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0 and _json(result)["summary"]["total"] == 0


def test_without_json_stdout_is_empty_and_summary_goes_to_stderr(
    use_registry, photos: Path, tmp_path: Path
) -> None:
    result = _run("--task", "normalize", photos, "-o", tmp_path / "out")
    assert result.exit_code == 0 and result.stdout == ""
    assert "2 ok, 0 skipped, 0 failed" in result.stderr
    assert "photosr: normalize; 2 file(s) -> " in result.stderr
    result = _run("-t", "restore", "-t", "upscale", "--scale", "2", photos, "-o", tmp_path / "o2")
    assert "restore (restore-conv 1.0.0) -> upscale (upscale-x2 1.0.0)" in result.stderr


def test_max_pixels_refuses_big_images_per_file(use_registry, photos: Path, tmp_path: Path) -> None:
    result = _run("--task", "normalize", photos, "-o", tmp_path / "out", "--max-pixels", "100", "--json")
    doc = _json(result)
    assert result.exit_code == 1 and doc["summary"]["failed"] == 2
    assert all("a.jpg" in f["error"] or "b.png" in f["error"] for f in doc["files"])
    unlimited = _run("--task", "normalize", photos, "-o", tmp_path / "o2", "--max-pixels", "0", "--json")
    assert unlimited.exit_code == 0 and _json(unlimited)["summary"]["ok"] == 2


def test_metadata_kept_by_default_and_stripped_on_request(use_registry, tmp_path: Path) -> None:
    src = tmp_path / "in" / "cam.jpg"
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    write_image(src, quality=90, exif=exif.tobytes())
    assert _run("--task", "normalize", src, "-o", tmp_path / "kept", "-q").exit_code == 0
    assert Image.open(tmp_path / "kept/cam.jpg").getexif().get(0x010F) == "TestCam"
    assert _run("--task", "normalize", src, "-o", tmp_path / "bare", "-q", "--strip-metadata").exit_code == 0
    assert 0x010F not in Image.open(tmp_path / "bare/cam.jpg").getexif()


def test_colorize_grey_png_adds_colour_and_keeps_tone(use_registry, tmp_path: Path) -> None:
    src = write_image(tmp_path / "in" / "old.png", 30, 40, mode="L")
    result = _run("--task", "colorize", src, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = Image.open(tmp_path / "out/old.png")
    assert out.mode == "RGB" and out.size == (40, 30)
    grey_in = np.asarray(Image.open(src), dtype=np.float32)
    grey_out = np.asarray(out.convert("L"), dtype=np.float32)  # Pillow's L is BT.601 luminance too
    assert np.abs(grey_out - grey_in).max() <= 1.0
    rgb = np.asarray(out, dtype=np.int16)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 3  # colour was added


def test_failure_line_format_on_stderr(use_registry, tmp_path: Path) -> None:
    bad = tmp_path / "in" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8\xff not really")
    result = _run("--task", "normalize", bad, "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"photosr: {bad}: ") and len(line) > len(f"photosr: {bad}: ")


def test_progress_bar_only_on_a_terminal(monkeypatch) -> None:
    import io
    import sys

    from photosr.cli import run as run_module

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with run_module._progress(3, enabled=True) as advance:
            for _ in range(3):
                advance()
        assert ("3/3" in stream.getvalue()) is shown
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with run_module._progress(3, enabled=False) as advance:
        advance()
    assert quiet.getvalue() == ""


def test_corrupt_plugin_stops_the_run_before_any_file(use_registry, photos: Path, tmp_path: Path) -> None:
    from onnx_models import write_plugin

    folder = write_plugin(tmp_path / "broken-restore", task="restore", scale=1, sha256="f" * 64)
    result = _run("--plugin", folder, photos, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1 and "sha256 mismatch" in result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_real_process_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = write_image(tmp_path / "in" / "a.png")
    cmd = [
        sys.executable,
        "-m",
        "photosr",
        "run",
        "--task",
        "normalize",
        str(src),
        "-o",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["ok"] == 1
    bad = subprocess.run([*cmd, "--task", "sharpen"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown task 'sharpen'" in bad.stderr


def test_sixteen_bit_grey_stays_sixteen_bit_through_a_model(use_registry, tmp_path: Path) -> None:
    ramp = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
    src = tmp_path / "in" / "scan.png"
    src.parent.mkdir()
    Image.frombytes("I;16", (32, 24), ramp.astype("<u2").tobytes()).save(src)
    result = _run("-t", "upscale", "--scale", "2", src, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = Image.open(tmp_path / "out/scan.png")
    assert out.mode in ("I;16", "I") and out.size == (64, 48)
    values = np.asarray(out)
    assert values.max() > 255 and np.array_equal(values[::2, ::2], ramp)  # nearest model: exact
