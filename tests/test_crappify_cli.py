"""`photosr crappify` through click's CliRunner: damaged images, the contact sheet, params for replay."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from photosr.training.cli_crappify import crappify
from PIL import Image


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(64, 48), (40, 56)]):
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    # EXIF orientation 6 (rotate 90): the loader must turn it upright before damaging
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(rotated, exif=exif)
    return [*paths, rotated]


def test_writes_damaged_images_sheet_and_params(tmp_path):
    inputs, out = _inputs(tmp_path), tmp_path / "out"
    result = CliRunner().invoke(
        crappify, ["-r", "upscale-x2", *map(str, inputs), "-o", str(out), "--count", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "6 damaged images" in result.output
    assert Image.open(out / "photo0_0.png").size == (32, 24)
    assert Image.open(out / "photo1_1.png").size == (20, 28)
    assert Image.open(out / "rotated_0.png").size == (16, 24)  # upright 32x48 halved
    sheet = Image.open(out / "sheet.png")
    assert sheet.width == 3 * 256 and sheet.height > 3 * 256 * 0.5
    log = json.loads((out / "params.json").read_text())
    assert log["crappifier"]["name"] == "upscale-x2" and len(log["variants"]) == 6
    assert log["variants"][1]["seed"] == 1 and log["variants"][1]["params"]["steps"]


def test_seed_makes_it_reproducible(tmp_path):
    inputs = _inputs(tmp_path)[:1]
    for name in ("a", "b"):
        args = ["-r", "restore", str(inputs[0]), "-o", str(tmp_path / name), "--seed", "5", "--count", "1"]
        assert CliRunner().invoke(crappify, args).exit_code == 0
    assert (tmp_path / "a" / "photo0_0.png").read_bytes() == (tmp_path / "b" / "photo0_0.png").read_bytes()


def test_custom_callable_and_scale_option(tmp_path):
    inputs = _inputs(tmp_path)[:1]
    func = tmp_path / "damage.py"
    func.write_text(
        "def crappify(image, rng):\n    return image.resize((image.width // 4, image.height // 4))\n"
    )
    args = [
        "-r",
        f"{func}:crappify",
        "--scale",
        "4",
        str(inputs[0]),
        "-o",
        str(tmp_path / "o"),
        "--count",
        "1",
    ]
    result = CliRunner().invoke(crappify, args)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "photo0_0.png").size == (16, 12)
    assert json.loads((tmp_path / "o" / "params.json").read_text())["variants"][0]["params"] is None


def test_errors_are_one_line_messages(tmp_path):
    inputs = _inputs(tmp_path)[:1]
    result = CliRunner().invoke(crappify, ["-r", "nope", str(inputs[0]), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "unknown crappification 'nope'" in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(crappify, ["-r", "restore", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "bad.png" in result.output and "Traceback" not in result.output


def test_reachable_from_the_photosr_group(tmp_path):
    from photosr.cli import main

    inputs = _inputs(tmp_path)[:1]
    result = CliRunner().invoke(
        main, ["crappify", "-r", "fastai", "--scale", "2", str(inputs[0]), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "photo0_2.png").size == (32, 24)


def test_masks_for_dewatermark(tmp_path):
    inputs = _inputs(tmp_path)[:1]
    out = tmp_path / "o"
    args = ["-r", "dewatermark", "--masks", str(inputs[0]), "-o", str(out), "--count", "2"]
    result = CliRunner().invoke(crappify, args)
    assert result.exit_code == 0, result.output
    for k in range(2):
        mask = np.asarray(Image.open(out / f"photo0_{k}_mask.png"))
        damaged = np.asarray(Image.open(out / f"photo0_{k}.png"))
        # 0..255, not 0..1: even a faint 8-px stamp on this 64x48 photo reaches well above 10
        assert mask.shape == damaged.shape[:2] and mask.max() > 10
    assert json.loads((out / "params.json").read_text())["variants"][0]["mask"] == "photo0_0_mask.png"
    assert Image.open(out / "sheet.png").width == 5 * 256  # clean, then image and mask per variant


def test_folders_are_walked_for_images(tmp_path):
    _inputs(tmp_path)
    (tmp_path / "Thumbs.db").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"  # inside the input folder: never walked into
    result = CliRunner().invoke(crappify, ["-r", "restore", str(tmp_path), "-o", str(out), "--count", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*_0.png")) == ["photo0_0.png", "photo1_0.png", "rotated_0.png"]
