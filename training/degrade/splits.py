"""The dewatermark train / held-out split: fonts (by family) and words a model trains on, and others it is
only ever measured with, so a validation score says how it does on watermarks it has never seen.

`Overlay(split="train")` draws only from the training side, `Overlay(split="held-out")` only from the
held-out side; `split="all"` (the default) keeps the op's plain behaviour. Fonts are split by family (the
file name up to the first "-": `DejaVuSansMono-Bold.ttf` is family `DejaVuSansMono`), so every font a
machine has falls on exactly one side. Pillow's built-in bitmap font, enlarged pixel by pixel, is held out
and present everywhere, so the held-out side is never empty, even on a machine without system fonts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

ALL, TRAIN, HELD_OUT = "all", "train", "held-out"
SPLITS = (ALL, TRAIN, HELD_OUT)

DEFAULT_FONT = "default"  # Pillow's bundled scalable font (Aileron, Pillow >= 10.1): training side
BITMAP_FONT = "bitmap"  # Pillow's fixed 11-px bitmap font, enlarged with nearest neighbours: held out

# Families seen only in validation. The DejaVu ones are what a Debian/Ubuntu machine has by default; the
# others are held out wherever they are installed. Every other family trains.
HELD_OUT_FONT_FAMILIES = frozenset(
    {
        BITMAP_FONT,
        "DejaVuSansMono",
        "DejaVuSerifCondensed",
        "FreeMono",
        "FreeSerif",
        "LiberationMono",
        "LiberationSerif",
        "NotoSansMono",
        "NotoSerif",
        "UbuntuMono",
    }
)

TRAIN_WORDS = (
    "SAMPLE", "PREVIEW", "PROOF", "COPYRIGHT", "DRAFT", "CONFIDENTIAL", "stock", "photo", "studio",
    "Photography", "images", "licensed", "do not copy", "property of", "archive", "gallery", "agency",
    "wedding", "portrait", "memories", "summer", "holiday", "family", "Nordic", "Atelier", "Lumen",
    "Foto", "Bildarchiv", "exclusive", "watermark", "unpaid", "comp", "www.example.com", "@picturesque",
)  # fmt: skip

# Each breaks the consonant-vowel alternation of the made-up words the training side also draws
# (two consonants or two vowels in a row), so no invented word can spell or contain one of them.
HELD_OUT_WORDS = (
    "SPECIMEN", "NOT FOR SALE", "Reserved", "TRIAL", "Unregistered", "Evaluation copy", "Press",
    "Snapshot", "Landscape", "Chronicle", "Museum", "Collection", "Newsroom", "Travel", "Journal",
    "Limited edition", "Kunsthalle", "Premium", "@shotbyjo", "www.pixelfarm.net", "Void", "Expo",
)  # fmt: skip


def font_family(font: str) -> str:
    """ "default", "bitmap", or a font file's family: its name up to the first "-"."""
    if font in (DEFAULT_FONT, BITMAP_FONT):
        return font
    return Path(font).stem.split("-")[0]


def in_split(font: str, split: str) -> bool:
    """Whether `font` may be drawn on the `split` side ("all" takes every font)."""
    if split == ALL:
        return True
    held_out = font_family(font) in HELD_OUT_FONT_FAMILIES
    return held_out if split == HELD_OUT else not held_out


def fonts_in_split(fonts: Iterable[str], split: str) -> list[str]:
    return [font for font in fonts if in_split(font, split)]


def split_words(split: str) -> tuple[str, ...]:
    """The vocabulary of a side ("all" is the training vocabulary: held-out words are never drawn
    unless asked for)."""
    return HELD_OUT_WORDS if split == HELD_OUT else TRAIN_WORDS


__all__ = [
    "ALL",
    "BITMAP_FONT",
    "DEFAULT_FONT",
    "HELD_OUT",
    "HELD_OUT_FONT_FAMILIES",
    "HELD_OUT_WORDS",
    "SPLITS",
    "TRAIN",
    "TRAIN_WORDS",
    "font_family",
    "fonts_in_split",
    "in_split",
    "split_words",
]
