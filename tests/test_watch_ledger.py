"""The watch ledger: durable states, identity of content, recovery of interrupted rows, status queries."""

from __future__ import annotations

import sqlite3

import pytest

from photosr.errors import PhotosrError
from photosr.watch.ledger import Ledger


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def test_wal_mode_and_reopen_keeps_rows(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        assert led.journal_mode() == "wal"
        led.set_pending("a/b.jpg", 10, 123, "h1")
        led.set_processing("a/b.jpg", "a/b.jpg")
        led.set_done("a/b.jpg", "a/b.jpg", 0.5)
    with Ledger(path) as led:
        row = led.get("a/b.jpg")
    assert (row.state, row.output, row.size, row.mtime_ns, row.hash, row.attempts) == (
        "done",
        "a/b.jpg",
        10,
        123,
        "h1",
        1,
    )
    assert row.same_stat(10, 123) and not row.same_stat(10, 124)


def test_committed_state_survives_a_connection_that_is_never_closed(tmp_path):
    # A SIGKILLed daemon never closes its connection; each change must already be committed.
    path = tmp_path / "ledger.sqlite"
    led = Ledger(path)
    led.set_pending("x.png", 1, 2, None)
    led.set_processing("x.png", "x.png")
    other = sqlite3.connect(str(path))
    assert other.execute("SELECT state FROM files WHERE rel = 'x.png'").fetchone() == ("processing",)
    other.close()
    led.close()


def test_new_content_resets_outcome(ledger):
    ledger.set_pending("p.jpg", 1, 1, "old")
    ledger.set_processing("p.jpg", "p.jpg")
    ledger.set_failed("p.jpg", "p.jpg: broken", 0.1)
    ledger.set_pending("p.jpg", 2, 2, "new")
    row = ledger.get("p.jpg")
    assert (row.state, row.error, row.hash, row.attempts) == ("pending", None, "new", 0)


def test_reset_interrupted_returns_rows_and_makes_them_pending(ledger):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        ledger.set_pending(name, 1, 1, None)
    ledger.set_processing("a.jpg", "a.jpg")
    ledger.set_processing("b.jpg", "b.jpg")
    ledger.set_done("b.jpg", "b.jpg", 1.0)
    interrupted = ledger.reset_interrupted()
    assert [row.rel for row in interrupted] == ["a.jpg"]
    assert interrupted[0].state == "processing"
    assert ledger.counts() == {"pending": 2, "processing": 0, "done": 1, "failed": 0}


def test_owner_of_output_only_counts_claimed_rows(ledger):
    ledger.set_pending("a.jpg", 1, 1, None)
    assert ledger.owner_of("a.png") is None
    ledger.set_processing("a.jpg", "a.png")
    assert ledger.owner_of("a.png") == "a.jpg"
    ledger.set_failed("a.jpg", "bad")
    assert ledger.owner_of("a.png") is None


def test_last_errors_newest_first_and_retry_keeps_attempts(ledger):
    ledger.set_pending("one.jpg", 1, 1, None)
    ledger.set_failed("one.jpg", "one.jpg: first")
    ledger.set_pending("two.jpg", 1, 1, None, attempts=2)
    ledger.set_retry("two.jpg", "two.jpg: [Errno 28] No space left on device")
    errors = ledger.last_errors(5)
    assert [e.rel for e in errors] == ["two.jpg", "one.jpg"]
    assert errors[0].state == "pending" and errors[0].attempts == 2


def test_in_state_and_delete(ledger):
    ledger.set_pending("b.jpg", 1, 1, None)
    ledger.set_pending("a.jpg", 1, 1, None)
    assert [e.rel for e in ledger.in_state("pending")] == ["a.jpg", "b.jpg"]
    ledger.delete("a.jpg")
    assert ledger.get("a.jpg") is None


def test_missing_ledger_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(PhotosrError, match="ledger.sqlite: no watch ledger"):
        Ledger(tmp_path / "ledger.sqlite", create=False)


def test_unreadable_ledger_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "ledger.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(PhotosrError, match="ledger.sqlite"):
        Ledger(bad)
