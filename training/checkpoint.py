"""Checkpoints: state dicts, the config and counters in one `torch.save` file, loaded with
`weights_only=True` (never a pickled module), written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from photosr.errors import UsageError

from .config import TrainConfig, config_from_dict, config_to_dict
from .models import build_model

FORMAT = "photosr-checkpoint/1"


def save_checkpoint(path: Path, *, cfg: TrainConfig, arch: str, model: nn.Module, **extra: Any) -> Path:
    """Write model weights (+ `ema`, `optimizer`, `step`, ... as given) next to the config, atomically."""
    payload = {
        "format": FORMAT,
        "config": config_to_dict(cfg),
        "arch": arch,
        "hparams": dict(model.hparams),
        "model": model.state_dict(),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file, or the `checkpoint.pt` inside a plugin or run folder."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "checkpoint.pt", path / "last.pt"]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise UsageError("no checkpoint here", path) from err
    except (RuntimeError, OSError, ValueError) as err:  # torch raises RuntimeError on corrupt files
        raise UsageError(f"not a readable checkpoint: {err}", path) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"not a photosr checkpoint (expected format {FORMAT})", path)
    payload["path"] = str(path)
    return payload


def checkpoint_config(payload: dict[str, Any]) -> TrainConfig:
    return config_from_dict(payload["config"], source=payload.get("path", "checkpoint"))


def model_from_checkpoint(payload: dict[str, Any], *, use_ema: bool = True) -> nn.Module:
    """Rebuild the architecture from its recorded hyperparameters and load the (EMA) weights."""
    hparams = dict(payload["hparams"])
    model = build_model(payload["arch"], scale=hparams.pop("scale"), **hparams)
    weights = payload.get("ema") if use_ema and payload.get("ema") else payload["model"]
    model.load_state_dict(weights)
    return model.eval()


__all__ = ["FORMAT", "checkpoint_config", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]
