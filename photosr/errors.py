"""Typed errors. Library code raises these; the CLI turns them into one line each, the daemon records them.

Every message names the file (when there is one) and the reason, so `str(err)` is a complete report.
"""

from __future__ import annotations

from pathlib import Path


class PhotosrError(Exception):
    """Base class of every error photosr raises on purpose."""

    def __init__(self, reason: str, path: str | Path | None = None):
        self.reason = reason
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class ImageReadError(PhotosrError):
    """The file is not an image we can decode: unreadable, truncated, not an image, unsupported."""


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class ImageWriteError(PhotosrError):
    """The result could not be written (format cannot hold it, disk full, permission)."""


class TransientError(PhotosrError):
    """A failure that may succeed on retry: file locked, disk momentarily full."""


class PluginError(PhotosrError):
    """A plugin folder or manifest is invalid, missing, or its model does not match its hash."""


class ManifestError(PluginError):
    """A manifest field is missing or has a bad value; the message names the field."""


class PluginNotFoundError(PluginError):
    """No plugin with that name or path."""


class EngineError(PhotosrError):
    """ONNX Runtime could not create a session or run the model."""


class UsageError(PhotosrError):
    """Bad options or arguments given by the caller (the CLI exits with code 2 for these)."""


__all__ = [
    "EngineError",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "ManifestError",
    "PhotosrError",
    "PluginError",
    "PluginNotFoundError",
    "TransientError",
    "UsageError",
]
