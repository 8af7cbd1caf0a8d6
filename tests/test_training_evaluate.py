"""PSNR/SSIM on the SR papers' protocol, and the scoring table."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from photosr.training.evaluate import (  # noqa: E402
    bicubic_upscale,
    format_table,
    psnr,
    score_pairs,
    ssim,
    to_uint8,
    y_channel,
)


def test_y_channel_is_studio_range_bt601() -> None:
    black, white = np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8)
    assert y_channel(black)[0, 0] == pytest.approx(16.0)
    assert y_channel(white)[0, 0] == pytest.approx(235.0)


def test_psnr_known_value_and_border_crop() -> None:
    a = np.full((10, 10, 3), 100, np.uint8)
    b = a.copy()
    b[:, :, :] = 110  # every channel +10 -> Y differs by 10 * 219/255
    expected = 10 * np.log10(255**2 / (10 * 219 / 255) ** 2)
    assert psnr(a, b) == pytest.approx(expected, abs=1e-6)
    c = a.copy()
    c[0, :] = 0  # damage only the first row: cropping a 1-pixel border removes it
    assert psnr(a, c, border=1) == float("inf")
    assert psnr(a, c) < 30


def test_ssim_identity_is_one_and_noise_lowers_it() -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 32)
    img = np.repeat((ramp[:, None] + ramp[None, :] / 4)[..., None], 3, axis=2).astype(np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    scores = [ssim(img, np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8)) for s in (5, 25)]
    assert 1.0 > scores[0] > scores[1]
    assert scores[1] < 0.5  # strong noise on a smooth picture destroys its structure


def test_score_pairs_reports_gain_over_the_baseline() -> None:
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    lr = hr[::2, ::2]
    table = score_pairs([(lr, hr)], {"oracle": lambda _: hr.astype(np.float32) / 255}, scale=2)
    assert set(table) == {"bicubic", "oracle"}
    assert table["oracle"]["psnr"] == float("inf") and table["oracle"]["gain_db"] > 0
    assert "| oracle |" in format_table(table)
    assert bicubic_upscale(lr, 2).shape == hr.shape
    one_x = score_pairs([(hr, hr)], {"same": lambda x: x}, scale=1, with_ssim=False)
    assert "identity" in one_x and "ssim" not in one_x["same"]


def test_to_uint8_rounds_and_clips() -> None:
    out = to_uint8(np.array([-0.1, 0.0, 0.5, 1.2], np.float32))
    assert out.tolist() == [0, 0, 128, 255]
