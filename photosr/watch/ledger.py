"""The watch daemon's durable memory: one SQLite row per input file, in WAL mode.

A row is keyed by the input's path relative to the watched folder and carries the identity of the content
it describes (size, mtime_ns, blake2b hash) and where that content got to: pending -> processing -> done or
failed. Every state change is its own committed transaction, so after a crash or SIGKILL the ledger says
exactly which files were finished; rows left in `processing` are the ones to redo.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from photosr.errors import PhotosrError

STATES = ("pending", "processing", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    rel TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'processing', 'done', 'failed')),
    output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    seconds REAL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, updated);
CREATE INDEX IF NOT EXISTS files_output ON files (output);
"""


@dataclass(frozen=True)
class Entry:
    """One ledger row. `rel` and `output` are POSIX paths relative to the input and output folders."""

    rel: str
    size: int
    mtime_ns: int
    hash: str | None
    state: str
    output: str | None
    attempts: int
    error: str | None
    seconds: float | None
    updated: float

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns


_COLUMNS = "rel, size, mtime_ns, hash, state, output, attempts, error, seconds, updated"


class Ledger:
    """Thread-safe access to the ledger file; one connection guarded by a lock (writes are tiny)."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise PhotosrError("no watch ledger here (has the daemon run with this output folder?)", path)
        self._lock = threading.Lock()
        try:
            # Autocommit: each statement is one durable transaction, so a kill loses nothing committed.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable against process crashes in WAL mode; only a power cut may lose the
            # last transactions, and redoing a file is harmless because outputs are replaced atomically.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise PhotosrError(f"cannot open the watch ledger: {err}", path) from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                yield self._db.cursor()
            except sqlite3.Error as err:
                raise PhotosrError(f"watch ledger error: {err}", self.path) from err

    def journal_mode(self) -> str:
        with self._cursor() as cur:
            return cur.execute("PRAGMA journal_mode").fetchone()[0]

    def get(self, rel: str) -> Entry | None:
        with self._cursor() as cur:
            row = cur.execute(f"SELECT {_COLUMNS} FROM files WHERE rel = ?", (rel,)).fetchone()
        return None if row is None else Entry(*row)

    def set_pending(self, rel: str, size: int, mtime_ns: int, hash: str | None, *, attempts: int = 0) -> None:
        """Record new content for `rel` (or a retry of it); the previous outcome is forgotten."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO files (rel, size, mtime_ns, hash, state, attempts, updated)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?)"
                " ON CONFLICT (rel) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " hash = excluded.hash, state = 'pending', attempts = excluded.attempts, error = NULL,"
                " seconds = NULL, updated = excluded.updated",
                (rel, size, mtime_ns, hash, attempts, time.time()),
            )

    def set_stat(self, rel: str, size: int, mtime_ns: int) -> None:
        """Same content, new size/mtime record (a `touch` or a copy that kept the bytes)."""
        self._update(rel, "size = ?, mtime_ns = ?", size, mtime_ns)

    def set_processing(self, rel: str, output: str) -> None:
        self._update(rel, "state = 'processing', output = ?, attempts = attempts + 1", output)

    def set_done(self, rel: str, output: str, seconds: float) -> None:
        self._update(rel, "state = 'done', output = ?, error = NULL, seconds = ?", output, seconds)

    def set_failed(self, rel: str, error: str, seconds: float | None = None) -> None:
        self._update(rel, "state = 'failed', error = ?, seconds = ?", error, seconds)

    def set_retry(self, rel: str, error: str | None) -> None:
        """Back to pending (a transient error, or abandoned at stop), keeping the attempt count."""
        self._update(rel, "state = 'pending', error = ?", error)

    def _update(self, rel: str, assignments: str, *values: object) -> None:
        with self._cursor() as cur:
            cur.execute(
                f"UPDATE files SET {assignments}, updated = ? WHERE rel = ?", (*values, time.time(), rel)
            )

    def delete(self, rel: str) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM files WHERE rel = ?", (rel,))

    def reset_interrupted(self) -> list[Entry]:
        """Rows a killed daemon left in `processing` go back to pending; returns them (as they were)."""
        with self._cursor() as cur:
            rows = cur.execute(f"SELECT {_COLUMNS} FROM files WHERE state = 'processing'").fetchall()
            cur.execute("UPDATE files SET state = 'pending' WHERE state = 'processing'")
        return [Entry(*row) for row in rows]

    def in_state(self, state: str) -> list[Entry]:
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM files WHERE state = ? ORDER BY rel", (state,)
            ).fetchall()
        return [Entry(*row) for row in rows]

    def owner_of(self, output: str) -> str | None:
        """The input whose result is (or is being) written to `output`, if any."""
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT rel FROM files WHERE output = ? AND state IN ('processing', 'done')", (output,)
            ).fetchone()
        return None if row is None else row[0]

    def counts(self) -> dict[str, int]:
        with self._cursor() as cur:
            rows = cur.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        found = dict(rows)
        return {state: found.get(state, 0) for state in STATES}

    def last_errors(self, limit: int = 10) -> list[Entry]:
        """Most recent failures first (and pending retries, which carry their last error)."""
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM files WHERE error IS NOT NULL ORDER BY updated DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Entry(*row) for row in rows]


__all__ = ["STATES", "Entry", "Ledger"]
