"""`--precision` in benchmarks/quality.py and benchmarks/speed.py (bench_plugins.precision_variants): one row
per plugin and precision, named after the first, with the model file each ran; a precision that would
rerun a model file already measured gets no row but a footnote.

The test plugin "dual2" upscales x2: its fp32 model replicates pixels, its "int8" model (not really
quantized) adds a 3x3 conv residual, so the two rows' scores differ when the two files ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from conftest import write_image
from onnx_models import conv_model, nearest_upscale_model, save_model, sha256_of, write_plugin

import photosr.plugins
from photosr import engine
from photosr.plugins import Plugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_plugins  # noqa: E402
import quality as bench_quality  # noqa: E402
import speed as bench_speed  # noqa: E402

INT8 = "model.int8.onnx"


@pytest.fixture(autouse=True)
def cpu_with_int8(monkeypatch):
    """A CPU-only onnxruntime on a CPU with int8 dot products: "auto" picks a plugin's int8 model."""
    monkeypatch.setattr(engine, "_ort_available", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: True)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    """A folder of two x2 upscalers: dual2 (fp32 + int8 model) and plain2 (fp32 only)."""
    root = tmp_path_factory.mktemp("bench-plugins")
    int8 = save_model(conv_model(2, layers=1), root / "dual2" / INT8)
    fields = {"int8_file": INT8, "int8_sha256": sha256_of(int8)}
    write_plugin(
        root / "dual2", task="upscale", scale=2, model=nearest_upscale_model(2), extra_model_fields=fields
    )
    write_plugin(root / "plain2", task="upscale", scale=2, model=nearest_upscale_model(2))
    return root


def test_parse_precisions_keeps_order_once_and_refuses_unknown():
    assert bench_plugins.parse_precisions("auto, fp32,auto") == ("auto", "fp32")
    assert bench_plugins.parse_precisions("int8") == ("int8",)
    for bad in ("auto,bf16", "", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="auto, fp32, int8"):
            bench_plugins.parse_precisions(bad)


def test_variants_of_a_plugin_with_an_int8_model(plugins):
    dual = Plugin(plugins / "dual2")
    variants, notes = bench_plugins.precision_variants(dual, ("auto", "fp32"))
    assert [(v.name("dual2"), v.model, v.path.name) for v in variants] == [
        ("dual2", "int8", INT8),
        ("dual2 (fp32)", "fp32", "model.onnx"),
    ]
    assert notes == []
    # The first precision keeps the plain name whichever it is; int8 next to auto on CPU repeats auto.
    variants, notes = bench_plugins.precision_variants(dual, ("fp32", "auto", "int8"))
    assert [(v.name("dual2"), v.model) for v in variants] == [("dual2", "fp32"), ("dual2 (auto)", "int8")]
    assert notes == ["dual2: int8 runs the same int8 model as auto; no extra row"]


def test_variants_of_a_plugin_without_an_int8_model(plugins):
    plain = Plugin(plugins / "plain2")
    variants, notes = bench_plugins.precision_variants(plain, ("auto", "fp32", "int8"))
    assert [(v.precision, v.name("plain2"), v.model) for v in variants] == [("auto", "plain2", "fp32")]
    assert len(notes) == 2 and all(n.startswith("plain2: no int8 model; no ") for n in notes)
    # Asked for int8 alone, it still gets its one row (on the fp32 model, as photosr run would).
    variants, notes = bench_plugins.precision_variants(plain, ("int8",))
    assert [(v.name("plain2"), v.model) for v in variants] == [("plain2", "fp32")] and notes == []


def test_quality_rows_per_precision_ran_different_models(plugins, tmp_path):
    dual = Plugin(plugins / "dual2")
    photos = [
        (
            f"p{i}.png",
            bench_quality.to_uint8(
                bench_quality.load_photo(write_image(tmp_path / f"p{i}.png", 32, 40, seed=i)).rgb
            ),
        )
        for i in range(2)
    ]
    variants, _ = bench_plugins.precision_variants(dual, ("auto", "fp32"), bench_quality.DEVICE)
    scores = bench_quality.upscale_scores(dual, photos, tmp_path, 1, variants=variants)
    assert list(scores) == ["bicubic (Pillow)", "Lanczos (Pillow)", "dual2", "dual2 (fp32)"]
    assert (scores["dual2"].model, scores["dual2 (fp32)"].model) == ("int8", "fp32")
    # Different model files ran: the conv residual moves every score away from pixel replication's.
    assert scores["dual2"].psnr != pytest.approx(scores["dual2 (fp32)"].psnr, abs=1e-3)
    table = bench_quality.format_table(scores, "bicubic (Pillow)", metric="Y")
    assert "| method | model |" in table and "| bicubic (Pillow) | - |" in table
    assert "| dual2 | int8 |" in table and "| dual2 (fp32) | fp32 |" in table


def test_quality_main_prints_rows_and_footnotes(plugins, tmp_path, capsys):
    data = tmp_path / "photos"
    write_image(data / "a.png", 32, 40)
    folders = [str(plugins / "dual2"), str(plugins / "plain2")]
    argv = ["--data", str(data), "--threads", "1", "--precision", "auto,fp32"]
    argv += [arg for folder in folders for arg in ("--plugin", folder)] + [
        "--only",
        "dual2",
        "--only",
        "plain2",
    ]
    assert bench_quality.main(argv) == 0
    out = capsys.readouterr().out
    assert "| dual2 | int8 |" in out and "| dual2 (fp32) | fp32 |" in out
    assert "| plain2 | fp32 |" in out and "plain2 (fp32)" not in out
    assert "plain2: no int8 model; no fp32 row" in out


def test_speed_rows_per_precision(plugins, monkeypatch, capsys):
    monkeypatch.setattr(bench_speed, "ONE_MP", (48, 32))  # a tiny "1-MP" photo, and no stated target
    monkeypatch.setattr(bench_speed, "TARGETS", {})
    monkeypatch.setattr(bench_speed, "PHOTOS", plugins / "no-photos-here")
    built = []  # (plugin folder, precision) of every plugin pipeline speed.py times

    def recording_pipeline_for(plugin, **options):
        pipeline = bench_plugins.pipeline_for(plugin, **options)
        built.append((plugin.folder.name, pipeline.options.precision))
        return pipeline

    monkeypatch.setattr(bench_speed, "pipeline_for", recording_pipeline_for)
    argv = ["--repeats", "1", "--threads", "1", "--precision", "auto,fp32,int8", "--plugin", str(plugins)]
    assert bench_speed.main(argv + ["--only", "dual2", "--only", "plain2"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| ")}
    assert lines["| plugin"].startswith("| plugin | model | photo |")
    assert lines["| dual2"].startswith("| dual2 | int8 | 48x32 -> ")
    assert lines["| dual2 (fp32)"].startswith("| dual2 (fp32) | fp32 | ")
    assert lines["| plain2"].startswith("| plain2 | fp32 | ")
    assert "| dual2 (int8)" not in lines and "| plain2 (fp32)" not in lines
    assert built == [("dual2", "auto"), ("dual2", "fp32"), ("plain2", "auto")]
    assert "dual2: int8 runs the same int8 model as auto; no extra row" in out
    assert "plain2: no int8 model; no fp32 row" in out and "plain2: no int8 model; no int8 row" in out


def test_parse_ensembles_keeps_order_once_and_refuses_other_sizes():
    assert bench_plugins.parse_ensembles("1, 8,1") == (1, 8)
    for bad in ("3", "1,x", "", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match="1, 2, 4, 8"):
            bench_plugins.parse_ensembles(bad)


def test_quality_rows_per_ensemble_size(plugins, tmp_path, capsys):
    """dual2's int8 model (a conv residual) is not flip-equivariant, so its ensemble row scores differently;
    plain2 (pixel replication) is, so its ensemble row equals its single row."""
    data = tmp_path / "photos"
    write_image(data / "a.png", 32, 40)
    argv = ["--data", str(data), "--threads", "1", "--ensemble", "1,8", "--plugin", str(plugins)]
    assert bench_quality.main(argv + ["--only", "dual2", "--only", "plain2"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split(" | ")[0][2:]: line.split(" | ")[2:4] for line in out.splitlines() if line.startswith("| ")
    }
    assert "ensemble 1,8" in out.splitlines()[0]
    assert rows["dual2"] != rows["dual2 (ensemble 8)"]
    assert rows["plain2"] == rows["plain2 (ensemble 8)"]
