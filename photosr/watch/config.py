"""Typed settings of the watch daemon, and the TOML file `photosr watch --config` reads.

The TOML file holds the same names as the command-line options (dashes or underscores), at top level;
command-line values win over the file. Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from photosr.batch import FORMAT_EXTENSIONS
from photosr.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

STATE_DIR_NAME = ".photosr-watch"


@dataclass(frozen=True)
class WatchConfig:
    """Where files come from and go, and how the daemon paces itself. Seconds are floats."""

    in_dir: Path
    out_dir: Path
    state_dir: Path | None = None  # ledger, lock and status file; default OUT/.photosr-watch
    failed_dir: Path | None = None  # a copy of each bad file and NAME.error.txt go here
    processed_dir: Path | None = None  # originals are moved here once their output is safe
    workers: int = 1
    poll: float | None = None  # polling observer interval (network shares); None = native events
    settle: float = 2.0  # size and mtime unchanged this long = the file is complete
    timeout: float = 900.0  # per-file limit; the worker process is killed past it (0 = none)
    grace: float = 10.0  # on SIGTERM/SIGINT, current files get this long to finish
    rescan: float = 300.0  # full rescan of IN for events the OS dropped (0 = never)
    retries: int = 5  # attempts for transient errors (file locked, disk full), with backoff
    queue_size: int = 0  # files taken but not yet started; 0 = 2 x workers
    recycle_after: int = 1000  # files per worker process before a fresh one replaces it (0 = never)
    format: str = "keep"  # output naming, as in `photosr run`
    suffix: str = ""

    def __post_init__(self) -> None:
        for name in ("in_dir", "out_dir", "state_dir", "failed_dir", "processed_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        problems = [message for ok, message in self._checks() if not ok]
        if problems:
            raise UsageError("; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.poll is None or self.poll > 0, f"poll must be > 0 seconds, got {self.poll}"),
            (self.settle >= 0, f"settle must be >= 0 seconds, got {self.settle}"),
            (self.timeout >= 0, f"timeout must be >= 0 seconds (0 = none), got {self.timeout}"),
            (self.grace >= 0, f"grace must be >= 0 seconds, got {self.grace}"),
            (self.rescan >= 0, f"rescan must be >= 0 seconds (0 = never), got {self.rescan}"),
            (self.retries >= 1, f"retries must be >= 1, got {self.retries}"),
            (self.queue_size >= 0, f"queue size must be >= 0, got {self.queue_size}"),
            (self.recycle_after >= 0, f"recycle after must be >= 0 files, got {self.recycle_after}"),
            (_resolved(self.in_dir) != _resolved(self.out_dir), "the output folder must not be the input"),
            (
                self.format == "keep" or self.format in FORMAT_EXTENSIONS,
                f"format must be keep or one of {', '.join(FORMAT_EXTENSIONS)}, got {self.format!r}",
            ),
            (
                "/" not in self.suffix and "\\" not in self.suffix,
                f"suffix must not contain a path separator: {self.suffix!r}",
            ),
        ]

    @property
    def state(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.out_dir / STATE_DIR_NAME

    @property
    def max_queued(self) -> int:
        return self.queue_size or 2 * self.workers

    @property
    def skip_dirs(self) -> tuple[Path, ...]:
        """Folders inside IN the daemon writes to itself: never scanned, their events ignored."""
        dirs = (self.out_dir, self.state, self.failed_dir, self.processed_dir)
        return tuple(d for d in dirs if d is not None)


def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


WATCH_FIELDS = frozenset(f.name for f in fields(WatchConfig))


def load_config_file(path: str | Path, known: frozenset[str] | set[str]) -> dict[str, Any]:
    """Read a TOML settings file; keys are normalised to underscores and must all be in `known`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as err:
        raise UsageError(f"cannot read config: {err.strerror or err}", path) from err
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"not valid TOML: {err}", path) from err
    settings = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", path)
    nested = sorted(key for key, value in settings.items() if isinstance(value, dict))
    if nested:
        raise UsageError(f"key(s) {', '.join(nested)} must be values, not tables", path)
    return settings


__all__ = ["STATE_DIR_NAME", "WATCH_FIELDS", "WatchConfig", "load_config_file"]
