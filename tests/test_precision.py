"""int8 models next to fp32 ones: the manifest keys, which file a session runs, its hash check, and
`--precision` / `precision=` through the pipeline, the module API and the CLI.

The plugin's fp32 model is an identity and its "int8" model halves the input (not really quantized), so
the output pixels say which file ran.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from conftest import make_rgb, write_image
from onnx import TensorProto, helper, numpy_helper
from onnx_models import IR_VERSION, OPSET, manifest_text, save_model, sha256_of, write_plugin
from PIL import Image

import photosr.pipeline
import photosr.plugins
from photosr import engine
from photosr.cli import main
from photosr.engine import EngineOptions
from photosr.errors import ManifestError, PluginError, UsageError
from photosr.image import Photo, SourceInfo
from photosr.pipeline import Pipeline, ProcessOptions, process
from photosr.plugins import Plugin, PluginRegistry, load_manifest

SHA = "0" * 64
INT8 = "model.int8.onnx"
CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def half_model() -> onnx.ModelProto:
    """output = input * 0.5: the stand-in "int8" model, easy to tell from the identity."""
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, "H", "W"]) for n in ("input", "output")
    ]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "half"], ["output"])], "half", io[:1], io[1:], initializer=[half]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_dual_plugin(folder: Path, *, int8_sha256: str | None = None) -> Path:
    """A restore plugin: model.onnx = identity, model.int8.onnx = halving (sha256 given to break it)."""
    int8 = save_model(half_model(), folder / INT8)
    fields = {"int8_file": INT8, "int8_sha256": int8_sha256 or sha256_of(int8)}
    return write_plugin(folder, task="restore", scale=1, extra_model_fields=fields)


@pytest.fixture
def cpu_only(monkeypatch):
    """onnxruntime without CUDA, on a CPU with int8 dot products (VNNI)."""
    monkeypatch.setattr(engine, "_ort_available", lambda: CPU_ONLY)
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: True)


@pytest.fixture
def cuda_present(monkeypatch):
    """onnxruntime claims CUDA; sessions still run on the CPU (this machine has no GPU)."""
    monkeypatch.setattr(engine, "_ort_available", lambda: WITH_CUDA)
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: True)
    real = ort.InferenceSession
    monkeypatch.setattr(
        ort,
        "InferenceSession",
        lambda path, **kw: real(path, sess_options=kw["sess_options"], providers=[engine.CPU]),
    )


@pytest.fixture
def dual(tmp_path: Path) -> Plugin:
    return Plugin(write_dual_plugin(tmp_path / "dual"))


# --- manifest -------------------------------------------------------------------------------------------


def _manifest(tmp_path: Path, **model) -> Path:
    top = {"name": "demo", "version": "1.0.0", "task": "restore"}
    path = tmp_path / "photosr.toml"
    path.write_text(manifest_text(top, {"file": "model.onnx", "sha256": SHA, "scale": 1, **model}))
    return path


def test_manifest_with_both_int8_keys(tmp_path):
    m = load_manifest(_manifest(tmp_path, int8_file=INT8, int8_sha256="a" * 64))
    assert (m.model.int8_file, m.model.int8_sha256) == (INT8, "a" * 64)
    assert m.to_dict()["model"]["int8_file"] == INT8


def test_manifest_without_int8_keys_has_none(tmp_path):
    m = load_manifest(_manifest(tmp_path))
    assert (m.model.int8_file, m.model.int8_sha256) == ("", "")


@pytest.mark.parametrize(
    ("model", "field", "reason"),
    [
        ({"int8_file": INT8}, "model.int8_sha256", "missing"),
        ({"int8_sha256": "a" * 64}, "model.int8_file", "missing"),
        ({"int8_file": INT8, "int8_sha256": "ABC"}, "model.int8_sha256", "64 lower-case hex"),
        ({"int8_file": INT8, "int8_sha256": "A" * 64}, "model.int8_sha256", "64 lower-case hex"),
        ({"int8_file": "../model.int8.onnx", "int8_sha256": "a" * 64}, "model.int8_file", "inside"),
        ({"int8_file": "sub/../../x.onnx", "int8_sha256": "a" * 64}, "model.int8_file", "inside"),
        ({"int8_file": "/abs/model.int8.onnx", "int8_sha256": "a" * 64}, "model.int8_file", "inside"),
        ({"int8_file": "", "int8_sha256": "a" * 64}, "model.int8_file", "inside"),
        ({"int8_file": 8, "int8_sha256": "a" * 64}, "model.int8_file", "string"),
        ({"int8_file": "model.onnx", "int8_sha256": "a" * 64}, "model.int8_file", "differ"),
    ],
)
def test_bad_int8_keys_name_file_and_field(tmp_path, model, field, reason):
    path = _manifest(tmp_path, **model)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and reason in message


# --- which file runs --------------------------------------------------------------------------------------


def test_auto_on_cpu_uses_int8(dual, cpu_only):
    assert dual.model_path_for(EngineOptions()) == dual.folder / INT8
    assert dual.model_path_for(EngineOptions(device="cuda")) == dual.folder / INT8  # no CUDA: CPU it is


def test_auto_stays_on_fp32_where_int8_convs_may_saturate(dual, cpu_only, monkeypatch):
    monkeypatch.setattr(photosr.plugins, "cpu_int8_is_exact", lambda: False)  # x86 without VNNI
    assert dual.model_path_for(EngineOptions()) == dual.model_path
    assert dual.model_path_for(EngineOptions(precision="int8")) == dual.folder / INT8  # asked for


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "exact"),
    [
        ("x86_64", "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n", True),
        ("x86_64", "flags\t\t: fpu sse2 avx2 avx_vnni\n", True),
        ("x86_64", "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw\n", False),  # AVX-512 without VNNI
        ("AMD64", "", False),  # Windows: no /proc/cpuinfo to ask
        ("aarch64", "", True),
        ("arm64", "", True),
    ],
)
def test_int8_dot_product_is_read_from_the_cpu_flags(machine, cpuinfo, exact):
    assert engine.int8_dot_product(machine, cpuinfo) is exact


def test_auto_with_cuda_uses_fp32_unless_device_is_cpu(dual, cuda_present):
    assert dual.model_path_for(EngineOptions()) == dual.model_path
    assert dual.model_path_for(EngineOptions(device="cuda")) == dual.model_path
    assert dual.model_path_for(EngineOptions(device="cpu")) == dual.folder / INT8


@pytest.mark.parametrize("providers", [CPU_ONLY, WITH_CUDA])
def test_fp32_and_int8_are_obeyed_on_any_device(dual, monkeypatch, providers):
    monkeypatch.setattr(engine, "_ort_available", lambda: providers)
    assert dual.model_path_for(EngineOptions(precision="fp32")) == dual.model_path
    assert dual.model_path_for(EngineOptions(precision="int8")) == dual.folder / INT8


def test_int8_asked_but_absent_uses_fp32_and_says_so_once(tmp_path, cpu_only, caplog):
    plain = Plugin(write_plugin(tmp_path / "plain", task="restore", scale=1))
    assert plain.int8_model_path is None and plain.model_paths == (plain.model_path,)
    with caplog.at_level(logging.INFO, logger="photosr.plugins"):
        for _ in range(3):
            assert plain.model_path_for(EngineOptions(precision="int8")) == plain.model_path
        assert plain.model_path_for(EngineOptions()) == plain.model_path
    said = [r for r in caplog.records if "no int8 model" in r.message]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "plain" in said[0].message


def test_engine_options_refuse_unknown_precision():
    with pytest.raises(UsageError, match="precision"):
        EngineOptions(precision="fp16")


# --- hash checks ------------------------------------------------------------------------------------------


def test_session_runs_and_verifies_the_file_it_uses(dual, cpu_only):
    x = np.full((1, 3, 4, 4), 0.8, np.float32)
    int8 = dual.session(EngineOptions(threads=1))
    fp32 = dual.session(EngineOptions(threads=1, precision="fp32"))
    assert int8.model_path == dual.folder / INT8 and fp32.model_path == dual.model_path
    np.testing.assert_allclose(int8.run(x), 0.4, atol=1e-6)
    np.testing.assert_allclose(fp32.run(x), 0.8, atol=1e-6)
    # Verified once per file: tampering after the check is only caught by a forced one.
    (dual.folder / INT8).write_bytes(b"tampered")
    dual.verify(dual.folder / INT8)
    with pytest.raises(PluginError, match=r"model\.int8\.onnx: sha256 mismatch"):
        dual.verify(dual.folder / INT8, force=True)
    dual.verify(force=True)  # the fp32 model is still fine


def test_int8_hash_mismatch_names_the_int8_file_and_fp32_still_runs(tmp_path, cpu_only):
    plugin = Plugin(write_dual_plugin(tmp_path / "bad", int8_sha256="f" * 64))
    x = np.full((1, 3, 4, 4), 0.8, np.float32)
    session = plugin.session(EngineOptions(threads=1))
    with pytest.raises(PluginError) as info:
        session.run(x)
    assert str(plugin.folder / INT8) in str(info.value) and "mismatch" in str(info.value)
    assert not session.created
    np.testing.assert_allclose(plugin.session(EngineOptions(precision="fp32")).run(x), 0.8, atol=1e-6)


def test_verify_refuses_a_file_the_manifest_does_not_name(dual):
    with pytest.raises(PluginError, match="not a model file"):
        dual.verify(dual.folder / "README.md")


# --- through the pipeline, the API and the CLI ---------------------------------------------------------------


def _photo() -> Photo:
    return Photo(make_rgb(12, 16).astype(np.float32) / 255, None, SourceInfo())


def _ratio(out: np.ndarray, src: np.ndarray) -> float:
    """Output / input brightness: ~1.0 after the fp32 identity, ~0.5 after the halving "int8" model."""
    return float(np.mean(out) / np.mean(src))


@pytest.fixture
def dual_registry(tmp_path: Path) -> PluginRegistry:
    return PluginRegistry([Plugin(write_dual_plugin(tmp_path / "dual"))])


@pytest.mark.parametrize(
    ("providers", "precision", "ratio"),
    [
        ("cpu_only", "auto", 0.5),
        ("cpu_only", "fp32", 1.0),
        ("cpu_only", "int8", 0.5),
        ("cuda_present", "auto", 1.0),
        ("cuda_present", "int8", 0.5),
    ],
)
def test_pipeline_runs_the_chosen_file(request, dual_registry, providers, precision, ratio):
    request.getfixturevalue(providers)
    photo = _photo()
    options = ProcessOptions(plugins=("dual",), precision=precision, threads=1)
    out = Pipeline(options, dual_registry).process(photo)
    assert _ratio(out.rgb, photo.rgb) == pytest.approx(ratio, abs=0.02)


def test_pipeline_refuses_a_bad_int8_model_up_front_but_fp32_runs(tmp_path, cpu_only):
    registry = PluginRegistry([Plugin(write_dual_plugin(tmp_path / "dual", int8_sha256="f" * 64))])
    with pytest.raises(PluginError, match=r"model\.int8\.onnx: sha256 mismatch"):
        Pipeline(ProcessOptions(plugins=("dual",)), registry)
    photo = _photo()
    out = Pipeline(ProcessOptions(plugins=("dual",), precision="fp32"), registry).process(photo)
    assert _ratio(out.rgb, photo.rgb) == pytest.approx(1.0, abs=0.02)


def test_process_options_refuse_unknown_precision():
    with pytest.raises(UsageError, match="precision must be one of auto, fp32, int8"):
        ProcessOptions(precision="fp16")


@pytest.fixture
def use_dual(monkeypatch, dual_registry, cpu_only):
    monkeypatch.setattr(photosr.plugins, "default_registry", lambda: dual_registry)
    photosr.pipeline._cached_pipeline.cache_clear()
    yield dual_registry
    photosr.pipeline._cached_pipeline.cache_clear()


def test_module_api_takes_precision(use_dual):
    image = Image.fromarray(make_rgb(12, 16))
    src = np.asarray(image, np.float32)
    for precision, ratio in (("auto", 0.5), ("fp32", 1.0), ("int8", 0.5)):
        out = np.asarray(process(image, tasks="restore", precision=precision, threads=1), np.float32)
        assert _ratio(out, src) == pytest.approx(ratio, abs=0.02), precision


@pytest.mark.parametrize(("flags", "ratio"), [([], 0.5), (["--precision", "fp32"], 1.0)])
def test_cli_run_precision(use_dual, tmp_path, flags, ratio):
    src = write_image(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--threads", "1", "--json", *flags])
    assert result.exit_code == 0, result.output
    with Image.open(out / "a.png") as done, Image.open(src) as before:
        assert _ratio(np.asarray(done, np.float32), np.asarray(before, np.float32)) == pytest.approx(
            ratio, abs=0.02
        )


def test_cli_run_refuses_unknown_precision(use_dual, tmp_path):
    src = write_image(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(tmp_path / "out"), "--precision", "fp16"])
    assert result.exit_code == 2 and "--precision" in result.output


def test_watch_takes_precision_like_run():
    from photosr.cli.watch import watch

    option = next(p for p in watch.params if p.name == "precision")
    assert list(option.type.choices) == ["auto", "fp32", "int8"] and option.default == "auto"


def test_plugins_list_and_show_tell_about_the_int8_model(monkeypatch, tmp_path):
    shelf = tmp_path / "shelf"
    write_dual_plugin(shelf / "dual")
    write_plugin(shelf / "plain", task="restore", scale=1)
    monkeypatch.setenv(photosr.plugins.ENV_PLUGIN_PATH, str(shelf))
    monkeypatch.setattr(photosr.plugins, "bundled_plugin_dir", lambda: None)
    monkeypatch.setattr(photosr.plugins, "_entry_point_folders", lambda registry: iter(()))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    photosr.plugins.clear_default_registry()
    try:
        runner = CliRunner()
        lines = runner.invoke(main, ["plugins", "list"]).output.splitlines()
        int8_column = lines[0].split().index("INT8")
        assert lines[1].split()[0] == "dual" and lines[1].split()[int8_column] == INT8
        assert lines[2].split()[0] == "plain" and lines[2].split()[int8_column] == "-"
        listed = json.loads(runner.invoke(main, ["plugins", "list", "--json"]).output)["plugins"]
        assert [p["int8"] for p in listed] == [INT8, None]
        shown = runner.invoke(main, ["plugins", "show", "dual"]).output
        assert f"int8_model_path: {shelf / 'dual' / INT8}" in shown
        assert "int8_model_path: -" in runner.invoke(main, ["plugins", "show", "plain"]).output
        assert runner.invoke(main, ["plugins", "verify", "dual"]).exit_code == 0
        (shelf / "dual" / INT8).write_bytes(b"swapped")
        result = runner.invoke(main, ["plugins", "verify", "dual"])
        assert result.exit_code == 1 and f"{shelf / 'dual' / INT8}: sha256 mismatch" in result.output
    finally:
        photosr.plugins.clear_default_registry()
