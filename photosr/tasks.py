"""What each task does around its model: alpha, grey, scale, strength, chroma merge.

Plugins are data; tasks are code. The manifest's `task` field picks one of the classes in `TASKS`, and
the class gets the Photo plus a runner - a callable taking an HxWx3 float32 array and returning the
model's HxWx3 output (normally a `ModelRunner`: the plugin's session run tile by tile). Tasks never load
files or pick plugins; the pipeline does that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageFilter

from photosr.colour import linear_to_srgb, luminance, rgb_to_ycbcr, srgb_to_linear
from photosr.errors import UsageError
from photosr.image import Photo
from photosr.jpeg import with_quality_plane
from photosr.resize import fit_within

Runner = Callable[[np.ndarray], np.ndarray]

# Model output channels: RGB, then (dewatermark models with a mask head) 0..1 where an overlay was found.
MASK_CHANNEL = 3


@dataclass(frozen=True)
class ModelRunner:
    """A plugin's session run tile by tile with the plugin's tile defaults and the user's overrides."""

    session: Any  # photosr.engine.ModelSession
    scale: int = 1
    tile: int = 0
    overlap: int = 16
    multiple: int = 1
    whole: bool = False  # one run on the whole (already small) image: colorize needs global context
    # The model's input has a fourth plane: the JPEG quality of the photo's file (photosr.jpeg), which
    # `Task.apply` binds per photo (`for_photo`); unknown (None) until then.
    takes_quality: bool = False
    quality: int | None = None

    def for_photo(self, photo: Photo) -> ModelRunner:
        """This runner with the photo's JPEG quality bound, for a model that takes it."""
        return replace(self, quality=photo.info.jpeg_quality) if self.takes_quality else self

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from photosr.engine import run_tiled, run_whole

        if self.takes_quality:
            rgb = with_quality_plane(rgb, self.quality)
        if self.whole:
            return run_whole(self.session, rgb, scale=self.scale, multiple=self.multiple)
        return run_tiled(
            self.session, rgb, scale=self.scale, tile=self.tile, overlap=self.overlap, multiple=self.multiple
        )


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the tasks


def resize_plane(
    plane: np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.BICUBIC
) -> np.ndarray:
    """Resize one HxW float32 plane (alpha, chroma) to (w, h) as plain numbers - not as light."""
    if (plane.shape[1], plane.shape[0]) == size:
        return plane
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, resample), dtype=np.float32)


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB with the colour under fully transparent pixels replaced by that of nearby visible ones.

    Transparent pixels often hold black (or garbage); a model looking across an edge would pull that
    into the visible side as a dark fringe. Filling from neighbours (push-pull: alpha-weighted averages
    down a pyramid, holes filled from the bilinear-upsampled coarser level coming back up) keeps edges
    clean and, unlike premultiplying, never divides by a tiny alpha. Visible pixels are returned as is.

    The pyramid starts at 1/4 size (Pillow's C box reduction), so a 12-MP photo fills in about a second.
    """
    known = alpha > 0
    if known.all() or not known.any():
        return rgb
    h, w = known.shape
    factor = _FILL_FACTOR if min(h, w) >= 2 * _FILL_FACTOR else 1
    weight = np.maximum(alpha, np.float32(0)).astype(np.float32, copy=False)
    small_rgb, small_w = _reduce(np.asarray(rgb, dtype=np.float32), weight, factor)
    coarse = _push_pull(small_rgb, small_w)
    up = _upsample(coarse, factor, (h, w)) if factor > 1 else coarse
    out = np.array(rgb, dtype=np.float32, copy=True)
    np.copyto(out, up, where=~known[..., None])
    return out


_FILL_FACTOR = 4


def _reduce(rgb: np.ndarray, weight: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-weighted box means at 1/factor size, and the mean weight (0 where nothing is visible)."""
    small_w = _box(weight, factor)
    planes = [_box(rgb[..., c] * weight, factor) for c in range(3)]
    small = np.stack(planes, axis=2) / np.maximum(small_w, np.float32(1e-12))[..., None]
    return small.astype(np.float32, copy=False), small_w


def _box(plane: np.ndarray, factor: int) -> np.ndarray:
    # Image.reduce averages factor x factor blocks; a partial last block averages what it has.
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.reduce(factor), dtype=np.float32)


def _upsample(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear x`factor` on the block grid of `_box`, cropped to `shape` (h, w)."""
    ch, cw = coarse.shape[:2]
    size = (cw * factor, ch * factor)
    planes = [resize_plane(coarse[..., c], size, Image.Resampling.BILINEAR) for c in range(3)]
    return np.stack(planes, axis=2)[: shape[0], : shape[1]]


def _push_pull(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    holes = weight == 0
    if not holes.any() or weight.shape == (1, 1):
        return rgb
    coarse = _push_pull(*_reduce(rgb, weight, 2))
    out = rgb.copy()
    np.copyto(out, _upsample(coarse, 2, weight.shape), where=holes[..., None])
    return out


def _clipped(out: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    # In place where possible: an x4 result of a 12-MP photo is 2.3 GB, a copy would double the peak.
    out = np.asarray(out, dtype=np.float32)
    if not out.flags.writeable or np.shares_memory(out, rgb):
        return np.clip(out, 0.0, 1.0)
    return np.clip(out, 0.0, 1.0, out=out)


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """Three equal channels carrying the BT.601 luminance of `rgb`."""
    y = luminance(rgb).astype(np.float32)
    return np.repeat(y[..., None], 3, axis=2)


def _keeps_grey(photo: Photo) -> bool:
    return photo.info.grey and not photo.colour_added


def _render_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    w, h = size
    if longest <= 0 or max(w, h) <= longest:
        return size
    ratio = longest / max(w, h)
    return max(1, round(w * ratio)), max(1, round(h * ratio))


# ---------------------------------------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True)
class Task:
    """Base: fill under transparency, run `transform` on RGB, keep grey photos grey, carry alpha along."""

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True

    @classmethod
    def configured(cls, **settings: Any) -> Task:
        """An instance taking from `settings` only the fields this task has (strength, render_size, ...)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if settings.get(f.name) is not None})

    def apply(self, photo: Photo, runner: Runner | None) -> Photo:
        if runner is None:
            raise UsageError(f"task {self.name!r} needs a model runner")
        if isinstance(runner, ModelRunner):
            runner = runner.for_photo(photo)
        rgb = photo.rgb if photo.alpha is None else fill_transparent(photo.rgb, photo.alpha)
        out = _clipped(self.transform(rgb, runner), rgb)
        if _keeps_grey(photo):
            # A model may add faint colour casts to a grey photo; it must come back grey.
            out = grey_rgb(out)
        alpha = photo.alpha
        if alpha is not None and alpha.shape != out.shape[:2]:
            size = (out.shape[1], out.shape[0])
            alpha = np.clip(resize_plane(alpha, size), 0.0, 1.0)
        return photo.with_pixels(out, alpha)

    def transform(self, rgb: np.ndarray, runner: Runner) -> np.ndarray:
        """The model step on straight RGB (no alpha); subclasses add what surrounds it."""
        return runner(rgb)

    def ensemble_gate(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Under a self-ensemble (`photosr.engine.SelfEnsemble`), which tiles the other views are worth
        running on, from the first view's NCHW output (a bool per tile); None: every tile."""
        return None


@dataclass(frozen=True)
class UpscaleTask(Task):
    """The model changes the size; alpha is resized on its own (bicubic) to match."""

    name: ClassVar[str] = "upscale"


@dataclass(frozen=True)
class RestoreTask(Task):
    """1x repair; `strength` 0..1 blends the model's output with the input (0 = untouched)."""

    name: ClassVar[str] = "restore"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, got {self.strength}")

    def transform(self, rgb: np.ndarray, runner: Runner) -> np.ndarray:
        if self.strength == 0.0:
            return rgb  # nothing of the model would survive the blend; skip running it
        out = runner(rgb)
        if self.strength == 1.0:
            return out
        return rgb + np.float32(self.strength) * (out - rgb)


@dataclass(frozen=True)
class DewatermarkTask(Task):
    """1x RGB -> RGB; `found` says where the model found an overlay (for --save-mask)."""

    name: ClassVar[str] = "dewatermark"
    mask_threshold: float = 0.04  # ~10/255: above JPEG-noise-level changes (models without a mask head)
    mask_level: float = 0.5  # mask-head models: the output mask above this is an overlay
    grow: int = 3  # px the found overlay is widened by (antialiased glyph edges) before feathering
    # Share of the coarse content of each found pixel taken from an inpainting of the photo around it
    # (push-pull from the pixels the model did not mark); the fine detail stays mostly the model's
    # (_INPAINT_FINE). The two err differently: the model's inversion of a strong overlay leaves tinted
    # ghosts and amplified JPEG noise, the inpainting loses texture. On 20 held-out photos 0.85 took bundled
    # dewatermark 0.2.0 from +4.45 to +5.87 dB inside the overlays (plugins/dewatermark/README.md: sweep).
    inpaint: float = 0.85

    def __post_init__(self) -> None:
        if self.grow < 0:
            raise UsageError(f"grow must be >= 0 px, got {self.grow}")
        if not 0.0 <= self.inpaint <= 1.0:
            raise UsageError(f"inpaint must be a share in [0, 1], got {self.inpaint}")

    def ensemble_gate(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.views_needed

    def views_needed(self, out: np.ndarray) -> np.ndarray:
        """Tiles (NCHW model outputs) whose mask reaches half of `mask_level` somewhere; every tile for a
        model without a mask head.

        The other views of a self-ensemble only matter where the mean mask can pass `mask_level`: pixels
        below it keep the input exactly. Where the first of n views stays under half the level, the mean
        passes it only if the other views average over (n - 1/2) / (n - 1) times the level (0.75 for n = 2
        at the default 0.5) - a confident overlay the first view all but missed. The saving is small with
        dewatermark 0.4.0: even on a clean 12-MP photo its first view reaches 0.25 somewhere in most 512-px
        tiles (12.9 s with 2 gated views, 8.1 s with one; 0.3.0, the same net, 13.8 s ungated; see
        plugins/dewatermark/README.md).
        A tile left out still blends its one view into the feathered rim of an overlay found next to it,
        up to 4 * `grow` px past the overlay.
        """
        if out.shape[1] <= MASK_CHANNEL:
            return np.ones(len(out), dtype=bool)
        peak = out[:, MASK_CHANNEL].reshape(len(out), -1).max(axis=1)
        return peak >= self.mask_level / 2

    def transform(self, rgb: np.ndarray, runner: Runner) -> np.ndarray:
        """The model's output where it found an overlay, the input pixels everywhere else.

        A watermark remover must leave the rest of the photo as it was. Models with a mask head (a 4th
        output channel: 0..1, where the model found an overlay) say where that is: pixels it marks above
        `mask_level`. For plain RGB models it is the pixels they changed by more than `mask_threshold`
        (they also smooth JPEG noise all over). Those pixels and `grow` px around them take the model's
        output, feathered out to 3 * `grow` px; everywhere else keeps the input exactly. On the found pixels
        themselves, share `inpaint` of the output's coarse content comes from an inpainting of the photo around them.
        """
        out = runner(rgb)
        found = self.found(rgb, out)
        weight = self._weight(found)
        if weight is None:
            return rgb.copy()
        out = self._inpainted(rgb, out[..., :MASK_CHANNEL], found)
        return rgb + weight[..., None] * (out - rgb)

    def _inpainted(self, rgb: np.ndarray, out: np.ndarray, found: np.ndarray) -> np.ndarray:
        """`out` with share `inpaint` of its coarse content (and half that of its fine detail) on the `found`
        pixels replaced by that of a push-pull fill of the rest of `rgb`. Writes into `out` unless it is
        read-only or shares memory with `rgb`.

        The same numbers as a whole-photo `_push_pull` and low-pass (box means, `_upsample` back), with
        every full-size step that only matters on the found pixels (the fill's last bilinear level, the
        low-pass back up, the mix) computed on those pixels alone: ~0.5 s at 12 MP where the whole-photo
        arrays took ~1.5 s.
        """
        if self.inpaint == 0 or found.all():
            return out
        rgb = np.asarray(rgb, dtype=np.float32)
        out = out[..., :3]  # a mask channel, if one came along, is not mixed
        ys, xs = np.nonzero(found)
        # _push_pull's top level keeps the unmarked pixels and takes the marked ones from the x2 bilinear
        # of its fill of the half-size level.
        half = _push_pull(*_reduce(rgb, (~found).astype(np.float32), 2))
        fill = _bilinear_at(half, 2, ys, xs)
        change = fill - out[ys, xs]  # what the fill would change, on the found pixels
        coarse = change if min(found.shape) < 2 * _INPAINT_DETAIL else self._low_pass(rgb, out, ys, xs, fill)
        if not out.flags.writeable or np.may_share_memory(out, rgb):
            out = out.copy()
        out[ys, xs] += np.float32(self.inpaint) * (coarse + np.float32(_INPAINT_FINE) * (change - coarse))
        return out

    @staticmethod
    def _low_pass(
        rgb: np.ndarray, out: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill: np.ndarray
    ) -> np.ndarray:
        """On pixels (ys, xs): the _INPAINT_DETAIL-px box means, bilinear back, of the change the fill makes
        (`rgb` - `out`, with `fill` for `rgb` on those pixels)."""
        factor = _INPAINT_DETAIL
        h, w = rgb.shape[:2]
        bh, bw = -(-h // factor), -(-w // factor)
        block = (ys // factor) * bw + xs // factor
        starts = factor * np.arange(max(bh, bw))
        count = np.outer(np.minimum(factor, h - starts[:bh]), np.minimum(factor, w - starts[:bw]))
        extra = fill - rgb[ys, xs]  # what the fill adds to the box sums of rgb - out
        small = np.stack(
            [
                _box(rgb[..., c] - out[..., c], factor)
                + (np.bincount(block, extra[:, c], bh * bw).reshape(bh, bw) / count).astype(np.float32)
                for c in range(3)
            ],
            axis=2,
        )
        return _bilinear_at(small, factor, ys, xs)

    def _weight(self, found: np.ndarray) -> np.ndarray | None:
        """0..1 blend weight: 1 on `found` and up to `grow` px from it, 0 from 3 * `grow` px on."""
        if not found.any():
            return None
        if self.grow == 0:
            return found.astype(np.float32)
        # Grown by 2 * grow, then a box blur of radius grow: exactly 1 up to `grow` px from the overlay.
        grown = _dilate(found, 2 * self.grow)
        mask = Image.fromarray(grown.astype(np.uint8) * 255, "L").filter(ImageFilter.BoxBlur(self.grow))
        return np.asarray(mask, dtype=np.float32) / np.float32(255.0)

    def found(self, model_in: np.ndarray, model_out: np.ndarray) -> np.ndarray:
        """HxW bool, what the model found (what --save-mask shows): its mask above `mask_level` when it
        has a mask head, else the pixels where any channel moved by more than `mask_threshold`."""
        if model_out.shape[2] > MASK_CHANNEL:
            return model_out[..., MASK_CHANNEL] > self.mask_level
        return np.abs(model_out - model_in).max(axis=2) > self.mask_threshold


# DewatermarkTask.inpaint mixes in the inpainting's content above this box size (px) in full and its finer
# detail at _INPAINT_FINE of that share: the fill is smooth where the model keeps texture. On 80 held-out
# photos (seed 1) 0.5 scored +5.58 dB inside, 0 (all fine detail the model's) +5.44, 1 (a plain mix) +5.54.
_INPAINT_DETAIL = 4
_INPAINT_FINE = 0.5


def _bilinear_at(coarse: np.ndarray, factor: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """What `_upsample(coarse, factor, ...)` holds at pixels (ys, xs), Nx3, computed at those pixels only.

    Pillow's bilinear upscale: pixel centre (x + 0.5) / factor - 0.5 on the coarse grid, clamped to it."""

    def taps(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.clip((pos + 0.5) / factor - 0.5, 0.0, n - 1)
        lo = u.astype(np.intp)  # u >= 0: truncation is floor
        return lo, np.minimum(lo + 1, n - 1), (u - lo).astype(np.float32)[:, None]

    y0, y1, ty = taps(ys, coarse.shape[0])
    x0, x1, tx = taps(xs, coarse.shape[1])
    top = coarse[y0, x0] + tx * (coarse[y0, x1] - coarse[y0, x0])
    bottom = coarse[y1, x0] + tx * (coarse[y1, x1] - coarse[y1, x0])
    return top + ty * (bottom - top)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by a (2 * radius + 1)-px square, one axis at a time (0.17 s at 12 MP where Pillow's
    MaxFilter took 3.1 s on the busy machine)."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for shift in range(1, min(radius, n - 1) + 1):
            ahead = [slice(None)] * 2
            behind = [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, n - shift)
            out[tuple(behind)] |= src[tuple(ahead)]
            out[tuple(ahead)] |= src[tuple(behind)]
    return out


@dataclass(frozen=True)
class ColorizeTask(Task):
    """Model at `render_size` on the grey photo; its chroma is laid over the full-resolution luminance.

    Models see 3 equal channels. Only Cb/Cr of their output are kept, upsampled to full size, so detail
    and tone come from the original at full resolution and the model only has to get colour roughly right.
    """

    name: ClassVar[str] = "colorize"
    render_size: int = 0  # longest side the model sees; 0 = whole photo

    def __post_init__(self) -> None:
        if self.render_size < 0:
            raise UsageError(f"render size must be >= 0, got {self.render_size}")

    def apply(self, photo: Photo, runner: Runner | None) -> Photo:
        # Marked first, so the base class does not force a grey source back to grey.
        return super().apply(replace(photo, colour_added=True), runner)

    def transform(self, rgb: np.ndarray, runner: Runner) -> np.ndarray:
        size = (rgb.shape[1], rgb.shape[0])
        y = luminance(rgb).astype(np.float32)
        small = _render_size(size, self.render_size)
        grey = y if small == size else _shrink_grey(y, small)
        model_in = np.repeat(grey[..., None], 3, axis=2)
        chroma = rgb_to_ycbcr(np.clip(runner(model_in), 0.0, 1.0).astype(np.float32))
        cb = resize_plane(chroma[..., 1], size)
        cr = resize_plane(chroma[..., 2], size)
        return _merge_chroma(y, cb, cr)


def _shrink_grey(y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Luminance shrunk to `size` in linear light: linear_light_resize of the grey photo, on one plane
    instead of three equal ones."""
    linear = resize_plane(srgb_to_linear(y), size, Image.Resampling.LANCZOS)
    return linear_to_srgb(linear)


def _merge_chroma(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """RGB with luminance exactly `y` and the hue of (cb, cr), chroma reduced where it leaves 0..1.

    Clipping RGB would change luminance; scaling each pixel's colour offset from grey keeps Y exact.
    Plane by plane, in place: at 12 MP every 3-channel temporary is 144 MB, and building them took
    most of a colorize run's 13 s.
    """
    offsets = _chroma_offsets(cb, cr)
    scale = np.ones_like(y, dtype=np.float32)
    room = np.empty_like(scale)
    for offset in offsets:
        # How far the offset may go before this channel leaves 0..1: (1 - y) / o up, -y / o down.
        np.subtract(1.0, y, out=room, where=offset > 0)
        np.negative(y, out=room, where=offset <= 0)
        np.divide(room, offset, out=room, where=offset != 0)
        room[offset == 0] = np.inf
        np.minimum(scale, room, out=scale)
    np.maximum(scale, 0.0, out=scale)
    out = np.empty((*y.shape, 3), dtype=np.float32)
    for c, offset in enumerate(offsets):
        np.multiply(offset, scale, out=room)
        room += y
        np.clip(room, 0.0, 1.0, out=out[..., c])
    return out


def _chroma_offsets(cb: np.ndarray, cr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R, G and B minus Y for chroma (cb, cr): the colour's offset from grey, which has zero luminance
    (the inverse of colour.rgb_to_ycbcr without its final clip: BT.601 full range, chroma centred at 0.5)."""
    kr, kg, kb = 0.299, 0.587, 0.114
    red = (np.asarray(cr, dtype=np.float32) - np.float32(0.5)) * np.float32(2.0 * (1.0 - kr))
    blue = (np.asarray(cb, dtype=np.float32) - np.float32(0.5)) * np.float32(2.0 * (1.0 - kb))
    green = (red * np.float32(-kr / kg)) - blue * np.float32(kb / kg)
    return red, green, blue


@dataclass(frozen=True)
class NormalizeTask(Task):
    """No model: loading already applied orientation, ICC and mode; this only caps the longest side."""

    name: ClassVar[str] = "normalize"
    needs_model: ClassVar[bool] = False
    max_size: int | None = None

    def apply(self, photo: Photo, runner: Runner | None = None) -> Photo:
        if self.max_size is None or max(photo.size) <= self.max_size:
            return photo
        return fit_within(photo, self.max_size)


TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (RestoreTask, UpscaleTask, ColorizeTask, DewatermarkTask, NormalizeTask)
}


def build_task(name: str, **settings: Any) -> Task:
    """The task called `name`, configured from whichever of `settings` it uses. Unknown name: UsageError."""
    cls = TASKS.get(name)
    if cls is None:
        raise UsageError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return cls.configured(**settings)


__all__ = [
    "TASKS",
    "ColorizeTask",
    "DewatermarkTask",
    "ModelRunner",
    "NormalizeTask",
    "RestoreTask",
    "Runner",
    "Task",
    "UpscaleTask",
    "build_task",
    "fill_transparent",
    "grey_rgb",
    "resize_plane",
]
