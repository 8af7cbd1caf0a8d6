"""Architectures photosr trains, by name. Hyperparameters are keyword-only and recorded in `.hparams`
(they go into checkpoints and plugin manifests, so a model can be rebuilt from its record alone)."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from photosr.errors import UsageError

# name -> "module:class" (imported on use: effunet pulls in the EfficientNet package)
ARCHITECTURES = {
    "plain": "photosr.training.models.plain:PlainSR",
    "resunet": "photosr.training.models.resunet:ResUNet",
    "effunet": "photosr.training.models.effunet:EffNetUNet",
}


def default_arch(task: str) -> str:
    """The architecture `arch = "auto"` picks: the fast plain net for upscaling, a U-Net otherwise."""
    return "plain" if task == "upscale" else "resunet"


def build_model(arch: str, *, scale: int, **hparams: Any) -> nn.Module:
    """Instantiate an architecture; unknown names and hyperparameters are UsageErrors."""
    if arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {arch!r}; choose from {', '.join(sorted(ARCHITECTURES))}")
    module_name, cls_name = ARCHITECTURES[arch].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    try:
        return cls(scale=scale, **hparams)
    except (TypeError, ValueError) as err:
        raise UsageError(f"bad hyperparameters for {arch!r}: {err}") from err


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ARCHITECTURES", "build_model", "count_parameters", "default_arch"]
