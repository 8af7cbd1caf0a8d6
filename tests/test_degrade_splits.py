"""The dewatermark train / held-out split: disjoint sides, and recipes that keep to their side.

System fonts differ between machines (a fresh CI box may have none), so the font folder is replaced by
empty files with known family names: sampling only picks names, it never opens them.
"""

from __future__ import annotations

import numpy as np
import pytest
from photosr.training.degrade import Overlay, build_recipe, overlay, read_recipe
from photosr.training.degrade.recipe import RECIPES_DIR
from photosr.training.degrade.splits import (
    BITMAP_FONT,
    DEFAULT_FONT,
    HELD_OUT_WORDS,
    TRAIN_WORDS,
    font_family,
    in_split,
)
from PIL import Image

from photosr.errors import UsageError

FAKE_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerifCondensed-Bold.ttf",
    "LiberationMono-Regular.ttf",
    "SomeBrand-Display.otf",
)


@pytest.fixture
def fake_system_fonts(tmp_path, monkeypatch):
    folder = tmp_path / "fonts"
    folder.mkdir()
    for name in FAKE_FONTS:
        (folder / name).write_bytes(b"")
    monkeypatch.setattr(overlay, "SYSTEM_FONT_DIR", folder)
    return folder


def _could_be_invented(word: str) -> bool:
    """Whether a made-up training word (consonant/vowel alternating) could contain `word`."""
    consonants, vowels = set("bcdfghjklmnprstvwz"), set("aeiouy")
    kinds = ["c" if ch in consonants else "v" if ch in vowels else "x" for ch in word.lower()]
    return "x" not in kinds and all(a != b for a, b in zip(kinds, kinds[1:], strict=False))


def _overlay_params(params):
    """Every overlay draw (a dict with a font) inside a recipe's nested params."""
    if isinstance(params, dict):
        if "font" in params and "text" in params:
            yield params
        for value in params.values():
            yield from _overlay_params(value)
    elif isinstance(params, list):
        for value in params:
            yield from _overlay_params(value)


def _sampled_overlays(recipe: str, draws: int):
    op = build_recipe(read_recipe(RECIPES_DIR / f"{recipe}.toml"), scale=1)
    rng = np.random.default_rng(0)
    return [p for _ in range(draws) for p in _overlay_params(op.sample(rng))]


def test_word_lists_are_disjoint_even_as_substrings():
    for held in HELD_OUT_WORDS:
        for train in TRAIN_WORDS:
            assert held.lower() not in train.lower() and train.lower() not in held.lower(), (held, train)


def test_no_held_out_word_can_be_made_up_by_the_training_side():
    assert not [word for word in HELD_OUT_WORDS if _could_be_invented(word)]
    assert _could_be_invented("Lumoka")  # the helper does catch an alternating word


def test_every_font_falls_on_exactly_one_side():
    fonts = [DEFAULT_FONT, BITMAP_FONT, *(f"/fonts/{name}" for name in FAKE_FONTS)]
    train = {f for f in fonts if in_split(f, "train")}
    held = {f for f in fonts if in_split(f, "held-out")}
    assert train.isdisjoint(held) and train | held == set(fonts)
    assert {font_family(f) for f in held} == {
        "bitmap",
        "DejaVuSansMono",
        "DejaVuSerifCondensed",
        "LiberationMono",
    }
    assert DEFAULT_FONT in train and "/fonts/SomeBrand-Display.otf" in train


def test_training_recipe_never_draws_a_held_out_font_or_word(fake_system_fonts):
    draws = _sampled_overlays("dewatermark", 1500)
    assert len(draws) > 1500  # the second overlay step runs some of the time
    fonts = {d["font"] for d in draws}
    assert all(in_split(f, "train") for f in fonts)
    assert str(fake_system_fonts / "DejaVuSans-Bold.ttf") in fonts and DEFAULT_FONT in fonts
    texts = [d["text"].lower() for d in draws]
    assert not [(t, w) for t in texts for w in HELD_OUT_WORDS if w.lower() in t]


def test_held_out_recipe_draws_only_held_out_fonts_and_words(fake_system_fonts):
    draws = _sampled_overlays("dewatermark-heldout", 1500)
    fonts = {d["font"] for d in draws}
    assert fonts == {BITMAP_FONT} | {
        str(fake_system_fonts / name)
        for name in FAKE_FONTS
        if font_family(name) in ("DejaVuSansMono", "DejaVuSerifCondensed", "LiberationMono")
    }
    words = [d["text"] for d in draws if d["content"] == "words"]
    assert words and all(any(w.lower() in t.lower() for w in HELD_OUT_WORDS) for t in words)
    assert not [(t, w) for t in words for w in TRAIN_WORDS if w.lower() in t.lower()]


def test_held_out_side_draws_without_any_system_font(tmp_path, monkeypatch):
    monkeypatch.setattr(overlay, "SYSTEM_FONT_DIR", tmp_path / "none")
    op = Overlay(split="held-out", opacity=0.8, colours="white")
    assert op.fonts == (BITMAP_FONT,)
    photo = Image.new("RGB", (96, 64), (40, 60, 80))
    for seed in range(6):
        out, mask = op.apply_with_mask(photo, op.sample(np.random.default_rng(seed)))
        changed = np.abs(np.asarray(out, np.int16) - np.asarray(photo, np.int16)).max(axis=2) > 1
        assert mask.shape == (64, 96) and mask.max() > 0
        assert not (changed & (mask == 0)).any()  # nothing changes outside the returned mask


def test_bitmap_font_grows_with_the_size():
    photo = Image.new("RGB", (200, 200))
    heights = []
    for size in (0.06, 0.18):
        op = Overlay(
            fonts=[BITMAP_FONT], content="words", layout="single", angle=0, size=size, split="held-out"
        )
        _, mask = op.apply_with_mask(photo, op.sample(np.random.default_rng(1)))
        heights.append(int((mask.max(axis=1) > 0).sum()))
    assert heights[1] > 2 * heights[0]


def test_fonts_and_words_of_the_other_side_are_refused(fake_system_fonts):
    with pytest.raises(UsageError, match="not a train font"):
        Overlay(fonts=[str(fake_system_fonts / "DejaVuSansMono.ttf")], split="train")
    with pytest.raises(UsageError, match="not a held-out font"):
        Overlay(fonts=[DEFAULT_FONT], split="held-out")
    with pytest.raises(UsageError, match="overlaps"):
        Overlay(fonts=[DEFAULT_FONT], words=["Press photo"], split="train")
    with pytest.raises(UsageError, match="split"):
        Overlay(split="validation")
