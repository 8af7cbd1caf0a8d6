"""The daemon when things go wrong: bad files, transient errors, runaways, crashing workers, stops,
outputs claimed twice, a watched folder that disappears. Fake processor: see test_watch_fakes.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from test_watch_fakes import broken_factory, fake_factory
from test_watch_helpers import capture, config, dirs, ledger_row, no_temps, running, wait_for

from photosr.errors import UsageError
from photosr.watch import Daemon
from photosr.watch import daemon as daemon_module
from photosr.watch.workers import WorkerStartError

__all__ = ["dirs"]  # the fixture, imported for pytest to find


def test_bad_file_is_recorded_copied_and_daemon_goes_on(dirs, tmp_path):
    src, out = dirs
    failed = tmp_path / "failed"
    cfg = config(src, out, failed_dir=failed)
    with running(cfg):
        (src / "sub").mkdir()
        (src / "sub" / "bad.jpg").write_bytes(b"BAD bytes")
        (src / "good.jpg").write_bytes(b"good")
        wait_for(lambda: (out / "good.jpg").exists() and (failed / "sub" / "bad.jpg.error.txt").exists())
    assert not (out / "sub" / "bad.jpg").exists()
    assert (failed / "sub" / "bad.jpg").read_bytes() == b"BAD bytes"
    assert "not an image" in (failed / "sub" / "bad.jpg.error.txt").read_text()
    assert (src / "sub" / "bad.jpg").exists()
    row = ledger_row(cfg, "sub/bad.jpg")
    assert row.state == "failed" and "not an image" in row.error


def test_transient_error_is_retried_with_backoff(dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(daemon_module, "_BACKOFF_START", 0.2)  # the backoff logic, not its seconds
    src, out = dirs
    counter = tmp_path / "calls"
    cfg = config(src, out)
    with running(cfg):
        (src / "flaky.png").write_bytes(f"FLAKY:{counter}".encode())
        wait_for(lambda: (out / "flaky.png").exists(), what="retried file")
    assert counter.read_text() == "2"
    assert ledger_row(cfg, "flaky.png").attempts == 2


def test_time_limit_kills_a_runaway_and_the_next_file_still_runs(dirs):
    src, out = dirs
    cfg = config(src, out, timeout=0.5)
    with running(cfg):
        (src / "hang.png").write_bytes(b"HANG")
        wait_for(
            lambda: ledger_row(cfg, "hang.png") is not None and ledger_row(cfg, "hang.png").state == "failed"
        )
        (src / "after.png").write_bytes(b"after")
        wait_for(lambda: (out / "after.png").exists(), what="file after the runaway")
    assert "longer than 0.5 s" in ledger_row(cfg, "hang.png").error


def test_crashing_worker_fails_only_its_file(dirs):
    src, out = dirs
    cfg = config(src, out)
    with running(cfg):
        (src / "crash.png").write_bytes(b"CRASH")
        wait_for(lambda: getattr(ledger_row(cfg, "crash.png"), "state", None) == "failed")
        (src / "ok.png").write_bytes(b"ok")
        wait_for(lambda: (out / "ok.png").exists())
    assert "worker process died (exit code 3)" in ledger_row(cfg, "crash.png").error


def test_worker_start_failure_is_reported_before_anything_runs(dirs):
    src, out = dirs
    (src / "a.png").write_bytes(b"a")
    with pytest.raises(WorkerStartError, match="no plugin for task"):
        Daemon(config(src, out), broken_factory).run()
    assert not (out / "a.png").exists()


def test_stop_abandons_a_long_file_cleanly_within_grace(dirs):
    src, out = dirs
    cfg = config(src, out, grace=0.5)
    (src / "hang.png").write_bytes(b"HANG")
    started = None
    with running(cfg):
        wait_for(lambda: getattr(ledger_row(cfg, "hang.png"), "state", None) == "processing")
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert ledger_row(cfg, "hang.png").state == "pending"
    assert no_temps(out)


def test_removed_watch_folder_stops_the_daemon_with_an_error(dirs):
    src, out = dirs
    daemon = Daemon(config(src, out), fake_factory)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: capture(daemon.run, errors), daemon=True)
    thread.start()
    wait_for(daemon.ready.is_set, 30, "daemon start")
    src.rmdir()
    thread.join(20)
    assert not thread.is_alive()
    assert len(errors) == 1 and "observer stopped" in str(errors[0])


def test_second_stop_request_abandons_at_once(dirs):
    src, out = dirs
    (src / "hang.png").write_bytes(b"HANG")
    daemon = Daemon(config(src, out, grace=60), fake_factory)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: capture(daemon.run, errors), daemon=True)
    thread.start()
    wait_for(daemon.ready.is_set, 30, "daemon start")
    wait_for(lambda: getattr(ledger_row(daemon.config, "hang.png"), "state", None) == "processing")
    daemon.request_stop()
    time.sleep(0.3)
    assert thread.is_alive()  # first request: the file gets its grace period
    started = time.monotonic()
    daemon.request_stop(now=True)  # second Ctrl-C
    thread.join(10)
    assert not thread.is_alive() and not errors
    assert time.monotonic() - started < 5
    assert ledger_row(daemon.config, "hang.png").state == "pending"


def test_two_inputs_cannot_claim_one_output(dirs):
    src, out = dirs
    cfg = config(src, out, format="png")
    (src / "a.png").write_bytes(b"png")
    with running(cfg):
        wait_for(lambda: (out / "a.png").exists())
        (src / "a.jpg").write_bytes(b"jpg")
        wait_for(lambda: getattr(ledger_row(cfg, "a.jpg"), "state", None) == "failed")
    assert "already the output of" in ledger_row(cfg, "a.jpg").error
    assert (out / "a.png").read_bytes() == b"PNG"


def test_two_workers_racing_for_one_output_produce_one(dirs):
    src, out = dirs
    cfg = config(src, out, format="png", workers=2)
    for name in ("a.jpg", "a.png", "a.webp"):
        (src / name).write_bytes(name.encode())
    with running(cfg):
        wait_for(
            lambda: all(
                getattr(ledger_row(cfg, n), "state", "") in ("done", "failed")
                for n in ("a.jpg", "a.png", "a.webp")
            )
        )
    states = sorted(ledger_row(cfg, n).state for n in ("a.jpg", "a.png", "a.webp"))
    assert states == ["done", "failed", "failed"]
    winner = next(n for n in ("a.jpg", "a.png", "a.webp") if ledger_row(cfg, n).state == "done")
    assert (out / "a.png").read_bytes() == winner.upper().encode()


def test_second_daemon_on_same_state_is_refused(dirs):
    src, out = dirs
    cfg = config(src, out)
    with running(cfg), pytest.raises(UsageError, match="already running"):
        Daemon(cfg, fake_factory).run()
