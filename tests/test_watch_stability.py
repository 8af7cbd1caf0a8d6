"""When a file counts as complete, and which names are never taken."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from photosr.watch.stability import CLOSED_SETTLE, StabilityTracker, is_candidate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "rel",
    ["a.jpg", "sub/dir/IMG_0001.JPG", "été/photo ü.png", "x.tiff", "deep/a/b/c.webp"],
)
def test_photos_are_candidates(rel):
    assert is_candidate(PurePosixPath(rel))


@pytest.mark.parametrize(
    "rel",
    [
        "a.jpg.part",
        "a.jpg.crdownload",
        "a.tmp",
        "a.jpg~",
        ".~lock.a.jpg#",
        ".hidden.jpg",
        "._a.jpg",
        "notes.txt",
        "Thumbs.db",
        ".sync/a.jpg",
        "@eaDir/a.jpg/SYNOPHOTO_THUMB_M.jpg",
        "a.jpg.photosr-tmp",
    ],
)
def test_temp_and_junk_names_are_not(rel):
    assert not is_candidate(PurePosixPath(rel))


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_promoted_only_after_settle_unchanged(tmp_path):
    clock, photo = Clock(), tmp_path / "a.jpg"
    _write(photo, b"abc", 1_000)
    tracker = StabilityTracker(2.0, clock=clock)
    tracker.touch("a.jpg", photo)
    assert tracker.ready() == []  # first look records size/mtime
    clock.now += 1.9
    assert tracker.ready() == []
    clock.now += 0.2
    [stable] = tracker.ready()
    assert (stable.rel, stable.size, stable.mtime_ns) == ("a.jpg", 3, 1_000)
    assert "a.jpg" not in tracker and tracker.ready() == []


def test_growing_file_restarts_the_clock(tmp_path):
    clock, photo = Clock(), tmp_path / "slow.jpg"
    _write(photo, b"a", 1_000)
    tracker = StabilityTracker(1.0, clock=clock)
    tracker.touch("slow.jpg", photo)
    tracker.ready()
    for step in range(5):  # a slow writer: one more byte every 0.8 s, never 1 s quiet
        clock.now += 0.8
        _write(photo, b"a" * (step + 2), 2_000 + step)
        assert tracker.ready() == []
    clock.now += 1.0
    [stable] = tracker.ready()
    assert stable.size == 6


def test_close_write_shortens_the_settle_time(tmp_path):
    clock, photo = Clock(), tmp_path / "c.jpg"
    _write(photo, b"done", 1_000)
    tracker = StabilityTracker(60.0, clock=clock)
    tracker.touch("c.jpg", photo)
    tracker.closed("c.jpg", photo)
    assert tracker.ready() == []  # measured once
    clock.now += CLOSED_SETTLE / 2
    assert tracker.ready() == []
    clock.now += CLOSED_SETTLE / 2
    assert [s.rel for s in tracker.ready()] == ["c.jpg"]


def test_close_write_never_lengthens_a_short_settle(tmp_path):
    clock, photo = Clock(), tmp_path / "c.jpg"
    _write(photo, b"done", 1_000)
    tracker = StabilityTracker(0.05, clock=clock)
    tracker.closed("c.jpg", photo)
    tracker.ready()
    clock.now += 0.06
    assert [s.rel for s in tracker.ready()] == ["c.jpg"]


def test_write_after_close_clears_the_shortcut(tmp_path):
    clock, photo = Clock(), tmp_path / "c.jpg"
    _write(photo, b"part", 1_000)
    tracker = StabilityTracker(60.0, clock=clock)
    tracker.closed("c.jpg", photo)
    tracker.ready()
    tracker.touch("c.jpg", photo)  # modified again: the close no longer describes the file
    tracker.ready()
    clock.now += 1.0
    assert tracker.ready() == []


def test_vanished_candidate_is_dropped(tmp_path):
    clock, photo = Clock(), tmp_path / "gone.jpg"
    _write(photo, b"x", 1)
    tracker = StabilityTracker(0.0, clock=clock)
    tracker.touch("gone.jpg", photo)
    photo.unlink()
    assert tracker.ready() == [] and len(tracker) == 0


def test_delay_holds_back_and_attempts_are_carried(tmp_path):
    clock, photo = Clock(), tmp_path / "r.jpg"
    _write(photo, b"x", 1)
    tracker = StabilityTracker(0.0, clock=clock)
    tracker.touch("r.jpg", photo, delay=5.0, attempts=2)
    assert tracker.ready() == []
    clock.now += 5.0
    tracker.ready()
    clock.now += 0.01
    [stable] = tracker.ready()
    assert stable.attempts == 2


def test_limit_caps_promotions(tmp_path):
    clock = Clock()
    tracker = StabilityTracker(0.0, clock=clock)
    for i in range(5):
        _write(tmp_path / f"{i}.jpg", b"x", 1)
        tracker.touch(f"{i}.jpg", tmp_path / f"{i}.jpg")
    tracker.ready()
    clock.now += 0.1
    assert len(tracker.ready(limit=2)) == 2
    assert len(tracker) == 3
