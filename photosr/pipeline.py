"""The one pipeline: `photosr run`, `photosr watch` and the Python API all go through `Pipeline`.

A `Pipeline` resolves its plugins once, keeps one model session per plugin for the whole batch, and
turns each file into a `FileResult` - it never raises out of `process_file`, so one bad photo cannot end
a batch of thousands.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from photosr.errors import ImageWriteError, PhotosrError, PluginNotFoundError, TransientError, UsageError
from photosr.image import Photo
from photosr.io import load_photo, photo_from_pil, photo_to_pil, save_photo
from photosr.resize import fit_within, resize_photo
from photosr.tasks import TASKS, ColorizeTask, DewatermarkTask, ModelRunner, Runner, Task, build_task

FORMATS = ("keep", "png", "jpeg", "webp", "tiff")
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "int8")  # photosr.engine.PRECISIONS, kept here so options stay light
ENSEMBLES = (1, 2, 4, 8)  # photosr.engine.ENSEMBLES, likewise
Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class ProcessOptions:
    """Everything that decides what happens to a photo. Frozen and hashable: one Pipeline per value.

    `plugins` are plugin names or folder paths, matched in order to the tasks that need a model, or
    given as "task=NAME". `tile`/`tile_overlap` of None mean the plugin's manifest defaults; `render_size`
    None means the colorize plugin's default; `max_pixels` None means photosr.io's default limit.
    `precision` picks each plugin's model file: "auto" = its int8 model when it ships one and runs on a
    CPU only, one with int8 dot products (VNNI, AMX, ARM64); "fp32" = always the full-precision model;
    "int8" = the int8 model wherever there is one.
    `ensemble` n > 1 runs every model on n flips/transposes of each tile and averages them
    (`engine.SelfEnsemble`): a little better, n times slower; None means each plugin's manifest default
    (`model.ensemble`, 1 unless the plugin says otherwise).
    """

    tasks: tuple[str, ...] = ("restore",)
    plugins: tuple[str, ...] = ()
    scale: int | None = None
    outscale: float | None = None
    max_size: int | None = None
    format: str = "keep"
    quality: int = 95
    suffix: str = ""
    strip_metadata: bool = False
    keep_source_profile: bool = False
    strength: float = 1.0
    render_size: int | None = None
    save_mask: bool = False
    skip_existing: bool = False
    device: str = "auto"
    precision: str = "auto"
    ensemble: int | None = None
    threads: int = 0
    tile: int | None = None
    tile_overlap: int | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        # Accept lists and single strings from Python callers; store tuples so the options stay hashable.
        for name in ("tasks", "plugins"):
            value = getattr(self, name) or ()
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        fmt = _FORMAT_ALIASES.get(str(self.format).lower(), str(self.format).lower())
        object.__setattr__(self, "format", fmt)
        try:
            problems = list(_option_problems(self))
        except TypeError as err:  # e.g. strength="high" from a Python caller
            raise UsageError(f"bad option type: {err}") from err
        if problems:
            raise UsageError("; ".join(problems))

    @classmethod
    def from_kwargs(cls, **options: Any) -> ProcessOptions:
        """Like the constructor, but an unknown keyword is a UsageError naming it and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**options)


def _option_problems(o: ProcessOptions) -> Iterable[str]:
    for task in o.tasks:
        if task not in TASKS:
            yield f"unknown task {task!r}; choose one of {', '.join(TASKS)}"
    if o.scale is not None and o.tasks and "upscale" not in o.tasks:
        yield "scale picks the upscale plugin, but upscale is not among the tasks (use outscale to resize)"
    checks = [
        (o.format in FORMATS, f"format must be one of {', '.join(FORMATS)}, got {o.format!r}"),
        (
            o.scale is None or (isinstance(o.scale, int) and o.scale >= 1),
            f"scale must be an integer >= 1, got {o.scale!r}",
        ),
        (o.outscale is None or o.outscale > 0, f"outscale must be > 0, got {o.outscale!r}"),
        (o.max_size is None or o.max_size >= 1, f"max size must be >= 1, got {o.max_size!r}"),
        (1 <= o.quality <= 100, f"quality must be 1..100, got {o.quality!r}"),
        (0.0 <= o.strength <= 1.0, f"strength must be between 0 and 1, got {o.strength!r}"),
        (o.render_size is None or o.render_size >= 0, f"render size must be >= 0, got {o.render_size!r}"),
        (o.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {o.device!r}"),
        (
            o.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, got {o.precision!r}",
        ),
        (
            o.ensemble is None or o.ensemble in ENSEMBLES,
            f"ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {o.ensemble!r}",
        ),
        (o.threads >= 0, f"threads must be >= 0, got {o.threads!r}"),
        (o.tile is None or o.tile >= 0, f"tile must be >= 0 (0 = automatic), got {o.tile!r}"),
        (o.tile_overlap is None or o.tile_overlap >= 0, f"tile overlap must be >= 0, got {o.tile_overlap!r}"),
        (
            o.max_pixels is None or o.max_pixels >= 0,
            f"max pixels must be >= 0 (0 = no limit), got {o.max_pixels!r}",
        ),
        (
            "/" not in o.suffix and "\\" not in o.suffix,
            f"suffix must not contain a path separator: {o.suffix!r}",
        ),
    ]
    yield from (message for ok, message in checks if not ok)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: what `--json`, the daemon ledger and the API report.

    `transient` marks a failure worth retrying (TransientError, or an OSError such as a full disk or a
    locked file underneath the error); it is for the daemon and not part of the JSON report.
    """

    input: Path
    output: Path | None
    status: Status
    error: str | None = None
    seconds: float = 0.0
    transient: bool = False

    @property
    def ok(self) -> bool:
        """True unless the file failed (skipped counts as done)."""
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, the `--json` schema: input, output, status, error, seconds (ms precision)."""
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


# errno values that mean "try again later": busy/locked file, interrupted call, full disk or quota.
_TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ENOSPC, errno.EDQUOT, errno.ETXTBSY}
)


def is_transient(err: BaseException) -> bool:
    """True for TransientError, or any error caused (directly or further down) by a transient OSError."""
    seen: BaseException | None = err
    for _ in range(10):  # cause chains are short; the bound guards against cycles
        if seen is None:
            return False
        if isinstance(seen, TransientError) or (
            isinstance(seen, OSError) and seen.errno in _TRANSIENT_ERRNOS
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class _Step:
    task: Task
    runner: Runner | None
    plugin: Any = None  # photosr.plugins.Plugin, for reporting


class Pipeline:
    """Plugins resolved and sessions kept for a whole batch; `process`/`process_file` per photo.

    Raises UsageError (unknown task, no plugin for a task, plugin of the wrong task or scale) or
    PluginError (bad plugin folder) when constructed, before any photo is touched.
    """

    def __init__(self, options: ProcessOptions | None = None, registry: Any = None):
        self.options = options if options is not None else ProcessOptions()
        self._registry = registry
        self._sessions: dict[Path, Any] = {}
        self.steps: tuple[_Step, ...] = tuple(self._resolve_steps())

    # --- plugin resolution ---------------------------------------------------------------------------

    @property
    def registry(self) -> Any:
        """The registry plugins come from (the default one, built on first need)."""
        if self._registry is None:
            from photosr.plugins import default_registry

            self._registry = default_registry()
        return self._registry

    def _resolve_steps(self) -> Iterable[_Step]:
        o = self.options
        tasks = o.tasks or self._tasks_from_plugins() or ("restore",)
        chosen = _assign_plugins(tasks, o.plugins)
        for index, name in enumerate(tasks):
            task = build_task(name, strength=o.strength, max_size=o.max_size, render_size=o.render_size)
            if not task.needs_model:
                yield _Step(task, None)
                continue
            plugin = self._plugin_for(name, chosen.get(index))
            # A corrupt model fails the whole run up front, not each photo in turn - the file that will
            # actually run (fp32 or int8).
            plugin.verify(plugin.model_path_for(self._engine_options()))
            if name == "colorize" and o.render_size is None:
                task = build_task(name, render_size=plugin.manifest.model.render_size)
            yield _Step(task, self._runner_for(plugin, task), plugin)

    def _tasks_from_plugins(self) -> tuple[str, ...]:
        # `photosr run --plugin upscale-x4 ...` without --task: the plugins say what to do.
        tasks = []
        for spec in self.options.plugins:
            task, sep, rest = spec.partition("=")
            tasks.append(task if sep and task in TASKS else self.registry.get(spec).manifest.task)
        return tuple(tasks)

    def _plugin_for(self, task: str, spec: str | None) -> Any:
        scale = self.options.scale if task == "upscale" else None
        if spec is None:
            return self._find(task, scale)
        plugin = self.registry.get(spec)
        manifest = plugin.manifest
        if manifest.task != task:
            raise UsageError(f"plugin {manifest.name!r} is a {manifest.task} plugin, not {task}")
        if scale is not None and manifest.model.scale != scale:
            raise UsageError(f"plugin {manifest.name!r} upscales x{manifest.model.scale}, not x{scale}")
        return plugin

    def _find(self, task: str, scale: int | None) -> Any:
        # The registry picks among several (exact scale, then highest version); an inexact scale is
        # not what --scale asked for, so it is refused rather than silently used.
        try:
            plugin = self.registry.find(task, scale)
        except PluginNotFoundError:
            plugin = None
        if plugin is not None and (scale is None or plugin.manifest.model.scale == scale):
            return plugin
        at = f" at scale {scale}" if scale is not None else ""
        installed = ", ".join(
            f"{p.name} ({p.manifest.task} x{p.manifest.model.scale})" for p in self.registry
        )
        raise UsageError(f"no plugin for task {task!r}{at}; installed: {installed or 'none'}")

    def _engine_options(self) -> Any:
        from photosr.engine import EngineOptions

        o = self.options
        return EngineOptions(device=o.device, threads=o.threads, precision=o.precision)

    def _runner_for(self, plugin: Any, task: Task) -> ModelRunner:
        o = self.options
        key = Path(plugin.folder).resolve()
        if key not in self._sessions:
            # Lazy: the session is created on the first photo and shared by every step using the plugin.
            self._sessions[key] = plugin.session(self._engine_options())
        model = plugin.manifest.model
        # None = the plugin's default; an explicit 0 = automatic (not the plugin's tile).
        tile = model.tile if o.tile is None else o.tile
        overlap = model.tile_overlap if o.tile_overlap is None else o.tile_overlap
        if tile and tile - overlap < model.size_multiple:
            raise UsageError(
                f"tile {tile} must exceed the overlap {overlap} by at least {model.size_multiple} "
                f"for plugin {plugin.name!r}"
            )
        session = self._sessions[key]
        ensemble = model.ensemble if o.ensemble is None else o.ensemble
        if ensemble > 1:
            from photosr.engine import SelfEnsemble

            session = SelfEnsemble(session, ensemble, gate=task.ensemble_gate())
        # Colorize at a render size sees the whole (small) photo at once: colour needs global context.
        whole = isinstance(task, ColorizeTask) and task.render_size > 0
        return ModelRunner(
            session,
            scale=model.scale,
            tile=tile,
            overlap=overlap,
            multiple=model.size_multiple,
            whole=whole,
            takes_quality=plugin.takes_quality,
        )

    # --- processing ----------------------------------------------------------------------------------

    def process(self, photo: Photo) -> Photo:
        """Run the task chain on `photo`, then outscale and max-size; returns a new Photo."""
        return self._process(photo)[0]

    def _process(self, photo: Photo) -> tuple[Photo, list[np.ndarray]]:
        original = photo.size
        masks = []
        for step in self.steps:
            if self.options.save_mask and isinstance(step.task, DewatermarkTask):
                recorder = _FoundRecorder(step.task, step.runner)
                photo = step.task.apply(photo, recorder)
                if recorder.found is not None:
                    masks.append(recorder.found)
            else:
                photo = step.task.apply(photo, step.runner)
        if self.options.outscale is not None:
            target = tuple(max(1, round(side * self.options.outscale)) for side in original)
            if target != photo.size:
                photo = resize_photo(photo, target)
        if self.options.max_size is not None and max(photo.size) > self.options.max_size:
            photo = fit_within(photo, self.options.max_size)
        return photo, masks

    def process_file(self, src: str | Path, dst: str | Path) -> FileResult:
        """Load `src`, process, save to `dst` atomically. Never raises for a bad photo; never writes `src`."""
        start = time.perf_counter()
        src, dst = Path(src), Path(dst)
        if self.options.skip_existing and dst.exists():
            return FileResult(src, dst, "skipped", None, time.perf_counter() - start)
        try:
            written = self._process_file(src, dst)
            return FileResult(src, written, "ok", None, time.perf_counter() - start)
        except PhotosrError as err:
            message = str(err) if err.path is not None else f"{src}: {err}"
            return FileResult(src, dst, "failed", message, time.perf_counter() - start, is_transient(err))
        except Exception as err:  # a decoder or model surprise must not end a batch; report it as data
            message = f"{src}: {type(err).__name__}: {err}"
            return FileResult(src, dst, "failed", message, time.perf_counter() - start, is_transient(err))

    def _process_file(self, src: Path, dst: Path) -> Path:
        if _same_file(src, dst):
            raise ImageWriteError(f"output {dst} is the input itself; refusing to overwrite it", src)
        load_kwargs = {} if self.options.max_pixels is None else {"max_pixels": self.options.max_pixels}
        photo = load_photo(src, **load_kwargs)
        result, masks = self._process(photo)
        written = save_photo(
            result,
            dst,
            format=self.options.format,
            quality=self.options.quality,
            strip_metadata=self.options.strip_metadata,
            keep_source_profile=self.options.keep_source_profile,
        )
        if masks:
            _save_mask(np.logical_or.reduce([_fit_mask(m, result.size) for m in masks]), mask_path(written))
        return Path(written)


class _FoundRecorder:
    """A runner that passes the model's output through and keeps what the dewatermark task says the
    model found in it (a bool map: no copy of the image is held)."""

    def __init__(self, task: DewatermarkTask, runner: Runner):
        self.task, self.runner = task, runner
        self.found: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = self.runner(rgb)
        self.found = self.task.found(rgb, out)
        return out


def mask_path(output: str | Path) -> Path:
    """Where --save-mask puts the mask of `output`: next to it, `<stem>_mask.png`."""
    output = Path(output)
    return output.with_name(f"{output.stem}_mask.png")


def _fit_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize(size, Image.Resampling.NEAREST)
    return np.asarray(image) > 127


def _save_mask(mask: np.ndarray, path: Path) -> None:
    # Same atomic pattern as io.save_photo: a half-written mask must never appear under the final name.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".photosr-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(handle, format="PNG")
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise ImageWriteError(f"cannot write mask: {err}", path) from err


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _assign_plugins(tasks: tuple[str, ...], plugins: tuple[str, ...]) -> dict[int, str]:
    """Task index -> plugin spec. "task=NAME" goes to that task; bare specs fill model tasks in order."""
    model_tasks = [i for i, name in enumerate(tasks) if name in TASKS and TASKS[name].needs_model]
    chosen: dict[int, str] = {}
    positional = []
    for spec in plugins:
        task, sep, rest = spec.partition("=")
        if sep and task in TASKS:
            targets = [i for i in model_tasks if tasks[i] == task and i not in chosen]
            if not targets:
                raise UsageError(f"--plugin {spec}: task {task!r} is not in the task list {list(tasks)}")
            chosen[targets[0]] = rest
        else:
            positional.append(spec)
    free = [i for i in model_tasks if i not in chosen]
    if len(positional) > len(free):
        raise UsageError(f"{len(plugins)} plugin(s) given for {len(model_tasks)} task(s) that use a model")
    chosen.update(zip(free, positional, strict=False))  # fewer plugins: the rest default
    return chosen


@functools.lru_cache(maxsize=4)
def _cached_pipeline(options: ProcessOptions) -> Pipeline:
    # The API's module functions reuse sessions across calls with the same options.
    return Pipeline(options)


def process(
    image: Image.Image | Photo | str | os.PathLike[str],
    tasks: Iterable[str] | str = ("restore",),
    **options: Any,
) -> Image.Image:
    """Process one image (a PIL image, a Photo, or a file path read by `load_photo`) with the same code
    path as `photosr run`; returns a PIL image.

    Options are the ProcessOptions fields (scale=4, strength=0.5, device="cpu", ...). For Photo in and
    Photo out, or a private plugin registry, use `Pipeline(ProcessOptions(...), registry).process`.
    """
    pipeline = _cached_pipeline(ProcessOptions.from_kwargs(tasks=tasks, **options))
    if isinstance(image, (str, os.PathLike)):
        max_pixels = pipeline.options.max_pixels
        photo = load_photo(image) if max_pixels is None else load_photo(image, max_pixels=max_pixels)
    else:
        photo = image if isinstance(image, Photo) else photo_from_pil(image)
    return photo_to_pil(pipeline.process(photo))


def process_file(src: str | Path, dst: str | Path, **options: Any) -> FileResult:
    """Process one file to `dst` (atomic write; `src` is never modified). Options as for `process`.

    Without a `format` option the format follows `dst`'s extension when it names one (out.png -> PNG),
    else the source's."""
    if "format" not in options:
        suffix = Path(dst).suffix.lower().lstrip(".")
        suffix = _FORMAT_ALIASES.get(suffix, suffix)
        if suffix in FORMATS and suffix != "keep":
            options["format"] = suffix
    return _cached_pipeline(ProcessOptions.from_kwargs(**options)).process_file(src, dst)


__all__ = [
    "FORMATS",
    "FileResult",
    "Pipeline",
    "ProcessOptions",
    "is_transient",
    "mask_path",
    "process",
    "process_file",
]
