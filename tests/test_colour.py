"""photosr.colour: the sRGB curve, premultiplication, BT.601 Y/Cb/Cr."""

from __future__ import annotations

import numpy as np
import pytest
from imaging_helpers import assert_close

from photosr.colour import (
    linear_to_srgb,
    luminance,
    premultiply,
    rgb_to_ycbcr,
    srgb_to_linear,
    unpremultiply,
    ycbcr_to_rgb,
)


def _reference_to_linear(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_srgb_curve_matches_the_piecewise_definition() -> None:
    x = np.linspace(0, 1, 4097, dtype=np.float32)
    assert_close(srgb_to_linear(x), _reference_to_linear(x), 2e-6, "decode")
    assert srgb_to_linear(x).dtype == np.float32


def test_known_values() -> None:
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert linear_to_srgb(np.float32(0.5)) == pytest.approx(0.73536, abs=1e-5)
    # The toe: below 0.04045 the curve is linear, not a power (a 2.2 gamma would give 0.00001).
    assert srgb_to_linear(np.float32(0.01)) == pytest.approx(0.01 / 12.92, rel=1e-5)
    assert srgb_to_linear(np.float32(1.0)) == 1.0
    assert srgb_to_linear(np.float32(0.0)) == 0.0


@pytest.mark.parametrize("levels", [255, 65535])
def test_round_trip_is_exact_at_8_and_16_bits(levels: int) -> None:
    v = np.arange(levels + 1, dtype=np.float32) / levels
    back = np.rint(linear_to_srgb(srgb_to_linear(v)) * levels)
    assert np.array_equal(back, np.arange(levels + 1))


def test_curves_clip_out_of_range_and_keep_shape() -> None:
    x = np.array([[-0.5, 1.5], [0.2, 0.8]], dtype=np.float32)
    assert srgb_to_linear(x)[0].tolist() == [0.0, 1.0]
    assert linear_to_srgb(x).shape == (2, 2)
    big = np.random.default_rng(0).random((70, 1000, 3), dtype=np.float32)  # spans several chunks
    assert_close(srgb_to_linear(big), _reference_to_linear(big), 2e-6, "chunked")


def test_curves_do_not_modify_input() -> None:
    x = np.array([0.3, -1.0, 2.0], dtype=np.float32)
    before = x.copy()
    srgb_to_linear(x)
    linear_to_srgb(x)
    assert np.array_equal(x, before)


def test_premultiply_and_back_safe_where_alpha_is_zero() -> None:
    rgb = np.full((2, 3, 3), 0.8, dtype=np.float32)
    alpha = np.array([[0.0, 0.5, 1.0], [0.25, 0.0, 1.0]], dtype=np.float32)
    pre = premultiply(rgb, alpha)
    assert_close(pre[0, 1], [0.4, 0.4, 0.4], 1e-7, "premultiplied")
    back = unpremultiply(pre, alpha)
    assert np.all(np.isfinite(back))
    assert np.all(back[alpha == 0] == 0)
    assert_close(back[alpha > 0], 0.8, 1e-6, "unpremultiplied")


def test_unpremultiply_clips_ringing_above_alpha() -> None:
    out = unpremultiply(np.array([[[0.3, 0.1, 0.0]]], np.float32), np.array([[0.2]], np.float32))
    assert out.max() <= 1.0 and out[0, 0, 1] == pytest.approx(0.5)


def test_ycbcr_matches_bt601_full_range() -> None:
    rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.5, 0.5, 0.5]]], np.float32)
    ycc = rgb_to_ycbcr(rgb)
    assert_close(ycc[0, :3, 0], [0.299, 0.587, 0.114], 1e-6, "Y of primaries")
    assert_close(ycc[0, 3:, 1:], 0.5, 1e-6, "neutral chroma")
    assert ycc[0, 2, 1] == pytest.approx(1.0, abs=1e-6)  # pure blue: Cb at its top
    assert ycc[0, 0, 2] == pytest.approx(1.0, abs=1e-6)  # pure red: Cr at its top
    assert_close(luminance(rgb), ycc[..., 0], 1e-6, "luminance is Y")


def test_ycbcr_round_trip() -> None:
    rgb = np.random.default_rng(1).random((9, 7, 3), dtype=np.float32)
    assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, 1e-5, "round trip")
    assert ycbcr_to_rgb(rgb_to_ycbcr(rgb)).dtype == np.float32


def test_ycbcr_agrees_with_pillow() -> None:
    from PIL import Image

    rgb8 = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(rgb8).convert("YCbCr"), dtype=np.float32) / 255
    assert_close(rgb_to_ycbcr(rgb8.astype(np.float32) / 255), pil, 1.5 / 255, "vs Pillow JPEG YCbCr")
