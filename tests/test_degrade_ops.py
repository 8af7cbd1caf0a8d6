"""Each degradation op: deterministic under a seed, params within their ranges, and doing what it says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from photosr.training.degrade import (
    Blur,
    Chain,
    Downscale,
    Dust,
    Fade,
    FastaiJpeg,
    Grain,
    Greyscale,
    Jpeg,
    Maybe,
    Noise,
    OneOf,
    Overlay,
    Rescaled,
    Scratches,
    Sepia,
    Shuffle,
    make_kernel,
)
from PIL import Image

from photosr.errors import UsageError


def _photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 3.0) * np.cos(y / 4.0)], axis=-1)
    pixels = np.clip(base * 0.85 + rng.random((h, w, 3)) * 0.15, 0, 1)
    return Image.fromarray((pixels * 255).astype(np.uint8), "RGB")


def _flat(value: int = 128, size: tuple[int, int] = (48, 40)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


# Every op with random parameters, configured to exercise its branches.
RANDOM_OPS = {
    "downscale": Downscale(
        3, methods=("bicubic", "bilinear", "area", "lanczos", "nearest"), linear_light=0.5, antialias=0.5
    ),
    "rescaled": Rescaled((0.3, 1.5), ops=[Noise()]),
    "blur": Blur(kinds=("iso", "aniso", "generalized", "plateau", "motion", "sinc")),
    "noise": Noise(),
    "jpeg": Jpeg(quality=(10, 90), double=0.5),
    "fastai_jpeg": FastaiJpeg(),
    "overlay": Overlay(fonts=["default"]),
    "greyscale": Greyscale((0.2, 1.0)),
    "sepia": Sepia(),
    "fade": Fade(),
    "grain": Grain(),
    "scratches": Scratches(),
    "dust": Dust(),
    "shuffle": Shuffle([Blur(), Noise(), Jpeg()]),
    "one_of": OneOf([Blur(), Noise()], weights=[1, 3]),
    "maybe": Maybe(Noise(), p=0.5),
}


@pytest.mark.parametrize("name", sorted(RANDOM_OPS))
def test_same_seed_same_params_and_pixels(name):
    op, image = RANDOM_OPS[name], _photo()
    p1, p2 = op.sample(np.random.default_rng(11)), op.sample(np.random.default_rng(11))
    assert p1 == p2
    json.dumps(p1)  # plain numbers and strings: loggable and replayable
    a, b = op.apply(image, p1), op.apply(image, json.loads(json.dumps(p2)))
    assert np.array_equal(_px(a), _px(b))
    assert np.array_equal(_px(op(image, np.random.default_rng(11))), _px(a))


@pytest.mark.parametrize("name", sorted(RANDOM_OPS))
def test_different_seeds_differ(name):
    op, image = RANDOM_OPS[name], _photo()
    params = [op.sample(np.random.default_rng(seed)) for seed in range(8)]
    assert len({json.dumps(p, sort_keys=True) for p in params}) > 1
    outputs = {op.apply(image, p).tobytes() for p in params}
    assert len(outputs) > 1


def test_apply_does_not_modify_the_input():
    image = _photo()
    before = image.tobytes()
    for op in RANDOM_OPS.values():
        op(image, np.random.default_rng(0))
    assert image.tobytes() == before


def _draws(op, n=40):
    return [op.sample(np.random.default_rng(seed)) for seed in range(n)]


def test_params_stay_within_ranges():
    for p in _draws(Jpeg(quality=(20, 30), subsampling="4:4:4", double=1.0, quality2=(60, 70))):
        assert 20 <= p["quality"] <= 30 and 60 <= p["quality2"] <= 70 and p["subsampling"] == "4:4:4"
    for p in _draws(Noise(kinds="gaussian", sigma=(5, 6), grey=0.0)):
        assert p["kind"] == "gaussian" and 5 <= p["strength"] <= 6 and p["grey"] is False
    for p in _draws(
        Blur(kinds=("aniso", "generalized"), sigma=(0.5, 1.0), size=(5, 9), beta_generalized=(1, 2))
    ):
        assert p["size"] in (5, 7, 9) and 0.5 <= p["sigma_x"] <= 1.0 and 0.5 <= p["sigma_y"] <= 1.0
        assert p["kind"] == "aniso" or 1 <= p["beta"] <= 2
    for p in _draws(Blur(kinds="motion", length=(4, 6), size=(11, 11))):
        assert 4 <= p["length"] <= 6 and p["size"] == 11
    for p in _draws(Overlay(fonts=["default"], opacity=(0.3, 0.4), size=(0.1, 0.2), layout="tiled")):
        assert 0.3 <= p["opacity"] <= 0.4 and 0.1 <= p["size"] <= 0.2 and p["layout"] == "tiled"
        assert all(0 <= c <= 255 for c in p["colour"])
    for p in _draws(Rescaled(factor=(0.4, 0.6), methods="area")):
        assert 0.4 <= p["factor"] <= 0.6 and p["down"] == p["up"] == "area"
    for p in _draws(Scratches(count=(2, 4))) + _draws(Dust(count=(2, 4))):
        assert 2 <= p["count"] <= 4
    for p in _draws(FastaiJpeg(quality=(10, 70))):
        assert 10 <= p["quality"] <= 70 and 0 <= p["x"] <= 0.5 and 0 <= p["y"] <= 0.5


# ---- what each op does ----


def test_downscale_exact_size_and_unfiltered_aliasing():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    image = Image.fromarray(noise)  # pixel-level detail: a filtered 4x shrink averages it away
    params = {"method": "bicubic", "linear_light": False, "antialias": True}
    filtered = Downscale(4).apply(image, params)
    aliased = Downscale(4).apply(image, {**params, "antialias": False})
    assert filtered.size == aliased.size == (16, 16)
    assert _px(aliased).std() > 2 * _px(filtered).std()
    assert Downscale(3).apply(_photo(50, 31), params).size == (16, 10)


def test_linear_light_downscale_keeps_brightness_of_fine_detail():
    checker = ((np.indices((32, 32)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = Image.fromarray(np.repeat(checker[..., None], 3, axis=2))
    params = {"method": "area", "antialias": True}
    gamma = _px(Downscale(2).apply(image, {**params, "linear_light": False})).mean()
    linear = _px(Downscale(2).apply(image, {**params, "linear_light": True})).mean()
    assert abs(gamma - 127.5) < 2 and abs(linear - 188) < 3  # half the light is sRGB 188, not 128


def test_rescaled_keeps_exact_size():
    op = Rescaled(factor=(0.31, 1.7), ops=[Jpeg()])
    for seed in range(5):
        assert op(_photo(37, 23), np.random.default_rng(seed)).size == (37, 23)


@pytest.mark.parametrize("kind", ["iso", "aniso", "generalized", "plateau", "motion", "sinc"])
def test_kernels_are_normalised_and_blur(kind):
    op = Blur(kinds=kind, sigma=(1.5, 2.5), size=(11, 11), length=(6, 8), cutoff=(0.3, 0.4))
    params = op.sample(np.random.default_rng(3))
    kernel = make_kernel(params)
    assert kernel.shape == (11, 11) and abs(kernel.sum() - 1) < 1e-9
    image = _photo(64, 64)
    detail = lambda im: np.abs(np.diff(_px(im), axis=1)).mean()  # noqa: E731
    assert detail(op.apply(image, params)) < 0.8 * detail(image)


def test_isotropic_kernel_is_symmetric_and_anisotropic_is_not():
    iso = make_kernel({"kind": "iso", "size": 9, "sigma_x": 1.5, "sigma_y": 1.5, "angle": 30.0})
    aniso = make_kernel({"kind": "aniso", "size": 9, "sigma_x": 3.0, "sigma_y": 0.5, "angle": 0.0})
    assert np.allclose(iso, iso.T) and np.allclose(iso, iso[::-1])
    assert aniso[4, :].sum() > 3 * aniso[:, 4].sum()  # wide along x at angle 0


def test_blur_of_a_flat_image_is_flat():
    out = Blur(kinds="aniso")(_flat(90), np.random.default_rng(0))
    assert np.abs(_px(out) - 90).max() <= 1


def test_gaussian_noise_strength_and_grey_noise():
    image = _flat(128, (96, 96))
    colour = _px(Noise().apply(image, {"kind": "gaussian", "strength": 10.0, "grey": False, "seed": 1})) - 128
    grey = _px(Noise().apply(image, {"kind": "gaussian", "strength": 10.0, "grey": True, "seed": 1})) - 128
    assert 9 < colour.std() < 11
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert not np.array_equal(colour[..., 0], colour[..., 1])


def test_poisson_noise_grows_with_brightness():
    params = {"kind": "poisson", "strength": 1.0, "grey": False, "seed": 2}
    dark = _px(Noise().apply(_flat(20, (96, 96)), params)).std()
    bright = _px(Noise().apply(_flat(220, (96, 96)), params)).std()
    assert bright > 2 * dark > 0


def test_jpeg_lower_quality_is_further_from_the_original():
    image = _photo(64, 64)
    err = {
        q: np.abs(
            _px(Jpeg().apply(image, {"quality": q, "subsampling": "4:2:0", "quality2": 0})) - _px(image)
        ).mean()
        for q in (10, 90)
    }
    assert err[10] > err[90] > 0
    twice = Jpeg().apply(image, {"quality": 90, "subsampling": "4:2:0", "quality2": 20})
    assert np.abs(_px(twice) - _px(image)).mean() > err[90]


def test_fastai_stamp_draws_the_quality_number_in_white():
    params = {"quality": 95, "x": 0.1, "y": 0.1, "text_size": 0.3}
    out = _px(FastaiJpeg().apply(_flat(30, (64, 64)), params))
    assert out.max() > 200  # white text on a dark photo
    assert out[40:, 40:].max() < 60  # only near the chosen spot in the top-left


def test_overlay_mask_matches_changed_pixels():
    image = _flat(60, (80, 64))
    for seed in range(12):
        # A contrasting outline can cancel the fill exactly on a few antialiased edge pixels, so the
        # exact check runs without one and the outlined case checks nearly all.
        op = Overlay(fonts=["default"], colours="white", outline=seed % 2)
        params = op.sample(np.random.default_rng(seed))
        out, mask = op.apply_with_mask(image, params)
        assert mask.shape == (64, 80) and mask.dtype == np.float32
        assert 0 < mask.max() <= params["opacity"] + 1e-6
        changed = np.abs(_px(out) - 60).max(axis=2) > 0
        assert not changed[mask == 0].any()
        assert changed[mask > 0.02].mean() > (0.97 if params["outline"] else 0.999999)
        assert np.array_equal(_px(out), _px(op.apply(image, params)))


def test_overlay_mask_survives_a_chain_and_resizes_with_it():
    from photosr.training.degrade import load_crappifier

    crap = load_crappifier("dewatermark", task="dewatermark")
    params = crap.sample(np.random.default_rng(4))
    out, mask = crap.apply_with_mask(_photo(64, 48), params)
    assert mask.shape == (48, 64) and mask.max() > 0.1
    chain = Chain([Overlay(fonts=["default"], layout="tiled"), Downscale(2)])
    _, small = chain.apply_masked(_photo(64, 48), None, chain.sample(np.random.default_rng(0)))
    assert small.shape == (24, 32)


def test_overlay_uses_the_given_words_and_fonts(tmp_path):
    op = Overlay(content="words", words=["HELDOUT"], fonts=["default"])
    texts = [op.sample(np.random.default_rng(s))["text"] for s in range(10)]
    assert all("HELDOUT" in t.upper() for t in texts)
    with pytest.raises(UsageError, match="font folder not found"):
        Overlay(font_dir=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="font file not found"):
        Overlay(fonts=[str(tmp_path / "nope.ttf")])


def test_old_photo_ops():
    image = _photo(64, 64)
    grey = _px(Greyscale().apply(image, {"amount": 1.0}))
    assert np.array_equal(grey[..., 0], grey[..., 2])
    sepia = _px(Sepia().apply(_flat(120), {"strength": 1.0}))
    assert sepia[..., 0].mean() > sepia[..., 1].mean() > sepia[..., 2].mean()
    faded = Fade().apply(image, {"amount": 0.6, "cast": 0.0, "tint": [1, 1, 1]})
    assert _px(faded).std() < 0.8 * _px(image).std() and _px(faded).min() > 40
    grained = _px(Grain().apply(_flat(128), {"amount": 0.1, "grain_size": 1.5, "seed": 0}))
    assert np.array_equal(grained[..., 0], grained[..., 1]) and grained.std() > 3
    for op in (Scratches(count=(3, 3)), Dust(count=(20, 20))):
        out = _px(op(_flat(128, (96, 96)), np.random.default_rng(1)))
        changed = (np.abs(out - 128).max(axis=2) > 8).mean()
        assert 0.001 < changed < 0.3


def test_composites():
    image = _photo()
    assert Maybe(Noise(), p=0.0)(image, np.random.default_rng(0)).tobytes() == image.tobytes()
    assert OneOf([Greyscale(), Noise()], weights=[1, 0]).sample(np.random.default_rng(0))["choice"] == 0
    order = Shuffle([Blur(), Noise(), Jpeg()]).sample(np.random.default_rng(5))["order"]
    assert sorted(order) == [0, 1, 2]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: Jpeg(quality=(90, 20)), "quality: range \\[90, 20\\] has low > high"),
        (lambda: Jpeg(quality=(0, 101)), "quality: range .* outside the allowed 1..100"),
        (lambda: Blur(kinds="box"), "kinds: unknown value 'box'"),
        (lambda: Noise(grey=2), "grey: expected a probability"),
        (lambda: OneOf([Noise()], weights=[1, 2]), "weights: expected 1"),
        (lambda: Downscale(methods="cubic"), "methods: unknown value 'cubic'"),
        (lambda: Overlay(words=[]), "words"),
    ],
)
def test_bad_parameters_name_the_parameter(make, needle):
    with pytest.raises(UsageError, match=needle):
        make()


def test_fft_convolution_matches_direct_convolution():
    from photosr.training.degrade.blur import convolve

    rng = np.random.default_rng(0)
    rgb = rng.random((13, 11, 3)).astype(np.float32)  # odd sizes: padding to fast FFT lengths
    kernel = rng.random((7, 7))
    kernel /= kernel.sum()
    padded = np.pad(rgb, ((3, 3), (3, 3), (0, 0)), mode="reflect")
    direct = sum(
        kernel[i, j] * padded[6 - i : 6 - i + 13, 6 - j : 6 - j + 11] for i in range(7) for j in range(7)
    )
    assert np.abs(convolve(rgb, kernel) - direct).max() < 1e-5
