"""benchmarks/seams.py: tiled against whole on the same model - exact once the blend discards more than
the model's receptive field, not before - with the manifest's own overlap marked and always measured."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from onnx_models import conv_model, write_plugin
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import seams  # noqa: E402


def _table(out: str) -> dict[str, dict[str, str]]:
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| overlap")]
    header = ["overlap", "tiles", "max", "p999", "psnr"]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines]
    return {row["overlap"]: row for row in rows}


def test_overlap_wider_than_the_receptive_field_tiles_exactly(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (90, 100, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    # 4 stacked 3x3 convs see 4 px; the blend discards overlap // 4 px of each tile edge.
    plugin = write_plugin(
        tmp_path / "fourconv", task="restore", scale=1, model=conv_model(layers=4), tile=32, tile_overlap=8
    )
    argv = ["--data", str(photos), "--side", "80", "--overlaps", "4,16", "--threads", "1"]
    assert seams.main([*argv, "--plugin", str(plugin), "--only", "fourconv"]) == 0
    rows = _table(capsys.readouterr().out)
    assert list(rows) == ["4", "16", "8 *"]
    assert float(rows["4"]["max"]) > 0.5  # 1 px discarded: tile edges show
    assert float(rows["16"]["max"]) < 0.01  # 4 px discarded: the same as the whole run
    assert float(rows["4"]["psnr"]) < float(rows["8 *"]["psnr"])
    assert int(rows["16"]["tiles"]) == 16  # 80 px in 32-px tiles stepping 16 (0, 16, 32, 48): 4 x 4


def test_central_crop_and_overlap_parsing() -> None:
    rgb = np.arange(6 * 10 * 3).reshape(6, 10, 3)
    assert seams.central_crop(rgb, 4).shape == (4, 4, 3)
    assert seams.central_crop(rgb, 4)[0, 0, 0] == rgb[1, 3, 0]
    assert seams.central_crop(rgb, 100).shape == rgb.shape
    assert seams.parse_overlaps("16, 32,16") == (16, 32)
