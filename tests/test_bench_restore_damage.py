"""benchmarks/restore_damage.py: one row per damage, a column per restore plugin, and an "as PNG" column
for a plugin that takes the JPEG quality (the same pixels, the quality not told)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from onnx_models import identity_model, quality_offset_model, write_plugin
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import restore_damage  # noqa: E402


def test_rows_per_damage_and_a_blind_column_for_quality_models(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(60, 120, (24, 32, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    same = write_plugin(tmp_path / "same", task="restore", scale=1, model=identity_model())
    aware = write_plugin(
        tmp_path / "aware", task="restore", scale=1, model=quality_offset_model(),
        extra_model_fields={"input": "rgb+quality"},
    )  # fmt: skip
    argv = ["--data", str(photos), "--threads", "1", "--plugin", str(same), "--plugin", str(aware)]
    assert restore_damage.main([*argv, "--only", "same", "--only", "aware"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    header, rows = table[0], {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert sorted(header) == sorted(["damage", "input", "same", "aware", "aware (as PNG)"])
    assert list(rows) == [label for label, _, _ in restore_damage.DAMAGES]
    lossless = rows.pop("none (PNG)")
    assert lossless["input"] == "lossless" and lossless["same"] == "inf"  # identity returns the photo itself
    for row in rows.values():
        assert row["same"] == row["aware (as PNG)"] == "+0.000"  # identity; plane 0 adds nothing
        assert float(row["aware"]) < -3  # told the quality, the stand-in brightens the photo a lot


def test_shrink_scores_against_reduced_references(tmp_path: Path, capsys) -> None:
    stripes = np.zeros((24, 32, 3), dtype=np.uint8)
    stripes[:, 1::2] = 200
    assert restore_damage.shrink(stripes, 2).shape == (12, 16, 3)
    assert np.all(restore_damage.shrink(stripes, 2) == 100)  # a 2x2 box average
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / "noise.png")
    same = write_plugin(tmp_path / "same", task="restore", scale=1, model=identity_model())
    argv = ["--data", str(photos), "--threads", "1", "--plugin", str(same), "--only", "same"]
    q20 = {}
    for factor in (1, 2):
        assert restore_damage.main([*argv, "--shrink", str(factor)]) == 0
        out = capsys.readouterr().out
        assert ("reduced 2x" in out) == (factor == 2)
        q20[factor] = float(next(x for x in out.splitlines() if x.startswith("| JPEG q 20 |")).split("|")[2])
    assert q20[2] > q20[1] + 1  # averaged noise is smoother, so the same JPEG loses less of it
