"""Crash-safe file operations of the daemon: temp names, moving originals, failed copies, the lock."""

from __future__ import annotations

import errno
import os

import pytest

from photosr.errors import UsageError
from photosr.watch import files


def test_temp_output_is_a_dotfile_beside_the_final_name(tmp_path):
    temp = files.temp_output(tmp_path / "sub" / "photo.jpg")
    assert temp.parent == tmp_path / "sub"
    assert temp.name.startswith(".") and temp.name.endswith("photo.jpg")


def test_remove_temps_spares_other_files_temps(tmp_path):
    final = tmp_path / "photo.png"
    mine = files.temp_output(final)
    writers = tmp_path / f".{mine.name}.k2j3.photosr-tmp"  # the writer's own temp under ours
    other = files.temp_output(tmp_path / "photo.v2.png")
    for path in (mine, writers, other, final):
        path.write_bytes(b"x")
    files.remove_temps(final)
    assert not mine.exists() and not writers.exists()
    assert other.exists() and final.exists()
    assert files.clear_stale_temps(tmp_path) == 1 and not other.exists() and final.exists()


def test_move_original_renames_and_never_overwrites(tmp_path):
    src = tmp_path / "in" / "a.jpg"
    src.parent.mkdir()
    src.write_bytes(b"first")
    dest = tmp_path / "done" / "x" / "a.jpg"
    assert files.move_original(src, dest) == dest
    src.write_bytes(b"second")
    moved = files.move_original(src, dest)
    assert moved == dest.with_name("a.1.jpg")
    assert dest.read_bytes() == b"first" and moved.read_bytes() == b"second" and not src.exists()


def test_move_original_across_filesystems_copies_before_unlinking(tmp_path, monkeypatch):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"photo")
    os.utime(src, ns=(1_000_000_000, 1_000_000_000))

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "rename", cross_device)
    dest = files.move_original(src, tmp_path / "done" / "a.jpg")
    assert dest.read_bytes() == b"photo" and not src.exists()
    assert dest.stat().st_mtime_ns == 1_000_000_000  # copied with its times
    assert not [p for p in dest.parent.iterdir() if files.TEMP_MARK in p.name]


def test_move_original_keeps_the_original_when_the_copy_fails(tmp_path, monkeypatch):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"photo")
    monkeypatch.setattr(files.os, "rename", lambda a, b: (_ for _ in ()).throw(OSError(errno.EXDEV, "x")))

    def disk_full(a, b):
        with open(b, "wb") as handle:
            handle.write(b"ph")  # half a copy, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.shutil, "copy2", disk_full)
    with pytest.raises(OSError):
        files.move_original(src, tmp_path / "done" / "a.jpg")
    assert src.read_bytes() == b"photo"
    assert list((tmp_path / "done").iterdir()) == []


def test_copy_failed_writes_copy_and_reason(tmp_path):
    src = tmp_path / "bad.jpg"
    src.write_bytes(b"junk")
    dest = tmp_path / "failed" / "sub" / "bad.jpg"
    files.copy_failed(src, dest, "bad.jpg: not an image")
    assert dest.read_bytes() == b"junk"
    assert (dest.parent / "bad.jpg.error.txt").read_text() == "bad.jpg: not an image\n"
    assert src.exists()


def test_state_lock_is_exclusive_and_released(tmp_path):
    state = tmp_path / "state"
    assert not files.is_locked(state)
    handle = files.lock_state_dir(state)
    assert files.is_locked(state)
    assert (state / "lock").read_text().strip() == str(os.getpid())
    with pytest.raises(UsageError, match="already running"):
        files.lock_state_dir(state)
    handle.close()
    assert not files.is_locked(state)


def test_digest_tells_content_apart(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert files.file_digest(a) == files.file_digest(b)
    b.write_bytes(b"diff")
    assert files.file_digest(a) != files.file_digest(b)
