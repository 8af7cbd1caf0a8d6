"""Text and watermark overlays: random words, numbers, dates and shape logos, stamped once or tiled on a
diagonal, at an opacity and colour; `apply_with_mask` also returns the alpha of what was drawn, the target
a dewatermark model's mask head (or a loss weight) needs.

Fonts and words are parameters; `split="train"` / `split="held-out"` draw only from one side of the
fixed dewatermark split in splits.py (train on some fonts/words, validate on others).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from photosr.errors import UsageError

from .base import (
    Mask,
    Op,
    Params,
    as_choices,
    as_probability,
    as_range,
    as_weights,
    chance,
    integer,
    new_seed,
    pick,
    to_float,
    to_image,
    uniform,
)
from .splits import (
    ALL,
    BITMAP_FONT,
    DEFAULT_FONT,
    HELD_OUT,
    SPLITS,
    TRAIN,
    TRAIN_WORDS,
    in_split,
    split_words,
)

CONTENT = ("words", "numbers", "dates", "logo")
LAYOUTS = ("single", "tiled")
COLOURS = ("white", "black", "grey", "orange", "random")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
SYSTEM_FONT_DIR = Path("/usr/share/fonts")
DEFAULT_WORDS = TRAIN_WORDS  # the vocabulary when no `words` are given (see splits.py)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def find_fonts(folder: str | Path) -> list[str]:
    """Every .ttf/.otf/.ttc under `folder`, sorted so a seed picks the same font on every machine
    with the same files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UsageError("font folder not found", folder)
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)


@functools.lru_cache(maxsize=256)
def load_font(font: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font by path (or "default", or "bitmap": fixed size, enlarged when drawn) at a pixel size,
    cached per DataLoader worker."""
    if font == DEFAULT_FONT:
        return ImageFont.load_default(size=size)
    if font == BITMAP_FONT:
        return ImageFont.load_default_imagefont()
    try:
        return ImageFont.truetype(font, size)
    except OSError as err:
        raise UsageError(f"cannot load font ({err})", font) from err


def random_text(rng: np.random.Generator, kind: str, words: Sequence[str], *, invent: float = 0.0) -> str:
    """A watermark string: words with a copyright sign or year, an ID number, or a date. With
    probability `invent` a word is made up (so a model does not just learn a short vocabulary)."""
    if kind == "numbers":
        number = str(rng.integers(10**2, 10**7))
        return pick(rng, (number, f"#{number}", f"IMG_{number[:4]:0>4}", f"No. {number}"))
    if kind == "dates":
        y, m, d = int(rng.integers(1950, 2030)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        forms = (
            f"{d:02d}/{m:02d}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"'{y % 100:02d} {m} {d}",
            f"{_MONTHS[m - 1]} {d} {y}",
        )
        return pick(rng, forms)
    chosen = [words[int(i)] for i in rng.choice(len(words), size=integer(rng, (1, 2)))]
    if chance(rng, invent):
        chosen[0] = _made_up_word(rng)
    text = " ".join(chosen)
    text = pick(rng, (text, text.upper(), text.title()))
    if chance(rng, 0.3):
        text = f"\u00a9 {text}"
    if chance(rng, 0.2):
        text = f"{text} {int(rng.integers(1990, 2030))}"
    return text


def _made_up_word(rng: np.random.Generator) -> str:
    # Alternating consonants and vowels read like a brand name: "Lumoka", "Tessaro".
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiouy"
    letters = [
        (consonants if i % 2 == 0 else vowels)[int(rng.integers(0, 6 if i % 2 else 18))]
        for i in range(integer(rng, (3, 9)))
    ]
    return "".join(letters)


def _text_stamp(text: str, font: ImageFont.FreeTypeFont, stroke: int) -> tuple[Image.Image, Image.Image]:
    """Fill and outline masks ("L") of one line of text, tightly cropped with a small margin."""
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    pad = stroke + 2
    size = (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
    fill, outline = Image.new("L", size, 0), Image.new("L", size, 0)
    origin = (pad - x0, pad - y0)
    ImageDraw.Draw(fill).text(origin, text, fill=255, font=font)
    if stroke:
        ImageDraw.Draw(outline).text(origin, text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return fill, outline


def _bitmap_text_stamp(text: str, size: int) -> Image.Image:
    """One line in Pillow's 11-px bitmap font, enlarged by a whole factor (nearest) to about `size` px:
    the blocky look of a pixel font, which no scalable font in the training split has."""
    font = load_font(BITMAP_FONT, 11)
    x0, y0, x1, y1 = font.getbbox(text)
    stamp = Image.new("L", (x1 - x0 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(stamp).text((1 - x0, 1 - y0), text, fill=255, font=font)
    factor = max(1, round(size / 11))
    return stamp.resize((stamp.width * factor, stamp.height * factor), Image.Resampling.NEAREST)


def _logo_stamp(seed: int, side: int, text: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    """A made-up logo: one to three rings, boxes, triangles or stars, optionally with initials."""
    rng = np.random.default_rng(seed)
    side = max(side, 8)
    stamp = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(stamp)
    width = max(1, side // 14)
    for _ in range(integer(rng, (1, 3))):
        inset = int(rng.integers(0, side // 4 + 1))
        box = (inset, inset, side - 1 - inset, side - 1 - inset)
        shape = pick(rng, ("ring", "box", "triangle", "star", "disc"))
        if shape == "ring":
            draw.ellipse(box, outline=255, width=width)
        elif shape == "box":
            draw.rounded_rectangle(box, radius=side // 8, outline=255, width=width)
        elif shape == "disc":
            r = side // 6
            draw.ellipse((side // 2 - r, side // 2 - r, side // 2 + r, side // 2 + r), fill=255)
        else:
            points = 3 if shape == "triangle" else 5
            radius = (side - 2 * inset) / 2
            angles = np.linspace(0, 2 * np.pi, points * (1 if points == 3 else 2), endpoint=False) - np.pi / 2
            radii = (
                np.where(np.arange(len(angles)) % 2 == 1, radius * 0.45, radius) if points == 5 else radius
            )
            xy = np.stack([side / 2 + radii * np.cos(angles), side / 2 + radii * np.sin(angles)], axis=1)
            draw.polygon([tuple(p) for p in xy], outline=255, width=width)
    if text and isinstance(font, ImageFont.FreeTypeFont):
        draw.text((side / 2, side / 2), text, fill=255, font=font, anchor="mm")
    elif text:  # the bitmap font, enlarged to a third of the logo
        initials = _bitmap_text_stamp(text, side // 3)
        stamp.paste(255, ((side - initials.width) // 2, (side - initials.height) // 2), initials)
    return stamp


def _tile(stamp: Image.Image, size: tuple[int, int], params: Params) -> Image.Image:
    """Repeat a stamp on a grid rotated by params["angle"], covering an image of `size`."""
    cell = (int(stamp.width * params["spacing"]), int(stamp.height * params["spacing"] * 1.5))
    tile = Image.new("L", cell, 0)
    tile.paste(stamp, (0, 0))
    diagonal = int(np.hypot(*size)) + max(cell) * 2
    reps = (diagonal // cell[1] + 1, diagonal // cell[0] + 1)
    sheet = np.tile(np.asarray(tile), reps)
    shift = (int(params["y"] * cell[1]), int(params["x"] * cell[0]))
    sheet = Image.fromarray(np.roll(sheet, shift, axis=(0, 1)))
    # Rotate about the sheet's centre and sample only the image-sized middle: one affine transform
    # straight to the output size (rotating the whole sheet, then cropping, was 10x the work).
    a = -np.radians(params["angle"])
    cos, sin = float(np.cos(a)), float(np.sin(a))
    cx, cy, hw, hh = sheet.width / 2, sheet.height / 2, size[0] / 2, size[1] / 2
    matrix = (cos, sin, cx - cos * hw - sin * hh, -sin, cos, cy + sin * hw - cos * hh)
    return sheet.transform(size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR)


def _place(stamp: Image.Image, size: tuple[int, int], params: Params) -> Image.Image:
    stamp = stamp.rotate(params["angle"], resample=Image.Resampling.BILINEAR, expand=True)
    layer = Image.new("L", size, 0)
    x = int(params["x"] * (size[0] - stamp.width))
    y = int(params["y"] * (size[1] - stamp.height))
    layer.paste(stamp, (x, y))
    return layer


def _colour(rng: np.random.Generator, name: str) -> list[int]:
    if name == "white":
        return [int(rng.integers(225, 256))] * 3
    if name == "black":
        return [int(rng.integers(0, 35))] * 3
    if name == "grey":
        return [int(rng.integers(90, 180))] * 3
    if name == "orange":  # film cameras' date imprint
        return [255, int(rng.integers(120, 175)), int(rng.integers(0, 50))]
    return [int(v) for v in rng.integers(0, 256, size=3)]


class Overlay(Op):
    """Draw a watermark. size: text height as a fraction of the short side; angle: degrees (single
    stamps use half of it); spacing: tiled cell size in stamp sizes; outline: probability of a
    contrasting stroke; fonts: paths, "default" or "bitmap" (None = Pillow's default plus system fonts);
    font_dir: a folder of .ttf/.otf added to the fonts; words: the vocabulary for word stamps;
    split: "all", or "train" / "held-out" to draw only fonts and words of that side of the dewatermark
    split (splits.py) - given fonts or words must then belong to it."""

    name = "overlay"

    def __init__(
        self,
        content: str | Sequence[str] = CONTENT,
        content_weights: Sequence[float] | None = None,
        layout: str | Sequence[str] = LAYOUTS,
        layout_weights: Sequence[float] | None = None,
        opacity: float | Sequence[float] = (0.2, 0.8),
        colours: str | Sequence[str] = ("white", "black", "grey", "random"),
        size: float | Sequence[float] = (0.06, 0.2),
        angle: float | Sequence[float] = (-40.0, 40.0),
        spacing: float | Sequence[float] = (1.2, 2.5),
        outline: float = 0.3,
        fonts: Sequence[str] | None = None,
        font_dir: str | None = None,
        words: Sequence[str] | None = None,
        split: str = ALL,
    ):
        self.content = as_choices("content", content, CONTENT)
        self.content_weights = as_weights("content_weights", content_weights, len(self.content))
        self.layout = as_choices("layout", layout, LAYOUTS)
        self.layout_weights = as_weights("layout_weights", layout_weights, len(self.layout))
        self.opacity = as_range("opacity", opacity, low=0.0, high=1.0)
        self.colours = as_choices("colours", colours, COLOURS)
        self.size = as_range("size", size, low=0.01, high=1.0)
        self.angle = as_range("angle", angle, low=-180.0, high=180.0)
        self.spacing = as_range("spacing", spacing, low=1.0, high=10.0)
        self.outline = as_probability("outline", outline)
        if split not in SPLITS:
            raise UsageError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        self.fonts = _font_list(fonts, font_dir, split)
        self.words = tuple(words) if words is not None else split_words(split)
        # The built-in vocabulary is short, so it is padded with made-up words; a user's own list and
        # the held-out words are used exactly as given.
        self._invent = 0.4 if words is None and split != HELD_OUT else 0.0
        if not self.words or not all(isinstance(w, str) and w for w in self.words):
            raise UsageError("words: expected a list of non-empty strings")
        if split != ALL and words is not None:
            _check_words_in_split(self.words, split)

    def sample(self, rng: np.random.Generator) -> Params:
        content = pick(rng, self.content, self.content_weights)
        layout = pick(rng, self.layout, self.layout_weights)
        if content == "logo":
            text = "".join(chr(int(c)) for c in rng.integers(65, 91, size=integer(rng, (0, 3))))
        else:
            text = random_text(rng, content, self.words, invent=self._invent)
        angle = uniform(rng, self.angle) * (0.5 if layout == "single" else 1.0)
        colour = pick(rng, self.colours)
        return {
            "content": content,
            "text": text,
            "logo_seed": new_seed(rng) if content == "logo" else 0,
            "font": pick(rng, self.fonts),
            "size": uniform(rng, self.size),
            "layout": layout,
            "x": float(rng.random()),
            "y": float(rng.random()),
            "angle": angle,
            "spacing": uniform(rng, self.spacing),
            "opacity": uniform(rng, self.opacity),
            "colour": _colour(rng, colour),
            "outline": chance(rng, self.outline),
        }

    def apply(self, image: Image.Image, params: Params) -> Image.Image:
        return self.apply_with_mask(image, params)[0]

    def apply_masked(self, image: Image.Image, mask: Mask, params: Params) -> tuple[Image.Image, Mask]:
        out, drawn = self.apply_with_mask(image, params)
        return out, drawn if mask is None else np.maximum(mask, drawn)

    def apply_with_mask(self, image: Image.Image, params: Params) -> tuple[Image.Image, np.ndarray]:
        """The stamped image and the float32 HxW alpha (0..1, opacity included) of what was drawn."""
        fill, outline = self._layers(image.size, params)
        opacity = params["opacity"]
        alpha = np.asarray(fill, dtype=np.float32)[..., None] * (opacity / 255.0)
        rgb = to_float(image)
        colour = np.asarray(params["colour"], dtype=np.float32) / 255.0
        drawn = alpha[..., 0]
        if outline is not None:
            # The stroke takes the opposite brightness so the stamp reads on any background.
            edge = np.asarray(outline, dtype=np.float32)[..., None] * (opacity / 255.0)
            contrast = np.full(3, 0.0 if colour.mean() > 0.5 else 1.0, np.float32)
            rgb = rgb * (1.0 - edge) + contrast * edge
            drawn = np.maximum(drawn, edge[..., 0])
        rgb = rgb * (1.0 - alpha) + colour * alpha
        return to_image(rgb), drawn

    def _layers(self, size: tuple[int, int], params: Params) -> tuple[Image.Image, Image.Image | None]:
        font_px = max(8, round(params["size"] * min(size)))
        font = load_font(params["font"], font_px)
        stroke = max(1, font_px // 12) if params["outline"] else 0
        if params["content"] == "logo" or params["font"] == BITMAP_FONT:
            if params["content"] == "logo":
                fill = _logo_stamp(params["logo_seed"], font_px * 2, params["text"], font)
            else:
                fill = _bitmap_text_stamp(params["text"], font_px)
            outline = fill.filter(ImageFilter.MaxFilter(2 * stroke + 1)) if stroke else None
        else:
            fill, outline = _text_stamp(params["text"], font, stroke)
            outline = outline if stroke else None
        arrange = _tile if params["layout"] == "tiled" else _place
        return arrange(fill, size, params), None if outline is None else arrange(outline, size, params)


def _font_list(fonts: Sequence[str] | None, font_dir: str | None, split: str = ALL) -> tuple[str, ...]:
    """The fonts to draw with. Given fonts must belong to the split; fonts found in folders are
    filtered to it; None means the built-in fonts plus the system fonts of the split."""
    listed = list(fonts) if fonts is not None else [DEFAULT_FONT, BITMAP_FONT]
    if fonts is None and split == ALL:
        listed = [DEFAULT_FONT]  # "all" keeps the op's original behaviour: no bitmap font
    found = []
    if font_dir is not None:
        found = find_fonts(font_dir)
    elif fonts is None and SYSTEM_FONT_DIR.is_dir():
        found = find_fonts(SYSTEM_FONT_DIR)
    if fonts is None:
        listed = [font for font in listed if in_split(font, split)]
    for font in listed:
        if font not in (DEFAULT_FONT, BITMAP_FONT) and not Path(font).is_file():
            raise UsageError(f"fonts: font file not found: {font}")
        if not in_split(font, split):
            raise UsageError(f"fonts: {font} is not a {split} font (see training/degrade/splits.py)")
    listed += [font for font in found if in_split(font, split)]
    if not listed:
        raise UsageError("fonts: no fonts to draw with")
    return tuple(listed)


def _check_words_in_split(words: Sequence[str], split: str) -> None:
    # Compared case-insensitively as substrings: "Press" inside "Pressbild" is still the held-out word.
    other = [w.lower() for w in split_words(TRAIN if split == HELD_OUT else HELD_OUT)]
    for word in words:
        clash = next((o for o in other if o in word.lower() or word.lower() in o), None)
        if clash is not None:
            raise UsageError(f"words: {word!r} overlaps {clash!r} of the other side of the split")
