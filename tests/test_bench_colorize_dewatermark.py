"""benchmarks/colorize.py and benchmarks/dewatermark.py: their measures, and one pass through the pipeline
with the tiny test plugins (conftest's colorize-sepia and dewatermark-flat)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("photosr.training.degrade")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import colorize as bench_colorize  # noqa: E402
import dewatermark as bench_dewatermark  # noqa: E402
import speed as bench_speed  # noqa: E402


def _photo(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 2.5, yy * 3.0, 255 - xx * 2.0], axis=2) + rng.normal(0, 6, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _sepia(rgb: np.ndarray) -> np.ndarray:
    grey = bench_colorize.luma(rgb)[..., None]
    return np.clip(grey * np.array([1.07, 0.95, 0.74]), 0, 255).astype(np.uint8)


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
    photo = _photo()
    grey = np.repeat(bench_colorize.grey_of(photo)[..., None], 3, axis=2)
    assert bench_colorize.colourfulness(grey) == pytest.approx(0.0, abs=1.0)  # rounding leaves ~0
    faded = (photo * 0.5 + grey * 0.5).astype(np.uint8)
    assert bench_colorize.colourfulness(photo) > bench_colorize.colourfulness(faded) > 5.0


def test_lab_of_white_grey_and_red():
    lab = bench_colorize.lab(np.array([[[255, 255, 255], [128, 128, 128], [255, 0, 0]]], np.uint8))[0]
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.2)
    assert abs(lab[1, 1]) < 0.2 and abs(lab[1, 2]) < 0.2
    assert lab[2] == pytest.approx([53.2, 80.1, 67.2], abs=0.5)  # the textbook sRGB red


def test_hue_figures_see_a_sepia_cast():
    photo = _photo()
    same = bench_colorize.hue_figures(photo, photo)
    assert same[0] == pytest.approx(0.0, abs=1e-6) and same[1] == pytest.approx(1.0)
    diff, covered, band_out, band_truth = bench_colorize.hue_figures(_sepia(photo), photo)
    assert band_out > 0.9 > band_truth and diff > 20 and covered > 0.5


def test_colorize_pipeline_keeps_luminance(plugin_root, tmp_path):
    from photosr.plugins import Plugin

    photo = _photo()
    grey = bench_colorize.grey_of(photo)
    plugin = Plugin(plugin_root / "colorize-sepia")
    outs, seconds = bench_colorize.run_pipeline(plugin, 24, [Image.fromarray(grey)], 1, tmp_path)
    scores = bench_colorize.Scores()
    bench_colorize.score_grey(scores, outs, [photo])
    assert outs[0].shape == photo.shape and len(seconds) == 1
    assert scores.luma_psnr[0] >= 35.0 and scores.colourful[0] > 1.0


def test_sepia_scans_are_seeded_and_keep_the_size():
    photos = [_photo(seed=1), _photo(seed=2)]
    a, b = bench_colorize.sepia_scans(photos, 0), bench_colorize.sepia_scans(photos, 0)
    assert all(x.shape == p.shape and np.array_equal(x, y) for x, y, p in zip(a, b, photos, strict=True))


def test_region_psnr_caps_and_ignores_empty_regions():
    a = _photo()
    region = np.zeros(a.shape[:2], bool)
    assert np.isnan(bench_dewatermark.region_psnr(a, a, region))
    region[10:20, 10:20] = True
    assert bench_dewatermark.region_psnr(a, a, region) == bench_dewatermark.CAP_DB
    b = a.copy()
    b[0, 0] = 0  # outside the region: no effect
    assert bench_dewatermark.region_psnr(a, b, region) == bench_dewatermark.CAP_DB


def test_cases_are_reproducible_and_marked_where_drawn(tmp_path):
    for i in range(2):
        Image.fromarray(_photo(96, 128, seed=i)).save(tmp_path / f"p{i}.png")
    cases = bench_dewatermark.make_cases(tmp_path, 0, seed=3)
    again = bench_dewatermark.make_cases(tmp_path, 0, seed=3)
    for case, twin in zip(cases, again, strict=True):
        assert np.array_equal(case.damaged, twin.damaged) and case.damaged.shape == case.truth.shape
        assert case.inside.any() and not (case.inside & case.outside).any()
        assert case.layout in ("single", "tiled")
        # Inside the mask the overlay changed the photo far more than JPEG alone changes it outside.
        inside = bench_dewatermark.region_psnr(case.damaged, case.truth, case.inside)
        outside = bench_dewatermark.region_psnr(case.damaged, case.truth, case.outside)
        assert inside < outside


def test_oracle_and_plugin_rows(plugin_root, tmp_path):
    from photosr.plugins import Plugin

    for i in range(2):
        Image.fromarray(_photo(96, 128, seed=i)).save(tmp_path / f"p{i}.png")
    cases = bench_dewatermark.make_cases(tmp_path, 0, seed=0)
    rows = defaultdict(bench_dewatermark.Row)
    for case in cases:
        bench_dewatermark.score(rows["telea"], case, bench_dewatermark.inpaint(case, 1))
    assert all(v == bench_dewatermark.CAP_DB for v in rows["telea"].outside)  # oracle: untouched outside
    work = tmp_path / "work"
    work.mkdir()
    plugin = Plugin(plugin_root / "dewatermark-flat")
    outs = bench_dewatermark.run_plugin(plugin, cases, rows, 1, work)
    name = plugin.manifest.name
    assert [o.shape for o in outs] == [c.truth.shape for c in cases]
    assert len(rows[name].iou) == len(cases) and all(0.0 <= v <= 1.0 for v in rows[name].iou)
    # Keeping the plugin's output only inside its own mask can only leave more of the photo untouched.
    assert np.mean(rows[f"{name} in-mask"].outside) >= np.mean(rows[name].outside)
    table = bench_dewatermark.report(dict(rows), cases)
    assert "| telea |" in table and f"| {name} in-mask |" in table
    # --per-photo: a line per photo naming its overlay, with each method's gain and the plugin's IoU.
    lines = bench_dewatermark.per_photo(dict(rows), cases).splitlines()
    assert len(lines) == 2 + len(cases) and f"{name} IoU" in lines[0]
    for i, (line, case) in enumerate(zip(lines[2:], cases, strict=True)):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == case.name and case.layout in cells[1] and "opacity" in cells[1]
        assert cells[3] == f"{rows['telea'].gain[i]:+.2f}" and cells[-1] == f"{rows[name].iou[i]:.2f}"


def test_dewatermark_rows_per_precision_name_their_model(tmp_path, monkeypatch):
    """--precision auto,fp32 on a plugin with an int8 model: two rows (and two in-mask rows), each saying
    which model file ran, with different results; a plugin without one gets one row and a footnote."""
    import bench_plugins
    from conftest import _affine_model
    from onnx_models import save_model, sha256_of, write_plugin

    import photosr.plugins
    from photosr import engine
    from photosr.plugins import Plugin

    monkeypatch.setattr(engine, "_ort_available", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: True)
    flatten = _affine_model([0.5, 0.5, 0.5], [0.25, 0.25, 0.25], "flatten")
    darken = _affine_model([0.8, 0.8, 0.8], [0.0, 0.0, 0.0], "darken")  # the stand-in "int8" model
    int8 = save_model(darken, tmp_path / "dual" / "model.int8.onnx")
    fields = {"int8_file": int8.name, "int8_sha256": sha256_of(int8)}
    dual = Plugin(
        write_plugin(tmp_path / "dual", task="dewatermark", scale=1, model=flatten, extra_model_fields=fields)
    )
    plain = Plugin(write_plugin(tmp_path / "plain", task="dewatermark", scale=1, model=flatten))
    for i in range(2):
        Image.fromarray(_photo(96, 128, seed=i)).save(tmp_path / f"p{i}.png")
    cases = bench_dewatermark.make_cases(tmp_path, 0, seed=0)
    work = tmp_path / "work"
    work.mkdir()
    rows, outs, notes = defaultdict(bench_dewatermark.Row), {}, []
    for plugin in (dual, plain):
        variants, skipped = bench_plugins.precision_variants(plugin, ("auto", "fp32"), "cpu")
        notes += skipped
        for v in variants:
            name = v.name(plugin.name)
            outs[name] = bench_dewatermark.run_plugin(plugin, cases, rows, 1, work, v.precision, name)
    assert list(outs) == ["dual", "dual (fp32)", "plain"]
    assert (rows["dual"].model, rows["dual in-mask"].model) == ("int8", "int8")
    assert (rows["dual (fp32)"].model, rows["dual (fp32) in-mask"].model) == ("fp32", "fp32")
    assert rows["plain"].model == "fp32"
    assert not np.array_equal(outs["dual"][0], outs["dual (fp32)"][0])  # the two files really ran
    assert np.array_equal(outs["dual (fp32)"][0], outs["plain"][0])  # the same fp32 model
    table = bench_dewatermark.report(dict(rows), cases, notes)
    assert "| method | model |" in table
    assert "| dual | int8 |" in table and "| dual (fp32) in-mask | fp32 |" in table
    assert "plain: no int8 model; no fp32 row" in table and "| plain (fp32) |" not in table


def _shift_model():
    """out = the left neighbour of each pixel (zero at the left edge): not flip-equivariant."""
    from onnx import helper
    from onnx_models import _const, _finish

    weight = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        weight[c, c, 1, 0] = 1.0
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])
    return _finish([conv], [_const("w", weight)], 3, 3, "shift_left")


def test_dewatermark_rows_per_ensemble_size_run_the_ensemble(tmp_path):
    """--ensemble 1,2: a second row per plugin, "NAME (ensemble 2)", whose outputs are the 2-view mean."""
    import bench_plugins
    from onnx_models import write_plugin

    from photosr.plugins import Plugin

    plugin = Plugin(write_plugin(tmp_path / "shift", task="dewatermark", scale=1, model=_shift_model()))
    for i in range(2):
        Image.fromarray(_photo(96, 128, seed=i)).save(tmp_path / f"p{i}.png")
    cases = bench_dewatermark.make_cases(tmp_path, 0, seed=0)
    work = tmp_path / "work"
    work.mkdir()
    rows, outs = defaultdict(bench_dewatermark.Row), {}
    variants, _ = bench_plugins.precision_variants(plugin, ("auto",), "cpu")
    for v in bench_plugins.with_ensembles(variants, (1, 2)):
        name = v.name(plugin.name)
        outs[name] = bench_dewatermark.run_plugin(plugin, cases, rows, 1, work, v.precision, name, v.ensemble)
    assert list(outs) == ["shift", "shift (ensemble 2)"]
    assert len(rows["shift (ensemble 2)"].inside) == len(cases)
    single, pair = outs["shift"][0].astype(int), outs["shift (ensemble 2)"][0].astype(int)
    assert np.abs(single - pair).max() > 10  # a shift one way averaged with its mirror is not the shift
    table = bench_dewatermark.report(dict(rows), cases)
    assert "| shift (ensemble 2) |" in table and "| shift (ensemble 2) in-mask |" in table


def test_speed_times_dewatermark_rows_on_stamped_photos_too(tmp_path, monkeypatch, capsys):
    """--overlay clean,single,tiled: one row per photo for a dewatermark plugin, saying how much of it the
    overlay covers; other tasks are timed on the clean photo only."""
    from onnx_models import red_mask_model, write_plugin

    folders = [
        write_plugin(tmp_path / "plugins" / "dw", task="dewatermark", scale=1, model=red_mask_model()),
        write_plugin(tmp_path / "plugins" / "up2", task="upscale", scale=2),
    ]
    monkeypatch.setattr(bench_speed, "ONE_MP", (160, 120))
    monkeypatch.setattr(bench_speed, "TARGETS", {})
    monkeypatch.setattr(bench_speed, "PHOTOS", tmp_path / "no-photos-here")
    argv = ["--repeats", "1", "--threads", "1", "--overlay", "clean,single,tiled", "--ensemble", "1,2"]
    argv += [arg for folder in folders for arg in ("--plugin", str(folder))] + [
        "--only",
        "dw",
        "--only",
        "up2",
    ]
    assert bench_speed.main(argv) == 0
    rows = [line.split(" | ")[:3] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    photos = [(name.lstrip("| "), photo) for name, _, photo in rows[1:]]
    assert [name for name, _ in photos] == ["dw", "dw (ensemble 2)"] * 3 + ["up2", "up2 (ensemble 2)"]
    assert photos[0][1] == photos[1][1] == "160x120 -> 0.0192 MP"
    single, tiled = photos[2][1], photos[4][1]
    assert single.startswith("160x120 -> 0.0192 MP, single overlay (") and single == photos[3][1]
    assert tiled.startswith("160x120 -> 0.0192 MP, tiled overlay (")
    share = {
        label: int(text.rsplit("(", 1)[1].split("%")[0]) for label, text in (("s", single), ("t", tiled))
    }
    assert 0 < share["s"] < share["t"] <= 100  # a tiled pattern covers more than one stamp
    with pytest.raises(SystemExit):
        bench_speed.main(["--overlay", "clean,diagonal"])


def test_stamp_photo_draws_a_held_out_overlay_of_the_layout_asked_for(tmp_path):
    src = tmp_path / "clean.jpg"
    Image.fromarray(_photo(120, 160)).save(src, quality=95)
    for layout in ("single", "tiled"):
        path, share = bench_speed.stamp_photo(src, tmp_path / f"{layout}.jpg", layout)
        changed = np.abs(np.asarray(Image.open(path), np.int16) - np.asarray(Image.open(src), np.int16))
        assert 0 < share < 1 and changed.max() > 40
        again, _ = bench_speed.stamp_photo(src, tmp_path / f"{layout}-again.jpg", layout)
        assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(path)))  # a fixed draw
