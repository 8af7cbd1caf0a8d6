"""Tasks on tiny photos with numpy stand-in runners: alpha, grey, scale, strength, chroma merge, masks."""

from __future__ import annotations

import numpy as np
import pytest

from photosr import tasks as tasks_module
from photosr.colour import luminance
from photosr.errors import UsageError
from photosr.image import Photo, SourceInfo
from photosr.tasks import (
    TASKS,
    ColorizeTask,
    DewatermarkTask,
    NormalizeTask,
    RestoreTask,
    UpscaleTask,
    build_task,
    fill_transparent,
)


def _photo(h: int = 12, w: int = 16, *, grey: bool = False, alpha: bool = False, seed: int = 0) -> Photo:
    rng = np.random.default_rng(seed)
    if grey:
        rgb = np.repeat(rng.random((h, w, 1), dtype=np.float32), 3, axis=2)
    else:
        rgb = rng.random((h, w, 3), dtype=np.float32)
    a = rng.random((h, w), dtype=np.float32) if alpha else None
    return Photo(rgb, a, SourceInfo(grey=grey, mode="L" if grey else "RGB"))


def _nearest(scale: int):
    return lambda rgb: rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def _box_blur(rgb: np.ndarray) -> np.ndarray:
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = rgb.shape[:2]
    return sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9


def test_upscale_scales_rgb_and_resizes_alpha_separately() -> None:
    photo = _photo(alpha=True)
    out = UpscaleTask().apply(photo, _nearest(2))
    assert out.size == (32, 24)
    assert out.alpha is not None and out.alpha.shape == (24, 32)
    assert out.alpha.min() >= 0.0 and out.alpha.max() <= 1.0
    # Alpha is resampled smoothly, not replicated: its mean stays close to the source's.
    assert abs(float(out.alpha.mean()) - float(photo.alpha.mean())) < 0.02
    assert out.info is photo.info


def test_grey_stays_grey_through_a_model_with_a_colour_cast() -> None:
    def tinted(rgb: np.ndarray) -> np.ndarray:
        return _nearest(2)(rgb) * np.array([1.0, 0.9, 0.7], dtype=np.float32)

    out = UpscaleTask().apply(_photo(grey=True), tinted)
    assert np.array_equal(out.rgb[..., 0], out.rgb[..., 1])
    assert np.array_equal(out.rgb[..., 1], out.rgb[..., 2])
    assert not out.colour_added


def test_colour_photo_keeps_model_colour() -> None:
    photo = _photo()
    out = RestoreTask().apply(photo, lambda rgb: rgb[..., ::-1].copy())
    np.testing.assert_array_equal(out.rgb, photo.rgb[..., ::-1])


def test_one_x_task_passes_alpha_through_untouched() -> None:
    photo = _photo(alpha=True)
    out = DewatermarkTask().apply(photo, lambda rgb: rgb)
    np.testing.assert_array_equal(out.alpha, photo.alpha)


def test_fill_transparent_takes_colour_from_visible_neighbours() -> None:
    rgb = np.zeros((20, 20, 3), dtype=np.float32)  # black under the transparent area, as many PNGs store it
    alpha = np.zeros((20, 20), dtype=np.float32)
    rgb[5:15, 5:15] = (1.0, 0.2, 0.1)
    alpha[5:15, 5:15] = 1.0
    alpha[5, 5:15] = 0.3  # a soft edge keeps its own colour
    filled = fill_transparent(rgb, alpha)
    np.testing.assert_allclose(filled[alpha > 0], rgb[alpha > 0])
    np.testing.assert_allclose(
        filled[alpha == 0], np.broadcast_to((1.0, 0.2, 0.1), filled[alpha == 0].shape), atol=1e-5
    )
    # Nothing visible or nothing transparent: returned as is.
    assert fill_transparent(rgb, np.zeros_like(alpha)) is rgb
    assert fill_transparent(rgb, np.ones_like(alpha)) is rgb


def test_no_dark_fringe_when_a_model_looks_across_an_alpha_edge() -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.float32)
    alpha = np.zeros((16, 16), dtype=np.float32)
    rgb[4:12, 4:12] = (0.9, 0.8, 0.2)
    alpha[4:12, 4:12] = 1.0
    out = RestoreTask().apply(Photo(rgb, alpha), _box_blur)
    edge = out.rgb[4, 4:12]  # visible pixels next to transparent ones
    np.testing.assert_allclose(edge, np.broadcast_to((0.9, 0.8, 0.2), edge.shape), atol=1e-5)
    # Without the fill the same blur darkens that edge by a third: the test can fail.
    assert _box_blur(rgb)[4, 6, 0] < 0.7


def test_restore_strength_blends_and_zero_skips_the_model() -> None:
    photo = _photo()
    out = RestoreTask(strength=0.25).apply(photo, lambda rgb: 1.0 - rgb)
    np.testing.assert_allclose(out.rgb, photo.rgb + 0.25 * ((1.0 - photo.rgb) - photo.rgb), atol=1e-6)
    calls = []
    untouched = RestoreTask(strength=0.0).apply(photo, lambda rgb: calls.append(1) or rgb)
    assert calls == [] and np.array_equal(untouched.rgb, photo.rgb)
    with pytest.raises(UsageError, match="strength"):
        RestoreTask(strength=1.5)


def _sepia(seen: list):
    def runner(rgb: np.ndarray) -> np.ndarray:
        seen.append(rgb)
        return rgb * np.array([1.15, 1.0, 0.75], dtype=np.float32)

    return runner


def test_colorize_runs_at_render_size_on_grey_and_keeps_full_res_luminance() -> None:
    photo = _photo(40, 60, grey=True)
    seen: list = []
    out = ColorizeTask(render_size=30).apply(photo, _sepia(seen))
    assert seen[0].shape == (20, 30, 3)  # longest side 30
    assert np.array_equal(seen[0][..., 0], seen[0][..., 2])  # the model sees grey as 3 equal channels
    assert out.size == (60, 40) and out.colour_added
    np.testing.assert_allclose(luminance(out.rgb), luminance(photo.rgb), atol=2e-6)
    assert float(np.abs(out.rgb[..., 0] - out.rgb[..., 2]).mean()) > 0.01  # colour was added


def test_colorize_keeps_luminance_when_model_colour_is_out_of_gamut() -> None:
    photo = _photo(8, 8, grey=True)
    out = ColorizeTask().apply(photo, lambda rgb: np.broadcast_to(np.float32([1, 0, 0]), rgb.shape).copy())
    np.testing.assert_allclose(luminance(out.rgb), luminance(photo.rgb), atol=2e-6)
    assert out.rgb.min() >= 0.0 and out.rgb.max() <= 1.0
    assert (out.rgb[..., 0] >= out.rgb[..., 1]).all()  # still reddish where it fits


def test_colorize_of_colour_photo_keeps_its_luminance() -> None:
    photo = _photo(10, 10)
    out = ColorizeTask(render_size=0).apply(photo, _sepia([]))
    np.testing.assert_allclose(luminance(out.rgb), luminance(photo.rgb), atol=2e-6)


def _merge_chroma_reference(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """The chroma merge written the plain way: full-size YCbCr -> RGB offsets, one scale per pixel."""
    from photosr.colour import ycbcr_to_rgb

    k = np.float32(0.25)  # a quarter of the chroma around mid grey never clips in ycbcr_to_rgb
    small = np.stack([np.full_like(cb, 0.5), 0.5 + k * (cb - 0.5), 0.5 + k * (cr - 0.5)], axis=2)
    offset = (ycbcr_to_rgb(small.astype(np.float32)) - 0.5) / k
    yc = y[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(offset > 0, (1.0 - yc) / offset, np.where(offset < 0, -yc / offset, np.inf))
    scale = np.clip(room.min(axis=2), 0.0, 1.0)
    return np.clip(yc + offset * scale[..., None], 0.0, 1.0)


def test_chroma_merge_matches_the_plain_formula() -> None:
    from photosr.tasks import _merge_chroma

    rng = np.random.default_rng(0)
    y, cb, cr = (rng.random((30, 40), dtype=np.float32) for _ in range(3))
    y[0, :4], cb[0, :4], cr[0, :4] = [0.0, 1.0, 0.5, 0.3], [0.5, 0.5, 0.5, 1.0], [0.5, 0.0, 0.5, 0.0]
    out = _merge_chroma(y, cb, cr)
    assert out.dtype == np.float32 and out.shape == (30, 40, 3)
    np.testing.assert_allclose(out, _merge_chroma_reference(y, cb, cr), atol=2e-6)
    np.testing.assert_allclose(luminance(out), y, atol=2e-6)


def test_dewatermark_finds_the_pixels_an_rgb_model_changed() -> None:
    photo = _photo()

    def erase(rgb: np.ndarray) -> np.ndarray:
        out = rgb.copy()
        out[2:5, 3:9] = 0.5 + (rgb[2:5, 3:9] > 0.5) * -0.4 + 0.2  # changes every pixel by >= 0.1
        return out

    task = DewatermarkTask()
    mask = task.found(photo.rgb, erase(photo.rgb))
    expected = np.zeros((12, 16), dtype=bool)
    expected[2:5, 3:9] = True
    np.testing.assert_array_equal(mask, expected)


def test_normalize_caps_longest_side_and_needs_no_model() -> None:
    photo = _photo(30, 50)
    assert not NormalizeTask.needs_model
    assert NormalizeTask().apply(photo) is photo
    assert NormalizeTask(max_size=25).apply(photo).size == (25, 15)
    assert NormalizeTask(max_size=100).apply(photo) is photo


def test_model_task_without_runner_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a model"):
        RestoreTask().apply(_photo(), None)


def test_build_task_by_name_takes_only_its_settings() -> None:
    assert set(TASKS) == {"restore", "upscale", "colorize", "dewatermark", "normalize"}
    settings = {"strength": 0.5, "render_size": 256, "max_size": 99}
    assert build_task("restore", **settings) == RestoreTask(strength=0.5)
    assert build_task("colorize", **settings) == ColorizeTask(render_size=256)
    assert build_task("normalize", **settings) == NormalizeTask(max_size=99)
    assert build_task("upscale", **settings) == UpscaleTask()
    assert build_task("restore", strength=None) == RestoreTask()
    with pytest.raises(UsageError, match="unknown task 'sharpen'"):
        build_task("sharpen")


def test_results_are_clipped_and_inputs_never_modified() -> None:
    photo = _photo()
    before = photo.rgb.copy()
    out = RestoreTask().apply(photo, lambda rgb: rgb * 3 - 1)
    assert out.rgb.min() == 0.0 and out.rgb.max() == 1.0 and out.rgb.dtype == np.float32
    read_only = RestoreTask().apply(photo, lambda rgb: np.broadcast_to(np.float32(2), rgb.shape))
    assert (read_only.rgb == 1.0).all()
    same = RestoreTask().apply(photo, lambda rgb: rgb)
    np.testing.assert_array_equal(photo.rgb, before)
    np.testing.assert_array_equal(same.rgb, before)


@pytest.mark.parametrize("h, w", [(13, 17), (9, 31), (64, 40)])
def test_fill_takes_the_colour_of_the_nearer_side(h: int, w: int) -> None:
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    alpha = np.zeros((h, w), dtype=np.float32)
    rgb[:, 0] = (0.0, 0.0, 1.0)  # a blue column on the left, a red one on the right, black between
    rgb[:, -1] = (1.0, 0.0, 0.0)
    alpha[:, 0] = alpha[:, -1] = 1.0
    filled = fill_transparent(rgb, alpha)
    np.testing.assert_array_equal(filled[:, [0, -1]], rgb[:, [0, -1]])
    assert (filled[:, 1, 2] > filled[:, 1, 0]).all()  # next to blue: more blue than red
    assert (filled[:, -2, 0] > filled[:, -2, 2]).all()
    assert (filled.sum(axis=2) > 0.99).all()  # nowhere black


def test_fill_on_tiny_photos_leaves_nothing_black() -> None:
    rgb = np.zeros((3, 5, 3), dtype=np.float32)
    alpha = np.zeros((3, 5), dtype=np.float32)
    rgb[1, 2], alpha[1, 2] = (0.2, 0.9, 0.4), 0.5
    filled = fill_transparent(rgb, alpha)
    np.testing.assert_allclose(filled, np.broadcast_to(np.float32([0.2, 0.9, 0.4]), rgb.shape), atol=1e-6)


def _photo_and_stamp() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 textured photo and the 10x40 block a stand-in model treats as the overlay."""
    rgb = np.random.default_rng(3).uniform(0.2, 0.4, (64, 64, 3)).astype(np.float32)
    stamp = np.zeros((64, 64), dtype=bool)
    stamp[20:30, 10:50] = True
    return rgb, stamp


def test_dewatermark_keeps_input_outside_what_the_model_removed() -> None:
    rgb, stamp = _photo_and_stamp()

    def model(x: np.ndarray) -> np.ndarray:
        out = x - 0.01  # a faint change everywhere, as a model smoothing JPEG noise makes
        out[stamp] = 0.9  # and the overlay it removed
        return out

    task = DewatermarkTask(grow=3, inpaint=0.0)  # the model's output alone (the inpainting: below)
    out = task.transform(rgb, model)
    near = np.zeros_like(stamp)
    near[17:33, 7:53] = True  # within `grow` px of the stamp: the model's output in full
    np.testing.assert_allclose(out[near], model(rgb)[near], atol=1e-6)
    far = np.ones_like(stamp)
    far[10:40, 0:60] = False  # 3 * grow px and more away: untouched
    np.testing.assert_array_equal(out[far], rgb[far])
    # In between, a feather: every value lies between the input and the model's output.
    between = ~near & ~far
    lo = np.minimum(rgb, model(rgb))[between] - 1e-6
    hi = np.maximum(rgb, model(rgb))[between] + 1e-6
    assert np.all((out[between] >= lo) & (out[between] <= hi))
    # Nothing found: the input comes back unchanged.
    np.testing.assert_array_equal(task.transform(rgb, lambda x: x - 0.01), rgb)
    with pytest.raises(UsageError):
        DewatermarkTask(grow=-1)
    with pytest.raises(UsageError):
        DewatermarkTask(inpaint=1.5)


def test_dewatermark_mixes_an_inpainting_into_the_found_pixels() -> None:
    """Share `inpaint` of the coarse content of each found pixel comes from the photo around it, the fine
    detail stays mostly the model's; pixels the model did not mark are as without it."""
    stamp = np.zeros((64, 64), dtype=bool)
    stamp[16:48, 8:56] = True
    inner = np.zeros_like(stamp)
    inner[26:38, 18:46] = True  # 10 px and more inside the stamp
    rgb = np.full((64, 64, 3), 0.3, dtype=np.float32)  # a flat photo: its inpainting is exactly 0.3
    rgb[stamp] = 0.95  # the overlay, in the input
    detail = np.where((np.indices((64, 64)).sum(0) % 2 == 0), 0.02, -0.02).astype(np.float32)

    def model(x: np.ndarray) -> np.ndarray:
        out = x.copy()
        out[stamp] = 0.9 + detail[stamp, None]  # a poor removal, with fine texture of its own
        return np.concatenate([out, stamp.astype(np.float32)[..., None]], axis=2)

    alone = DewatermarkTask(inpaint=0.0).transform(rgb, model)
    np.testing.assert_allclose(alone[stamp], model(rgb)[stamp][:, :3], atol=1e-6)
    for share in (0.85, 1.0):
        out = DewatermarkTask(inpaint=share).transform(rgb, model)
        coarse = (1 - share) * 0.9 + share * 0.3
        kept = 1 - 0.5 * share  # the fill's fine detail is mixed in at half the share (it has none here)
        np.testing.assert_allclose(
            out[inner], np.repeat(coarse + kept * detail[inner, None], 3, axis=1), atol=1e-5
        )
        np.testing.assert_array_equal(out[~stamp], alone[~stamp])
        # Near the stamp's edges the mix lies between the model's output and the inpainting.
        edge = stamp & ~inner
        assert np.all(out[edge] <= alone[edge] + 1e-6) and np.all(out[edge] >= 0.3 - 0.02 - 1e-6)
    # A model that marks the whole photo leaves nothing to inpaint from: its output stands.
    everywhere = DewatermarkTask(grow=0).transform(
        rgb, lambda x: np.concatenate([x * 0 + 0.6, np.ones_like(x[..., :1])], axis=2)
    )
    np.testing.assert_allclose(everywhere, 0.6, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 96), (37, 53), (6, 9), (1, 5)])
def test_dewatermark_inpainting_on_the_found_pixels_equals_the_whole_photo_definition(
    shape: tuple[int, int],
) -> None:
    """The step computes the fill's last level and the low-pass only on the found pixels; it gives what
    the whole-photo arrays give: push-pull fill, 4-px box means bilinear back, mixed on the found pixels."""
    rng = np.random.default_rng(sum(shape))
    rgb = rng.random((*shape, 3), dtype=np.float32)
    out = rng.random((*shape, 4), dtype=np.float32)  # RGB + a mask channel the step must ignore
    found = rng.random(shape) < 0.3
    found[0, 0], found[-1, -1] = True, False
    task = DewatermarkTask(inpaint=0.7)

    around = tasks_module._push_pull(rgb, (~found).astype(np.float32))
    change = around - out[..., :3]
    if min(shape) >= 2 * tasks_module._INPAINT_DETAIL:
        factor = tasks_module._INPAINT_DETAIL
        small = np.stack([tasks_module._box(change[..., c], factor) for c in range(3)], axis=2)
        coarse = tasks_module._upsample(small, factor, shape)
    else:
        coarse = change
    mixed = out[..., :3] + 0.7 * (coarse + tasks_module._INPAINT_FINE * (change - coarse))
    expected = np.where(found[..., None], mixed, out[..., :3])

    np.testing.assert_allclose(task._inpainted(rgb, out, found), expected, atol=2e-6)


def test_dewatermark_mask_head_says_where_the_overlay_is() -> None:
    """A 4-channel model (RGB + mask): its mask, not how much it changed, picks the pixels it replaces."""
    rgb, stamp = _photo_and_stamp()

    def model(x: np.ndarray) -> np.ndarray:
        out = x - 0.2  # a large change everywhere, which the mask says to ignore
        out[stamp] = 0.9
        mask = np.where(stamp, 0.8, 0.3).astype(np.float32)  # above / below mask_level 0.5
        return np.concatenate([out, mask[..., None]], axis=2)

    out = DewatermarkTask(grow=0, inpaint=0.0).transform(rgb, model)
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out[stamp], 0.9, atol=1e-6)
    np.testing.assert_array_equal(out[~stamp], rgb[~stamp])
    np.testing.assert_array_equal(DewatermarkTask(mask_level=0.9).transform(rgb, model), rgb)
    # --save-mask shows the model's mask, not how much it changed a pixel.
    np.testing.assert_array_equal(DewatermarkTask().found(rgb, model(rgb)), stamp)


def test_dewatermark_asks_for_more_views_only_where_the_mask_reaches_half_its_level() -> None:
    out = np.zeros((3, 4, 8, 8), np.float32)
    out[0, 3, 2, 5] = 0.26  # one pixel over half of 0.5
    out[1, 3] = 0.24  # a whole tile just under
    out[2, :3] = 1.0  # a big colour change, no mask
    np.testing.assert_array_equal(DewatermarkTask().views_needed(out), [True, False, False])
    np.testing.assert_array_equal(DewatermarkTask(mask_level=0.4).views_needed(out), [True, True, False])
    # A model without a mask head: its changes are judged after the ensemble, so every tile runs them.
    np.testing.assert_array_equal(DewatermarkTask().views_needed(out[:, :3]), [True] * 3)
    task = DewatermarkTask()
    assert task.ensemble_gate() == task.views_needed
    assert RestoreTask().ensemble_gate() is None
