"""photosr.resize: linear-light resampling, premultiplied alpha, fit_within."""

from __future__ import annotations

import numpy as np
import pytest
from imaging_helpers import assert_close

from photosr.errors import UsageError
from photosr.image import Photo, SourceInfo
from photosr.resize import fit_within, linear_light_resize, resize_photo


def _stripes(vertical: bool, n: int = 64) -> np.ndarray:
    rgb = np.zeros((n, n, 3), dtype=np.float32)
    if vertical:
        rgb[:, ::2] = 1.0
    else:
        rgb[::2] = 1.0
    return rgb


@pytest.mark.parametrize("vertical", [True, False])
def test_stripes_average_in_linear_light(vertical: bool) -> None:
    size = (32, 64) if vertical else (64, 32)
    out = linear_light_resize(_stripes(vertical), size)
    assert out.shape == (size[1], size[0], 3)
    # Half the light of white is 0.735 encoded; averaging the encoded values would give 0.5.
    assert_close(out[4:-4, 4:-4], 0.7354, 0.01, "linear-light stripes")


def test_gamma_space_resize_would_give_half() -> None:
    """The same resampler on encoded values gives 0.5: the test above measures linear light, not luck."""
    from photosr import resize

    out = resize._resample_planes(_stripes(True), (32, 64))
    assert_close(out[4:-4, 4:-4], 0.5, 0.01, "gamma-space stripes")


def test_flat_colour_survives_shrink_and_enlarge() -> None:
    rgb = np.full((30, 40, 3), [0.2, 0.5, 0.9], dtype=np.float32)
    for size in [(10, 7), (97, 61)]:
        out = linear_light_resize(rgb, size)
        assert out.dtype == np.float32
        assert_close(out, rgb[0, 0], 1e-5, f"flat at {size}")


def _red_square(n: int = 40) -> Photo:
    rgb = np.zeros((n, n, 3), dtype=np.float32)
    alpha = np.zeros((n, n), dtype=np.float32)
    rgb[10:30, 10:30, 0] = 1.0
    alpha[10:30, 10:30] = 1.0
    return Photo(rgb=rgb, alpha=alpha)


@pytest.mark.parametrize("size", [(13, 13), (23, 17), (97, 97)])
def test_alpha_edges_have_no_dark_fringe(size: tuple[int, int]) -> None:
    out = resize_photo(_red_square(), size)
    visible = out.alpha > 0.02
    assert visible.any() and (out.alpha < 0.98).any()  # there are soft edge pixels to check
    assert_close(out.rgb[visible], [1.0, 0.0, 0.0], 1e-4, "edge colour")
    assert out.alpha.min() >= 0.0 and out.alpha.max() <= 1.0


def test_straight_alpha_resize_would_fringe() -> None:
    """Control: resizing colour without alpha weighting darkens the edges - what resize_photo avoids."""
    photo = _red_square()
    plain = linear_light_resize(photo.rgb, (13, 13))
    alpha = resize_photo(photo, (13, 13)).alpha
    edge = (alpha > 0.02) & (alpha < 0.98)
    assert plain[edge][:, 0].min() < 0.9


def test_resize_photo_keeps_info_and_flags() -> None:
    info = SourceInfo(format="PNG", grey=True, bit_depth=16)
    photo = Photo(rgb=np.full((8, 8, 3), 0.5, np.float32), info=info, colour_added=True)
    out = resize_photo(photo, (4, 2))
    assert out.size == (4, 2) and out.info == info and out.colour_added
    assert resize_photo(photo, (8, 8)) is photo


def test_fit_within_only_shrinks() -> None:
    photo = Photo(rgb=np.zeros((100, 201, 3), np.float32))
    assert fit_within(photo, 500) is photo
    assert fit_within(photo, 201) is photo
    small = fit_within(photo, 50)
    assert small.size == (50, 25)
    tall = fit_within(Photo(rgb=np.zeros((1001, 1000, 3), np.float32)), 500)
    assert max(tall.size) == 500 and tall.size[0] == 500


def test_fit_within_tiny_side_never_zero() -> None:
    out = fit_within(Photo(rgb=np.zeros((2, 300, 3), np.float32)), 30)
    assert out.size == (30, 1)


@pytest.mark.parametrize("bad", [(0, 5), (5, -1)])
def test_bad_sizes_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(UsageError):
        linear_light_resize(np.zeros((4, 4, 3), np.float32), bad)
    with pytest.raises(UsageError):
        fit_within(Photo(rgb=np.zeros((4, 4, 3), np.float32)), 0)
