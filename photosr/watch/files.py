"""File operations of the daemon that must be safe against crashes: temp names, moves, copies, locks.

Originals are never written. Outputs appear only by atomic rename of a temp file in the same folder; an
original leaves IN (for --processed-dir) only after its output is on disk, and only by rename or by a
copy that is complete before the original is unlinked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import IO

from photosr.errors import UsageError

TEMP_MARK = ".photosr-watch-tmp."  # temp outputs: ".photosr-watch-tmp.<final name>" beside the final file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one daemon per folder by convention
    fcntl = None  # type: ignore[assignment]


def temp_output(final: Path) -> Path:
    """The name an output is written under before its atomic rename; a dotfile, so scanners skip it."""
    return final.with_name(TEMP_MARK + final.name)


def remove_temps(final: Path) -> None:
    """Delete the temp of `final` and the writer's own temp under it (`.<temp name>.*`), if any."""
    temp = temp_output(final)
    temp.unlink(missing_ok=True)
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(f".{temp.name}."):
            Path(entry.path).unlink(missing_ok=True)


def clear_stale_temps(folder: Path) -> int:
    """Delete every daemon temp in `folder`; only safe while no worker runs. Returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if TEMP_MARK in entry.name and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def file_digest(path: Path) -> str:
    """blake2b-128 of the content: tells a changed file from a merely touched one."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unique_path(path: Path) -> Path:
    """`path`, or `name.1.ext`, `name.2.ext`, ... whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def move_original(src: Path, dest: Path) -> Path:
    """Move `src` to `dest` (or a free name next to it) without ever losing it; returns where it went.

    Same filesystem: one rename. Across filesystems: copy to a temp name, fsync, rename into place, and
    only then unlink the original - a crash at any point leaves at least one complete copy.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest = unique_path(dest)
    try:
        os.rename(src, dest)
        return dest
    except OSError as err:
        if err.errno != 18:  # EXDEV: cross-device; anything else is a real failure
            raise
    tmp = dest.with_name(TEMP_MARK + dest.name)
    try:
        shutil.copy2(src, tmp)
        fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the original is untouched; leave no half copy behind
        raise
    _fsync_dir(dest.parent)
    os.unlink(src)
    return dest


def copy_failed(src: Path, dest: Path, reason: str) -> None:
    """Put a copy of a bad file at `dest` with `dest.error.txt` beside it saying why it failed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    dest.with_name(dest.name + ".error.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")


def lock_state_dir(state: Path) -> IO[str] | None:
    """Hold an exclusive lock on `state/lock` for the life of the daemon; UsageError if another has it."""
    state.mkdir(parents=True, exist_ok=True)
    handle = (state / "lock").open("a+", encoding="utf-8")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.close()
        raise UsageError("another photosr watch is already running with this state folder", state) from err
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def is_locked(state: Path) -> bool:
    """True while a daemon holds the state folder's lock (i.e. is running)."""
    lock = state / "lock"
    if fcntl is None or not lock.exists():
        return False
    with lock.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


__all__ = [
    "TEMP_MARK",
    "clear_stale_temps",
    "copy_failed",
    "file_digest",
    "fsync_file",
    "is_locked",
    "lock_state_dir",
    "move_original",
    "remove_temps",
    "temp_output",
    "unique_path",
]
