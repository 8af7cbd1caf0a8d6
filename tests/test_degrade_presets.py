"""Presets and load_crappifier: sizes, determinism, provenance, pickling for DataLoader workers."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from photosr.training.degrade import load_crappifier, preset_names, read_recipe
from photosr.training.degrade.recipe import RECIPES_DIR
from PIL import Image

from photosr.errors import UsageError


def _photo(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    # Smooth gradients plus texture: enough structure for blur/JPEG to change something.
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1)
    pixels = np.clip(base * 0.8 + rng.random((h, w, 3)) * 0.2, 0, 1)
    return Image.fromarray((pixels * 255).astype(np.uint8), "RGB")


@pytest.mark.parametrize(("scale", "name"), [(2, "upscale-x2"), (4, "upscale-x4"), (3, "upscale")])
def test_upscale_default_is_plain_bicubic_at_exact_size(scale, name):
    crap = load_crappifier(None, task="upscale", scale=scale)
    hr = _photo(60, 36)
    out = crap(hr, np.random.default_rng(1))
    assert crap.name == name
    assert out.size == (60 // scale, 36 // scale)
    expected = hr.resize(out.size, Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_every_preset_keeps_the_size_contract():
    hr = _photo(96, 72)
    for name in preset_names():
        declared = read_recipe(RECIPES_DIR / f"{name}.toml").get("scale")
        for scale in [declared] if declared else [1, 2, 4]:
            crap = load_crappifier(name, task="upscale" if scale > 1 else "restore", scale=scale)
            for seed in range(3):
                out = crap(hr, np.random.default_rng(seed))
                assert out.mode == "RGB"
                assert out.size == (96 // scale, 72 // scale), (name, scale, seed)


@pytest.mark.parametrize("task", ["restore", "upscale"])
def test_same_seed_same_pixels_and_params(task):
    scale = 2 if task == "upscale" else 1
    crap = load_crappifier("restore" if task == "restore" else None, task=task, scale=scale)
    hr = _photo()
    a = crap(hr, np.random.default_rng(7))
    b = crap(hr, np.random.default_rng(7))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert crap.sample(np.random.default_rng(7)) == crap.sample(np.random.default_rng(7))


def test_restore_replay_matches_call_and_seeds_differ():
    crap = load_crappifier(None, task="restore")
    hr = _photo()
    params = crap.sample(np.random.default_rng(3))
    assert np.array_equal(np.asarray(crap.apply(hr, params)), np.asarray(crap(hr, np.random.default_rng(3))))
    outs = {np.asarray(crap(hr, np.random.default_rng(s))).tobytes() for s in range(6)}
    assert len(outs) == 6


def test_describe_and_hash_name_the_recipe_file():
    crap = load_crappifier(None, task="restore")
    info = crap.describe()
    assert info["kind"] == "preset" and info["name"] == "restore"
    assert info["source"].endswith("restore.toml")
    assert len(crap.source_hash()) == 64 and info["sha256"] == crap.source_hash()
    assert info["recipe"]["steps"]
    for name in preset_names():  # provenance goes into TOML manifests and JSON logs as is
        json.dumps(
            load_crappifier(
                name, task="upscale" if name.startswith("upscale") else "restore", scale=_scale_of(name)
            ).describe()
        )


def test_pickles_for_dataloader_workers():
    crap = load_crappifier("upscale-x4", task="upscale", scale=4)
    clone = pickle.loads(pickle.dumps(crap))
    hr = _photo()
    assert clone.spec == "upscale-x4"
    assert np.array_equal(
        np.asarray(clone(hr, np.random.default_rng(0))), np.asarray(crap(hr, np.random.default_rng(0)))
    )


@pytest.mark.parametrize(
    ("spec", "task", "scale", "needle"),
    [
        ("no-such-preset", "restore", 1, "unknown crappification 'no-such-preset'"),
        ("upscale-x4", "upscale", 2, "makes x4 pairs"),
        (None, "upscale", 1, "scale of 2 or more"),
        (None, "paint", 1, "unknown task 'paint'"),
        ("missing.toml", "restore", 1, "recipe file not found"),
    ],
)
def test_bad_specs_raise_clear_usage_errors(spec, task, scale, needle):
    with pytest.raises(UsageError, match=needle):
        load_crappifier(spec, task=task, scale=scale)


def test_presets_survive_tiny_images():
    # Crops near the edge of a photo, or an LR side of a few pixels, must not crash a worker.
    for name in preset_names():
        declared = read_recipe(RECIPES_DIR / f"{name}.toml").get("scale") or 1
        crap = load_crappifier(name, task="upscale" if declared > 1 else "restore", scale=declared)
        for seed in range(3):
            out = crap(
                Image.new("RGB", (5 * declared, 3 * declared), (90, 60, 30)), np.random.default_rng(seed)
            )
            assert out.size == (5, 3)


def _scale_of(name: str) -> int:
    declared = read_recipe(RECIPES_DIR / f"{name}.toml").get("scale")
    return declared or (3 if name == "upscale" else 1)
