"""Typed training configuration: one frozen dataclass, loaded from TOML, overridden from the CLI.

Unknown keys and values of the wrong type are errors that name the file and the key, so a typo in a
config never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photosr.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TASKS = ("upscale", "restore", "colorize", "dewatermark")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; recorded in checkpoints and plugin manifests."""

    task: str = "upscale"
    scale: int = 0  # output/input size ratio; 0 = by task (4 for upscale, else 1)
    name: str = ""  # plugin name; "" = derived from task and scale
    data: tuple[str, ...] = ()  # folders (or files) of training photos, searched recursively
    val: str | None = None  # held-out folder; None = no validation
    recipe: str | None = None  # crappification: preset, TOML recipe or file.py:func / module:func
    val_recipe: str | None = None  # damage of the validation photos and the plugin's scores; None = recipe
    arch: str = "auto"  # auto | plain | resunet | effunet
    model: dict[str, Any] = field(default_factory=dict)  # keyword hyperparameters of the architecture
    loss: dict[str, Any] = field(default_factory=dict)  # fields of training.losses.LossConfig
    steps: int = 0  # budget in optimizer steps (0 = none)
    minutes: float = 0.0  # budget in wall-clock minutes (0 = none); the first budget reached ends the run
    batch_size: int = 16
    patch: int = 48  # side of the model's input patch (LR side for upscaling)
    lr: float = 5e-4  # peak learning rate of the one-cycle schedule
    weight_decay: float = 1e-4
    pct_start: float = 0.05  # fraction of the budget spent warming up
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    ema_decay: float = 0.999  # 0 = no EMA
    precision: str = "auto"  # auto = bf16 autocast on CPUs that have it, AMP on CUDA
    channels_last: bool = True
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 = torch default
    workers: int = 1  # DataLoader worker processes
    seed: int = 0
    max_images: int = 0  # use at most this many training photos (0 = all)
    log_every: int = 100
    val_every: int = 1000
    val_crops: int = 10  # in-training validation: this many centre crops of the held-out photos
    val_crop: int = 192  # side of each validation crop, in target (HR) pixels
    checkpoint_every: int = 1000
    unfreeze_at: float = 0.25  # effunet: fraction of the budget trained with the encoder frozen
    init_from: str | None = None  # plugin folder or checkpoint whose weights start this run
    qat: bool = False  # convs round inputs, outputs, weights as the --int8 model will (training/qat.py)

    def __post_init__(self) -> None:
        if self.scale == 0:
            object.__setattr__(self, "scale", 4 if self.task == "upscale" else 1)
        _check_values(self)

    @property
    def plugin_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.task}-x{self.scale}" if self.task == "upscale" else self.task


def _check_values(cfg: TrainConfig) -> None:
    if cfg.task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.scale < 1 or (cfg.task != "upscale" and cfg.scale != 1):
        raise UsageError(f"scale {cfg.scale} does not fit task {cfg.task!r} (only upscale has scale > 1)")
    for key in ("batch_size", "patch", "log_every", "val_every", "checkpoint_every"):
        if getattr(cfg, key) < 1:
            raise UsageError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.steps < 0 or cfg.minutes < 0:
        raise UsageError("steps and minutes must not be negative")
    if not 0 <= cfg.ema_decay < 1 or not 0 <= cfg.pct_start < 1 or not 0 <= cfg.unfreeze_at < 1:
        raise UsageError("ema_decay, pct_start and unfreeze_at must be in [0, 1)")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(key: str, value: Any, kind: Any, source: str) -> Any:
    """Check one value against its field type; ints are accepted where floats are expected."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise UsageError(f"{key} must be a list of strings, got {value!r}", source)
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{key} must be a table, got {value!r}", source)
        return dict(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{key} must be {kind.__name__}, got {value!r}", source)
    return value


def config_from_dict(
    values: dict[str, Any], *, source: str = "config", base: TrainConfig | None = None
) -> TrainConfig:
    """A config from plain values (a TOML table, CLI options); unknown keys are errors."""
    types_ = _field_types()
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise UsageError(f"unknown config key(s): {', '.join(unknown)}", source)
    checked = {key: _coerce(key, value, types_[key], source) for key, value in values.items()}
    if "task" in checked and "scale" not in checked:
        checked["scale"] = 0  # a new task without a scale takes that task's default scale
    return dataclasses.replace(base or TrainConfig(), **checked)


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a TOML config; `overrides` (CLI options that were given) win over the file."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read config: {err.strerror}", path) from err
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"invalid TOML: {err}", path) from err
    cfg = config_from_dict(values, source=str(path))
    return config_from_dict(overrides, source="command line", base=cfg) if overrides else cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain values (TOML/JSON friendly: tuples become lists, None values are dropped)."""
    out = {}
    for key, value in dataclasses.asdict(cfg).items():
        if value is None:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


__all__ = ["PRECISIONS", "TASKS", "TrainConfig", "config_from_dict", "config_to_dict", "load_config"]
