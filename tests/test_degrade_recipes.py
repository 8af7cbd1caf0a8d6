"""TOML recipes and custom crappify callables: loading, running, provenance and clear errors."""

from __future__ import annotations

import pickle
import sys
import textwrap

import numpy as np
import pytest
from photosr.training.degrade import load_crappifier
from PIL import Image

from photosr.errors import UsageError

RECIPE = """
name = "my-damage"
description = "test recipe"

[[steps]]
op = "blur"
kinds = ["iso", "aniso"]
sigma = [0.5, 1.5]

[[steps]]
op = "downscale"
methods = ["area", "bicubic"]

[[steps]]
op = "one_of"
weights = [0.5, 0.5]
  [[steps.ops]]
  op = "jpeg"
  quality = [30, 60]
  [[steps.ops]]
  op = "noise"
  p = 0.5
  sigma = [2, 8]
"""

CUSTOM = """
import numpy as np
from PIL import Image, ImageFilter


def crappify(image, rng):
    radius = float(rng.uniform(0.5, 2.0))
    small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    return small.filter(ImageFilter.GaussianBlur(radius))


def wrong_size(image, rng):
    return image


def not_an_image(image, rng):
    return np.zeros((4, 4, 3))
"""


def _photo(w: int = 64, h: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_toml_recipe_loads_runs_and_replays(tmp_path):
    path = _write(tmp_path, "mine.toml", RECIPE)
    crap = load_crappifier(str(path), task="upscale", scale=2)
    hr = _photo()
    out = crap(hr, np.random.default_rng(1))
    assert out.size == (32, 24)
    params = crap.sample(np.random.default_rng(1))
    assert crap.apply(hr, params).tobytes() == out.tobytes()
    info = crap.describe()
    assert info["kind"] == "recipe" and info["name"] == "my-damage" and info["scale"] == 2
    assert info["sha256"] == crap.source_hash() and len(info["sha256"]) == 64
    assert info["recipe"]["steps"][0]["op"] == "blur"
    # The same recipe drives a 1x model too: `downscale` without a scale follows the model.
    assert load_crappifier(str(path), task="restore")(hr, np.random.default_rng(1)).size == hr.size


def test_recipe_hash_changes_with_the_file(tmp_path):
    path = _write(tmp_path, "mine.toml", RECIPE)
    before = load_crappifier(str(path), task="restore").source_hash()
    path.write_text(RECIPE.replace("[30, 60]", "[30, 70]"))
    assert load_crappifier(str(path), task="restore").source_hash() != before


def test_recipe_can_include_a_preset_and_limit_steps_by_scale(tmp_path):
    path = _write(
        tmp_path,
        "inc.toml",
        """
        [[steps]]
        op = "preset"
        name = "upscale"
        [[steps]]
        op = "greyscale"
        min_scale = 2
        """,
    )
    rgb = np.asarray(load_crappifier(str(path), task="upscale", scale=2)(_photo(), np.random.default_rng(0)))
    assert rgb.shape == (24, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 1])
    colour = np.asarray(load_crappifier(str(path), task="restore")(_photo(), np.random.default_rng(0)))
    assert not np.array_equal(colour[..., 0], colour[..., 1])


def test_custom_python_file_callable(tmp_path):
    path = _write(tmp_path, "my_crap.py", CUSTOM)
    crap = load_crappifier(f"{path}:crappify", task="upscale", scale=2)
    hr = _photo()
    a, b = crap(hr, np.random.default_rng(3)), crap(hr, np.random.default_rng(3))
    assert a.size == (32, 24) and a.tobytes() == b.tobytes()
    assert crap(hr, np.random.default_rng(4)).tobytes() != a.tobytes()
    info = crap.describe()
    assert info["kind"] == "callable" and info["source"] == str(path.resolve())
    assert crap.source_hash() == info["sha256"] and not crap.splittable
    with pytest.raises(UsageError, match="cannot split"):
        crap.sample(np.random.default_rng(0))
    clone = pickle.loads(pickle.dumps(crap))  # what a spawned DataLoader worker receives
    assert clone(hr, np.random.default_rng(3)).tobytes() == a.tobytes()


def test_custom_module_callable(tmp_path, monkeypatch):
    _write(tmp_path, "crapmod_for_test.py", CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        crap = load_crappifier("crapmod_for_test:crappify", task="upscale", scale=2)
        assert crap(_photo(), np.random.default_rng(0)).size == (32, 24)
        assert crap.source_hash() is not None
    finally:
        sys.modules.pop("crapmod_for_test", None)


@pytest.mark.parametrize(
    ("func", "needle"),
    [
        ("wrong_size", "wrong_size made 64x48 from 64x48; x2 needs 32x24"),
        ("not_an_image", "returned ndarray, not a PIL image"),
    ],
)
def test_custom_callable_output_is_checked(tmp_path, func, needle):
    path = _write(tmp_path, "my_crap.py", CUSTOM)
    crap = load_crappifier(f"{path}:{func}", task="upscale", scale=2)
    with pytest.raises(UsageError, match=needle):
        crap(_photo(), np.random.default_rng(0))


def test_custom_callable_errors_name_the_file(tmp_path):
    path = _write(tmp_path, "my_crap.py", CUSTOM)
    with pytest.raises(UsageError, match="no function 'missing'") as err:
        load_crappifier(f"{path}:missing", task="restore")
    assert str(path.name) in str(err.value)
    broken = _write(tmp_path, "broken.py", "def crappify(image, rng):\n    return (\n")
    with pytest.raises(UsageError, match="broken.py: importing failed: SyntaxError"):
        load_crappifier(f"{broken}:crappify", task="restore")
    with pytest.raises(UsageError, match="crappify file not found"):
        load_crappifier(f"{tmp_path / 'nope.py'}:crappify", task="restore")
    with pytest.raises(UsageError, match="cannot import module 'no_such_module_xyz'"):
        load_crappifier("no_such_module_xyz:crappify", task="restore")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[[steps]]\nop = "blurr"\n', r"steps\[0\]\.op: unknown op 'blurr' \(known: .*blur"),
        (
            '[[steps]]\nop = "jpeg"\nquality = [90, 20]\n',
            r"steps\[0\]\.quality: range \[90, 20\] has low > high",
        ),
        (
            '[[steps]]\nop = "jpeg"\nquality = [5, 500]\n',
            r"steps\[0\]\.quality: range .* outside the allowed",
        ),
        ('[[steps]]\nop = "jpeg"\nqualty = 50\n', r"steps\[0\]\.qualty: unknown key for op 'jpeg'"),
        ('[[steps]]\nop = "jpeg"\np = 1.5\n', r"steps\[0\]\.p: expected a probability"),
        (
            '[[steps]]\nop = "noise"\n[[steps]]\nop = "shuffle"\n[[steps.ops]]\nop = "blur"\nsigma = "big"\n',
            r"steps\[1\]\.ops\[0\]\.sigma: expected a number or \[low, high\]",
        ),
        ('[[steps]]\nop = "greyscale"\nmin_scale = 0\n', r"steps\[0\]\.min_scale: expected a whole number"),
        ('[[steps]]\nop = "preset"\nname = "nope"\n', r"steps\[0\]\.name: expected one of the presets"),
        ('colour = 1\n[[steps]]\nop = "noise"\n', r"unknown top-level key 'colour'"),
        ('name = "empty"\n', r"steps: a recipe needs at least one"),
        ('scale = 4\n[[steps]]\nop = "downscale"\n', r"scale: this recipe makes x4 pairs, but x2"),
        ('[[steps]]\nop = "noise"\n', r"bad made 48x48 from 48x48; x2 needs 24x24"),
        ('[[steps]\nop = "noise"\n', r"not a readable TOML recipe"),
    ],
)
def test_bad_recipes_name_the_file_and_key(tmp_path, body, needle):
    path = _write(tmp_path, "bad.toml", body)
    with pytest.raises(UsageError, match=needle) as err:
        load_crappifier(str(path), task="upscale", scale=2)
    assert str(err.value).startswith(str(path))


def test_the_readme_example_recipe_runs(tmp_path):
    from photosr.training.degrade.recipe import RECIPES_DIR

    readme = (RECIPES_DIR.parent / "degrade" / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = _write(tmp_path, "readme.toml", block)
    for task, scale in (("upscale", 2), ("restore", 1)):
        crap = load_crappifier(str(path), task=task, scale=scale)
        assert crap(_photo(), np.random.default_rng(0)).size == (64 // scale, 48 // scale)


def test_relative_recipe_path_survives_pickling_into_another_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    _write(tmp_path / "a", "mine.toml", RECIPE)
    monkeypatch.chdir(tmp_path / "a")
    crap = load_crappifier("mine.toml", task="upscale", scale=2)
    data = pickle.dumps(crap)
    monkeypatch.chdir(tmp_path)  # a spawned worker may start elsewhere
    clone = pickle.loads(data)
    assert clone.spec == "mine.toml"
    hr = _photo()
    assert clone(hr, np.random.default_rng(2)).tobytes() == crap(hr, np.random.default_rng(2)).tobytes()
