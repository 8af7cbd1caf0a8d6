"""The JPEG quality a file was saved at, read from its quantization tables, and the input plane that
tells a quality-aware model (manifest `input = "rgb+quality"`) about it.

A JPEG file does not store its quality setting, only the quantization tables the encoder derived from
it. libjpeg (and so Pillow, and most software) scales two standard tables by the quality; the estimate
is the quality whose standard tables are nearest to the file's. Cameras and phones write tables of their
own; for those it is the nearest standard quality - a measure of how coarse the compression was.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

# A manifest's `[model] input` for a model that takes the plane.
QUALITY_INPUT = "rgb+quality"
# The plane's value when the quality is unknown (not a JPEG, or pixels changed since it was decoded).
# Quality-aware models are trained with this value on part of their JPEG inputs too, so they fall back
# to blind restoration.
UNKNOWN = 0.0


@functools.cache
def _standard_tables() -> np.ndarray:
    """(100, 2, 64) - the luminance and chrominance tables Pillow writes at qualities 1..100, in the
    order Pillow reports a file's tables."""
    tables = []
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            tables.append([list(decoded.quantization[i]) for i in (0, 1)])
    return np.array(tables, dtype=np.float64)


def quality_from_tables(tables: Mapping[int, Sequence[int]]) -> int | None:
    """The standard (libjpeg) quality 1..100 nearest to these quantization tables (Pillow's
    `JpegImageFile.quantization`), by mean absolute difference of the log table entries; None when
    there are no 64-entry tables. A grey JPEG has only the luminance table; then only it counts."""
    own = [np.asarray(tables[i], dtype=np.float64) for i in sorted(tables)[:2]]
    if not own or any(t.shape != (64,) for t in own):
        return None
    standard = np.log(_standard_tables()[:, : len(own)])
    distance = np.abs(standard - np.log(np.maximum(np.stack(own), 1.0))).mean(axis=(1, 2))
    return int(np.argmin(distance)) + 1


def jpeg_quality(image: Image.Image) -> int | None:
    """The estimated quality of an opened JPEG file; None for any other image."""
    tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
    return quality_from_tables(tables) if tables else None


def quality_value(quality: int | None) -> float:
    """What the quality plane holds: quality / 100, or `UNKNOWN`."""
    return UNKNOWN if quality is None else quality / 100.0


def with_quality_plane(rgb: np.ndarray, quality: int | None) -> np.ndarray:
    """HxWx3 -> HxWx4: the photo plus a constant plane of `quality_value(quality)`."""
    plane = np.full((*rgb.shape[:2], 1), quality_value(quality), dtype=np.float32)
    return np.concatenate([rgb.astype(np.float32, copy=False), plane], axis=2)


__all__ = [
    "QUALITY_INPUT",
    "UNKNOWN",
    "jpeg_quality",
    "quality_from_tables",
    "quality_value",
    "with_quality_plane",
]
