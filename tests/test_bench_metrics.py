"""benchmarks/sr_metrics.py (numpy only) gives the numbers photosr.training.evaluate (torch) gives."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sr_metrics  # noqa: E402


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:40, 0:52]
    a = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2) + rng.normal(0, 8, (40, 52, 3))
    a = np.clip(a, 0, 255).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_matches_training_evaluate() -> None:
    evaluate = pytest.importorskip("photosr.training.evaluate")
    a, b = _pair()
    for border in (0, 4):
        assert sr_metrics.psnr(a, b, border=border) == pytest.approx(evaluate.psnr(a, b, border=border))
        assert sr_metrics.ssim(a, b, border=border) == pytest.approx(evaluate.ssim(a, b, border=border))
    assert sr_metrics.psnr(a, b, y_only=False) == pytest.approx(evaluate.psnr(a, b, y_only=False))


def test_identical_and_rgb_ssim() -> None:
    a, b = _pair(1)
    assert sr_metrics.psnr(a, a) == float("inf")
    assert sr_metrics.ssim(a, a, y_only=False) == pytest.approx(1.0)
    # Damage in the red channel only: RGB SSIM is the mean of red's SSIM and two perfect channels.
    red = a.copy()
    red[..., 0] = b[..., 0]
    red_alone = sr_metrics._ssim_plane(a[..., 0].astype(float), b[..., 0].astype(float))
    assert red_alone < 0.99
    assert sr_metrics.ssim(a, red, y_only=False) == pytest.approx((red_alone + 2.0) / 3.0)


def test_colour_shift_is_signed_per_channel() -> None:
    a = np.full((4, 4, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[..., 0] += 3
    b[..., 2] -= 1
    assert sr_metrics.colour_shift(b, a).tolist() == [3.0, 0.0, -1.0]
