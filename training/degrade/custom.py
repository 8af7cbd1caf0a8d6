"""Load a user's `crappify(image, rng) -> image` callable from `path/to/file.py:func` or `module:func`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from photosr.errors import UsageError

CrappifyFunc = Callable[..., Image.Image]


def is_callable_spec(spec: str) -> bool:
    """`x.py:f` or `package.module:f` (a bare Windows drive `C:` has no dot or slash before it)."""
    left, sep, right = spec.rpartition(":")
    return bool(sep and left and right.isidentifier() and not spec.endswith(".toml"))


def load_callable(spec: str) -> tuple[CrappifyFunc, Path | None]:
    """The function a spec names and the source file it came from (None if unknown)."""
    left, _, attr = spec.rpartition(":")
    if left.endswith(".py") or "/" in left or "\\" in left:
        module, source = _import_file(Path(left))
    else:
        try:
            module = importlib.import_module(left)
        except ImportError as err:
            raise UsageError(f"cannot import module {left!r} for crappify function {spec!r}: {err}") from err
        source = Path(module.__file__) if getattr(module, "__file__", None) else None
    func = getattr(module, attr, None)
    if func is None:
        raise UsageError(f"no function {attr!r} in {left}", source)
    if not callable(func):
        raise UsageError(f"{attr!r} is not callable", source)
    return func, source


def _import_file(path: Path) -> tuple[object, Path]:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UsageError("crappify file not found", path)
    # One stable module name per file, so reloading the same file reuses it and functions pickle by
    # reference inside forked DataLoader workers.
    name = "photosr_crappify_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name], path
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError("not an importable Python file", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file may raise anything while importing
        del sys.modules[name]
        raise UsageError(f"importing failed: {type(err).__name__}: {err}", path) from err
    return module, path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
