"""The one in-memory image contract every part of photosr works on.

A `Photo` holds pixels as float32, channels-last, 0..1, sRGB-encoded (not linear), always three colour
channels - grey photos carry three equal channels while processing and go back to one on save - plus
straight (not premultiplied) alpha kept apart, and a `SourceInfo` record of what the file held so saving
can put it back: mode, bit depth, ICC profile, EXIF, format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SourceInfo:
    """What the source file held, for saving faithfully. Pixel data never lives here."""

    path: Path | None = None
    format: str | None = None  # Pillow format name of the source: "JPEG", "PNG", "TIFF", ...
    mode: str = "RGB"  # Pillow mode as decoded, before normalization
    bit_depth: int = 8  # 8 or 16 per channel in the source (float and 32-bit int sources count as 16)
    grey: bool = False  # the source had no colour (1, L, LA, I;16, I, F, or P/RGB with a grey palette)
    orientation: int = 1  # EXIF orientation the source carried; pixels are already upright
    icc_profile: bytes | None = None  # the source's embedded profile (pixels are converted to sRGB)
    exif: bytes | None = None  # raw EXIF of the source; orientation/dimensions fixed on save
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None
    frames: int = 1  # frames in the source; only the first is processed
    # The JPEG quality the pixels were saved at (photosr.jpeg), while they are the decoded ones: None
    # for other formats and once anything changed them. Quality-aware models take it as an input.
    jpeg_quality: int | None = None


@dataclass
class Photo:
    """Pixels plus provenance. `rgb` is HxWx3 float32 0..1 sRGB-encoded; `alpha` is HxW float32 or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    info: SourceInfo = field(default_factory=SourceInfo)
    # Set by tasks that add colour to a grey source (colorize), so saving keeps the colour.
    colour_added: bool = False

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.float32:
            raise ValueError(f"Photo.rgb must be HxWx3 float32, got {self.rgb.shape} {self.rgb.dtype}")
        if self.alpha is not None and (
            self.alpha.shape != self.rgb.shape[:2] or self.alpha.dtype != np.float32
        ):
            raise ValueError(f"Photo.alpha must be HxW float32 matching rgb, got {self.alpha.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), Pillow's order."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None = None, **changes) -> Photo:
        """A copy with new pixels (and alpha), keeping the provenance record - except the JPEG quality,
        which described the old pixels."""
        info = self.info if self.info.jpeg_quality is None else replace(self.info, jpeg_quality=None)
        return replace(self, rgb=rgb, alpha=alpha, info=info, **changes)


__all__ = ["Photo", "SourceInfo"]
