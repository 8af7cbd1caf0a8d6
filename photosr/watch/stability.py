"""Deciding when a file that is being written is complete.

Filesystem events say a file appeared or changed, not that the writer is finished (a copy over the network
fires `created` at the first byte). A path is a candidate until its size and mtime have stayed the same for
`settle` seconds; a close-after-write event (inotify reports it) shortens that to a quarter second.
Temporary names (`.part`, `.crdownload`, `~`, `.~lock`, dotfiles) never become candidates: the finished
file arrives by rename, and the rename is the event that counts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from photosr.batch import IMAGE_EXTENSIONS, is_junk

# After a close-after-write event the file only has to hold still this long (or `settle`, if shorter):
# enough to see through writers that reopen the file for every chunk, short next to a settle of seconds.
CLOSED_SETTLE = 0.25

# Folders that hold thumbnails or OS bookkeeping on NAS boxes and desktops, never photos to process.
_JUNK_DIRS = frozenset({"@eadir", "__macosx", "$recycle.bin", "system volume information", "#recycle"})


def is_candidate(rel: PurePath) -> bool:
    """True when a path (relative to the watched folder) names a photo the daemon should take."""
    if not rel.parts or rel.suffix.lower() not in IMAGE_EXTENSIONS or is_junk(rel.name):
        return False
    return not any(part.startswith(".") or part.lower() in _JUNK_DIRS for part in rel.parts[:-1])


@dataclass
class _Candidate:
    path: Path
    size: int
    mtime_ns: int
    since: float  # when this size/mtime was first seen
    closed: bool = False  # a close-after-write event arrived since the last change
    not_before: float = 0.0  # retry backoff: not promoted before this time


@dataclass(frozen=True)
class Stable:
    """A file whose size and mtime held still long enough: safe to read."""

    rel: str
    path: Path
    size: int
    mtime_ns: int
    attempts: int = 0


class StabilityTracker:
    """Candidates keyed by relative path; `ready()` promotes the ones that have settled.

    Thread-safe: the observer thread calls `touch`/`closed`/`discard`, the scanner thread calls `ready`.
    """

    def __init__(self, settle: float, *, clock: Callable[[], float] = time.monotonic):
        self.settle = settle
        self._clock = clock
        self._lock = threading.Lock()
        self._candidates: dict[str, _Candidate] = {}
        self._attempts: dict[str, int] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._candidates)

    def __contains__(self, rel: str) -> bool:
        with self._lock:
            return rel in self._candidates

    def touch(self, rel: str, path: Path, *, delay: float = 0.0, attempts: int = 0) -> None:
        """Something happened to `path`: (re)start its settle clock. `delay` holds it back (retries)."""
        now = self._clock()
        with self._lock:
            old = self._candidates.get(rel)
            self._candidates[rel] = _Candidate(
                path, -1, -1, now, not_before=max(now + delay, old.not_before if old else 0.0)
            )
            if attempts:
                self._attempts[rel] = attempts

    def closed(self, rel: str, path: Path) -> None:
        """The writer closed the file: `CLOSED_SETTLE` seconds unchanged are enough."""
        with self._lock:
            candidate = self._candidates.get(rel)
            if candidate is None:
                self._candidates[rel] = candidate = _Candidate(path, -1, -1, self._clock())
            candidate.closed = True

    def discard(self, rel: str) -> None:
        with self._lock:
            self._candidates.pop(rel, None)
            self._attempts.pop(rel, None)

    def ready(self, limit: int | None = None) -> list[Stable]:
        """Stat every candidate; return (and forget) up to `limit` that have settled."""
        now = self._clock()
        with self._lock:
            items = list(self._candidates.items())
        promoted: list[Stable] = []
        for rel, candidate in items:
            if limit is not None and len(promoted) >= limit:
                break
            if candidate.not_before > now:
                continue
            stable = self._check(rel, candidate, now)
            if stable is not None:
                promoted.append(stable)
        return promoted

    def _check(self, rel: str, candidate: _Candidate, now: float) -> Stable | None:
        try:
            st = os.stat(candidate.path)
        except OSError:  # gone (deleted or renamed away): its new name brings its own event
            self._forget_if_same(rel, candidate)
            return None
        with self._lock:
            if self._candidates.get(rel) is not candidate:
                return None  # touched again meanwhile; the newer record decides
            if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                # First look, or changed since the last one: restart the clock. A close flag stays:
                # a later write brings its own modified event, and `touch` clears the flag.
                candidate.size, candidate.mtime_ns = st.st_size, st.st_mtime_ns
                candidate.since = now
                return None
            if now - candidate.since < (min(self.settle, CLOSED_SETTLE) if candidate.closed else self.settle):
                return None
            del self._candidates[rel]
            attempts = self._attempts.pop(rel, 0)
        return Stable(rel, candidate.path, st.st_size, st.st_mtime_ns, attempts)

    def _forget_if_same(self, rel: str, candidate: _Candidate) -> None:
        with self._lock:
            if self._candidates.get(rel) is candidate:
                del self._candidates[rel]
                self._attempts.pop(rel, None)


__all__ = ["Stable", "StabilityTracker", "is_candidate"]
