"""ONNX Runtime sessions and tiled inference.

`ModelSession` owns one `onnxruntime.InferenceSession`, made on the first `run` and reused after (one
per plugin for a whole batch). `run_tiled` runs a model over a photo of any size in overlapping tiles
and blends them so the result matches a whole-photo run.

How tiling works, and why:

- The photo is reflect-padded only up to the model's size multiple. Tiles never reach past the photo:
  a tile at a photo border starts at that border, so the model pads it exactly as it would pad the whole
  photo - which is what makes tiled output equal untiled output, border pixels included. The last tile on
  each axis is shifted inward instead of padded, so every tile has the same shape (tiles can be batched
  and ONNX Runtime reuses its buffers). Tiles are then shrunk to the smallest side that still needs no
  more tiles (`balanced_tile`), so no work goes into a sliver-thin last step.
- Each tile's interior edges see no context past the tile, so its outermost pixels are wrong for any
  model with a receptive field. Along an interior edge a tile's weight is 0 for the first overlap/4
  pixels (discarded: the receptive field there is cut off), then ramps linearly to 1 over overlap/2
  pixels (cross-fade with the neighbour), so seams are both exact for receptive-field radius <= overlap/4
  and soft beyond that.
- Weights are separable and normalised per axis to sum to 1 over the tiles that cover a coordinate.
  Because tiles form a grid, the 2-D weights (row weight x column weight) are then a partition of unity
  too, so weighted tiles are added straight into the final float32 output: no weight map and no
  normalising pass. Peak memory is the output array plus a few tiles - it grows with the tile, not the
  photo beyond the output itself (24 MP x2: 1.07 GiB output, 1.49 GiB peak RSS measured with automatic
  tiles; see benchmarks/memory_24mp.py).
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from photosr.errors import EngineError, UsageError

logger = logging.getLogger("photosr.engine")

DEVICES = ("auto", "cpu", "cuda")
# Which model file of a plugin runs: "auto" = its int8 model, when it has one, on CPU-only providers
# and a CPU with int8 dot products (`cpu_int8_is_exact`).
PRECISIONS = ("auto", "fp32", "int8")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Default overlap when neither the options nor the plugin give one (input pixels).
DEFAULT_OVERLAP = 16
# Tiles per session call. On CPU a 512-px tile already keeps every core busy; benchmarks/tiling.py saw
# batches of 4 help only small tiles (128/256 px: 5-15%, within the noise of a shared machine), and a
# batch multiplies activation memory - so tiles go one at a time unless a caller asks.
DEFAULT_BATCH = 1
# Smallest tile side the out-of-memory retry goes down to; below this seams dominate the work.
MIN_TILE = 64
# How ONNX Runtime words allocation failures (CPU arena, CUDA, std::bad_alloc).
_OOM_MARKERS = (
    "out of memory",
    "failed to allocate",
    "bad_alloc",
    "bad allocation",
    "cudaerrormemoryallocation",
)


@dataclass(frozen=True)
class EngineOptions:
    """How models run. `threads` 0 = all cores; `tile` 0 = automatic; `tile_overlap` None = plugin default.

    `precision` picks a plugin's model file (`Plugin.model_path_for`): "fp32" the manifest's `file`,
    "int8" its `int8_file` when it has one, "auto" the int8 file only when the providers are CPU-only and
    the CPU has int8 dot products (`cpu_int8_is_exact`).
    """

    device: str = "auto"
    threads: int = 0
    tile: int = 0
    tile_overlap: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UsageError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads < 0:
            raise UsageError(f"threads must be >= 0 (0 = all cores), got {self.threads}")
        if self.tile < 0:
            raise UsageError(f"tile must be >= 0 (0 = automatic), got {self.tile}")
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise UsageError(f"tile overlap must be >= 0, got {self.tile_overlap}")


def _ort_available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


@functools.cache
def cpu_int8_is_exact() -> bool:
    """Whether this CPU runs int8 convs without rounding trouble: x86 with VNNI (or AMX), or ARM64.

    ONNX Runtime's int8 convs on x86 without VNNI (AVX2, older AVX-512) add pairs of uint8 x int8
    products in int16 (VPMADDUBSW), which can saturate - its quantization guide's warning. There
    `--precision auto` stays on the fp32 model; `--precision int8` still forces the int8 one.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: no cheap way to ask, so the safe answer (unless ARM)
        cpuinfo = ""
    return int8_dot_product(platform.machine(), cpuinfo)


def int8_dot_product(machine: str, cpuinfo: str) -> bool:
    """`cpu_int8_is_exact` for a machine name (platform.machine()) and /proc/cpuinfo text."""
    if machine.lower() in ("arm64", "aarch64"):
        return True
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(line.partition(":")[2].split()))
    return False


def available_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for `device`, best first; CUDA falls back to CPU (logged) when absent."""
    if device not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA in _ort_available():
        return [CUDA, CPU]
    if device == "cuda":
        logger.warning(
            "CUDA was asked for but onnxruntime has no CUDAExecutionProvider "
            "(install onnxruntime-gpu instead of onnxruntime); running on CPU"
        )
    else:
        logger.debug("no CUDAExecutionProvider; running on CPU")
    return [CPU]


class ModelSession:
    """One ONNX model: the `InferenceSession` is created on first use and then reused (thread-safe).

    `before_create` runs once, just before the session is made - plugins pass their hash check here so
    a model is verified once per batch and never when it is not used.
    """

    def __init__(
        self,
        model_path: str | Path,
        options: EngineOptions | None = None,
        *,
        before_create: Callable[[], None] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.options = options or EngineOptions()
        self._before_create = before_create
        self._session = None
        self._input_name = ""
        self._input_dtype: type = np.float32
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """Whether the InferenceSession exists yet."""
        return self._session is not None

    @property
    def providers(self) -> list[str]:
        """Providers in use once created; before that, the ones that will be asked for."""
        if self._session is not None:
            return list(self._session.get_providers())
        return available_providers(self.options.device)

    def session(self):
        """The onnxruntime.InferenceSession, created on the first call."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._create()
        return self._session

    def _create(self):
        if self._before_create is not None:
            self._before_create()
        if not self.model_path.is_file():
            raise EngineError("model file not found", self.model_path)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.options.threads
        # Fatal only: ORT logs straight to stderr, and its errors reach us as exceptions anyway.
        opts.log_severity_level = 4
        requested = self.providers
        try:
            session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=requested)
        except Exception as err:  # ORT raises its own pybind error types
            raise EngineError(f"cannot load model: {err}", self.model_path) from err
        self._check_signature(session)
        got = session.get_providers()
        if CUDA in requested and CUDA not in got:
            # ORT drops a provider it cannot start (e.g. CUDA libraries missing) and only logs it.
            logger.warning("%s: CUDA could not be started; running on %s", self.model_path, ", ".join(got))
        logger.debug("session for %s on %s", self.model_path, got)
        return session

    def _check_signature(self, session) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineError(
                f"model must have one input and one output, has {len(inputs)} and {len(outputs)}",
                self.model_path,
            )
        self._input_name = inputs[0].name
        # float16 models (accepted by chaiNNer too) get float16 input; output is cast back below.
        self._input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on an NCHW float32 batch and return its NCHW float32 output."""
        if batch.ndim != 4:
            raise EngineError(f"model input must be NCHW, got shape {batch.shape}", self.model_path)
        session = self.session()
        feed = np.ascontiguousarray(batch, dtype=self._input_dtype)
        try:
            (output,) = session.run(None, {self._input_name: feed})
        except Exception as err:
            raise EngineError(f"inference failed on input {batch.shape}: {err}", self.model_path) from err
        return np.asarray(output, dtype=np.float32)


class SupportsRun(Protocol):
    """Anything with `run(nchw) -> nchw` - a ModelSession, or a stand-in in tests."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


# Self-ensemble sizes: how many of the 8 flips and transposes of a tile a model runs on (`SelfEnsemble`).
ENSEMBLES = (1, 2, 4, 8)


def dihedral(batch: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) flip or transpose of an NCHW batch, as a view: bit 2 swaps H and W (done first),
    bit 1 flips top-bottom, bit 0 flips left-right. k = 1, 2, 3 are the flips; 4..7 add the transpose."""
    if k & 4:
        batch = batch.transpose(0, 1, 3, 2)
    if k & 2:
        batch = batch[:, :, ::-1]
    if k & 1:
        batch = batch[:, :, :, ::-1]
    return batch


def undo_dihedral(batch: np.ndarray, k: int) -> np.ndarray:
    """The inverse of `dihedral(batch, k)`: the flips (each its own inverse), then the transpose."""
    if k & 1:
        batch = batch[:, :, :, ::-1]
    if k & 2:
        batch = batch[:, :, ::-1]
    if k & 4:
        batch = batch.transpose(0, 1, 3, 2)
    return batch


class SelfEnsemble:
    """A session run on the first `n` of the 8 flips/transposes of each batch (`dihedral`); each output is
    turned back and the n are averaged (EDSR's "+" models, waifu2x's TTA).

    A trained conv net is nearly, not exactly, equivariant to flips, so its errors on the n views are
    partly independent and the mean cancels some of them: for n times the model time. Measured on
    upscale-x2 0.2.0 (20 sunhays80 photos, PSNR-Y over bicubic): +2.262 dB alone, +2.302 with n=2,
    +2.322 with n=4, +2.335 with n=8; benchmarks/quality.py --ensemble 1,8 measures any plugin.

    `gate`, when given, is asked after the first view which batch items the other views are worth
    running on (a bool per item, from that view's NCHW output); the rest keep the first view's output.
    Dewatermark uses it to skip tiles where the first view found no overlay (`DewatermarkTask.views_needed`):
    their pixels stay the input's whatever the views say.
    """

    def __init__(
        self, session: SupportsRun, n: int, gate: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        if n not in ENSEMBLES:
            raise UsageError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {n!r}")
        self.session = session
        self.n = n
        self.gate = gate

    @property
    def model_path(self) -> Path | None:
        """The wrapped session's model, for error messages."""
        return getattr(self.session, "model_path", None)

    def run(self, batch: np.ndarray) -> np.ndarray:
        first = self.session.run(batch)
        if self.gate is None:
            needed = slice(None)
        else:
            needed = np.flatnonzero(np.asarray(self.gate(first), dtype=bool).reshape(len(batch)))
            if needed.size == 0:
                return first
            if needed.size == len(batch):
                needed = slice(None)
        views = batch[needed]
        total = first[needed]
        for k in range(1, self.n):
            # A strided view: ModelSession.run makes the one contiguous copy ONNX Runtime needs.
            total = total + undo_dihedral(self.session.run(dihedral(views, k)), k)
        if isinstance(needed, slice):
            return total / self.n
        out = first.copy()
        out[needed] = total / self.n
        return out


def auto_tile_size(scale: int, multiple: int = 1) -> int:
    """Tile side in input pixels when none is given: ~1024 output pixels a side, 256..512 input.

    A model's activations scale with tile area (times scale^2 after its upsampler), so x4 gets smaller
    tiles than x1/x2; 512 keeps a CPU busy without making seams a large share of the work.
    """
    side = min(512, max(256, 1024 // max(scale, 1)))
    return _round_up(side, multiple)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad bottom/right so H and W are multiples of `multiple` (edge-pad 1-pixel axes)."""
    height, width = image.shape[:2]
    pad_h, pad_w = _round_up(height, multiple) - height, _round_up(width, multiple) - width
    if pad_h == 0 and pad_w == 0:
        return image
    # numpy's reflect cannot mirror a single pixel; repeating it is the only sensible content then.
    mode = "reflect" if min(height, width) > 1 else "edge"
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of side `tile` covering `length`; the last one is shifted inward."""
    if tile >= length:
        return [0]
    step = (tile - overlap) // multiple * multiple
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def axis_weights(starts: Sequence[int], tile: int, overlap: int, scale: int) -> list[np.ndarray]:
    """Per-tile 1-D blending weights at output resolution, summing to 1 at every output coordinate."""
    size, discard = tile * scale, (overlap // 4) * scale
    ramp_len = (overlap - 2 * (overlap // 4)) * scale
    ramp = (np.arange(ramp_len) + 0.5) / max(ramp_len, 1)
    weights = []
    for i, _ in enumerate(starts):
        w = np.ones(size)
        if i > 0:  # interior edge on the low side: discard, then fade in
            w[:discard] = 0.0
            w[discard : discard + ramp_len] = ramp
        if i < len(starts) - 1:  # interior edge on the high side: fade out, then discard
            w[size - discard :] = 0.0
            hi = slice(size - discard - ramp_len, size - discard)
            w[hi] = np.minimum(w[hi], ramp[::-1])
        weights.append(w)
    total = np.zeros((starts[-1] + tile) * scale)
    for start, w in zip(starts, weights, strict=True):
        total[start * scale : start * scale + size] += w
    return [
        (w / total[s * scale : s * scale + size]).astype(np.float32)
        for s, w in zip(starts, weights, strict=True)
    ]


@dataclass(frozen=True)
class _Grid:
    """Tile layout on the padded photo: starts and normalised weights per axis, tile shape."""

    ys: list[int]
    xs: list[int]
    wy: list[np.ndarray]
    wx: list[np.ndarray]
    tile_h: int
    tile_w: int


def balanced_tile(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest tile side (<= `tile`) that covers `length` with as few tiles as `tile` needs.

    2000 px in 512-px tiles with 32 px overlap needs 5 tiles; 5 tiles of 426 px do it with 17% fewer
    pixels per axis (~30% less work in 2-D) and no sliver-thin last step. Memory stays bounded by `tile`.
    """
    if tile >= length:
        return length
    count = len(tile_starts(length, tile, overlap, multiple))
    side = _round_up(-(-(length - overlap) // count) + overlap, multiple)
    side = max(side, _round_up(overlap + multiple, multiple))  # keeps the step >= one multiple
    # Rounding the step down to the multiple can cost one more tile; grow until it does not.
    while side < tile and len(tile_starts(length, side, overlap, multiple)) > count:
        side += multiple
    return min(side, tile)


def _make_grid(height: int, width: int, tile: int, overlap: int, multiple: int, scale: int) -> _Grid:
    tile_h = balanced_tile(height, tile, overlap, multiple)
    tile_w = balanced_tile(width, tile, overlap, multiple)
    ys = tile_starts(height, tile_h, overlap, multiple)
    xs = tile_starts(width, tile_w, overlap, multiple)
    wy = axis_weights(ys, tile_h, overlap, scale)
    wx = axis_weights(xs, tile_w, overlap, scale)
    return _Grid(ys, xs, wy, wx, tile_h, tile_w)


def _check_tiling_args(image: np.ndarray, scale: int, tile: int, overlap: int, multiple: int) -> None:
    if image.ndim != 3 or image.dtype != np.float32:
        raise UsageError(f"run_tiled needs an HxWxC float32 array, got {image.shape} {image.dtype}")
    if image.size == 0:
        raise UsageError(f"run_tiled got an empty image {image.shape}")
    if scale < 1 or multiple < 1 or overlap < 0 or tile < 0:
        raise UsageError(
            f"bad tiling arguments: scale={scale} multiple={multiple} overlap={overlap} tile={tile}"
        )


def _check_tile(tile: int, overlap: int, multiple: int) -> None:
    if tile - overlap < multiple:
        raise UsageError(
            f"tile {tile} must exceed the overlap {overlap} by at least the size multiple {multiple}"
        )


def run_tiled(
    session: SupportsRun,
    image: np.ndarray,
    *,
    scale: int,
    tile: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    multiple: int = 1,
    batch: int = DEFAULT_BATCH,
) -> np.ndarray:
    """Run `session` over an HxWxC float32 image in blended tiles; return (H*scale)x(W*scale)xC' in 0..1.

    `tile` is the tile side in input pixels (0 = `auto_tile_size`), rounded up to `multiple`; `overlap`
    is in input pixels; `batch` tiles go through the model per call. An image no larger than a tile runs
    in one go. If the model runs out of memory, the tile side is halved (down to MIN_TILE) and the photo
    is run again - logged as a warning. Raises EngineError if the model fails otherwise or its output is
    not `scale` times its input.
    """
    _check_tiling_args(image, scale, tile, overlap, multiple)
    tile = _round_up(tile or auto_tile_size(scale, multiple), multiple)
    while True:
        _check_tile(tile, overlap, multiple)
        try:
            return _run_grid(session, image, scale, tile, overlap, multiple, batch)
        except EngineError as err:
            smaller = _round_up(tile // 2, multiple)
            if not _is_out_of_memory(err) or smaller < max(MIN_TILE, overlap + multiple):
                raise
            reason = err.reason
        # Outside the except block, so the failed attempt's output array is already freed.
        logger.warning("out of memory with tile %d (%s); retrying with tile %d", tile, reason, smaller)
        tile = smaller


def _is_out_of_memory(err: EngineError) -> bool:
    text = str(err).lower()
    return any(marker in text for marker in _OOM_MARKERS)


def _run_grid(
    session: SupportsRun, image: np.ndarray, scale: int, tile: int, overlap: int, multiple: int, batch: int
) -> np.ndarray:
    height, width = image.shape[:2]
    padded = _pad_to_multiple(image, multiple)
    grid = _make_grid(padded.shape[0], padded.shape[1], tile, overlap, multiple, scale)
    positions = [(iy, ix) for iy in range(len(grid.ys)) for ix in range(len(grid.xs))]
    out: np.ndarray | None = None
    for first in range(0, len(positions), max(batch, 1)):
        chunk = positions[first : first + max(batch, 1)]
        tiles = np.stack([_cut(padded, grid, iy, ix) for iy, ix in chunk])
        result = _run_checked(session, tiles, scale)
        if out is None:
            out = np.zeros((height * scale, width * scale, result.shape[1]), dtype=np.float32)
        # One sequential NCHW -> NHWC copy per batch; strided reads per tile were slower.
        for (iy, ix), tile_out in zip(chunk, np.ascontiguousarray(result.transpose(0, 2, 3, 1)), strict=True):
            _accumulate(out, tile_out, grid, iy, ix, scale)
    assert out is not None  # there is always at least one tile
    return np.clip(out, 0.0, 1.0, out=out)


def _cut(padded: np.ndarray, grid: _Grid, iy: int, ix: int) -> np.ndarray:
    y, x = grid.ys[iy], grid.xs[ix]
    return padded[y : y + grid.tile_h, x : x + grid.tile_w].transpose(2, 0, 1)


def _run_checked(session: SupportsRun, tiles: np.ndarray, scale: int) -> np.ndarray:
    result = session.run(tiles)
    n, _, h, w = tiles.shape
    if result.ndim != 4 or result.shape[0] != n or result.shape[2:] != (h * scale, w * scale):
        path = getattr(session, "model_path", None)
        raise EngineError(
            f"model turned input {tiles.shape} into {result.shape}; expected x{scale} (N, C, {h * scale}, {w * scale})",
            path,
        )
    # Clipping each tile first keeps the weighted sum (a convex combination) inside 0..1 as well.
    return np.clip(result, 0.0, 1.0)


def _accumulate(out: np.ndarray, tile_out: np.ndarray, grid: _Grid, iy: int, ix: int, scale: int) -> None:
    """Add one weighted HWC tile into `out`, dropping what falls in the multiple-padding.

    Where the tile's weight is exactly 1 every other tile's is 0, so that core is copied, not
    multiplied and added - most of each tile; only the blend frame around it is weighted. For cheap
    models this halves the engine's own cost (benchmarks/memory_24mp.py).
    """
    y0, x0 = grid.ys[iy] * scale, grid.xs[ix] * scale
    h = min(grid.tile_h * scale, out.shape[0] - y0)
    w = min(grid.tile_w * scale, out.shape[1] - x0)
    if h <= 0 or w <= 0:
        return
    wy, wx = grid.wy[iy][:h], grid.wx[ix][:w]
    (top, bottom), (left, right) = _ones_span(wy), _ones_span(wx)
    target = out[y0 : y0 + h, x0 : x0 + w]
    if bottom <= top or right <= left:
        parts = [(0, h, 0, w)]
    else:
        target[top:bottom, left:right] = tile_out[top:bottom, left:right]
        parts = [(0, top, 0, w), (bottom, h, 0, w), (top, bottom, 0, left), (top, bottom, right, w)]
    for a, b, c, d in parts:
        if b > a and d > c:
            weight = wy[a:b, None] * wx[None, c:d]
            target[a:b, c:d] += tile_out[a:b, c:d] * weight[:, :, None]


def _ones_span(weights: np.ndarray) -> tuple[int, int]:
    """[lo, hi) where `weights` is exactly 1 (contiguous: weights rise, stay at 1, then fall)."""
    ones = np.flatnonzero(weights == 1.0)
    if ones.size == 0:
        return 0, 0
    lo, hi = int(ones[0]), int(ones[-1]) + 1
    return (lo, hi) if hi - lo == ones.size else (0, 0)


def run_whole(session: SupportsRun, image: np.ndarray, *, scale: int, multiple: int = 1) -> np.ndarray:
    """Run on the whole image at once (reflect-padded to `multiple`, cropped back, clipped): no tiling."""
    tile = _round_up(max(image.shape[0], image.shape[1], 1), multiple)
    return run_tiled(session, image, scale=scale, tile=tile, overlap=0, multiple=multiple)


def resolve_tiling(
    options: EngineOptions, *, plugin_tile: int = 0, plugin_overlap: int | None = None
) -> tuple[int, int]:
    """(tile, overlap) for a run: the options win over the plugin's defaults; tile 0 stays automatic."""
    tile = options.tile or plugin_tile
    overlap = options.tile_overlap
    if overlap is None:
        overlap = DEFAULT_OVERLAP if plugin_overlap is None else plugin_overlap
    return tile, overlap


def estimate_tiles(
    height: int,
    width: int,
    *,
    scale: int = 1,
    tile: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    multiple: int = 1,
) -> int:
    """How many tiles `run_tiled` will run for an image (progress bars, logs)."""
    height, width = _round_up(height, multiple), _round_up(width, multiple)
    tile = _round_up(tile or auto_tile_size(scale, multiple), multiple)
    grid = _make_grid(height, width, tile, overlap, multiple, 1)
    return len(grid.ys) * len(grid.xs)


__all__ = [
    "DEFAULT_OVERLAP",
    "ENSEMBLES",
    "MIN_TILE",
    "PRECISIONS",
    "EngineOptions",
    "ModelSession",
    "SelfEnsemble",
    "auto_tile_size",
    "available_providers",
    "axis_weights",
    "balanced_tile",
    "dihedral",
    "estimate_tiles",
    "resolve_tiling",
    "run_tiled",
    "run_whole",
    "tile_starts",
    "undo_dihedral",
]
