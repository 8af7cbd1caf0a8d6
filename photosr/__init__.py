"""photosr: bring photos back to life in bulk - restore, upscale, colorize, dewatermark, normalize.

    import photosr
    result = photosr.process_file("old.jpg", "out/old.jpg", tasks=["restore"])
    image = photosr.process(PIL.Image.open("old.jpg"), tasks=["upscale"], scale=4)

Names are imported on first use (PEP 562), so `import photosr` and `photosr --help` stay fast and never
import torch or onnxruntime.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photosr.errors import (
    EngineError,
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    ManifestError,
    PhotosrError,
    PluginError,
    PluginNotFoundError,
    TransientError,
    UsageError,
)
from photosr.image import Photo, SourceInfo

# public name -> module it lives in
_LAZY = {
    "process": "photosr.pipeline",
    "process_file": "photosr.pipeline",
    "Pipeline": "photosr.pipeline",
    "ProcessOptions": "photosr.pipeline",
    "FileResult": "photosr.pipeline",
    "load_photo": "photosr.io",
    "save_photo": "photosr.io",
    "PluginRegistry": "photosr.plugins",
    "default_registry": "photosr.plugins",
    "discover": "photosr.batch",
}

if TYPE_CHECKING:
    from photosr.batch import discover
    from photosr.io import load_photo, save_photo
    from photosr.pipeline import FileResult, Pipeline, ProcessOptions, process, process_file
    from photosr.plugins import PluginRegistry, default_registry


def example_photo() -> Path:
    """The bundled example: a JPEG (quality 60) stored sideways with EXIF orientation 6 - try restore on it."""
    return Path(__file__).resolve().parent / "examples" / "washington-monument.jpg"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'photosr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "EngineError",
    "FileResult",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "ManifestError",
    "Photo",
    "PhotosrError",
    "Pipeline",
    "PluginError",
    "PluginNotFoundError",
    "PluginRegistry",
    "ProcessOptions",
    "SourceInfo",
    "TransientError",
    "UsageError",
    "default_registry",
    "discover",
    "example_photo",
    "load_photo",
    "process",
    "process_file",
    "save_photo",
]
