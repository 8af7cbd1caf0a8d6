"""photosr.training: PyTorch side of photosr - datasets, models, trainer, ONNX export, evaluation.

Installed with the `train` extra. The runtime (`photosr` proper) never imports this package.
"""

from __future__ import annotations

from .config import TrainConfig, config_from_dict, load_config

__all__ = ["TrainConfig", "config_from_dict", "load_config"]
