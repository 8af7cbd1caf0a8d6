"""Plugins: manifest parsing, hash verification, the registry, discovery, and `photosr plugins`."""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_models import conv_model, manifest_text, write_plugin

from photosr import plugins as plugins_mod
from photosr.cli import main
from photosr.engine import EngineOptions
from photosr.errors import EngineError, ManifestError, PluginError, PluginNotFoundError
from photosr.plugins import (
    Manifest,
    Plugin,
    PluginRegistry,
    build_default_registry,
    clear_default_registry,
    default_registry,
    load_manifest,
)

SHA = "0" * 64


@pytest.fixture(autouse=True)
def isolated_discovery(monkeypatch, tmp_path):
    """No real user folder, no installed entry points, no bundled plugins unless a test adds them."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(plugins_mod.ENV_PLUGIN_PATH, raising=False)
    monkeypatch.setattr(plugins_mod, "bundled_plugin_dir", lambda: None)
    monkeypatch.setattr(plugins_mod, "_entry_point_folders", lambda registry: iter(()))
    clear_default_registry()
    yield
    clear_default_registry()


def _manifest_file(tmp_path: Path, top: dict | None = None, model: dict | None = None, **tables) -> Path:
    base_top = {"name": "demo", "version": "1.0.0", "task": "upscale"}
    base_model = {"file": "model.onnx", "sha256": SHA, "scale": 2}
    text = manifest_text({**base_top, **(top or {})}, {**base_model, **(model or {})}, **tables)
    path = tmp_path / "photosr.toml"
    path.write_text(text)
    return path


# --- manifest -------------------------------------------------------------------------------------------


def test_manifest_fields_and_defaults(tmp_path):
    m = load_manifest(_manifest_file(tmp_path, metrics={"psnr": 31.2}))
    assert isinstance(m, Manifest)
    assert (m.name, m.version, m.task) == ("demo", "1.0.0", "upscale")
    assert (m.model.scale, m.model.size_multiple, m.model.tile, m.model.tile_overlap) == (2, 1, 0, 16)
    assert m.model.input == "rgb" and m.metrics["psnr"] == 31.2
    assert load_manifest(tmp_path) == m  # a folder works too
    with pytest.raises(TypeError):
        m.metrics["psnr"] = 1.0  # read-only


@pytest.mark.parametrize(
    ("top", "model", "field"),
    [
        ({"name": "Bad Name"}, {}, "name"),
        ({"task": "sharpen"}, {}, "task"),
        ({"version": 3}, {}, "version"),
        ({"colour": "red"}, {}, "colour"),
        ({}, {"scale": 0}, "model.scale"),
        ({}, {"scale": "2"}, "model.scale"),
        ({}, {"sha256": "abc"}, "model.sha256"),
        ({}, {"file": "../escape.onnx"}, "model.file"),
        ({}, {"scal": 2}, "model.scal"),
        ({}, {"input": "bgr"}, "model.input"),
        ({}, {"tile": 16, "tile_overlap": 16}, "model.tile"),
        ({}, {"tile": 16, "tile_overlap": 14, "size_multiple": 4}, "model.tile"),
        ({"task": "restore"}, {"scale": 2}, "model.scale"),
        ({}, {"ensemble": 3}, "model.ensemble"),
        ({}, {"ensemble": 0}, "model.ensemble"),
        ({}, {"ensemble": "2"}, "model.ensemble"),
    ],
)
def test_manifest_errors_name_file_and_field(tmp_path, top, model, field):
    path = _manifest_file(tmp_path, top, model)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert f"field '{field}'" in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_field_suggests_the_close_one(tmp_path):
    with pytest.raises(ManifestError, match="did you mean 'model.scale'"):
        load_manifest(_manifest_file(tmp_path, model={"scal": 2}))


def test_missing_fields_are_named(tmp_path):
    path = tmp_path / "photosr.toml"
    path.write_text('name = "x"\nversion = "1"\ntask = "restore"\n')
    with pytest.raises(ManifestError, match="field 'model': missing"):
        load_manifest(path)
    path.write_text(
        'name = "x"\ntask = "restore"\n[model]\nfile = "m.onnx"\nsha256 = "' + SHA + '"\nscale = 1\n'
    )
    with pytest.raises(ManifestError, match="field 'version': missing"):
        load_manifest(path)


def test_invalid_toml_and_missing_manifest(tmp_path):
    (tmp_path / "photosr.toml").write_text("name = [unclosed")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(tmp_path)
    with pytest.raises(PluginError, match="no photosr.toml"):
        load_manifest(tmp_path / "elsewhere")


# --- plugin and verification --------------------------------------------------------------------------------


def test_plugin_paths_and_verify(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "up-x2", scale=2))
    assert plugin.name == "up-x2"
    assert plugin.model_path == tmp_path / "up-x2" / "model.onnx"
    assert plugin.model_card == tmp_path / "up-x2" / "README.md"
    plugin.verify()


def test_hash_mismatch_is_refused(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "bad", sha256="f" * 64))
    with pytest.raises(PluginError, match=r"model\.onnx: sha256 mismatch"):
        plugin.verify()


def test_model_changed_after_verify_is_caught_by_forced_check(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "p"))
    plugin.verify()
    plugin.model_path.write_bytes(b"tampered")
    plugin.verify()  # cached: checked once per plugin object
    with pytest.raises(PluginError, match="mismatch"):
        plugin.verify(force=True)


def test_missing_model_file_is_a_plugin_error(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "p"))
    plugin.model_path.unlink()
    with pytest.raises(PluginError, match="cannot read model"):
        plugin.verify()


def test_session_verifies_before_loading(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "bad", sha256="f" * 64))
    session = plugin.session(EngineOptions(device="cpu"))
    assert not session.created
    with pytest.raises(PluginError, match="mismatch"):
        session.run(np.zeros((1, 3, 4, 4), np.float32))
    assert not session.created


def test_infer_uses_manifest_scale_and_tiling(tmp_path):
    plugin = Plugin(write_plugin(tmp_path / "conv2", scale=2, model=conv_model(2), tile=16, tile_overlap=8))
    session = plugin.session(EngineOptions(device="cpu", threads=1))
    image = np.random.default_rng(0).random((30, 22, 3), dtype=np.float32)
    out = plugin.infer(session, image)
    whole = np.clip(session.run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0), 0, 1)
    assert out.shape == (60, 44, 3)
    assert np.abs(out - whole).max() <= 1 / 255


def test_corrupt_model_with_right_hash_is_an_engine_error(tmp_path):
    folder = write_plugin(tmp_path / "junk", sha256=hashlib.sha256(b"junk").hexdigest())
    (folder / "model.onnx").write_bytes(b"junk")
    plugin = Plugin(folder)
    with pytest.raises(EngineError, match="junk"):
        plugin.session().session()


# --- registry ---------------------------------------------------------------------------------------------


def _plugins(tmp_path: Path, *specs: tuple[str, str, int, str]) -> list[Plugin]:
    return [
        Plugin(
            write_plugin(tmp_path / f"{name}-{version}", name=name, task=task, scale=scale, version=version)
        )
        for name, task, scale, version in specs
    ]


def test_duplicate_add_is_refused_atomically(tmp_path):
    a, b, a_again = _plugins(
        tmp_path, ("a", "restore", 1, "1.0"), ("b", "restore", 1, "1.0"), ("a", "restore", 1, "2.0")
    )
    registry = PluginRegistry([a])
    with pytest.raises(PluginError, match="'a' is already registered"):
        registry.add(b, a_again)
    assert registry.names() == ["a"]  # b was not added either
    with pytest.raises(PluginError):
        PluginRegistry().add(b, b)


def test_get_by_name_or_path(tmp_path):
    (plugin,) = _plugins(tmp_path, ("a", "restore", 1, "1.0"))
    other = write_plugin(tmp_path / "loose", task="restore", scale=1)
    registry = PluginRegistry([plugin])
    assert registry.get("a") is plugin
    assert registry.get(other).name == "loose"
    assert registry.get(str(other / "photosr.toml")).name == "loose"
    assert "loose" not in registry  # loading by path does not register
    with pytest.raises(PluginNotFoundError, match="did you mean a"):
        registry.get("ab")
    with pytest.raises(PluginNotFoundError, match="installed: a"):
        registry.get("zzz")


def test_find_prefers_exact_scale_then_larger_then_version(tmp_path):
    registry = PluginRegistry(
        _plugins(
            tmp_path,
            ("up2", "upscale", 2, "1.0"),
            ("up4-old", "upscale", 4, "1.9"),
            ("up4-new", "upscale", 4, "1.10"),
            ("fix", "restore", 1, "1.0"),
        )
    )
    assert registry.find("upscale", 2).name == "up2"
    assert registry.find("upscale", 4).name == "up4-new"
    assert registry.find("upscale", 3).name == "up4-new"  # larger, then scaled down
    assert registry.find("upscale", 8).name == "up4-new"  # nearest smaller
    assert registry.find("restore").name == "fix"
    with pytest.raises(PluginNotFoundError, match="colorize"):
        registry.find("colorize")


def test_iteration_is_sorted_by_name(tmp_path):
    registry = PluginRegistry(_plugins(tmp_path, ("zz", "restore", 1, "1"), ("aa", "restore", 1, "1")))
    assert [p.name for p in registry] == ["aa", "zz"] and len(registry) == 2


# --- discovery -----------------------------------------------------------------------------------------------


def test_discovery_from_plugin_path(monkeypatch, tmp_path):
    shelf = tmp_path / "shelf"
    write_plugin(shelf / "up-x2", scale=2)
    write_plugin(shelf / "up-x4", scale=4)
    single = write_plugin(tmp_path / "single", task="restore", scale=1)
    (shelf / "not-a-plugin").mkdir()
    monkeypatch.setenv(plugins_mod.ENV_PLUGIN_PATH, f"{shelf}{plugins_mod.os.pathsep}{single}")
    registry = default_registry()
    assert registry.names() == ["single", "up-x2", "up-x4"]
    assert registry.get("up-x4").source == "PHOTOSR_PLUGIN_PATH"
    assert default_registry() is registry  # cached
    clear_default_registry()
    assert default_registry() is not registry


def test_broken_plugin_is_reported_not_raised(monkeypatch, tmp_path):
    shelf = tmp_path / "shelf"
    write_plugin(shelf / "good", scale=2)
    write_plugin(shelf / "bad", scale=2, extra_model_fields={"colour": "red"})
    monkeypatch.setenv(plugins_mod.ENV_PLUGIN_PATH, f"{shelf}{plugins_mod.os.pathsep}{tmp_path / 'missing'}")
    registry = build_default_registry()
    assert registry.names() == ["good"]
    problems = {path.name: str(err) for path, err in registry.broken}
    assert "field 'model.colour'" in problems["bad"]
    assert "does not exist" in problems["missing"]


def test_first_source_wins_and_later_is_shadowed(monkeypatch, tmp_path):
    mine = write_plugin(tmp_path / "mine" / "up", scale=2, version="2.0.0")
    write_plugin(tmp_path / "bundled" / "up", scale=2, version="1.0.0")
    monkeypatch.setenv(plugins_mod.ENV_PLUGIN_PATH, str(mine))
    monkeypatch.setattr(plugins_mod, "bundled_plugin_dir", lambda: tmp_path / "bundled")
    registry = build_default_registry()
    assert registry.get("up").manifest.version == "2.0.0"
    assert [path for path, _ in registry.shadowed] == [tmp_path / "bundled" / "up"]


def test_user_data_dir_is_searched(tmp_path):
    write_plugin(plugins_mod.user_plugin_dir() / "mine", task="restore", scale=1)
    registry = build_default_registry()
    assert registry.get("mine").source == "user"


def test_entry_points_resolve_paths_modules_and_callables(monkeypatch, tmp_path):
    write_plugin(tmp_path / "by-path" / "p1", task="restore", scale=1)
    write_plugin(tmp_path / "by-module" / "p2", task="restore", scale=1)
    write_plugin(tmp_path / "by-call" / "p3", task="restore", scale=1)
    module = types.ModuleType("shelf")
    module.__file__ = str(tmp_path / "by-module" / "__init__.py")
    targets = {
        "a": str(tmp_path / "by-path"),
        "b": module,
        "c": lambda: [tmp_path / "by-call"],
        "d": 42,
    }

    class FakeEntryPoint:
        def __init__(self, name):
            self.name, self.value = name, f"pkg:{name}"

        def load(self):
            if self.name == "e":
                raise ImportError("no module named pkg")
            return targets[self.name]

    import importlib.metadata

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [FakeEntryPoint(n) for n in "abcde"]
    )
    monkeypatch.setattr(plugins_mod, "_entry_point_folders", _real_entry_point_folders)
    registry = build_default_registry()
    assert registry.names() == ["p1", "p2", "p3"]
    errors = " ".join(str(err) for _, err in registry.broken)
    assert "entry point d" in errors and "entry point e" in errors and "no module named pkg" in errors


_real_entry_point_folders = plugins_mod._entry_point_folders


def test_bundled_folder_is_found_as_a_package():
    from importlib.resources import files

    assert Path(str(files("photosr.bundled"))).is_dir()
    assert _real_bundled_dir() is not None


_real_bundled_dir = plugins_mod.bundled_plugin_dir


# --- CLI ---------------------------------------------------------------------------------------------------


@pytest.fixture
def shelf(monkeypatch, tmp_path) -> Path:
    shelf = tmp_path / "shelf"
    write_plugin(shelf / "up-x2", scale=2, metrics={"psnr_x2": 28.25})
    write_plugin(shelf / "restore-1", task="restore", scale=1)
    write_plugin(shelf / "broken", extra_model_fields={"colour": "red"})
    monkeypatch.setenv(plugins_mod.ENV_PLUGIN_PATH, str(shelf))
    return shelf


def _cli(*args: str):
    return CliRunner().invoke(main, ["plugins", *args])


def test_cli_list_table(shelf):
    result = _cli("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "TASK", "SCALE", "INT8", "SOURCE", "FOLDER"]
    assert lines[1].split()[:4] == ["restore-1", "1.0.0", "restore", "1"]
    assert lines[2].split()[:4] == ["up-x2", "1.0.0", "upscale", "2"]
    assert str(shelf / "up-x2") in lines[2]
    assert any(line.startswith("broken:") and "model.colour" in line for line in lines)


def test_cli_list_json(shelf):
    result = _cli("list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [p["name"] for p in data["plugins"]] == ["restore-1", "up-x2"]
    assert data["plugins"][1]["scale"] == 2
    assert data["broken"][0]["path"] == str(shelf / "broken")


def test_cli_list_empty_says_where_it_looked():
    result = _cli("list")
    assert result.exit_code == 0 and "no plugins installed" in result.output
    assert f"searched: {plugins_mod.user_plugin_dir()} (user)" in result.output


def test_cli_show(shelf):
    result = _cli("show", "up-x2")
    assert result.exit_code == 0, result.output
    assert "task: upscale" in result.output
    assert "psnr_x2: 28.25" in result.output
    assert f"model_card: {shelf / 'up-x2' / 'README.md'}" in result.output
    data = json.loads(_cli("show", "up-x2", "--json").output)
    assert data["model"]["scale"] == 2 and data["metrics"] == {"psnr_x2": 28.25}


def test_cli_show_unknown_plugin(shelf):
    result = _cli("show", "nope")
    assert result.exit_code == 1
    assert "no plugin named 'nope'" in result.output


def test_cli_verify_all_counts_broken(shelf):
    result = _cli("verify")
    assert result.exit_code == 1  # the broken manifest fails verification of "all"
    assert "ok     up-x2" in result.output and "ok     restore-1" in result.output


def test_cli_verify_named_ok_and_mismatch(shelf):
    assert _cli("verify", "up-x2").exit_code == 0
    (shelf / "up-x2" / "model.onnx").write_bytes(b"swapped")
    result = _cli("verify", "up-x2", "restore-1")
    assert result.exit_code == 1
    assert "FAILED up-x2" in result.output and "sha256 mismatch" in result.output
    assert "ok     restore-1" in result.output


def test_cli_verify_unknown_name_fails(shelf):
    result = _cli("verify", "nope")
    assert result.exit_code == 1 and "FAILED nope" in result.output


def test_show_json_handles_nested_free_form_tables(monkeypatch, tmp_path):
    folder = write_plugin(tmp_path / "shelf" / "deep", task="restore", scale=1)
    text = (folder / "photosr.toml").read_text().replace("[metrics]\npsnr = 30.5\n", "")
    text += "\n[metrics.validation]\nimages = 12\npsnr = [30.1, 31.2]\ntrained = 2026-11-22T09:00:00Z\n"
    (folder / "photosr.toml").write_text(text)
    monkeypatch.setenv(plugins_mod.ENV_PLUGIN_PATH, str(tmp_path / "shelf"))
    data = json.loads(_cli("show", "deep", "--json").output)
    assert data["metrics"]["validation"]["psnr"] == [30.1, 31.2]
    assert data["metrics"]["validation"]["trained"].startswith("2026-11-22")
    assert "images: 12" in _cli("show", "deep").output
