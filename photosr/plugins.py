"""Plugin format and discovery.

A plugin is a folder: `photosr.toml` (the manifest), the ONNX model it names, a model card `README.md`.
Plugins are data - what runs around the model is chosen by the manifest's `task`.

`default_registry()` collects plugins from, in this order (the first plugin of a name wins, later ones
are listed as shadowed, so a user folder can override a bundled plugin):

1. every entry of `PHOTOSR_PLUGIN_PATH` (os.pathsep-separated), each a plugin folder or a folder of them;
2. the per-user folder `platformdirs.user_data_dir("photosr")/plugins`;
3. entry points in the group `photosr.plugins`. An entry point may resolve to a path (str/PathLike) -
   a plugin folder or a folder of plugin folders - to a module, whose own folder is searched for plugin
   folders (so a package can ship plugins as data beside its `__init__.py`), or to a callable returning
   a path or a list of paths;
4. the bundled plugins, the package `photosr.bundled` (found with importlib.resources, so it works from
   a wheel and from a checkout).

A broken plugin never breaks the registry: it is kept in `registry.broken` as (path, error).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from photosr.engine import (
    CPU,
    ENSEMBLES,
    EngineOptions,
    ModelSession,
    available_providers,
    cpu_int8_is_exact,
    resolve_tiling,
    run_tiled,
)
from photosr.errors import ManifestError, PhotosrError, PluginError, PluginNotFoundError
from photosr.jpeg import QUALITY_INPUT, with_quality_plane

try:
    import tomllib
except ImportError:  # Python 3.10: the `tomli` backport, a dependency there
    import tomli as tomllib

logger = logging.getLogger("photosr.plugins")

MANIFEST_NAME = "photosr.toml"
ENV_PLUGIN_PATH = "PHOTOSR_PLUGIN_PATH"
ENTRY_POINT_GROUP = "photosr.plugins"
TASKS = ("restore", "upscale", "colorize", "dewatermark")
COLOUR_LAYOUTS = ("rgb",)
# What a model's input holds: the photo, or the photo plus a plane of the JPEG quality its file was saved
# at (photosr.jpeg's QUALITY_INPUT), which quality-aware restoration models take.
INPUT_LAYOUTS = (*COLOUR_LAYOUTS, QUALITY_INPUT)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_SHA_RE = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class ModelSpec:
    """The manifest's [model] table."""

    file: str
    sha256: str
    scale: int = 1
    input: str = "rgb"
    output: str = "rgb"
    size_multiple: int = 1
    tile: int = 0
    tile_overlap: int = 16
    render_size: int = 0
    # The self-ensemble size photosr runs this model at unless told otherwise (`--ensemble`): for a
    # model whose measured gain is worth the time on every photo.
    ensemble: int = 1
    # An optional int8 (QDQ-quantized) copy of the model for CPU providers; both or neither.
    int8_file: str = ""
    int8_sha256: str = ""


@dataclass(frozen=True)
class Manifest:
    """A parsed `photosr.toml`. `training` and `metrics` are free-form tables, read-only."""

    name: str
    version: str
    task: str
    model: ModelSpec
    description: str = ""
    license: str = ""
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    path: Path | None = None  # the manifest file it was read from

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the manifest's own layout (for JSON output)."""
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "description": self.description,
            "license": self.license,
            "model": dict(vars(self.model)),
            "training": _plain(self.training),
            "metrics": _plain(self.metrics),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


# --- manifest parsing ----------------------------------------------------------------------------------

_TOP_KEYS = {"name", "version", "task", "description", "license", "model", "training", "metrics"}
_MODEL_KEYS = set(ModelSpec.__dataclass_fields__)


class _Fields:
    """Reads typed fields from one TOML table, raising ManifestError that names file and field."""

    def __init__(self, table: Mapping[str, Any], path: Path, prefix: str = ""):
        self.table, self.path, self.prefix = table, path, prefix

    def fail(self, key: str, reason: str) -> ManifestError:
        return ManifestError(f"field '{self.prefix}{key}': {reason}", self.path)

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean '{self.prefix}{close[0]}'?)" if close else ""
                raise self.fail(key, f"unknown field{hint}")

    def string(
        self, key: str, default: str | None = None, pattern: re.Pattern | None = None, expected: str = ""
    ) -> str:
        if key not in self.table:
            if default is None:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"bad value {value!r} (expected {expected})")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, key: str, default: int | None, minimum: int) -> int:
        if key not in self.table:
            if default is None:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def table_of(self, key: str) -> Mapping[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {value!r}")
        return value


def _model_file(f: _Fields, key: str) -> str:
    file = f.string(key)
    if Path(file).is_absolute() or ".." in Path(file).parts or not file:
        raise f.fail(key, f"must be a file name inside the plugin folder, got {file!r}")
    return file


def _int8_model(f: _Fields) -> tuple[str, str]:
    """(int8_file, int8_sha256), both given or both absent (then empty strings)."""
    present = [key for key in ("int8_file", "int8_sha256") if key in f.table]
    if not present:
        return "", ""
    if len(present) == 1:
        missing = "int8_sha256" if present == ["int8_file"] else "int8_file"
        raise f.fail(missing, f"missing (needed with {f.prefix}{present[0]}; give both or neither)")
    sha = f.string("int8_sha256", pattern=_SHA_RE, expected="64 lower-case hex digits")
    return _model_file(f, "int8_file"), sha


def _parse_model(table: Mapping[str, Any], path: Path, task: str) -> ModelSpec:
    f = _Fields(table, path, "model.")
    f.check_keys(_MODEL_KEYS)
    file = _model_file(f, "file")
    int8_file, int8_sha256 = _int8_model(f)
    spec = ModelSpec(
        file=file,
        sha256=f.string("sha256", pattern=_SHA_RE, expected="64 lower-case hex digits"),
        scale=f.integer("scale", None, 1),
        input=f.choice("input", INPUT_LAYOUTS, "rgb"),
        output=f.choice("output", COLOUR_LAYOUTS, "rgb"),
        size_multiple=f.integer("size_multiple", 1, 1),
        tile=f.integer("tile", 0, 0),
        tile_overlap=f.integer("tile_overlap", 16, 0),
        render_size=f.integer("render_size", 0, 0),
        ensemble=f.integer("ensemble", 1, 1),
        int8_file=int8_file,
        int8_sha256=int8_sha256,
    )
    if spec.ensemble not in ENSEMBLES:
        raise f.fail("ensemble", f"must be one of {', '.join(map(str, ENSEMBLES))}, got {spec.ensemble}")
    if int8_file and Path(int8_file) == Path(file):
        raise f.fail("int8_file", f"must differ from model.file, got {int8_file!r}")
    if task != "upscale" and spec.scale != 1:
        raise f.fail("scale", f"a {task} model must have scale 1, got {spec.scale}")
    if spec.tile and spec.tile - spec.tile_overlap < spec.size_multiple:
        raise f.fail(
            "tile",
            f"must exceed tile_overlap ({spec.tile_overlap}) by at least size_multiple "
            f"({spec.size_multiple}), got {spec.tile}",
        )
    return spec


def parse_manifest(data: Mapping[str, Any], path: Path) -> Manifest:
    """A Manifest from already-parsed TOML; `path` is only used in error messages."""
    f = _Fields(data, path)
    f.check_keys(_TOP_KEYS)
    task = f.choice("task", TASKS)
    if "model" not in data:
        raise f.fail("model", "missing (the [model] table)")
    return Manifest(
        name=f.string("name", pattern=_NAME_RE, expected="lower-case letters, digits, '.', '_', '-'"),
        version=f.string("version"),
        task=task,
        model=_parse_model(f.table_of("model"), path, task),
        description=f.string("description", ""),
        license=f.string("license", ""),
        training=_freeze(f.table_of("training")),
        metrics=_freeze(f.table_of("metrics")),
        path=path,
    )


def load_manifest(path: str | Path) -> Manifest:
    """Read `photosr.toml` (or a plugin folder holding one); ManifestError names the file and field."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise PluginError(f"no {MANIFEST_NAME} (not a plugin folder)", path.parent) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"cannot read manifest: {err}", path) from err
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"not valid TOML: {err}", path) from err
    return parse_manifest(data, path)


# --- plugins ------------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (models can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Plugin:
    """A plugin folder and its manifest. `source` says where discovery found it (for `plugins list`)."""

    def __init__(self, folder: str | Path, manifest: Manifest | None = None, *, source: str = "path"):
        self.folder = Path(folder)
        self.manifest = manifest if manifest is not None else load_manifest(self.folder)
        self.source = source
        self._verified: set[Path] = set()  # model files whose hash matched, fp32 and int8 alike
        self._told_no_int8 = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {str(self.folder)!r})"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def model_path(self) -> Path:
        """The full-precision (fp32) model file."""
        return self.folder / self.manifest.model.file

    @property
    def int8_model_path(self) -> Path | None:
        """The int8 model file, or None when the plugin ships none."""
        file = self.manifest.model.int8_file
        return self.folder / file if file else None

    @property
    def model_paths(self) -> tuple[Path, ...]:
        """Every model file the manifest names: fp32 first, then int8 if any."""
        int8 = self.int8_model_path
        return (self.model_path,) if int8 is None else (self.model_path, int8)

    def model_path_for(self, options: EngineOptions | None = None) -> Path:
        """The model file a session with `options` runs.

        "fp32": the manifest's `file`. "int8": `int8_file`, or `file` when there is none (logged once).
        "auto": `int8_file` when there is one, the device's providers are CPU only (int8 QDQ runs
        2.5-3x faster there; on CUDA the fp32 model is the right one) and the CPU has int8 dot products
        (`engine.cpu_int8_is_exact`), else `file`.
        """
        options = options or EngineOptions()
        int8 = self.int8_model_path
        if options.precision == "fp32":
            return self.model_path
        if int8 is None:
            if options.precision == "int8":
                self._tell_no_int8()
            return self.model_path
        if options.precision == "int8":
            return int8
        if available_providers(options.device) == [CPU] and cpu_int8_is_exact():
            return int8
        return self.model_path

    def _tell_no_int8(self) -> None:
        with self._lock:
            told, self._told_no_int8 = self._told_no_int8, True
        if not told:
            logger.info("plugin %s has no int8 model; using %s", self.name, self.model_path)

    @property
    def model_card(self) -> Path | None:
        """The README.md model card, if the folder has one."""
        card = self.folder / "README.md"
        return card if card.is_file() else None

    def verify(self, path: Path | None = None, *, force: bool = False) -> None:
        """Check a model file's sha256 against the manifest: `path` is one of `model_paths` (default
        the fp32 model). Each file is checked once per Plugin; `force` re-reads it.

        Raises PluginError naming the model file on a missing file or a mismatch.
        """
        path = self.model_path if path is None else Path(path)
        expected = self._expected_sha256(path)
        with self._lock:
            if path in self._verified and not force:
                return
            try:
                actual = sha256_file(path)
            except OSError as err:
                raise PluginError(f"cannot read model: {err.strerror or err}", path) from err
            if actual != expected:
                raise PluginError(f"sha256 mismatch: manifest says {expected}, file has {actual}", path)
            self._verified.add(path)

    def _expected_sha256(self, path: Path) -> str:
        model = self.manifest.model
        if path == self.model_path:
            return model.sha256
        if path == self.int8_model_path:
            return model.int8_sha256
        raise PluginError(f"not a model file of plugin {self.name!r} (it has {model.file})", path)

    def session(self, options: EngineOptions | None = None) -> ModelSession:
        """A lazy ModelSession on `model_path_for(options)` that verifies that file's hash just
        before it is first loaded."""
        path = self.model_path_for(options)
        return ModelSession(path, options, before_create=functools.partial(self.verify, path))

    @property
    def takes_quality(self) -> bool:
        """Whether the model's input carries the photo's JPEG quality (manifest `input = "rgb+quality"`)."""
        return self.manifest.model.input == QUALITY_INPUT

    def infer(
        self,
        session: ModelSession,
        image: np.ndarray,
        options: EngineOptions | None = None,
        *,
        quality: int | None = None,
    ) -> np.ndarray:
        """Run the model over an HxWxC image, tiled with the options' or the manifest's tile settings.
        `quality` is the JPEG quality of the image's file (None: unknown), for models that take it."""
        model = self.manifest.model
        if self.takes_quality:
            image = with_quality_plane(image, quality)
        tile, overlap = resolve_tiling(
            options or session.options, plugin_tile=model.tile, plugin_overlap=model.tile_overlap
        )
        return run_tiled(
            session, image, scale=model.scale, tile=tile, overlap=overlap, multiple=model.size_multiple
        )


# --- registry -----------------------------------------------------------------------------------------


def _version_key(version: str) -> tuple:
    # "1.10.0" > "1.9.2" > "1.9"; a text part ("rc1") sorts below any number in the same place.
    parts = [(1, int(p), "") if p.isdigit() else (0, 0, p) for p in re.split(r"[.\-+]", version)]
    return tuple(parts + [(1, 0, "")] * (8 - len(parts)))


class PluginRegistry:
    """Plugins by name. `add` refuses duplicates; `broken` and `shadowed` record discovery problems."""

    def __init__(self, plugins: Iterable[Plugin] = ()):
        self._plugins: dict[str, Plugin] = {}
        self._lock = threading.Lock()
        self.broken: list[tuple[Path, PhotosrError]] = []
        self.shadowed: list[tuple[Path, Plugin]] = []  # (folder not used, the plugin that won)
        self.searched: list[tuple[Path, str]] = []  # (folder, source) that discovery looked in
        self.add(*plugins)

    def add(self, *plugins: Plugin) -> None:
        """Register plugins, all or none: PluginError if any name is taken or given twice."""
        with self._lock:
            seen: dict[str, Plugin] = {}
            for plugin in plugins:
                taken = self._plugins.get(plugin.name) or seen.get(plugin.name)
                if taken is not None:
                    raise PluginError(
                        f"a plugin named {plugin.name!r} is already registered from {taken.folder}",
                        plugin.folder,
                    )
                seen[plugin.name] = plugin
            self._plugins.update(seen)

    def __iter__(self) -> Iterator[Plugin]:
        return iter(sorted(self._plugins.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def names(self) -> list[str]:
        return sorted(self._plugins)

    def get(self, name_or_path: str | os.PathLike) -> Plugin:
        """A registered plugin by name, or a plugin loaded from a folder path (not registered)."""
        key = os.fspath(name_or_path)
        if key in self._plugins:
            return self._plugins[key]
        path = Path(key).expanduser()
        if (path / MANIFEST_NAME).is_file() or path.name == MANIFEST_NAME:
            return Plugin(path.parent if path.name == MANIFEST_NAME else path, source="path")
        close = difflib.get_close_matches(key, self.names(), n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else f"; installed: {', '.join(self.names()) or 'none'}"
        )
        raise PluginNotFoundError(f"no plugin named {key!r} and no plugin folder there{hint}")

    def find(self, task: str, scale: int | None = None) -> Plugin:
        """The best plugin for `task`: the exact scale if asked, else the nearest larger, else smaller;
        among equals the highest version, then the name."""
        candidates = [p for p in self._plugins.values() if p.manifest.task == task]
        if not candidates:
            raise PluginNotFoundError(
                f"no plugin for task {task!r}; installed: {', '.join(self.names()) or 'none'}"
            )

        # Stable sorts compose: name, then highest version first, then how well the scale fits.
        candidates.sort(key=lambda p: p.name)
        candidates.sort(key=lambda p: _version_key(p.manifest.version), reverse=True)
        candidates.sort(key=lambda p: _scale_rank(p.manifest.model.scale, scale))
        return candidates[0]

    def discover(self, folder: str | Path, source: str) -> None:
        """Add the plugin at `folder`, or every plugin folder inside it; problems go to `broken`."""
        folder = Path(folder).expanduser()
        self.searched.append((folder, source))
        if not folder.is_dir():
            self.broken.append((folder, PluginError(f"plugin folder does not exist ({source})", folder)))
            return
        if (folder / MANIFEST_NAME).is_file():
            self._discover_one(folder, source)
            return
        for child in sorted(folder.iterdir()):
            if child.is_dir() and (child / MANIFEST_NAME).is_file():
                self._discover_one(child, source)

    def _discover_one(self, folder: Path, source: str) -> None:
        try:
            plugin = Plugin(folder, source=source)
        except PhotosrError as err:
            self.broken.append((folder, err))
            return
        winner = self._plugins.get(plugin.name)
        if winner is not None:
            if winner.folder.resolve() != folder.resolve():
                self.shadowed.append((folder, winner))
            return
        self.add(plugin)


def _scale_rank(have: int, want: int | None) -> tuple[int, int]:
    # Exact first; then larger (the pipeline can scale down in linear light); then the nearest smaller.
    if want is None or have == want:
        return (0, 0)
    return (1, have - want) if have > want else (2, want - have)


# --- the default registry -----------------------------------------------------------------------------


def bundled_plugin_dir() -> Path | None:
    """The folder of the `photosr.bundled` package, or None if it is not a real folder (zip import)."""
    from importlib.resources import files

    try:
        root = files("photosr.bundled")
    except ModuleNotFoundError:
        return None
    return root if isinstance(root, Path) else None


def user_plugin_dir() -> Path:
    """The per-user plugin folder: `platformdirs.user_data_dir("photosr")/plugins`."""
    import platformdirs

    return Path(platformdirs.user_data_dir("photosr")) / "plugins"


def _entry_point_folders(registry: PluginRegistry) -> Iterator[tuple[Path, str]]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {ep.name} ({ep.value})"
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, type):
                target = target()
            for path in _as_paths(target):
                yield path, source
        except Exception as err:  # any third-party failure becomes a listed problem, never a crash
            registry.broken.append((Path(ep.value), PluginError(f"{source}: {err}")))


def _as_paths(target: Any) -> list[Path]:
    if isinstance(target, (str, os.PathLike)):
        return [Path(target)]
    module_file = getattr(target, "__file__", None)
    if module_file:
        return [Path(module_file).parent]
    if isinstance(target, Iterable):
        return [Path(p) for p in target]
    raise TypeError(f"expected a path, a module or a list of paths, got {type(target).__name__}")


def build_default_registry() -> PluginRegistry:
    """A fresh registry from the four sources, in override order (see the module docstring)."""
    registry = PluginRegistry()
    for entry in os.environ.get(ENV_PLUGIN_PATH, "").split(os.pathsep):
        if entry.strip():
            registry.discover(entry.strip(), ENV_PLUGIN_PATH)
    user = user_plugin_dir()
    if user.is_dir():
        registry.discover(user, "user")
    else:
        registry.searched.append((user, "user"))  # listed so people know where to put plugins
    for path, source in list(_entry_point_folders(registry)):
        registry.discover(path, source)
    bundled = bundled_plugin_dir()
    if bundled is not None:
        registry.discover(bundled, "bundled")
    return registry


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The process-wide registry, built on first use and cached (see `clear_default_registry`)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = build_default_registry()
        return _default


def clear_default_registry() -> None:
    """Forget the cached default registry (after installing plugins, or between tests)."""
    global _default
    with _default_lock:
        _default = None


__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_PLUGIN_PATH",
    "MANIFEST_NAME",
    "TASKS",
    "Manifest",
    "ModelSpec",
    "Plugin",
    "PluginRegistry",
    "build_default_registry",
    "bundled_plugin_dir",
    "clear_default_registry",
    "default_registry",
    "load_manifest",
    "parse_manifest",
    "sha256_file",
    "user_plugin_dir",
]
