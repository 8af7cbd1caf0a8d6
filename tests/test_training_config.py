"""TrainConfig: TOML in, checked overrides, unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from photosr.training.config import TrainConfig, config_from_dict, config_to_dict, load_config  # noqa: E402

from photosr.errors import UsageError  # noqa: E402


def test_toml_loads_and_cli_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('task = "upscale"\nscale = 2\ndata = ["a", "b"]\nminutes = 5\n[model]\nchannels = 32\n')
    cfg = load_config(path, steps=100, minutes=1.5)
    assert (cfg.task, cfg.scale, cfg.data, cfg.steps, cfg.minutes) == ("upscale", 2, ("a", "b"), 100, 1.5)
    assert cfg.model == {"channels": 32}


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("lerning_rate = 0.1\n")
    with pytest.raises(UsageError, match="lerning_rate") as info:
        load_config(path)
    assert "bad.toml" in str(info.value)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"steps": "10"}, "steps must be int"),
        ({"steps": True}, "steps must be int"),
        ({"data": [1, 2]}, "data must be a list of strings"),
        ({"model": 3}, "model must be a table"),
        ({"task": "paint"}, "task must be one of"),
        ({"task": "restore", "scale": 2}, "scale 2 does not fit"),
        ({"precision": "fp8"}, "precision"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"ema_decay": 1.0}, "ema_decay"),
    ],
)
def test_bad_values_are_usage_errors(values: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        config_from_dict(values)


def test_scale_follows_task_and_roundtrips() -> None:
    assert TrainConfig().scale == 4
    assert config_from_dict({"task": "restore"}).scale == 1
    assert config_from_dict({"lr": 1}).lr == 1.0  # ints accepted for floats
    cfg = config_from_dict({"task": "upscale", "scale": 2, "data": "photos", "val": None})
    assert cfg.data == ("photos",)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert (
        cfg.plugin_name == "upscale-x2" and config_from_dict({"task": "colorize"}).plugin_name == "colorize"
    )


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TrainConfig().lr = 1.0  # type: ignore[misc]
