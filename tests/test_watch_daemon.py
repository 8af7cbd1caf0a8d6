"""The daemon's logic with a fake processor in real worker processes, on real folders in tmp_path.

The fake copies the input's bytes (upper-cased, so an output is told from its input) and reacts to
markers in the content: BAD fails, HANG never returns (time limit), FLAKY:<counter file> fails with a
full disk until its second call, CRASH kills its own worker. Processing is the CLI tests' business.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_watch_fakes import broken_factory, fake_factory

from photosr.errors import UsageError
from photosr.watch import Daemon, Ledger, WatchConfig, read_status
from photosr.watch.files import TEMP_MARK
from photosr.watch.status import LEDGER_NAME
from photosr.watch.workers import WorkerStartError


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def dirs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    return src, out


def config(src: Path, out: Path, **changes) -> WatchConfig:
    settings = {"settle": 0.2, "timeout": 20.0, "grace": 5.0, "rescan": 0, **changes}
    return WatchConfig(src, out, **settings)


@contextmanager
def running(cfg: WatchConfig, factory=fake_factory) -> Iterator[Daemon]:
    daemon = Daemon(cfg, factory)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            daemon.run()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_for(lambda: daemon.ready.is_set() or bool(errors), 30, "daemon start")
    if errors:
        raise errors[0]
    try:
        yield daemon
    finally:
        daemon.request_stop()
        thread.join(30)
        assert not thread.is_alive(), "daemon did not stop"
    if errors:
        raise errors[0]


def ledger_row(cfg: WatchConfig, rel: str):
    with Ledger(cfg.state / LEDGER_NAME) as led:
        return led.get(rel)


def no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if TEMP_MARK in p.name or p.name.endswith(".photosr-tmp")]


def test_present_dropped_nested_non_ascii_and_temp_names(dirs):
    src, out = dirs
    (src / "before.png").write_bytes(b"before")
    cfg = config(src, out)
    with running(cfg):
        wait_for(lambda: (out / "before.png").exists(), what="file present before start")
        (src / "été" / "深い").mkdir(parents=True)
        (src / "été" / "深い" / "фото 1.jpg").write_bytes(b"nested")
        (src / "dropped.png").write_bytes(b"dropped")
        (src / "a.jpg.part").write_bytes(b"partial")
        (src / ".~lock.b.jpg#").write_bytes(b"lock")
        (src / "c.jpg~").write_bytes(b"backup")
        wait_for(lambda: (out / "dropped.png").exists() and (out / "été/深い/фото 1.jpg").exists())
        time.sleep(0.3)  # well past the settle time: the temp names are still not taken
        assert not list(out.glob("*.jpg*"))
        (src / "a.jpg.part").rename(src / "a.jpg")
        wait_for(lambda: (out / "a.jpg").exists(), what="renamed file")
    assert (out / "before.png").read_bytes() == b"BEFORE"
    assert (out / "été" / "深い" / "фото 1.jpg").read_bytes() == b"NESTED"
    assert ledger_row(cfg, "été/深い/фото 1.jpg").state == "done"
    assert (src / "before.png").read_bytes() == b"before"  # originals untouched
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.jpg",
        "before.png",
        "dropped.png",
        "été",
    ]
    assert no_temps(out)


def test_slowly_written_file_is_taken_whole(dirs):
    src, out = dirs
    cfg = config(src, out, settle=0.5)
    with running(cfg):
        with (src / "slow.png").open("wb") as handle:
            for _ in range(8):  # 8 chunks, 0.15 s apart: never quiet for the settle time
                handle.write(b"chunk")
                handle.flush()
                time.sleep(0.15)
        wait_for(lambda: (out / "slow.png").exists(), what="slow file")
    assert (out / "slow.png").read_bytes() == b"CHUNK" * 8
    assert ledger_row(cfg, "slow.png").attempts == 1


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


def test_transient_error_is_retried_with_backoff(dirs, tmp_path):
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
    cfg = config(src, out, timeout=1.0)
    with running(cfg):
        (src / "hang.png").write_bytes(b"HANG")
        wait_for(
            lambda: ledger_row(cfg, "hang.png") is not None and ledger_row(cfg, "hang.png").state == "failed"
        )
        (src / "after.png").write_bytes(b"after")
        wait_for(lambda: (out / "after.png").exists(), what="file after the runaway")
    assert "longer than 1 s" in ledger_row(cfg, "hang.png").error


def test_crashing_worker_fails_only_its_file(dirs):
    src, out = dirs
    cfg = config(src, out)
    with running(cfg):
        (src / "crash.png").write_bytes(b"CRASH")
        wait_for(lambda: getattr(ledger_row(cfg, "crash.png"), "state", None) == "failed")
        (src / "ok.png").write_bytes(b"ok")
        wait_for(lambda: (out / "ok.png").exists())
    assert "worker process died (exit code 3)" in ledger_row(cfg, "crash.png").error


def test_processed_dir_gets_originals_after_output(dirs, tmp_path):
    src, out = dirs
    processed = tmp_path / "done"
    cfg = config(src, out, processed_dir=processed)
    with running(cfg):
        (src / "a").mkdir()
        (src / "a" / "x.png").write_bytes(b"x")
        wait_for(lambda: (processed / "a" / "x.png").exists())
        assert (out / "a" / "x.png").read_bytes() == b"X"
        assert not (src / "a" / "x.png").exists()
        # The same name again with new content: processed again, the old original kept beside it.
        (src / "a" / "x.png").write_bytes(b"x2")
        wait_for(lambda: (processed / "a" / "x.1.png").exists())
    assert (out / "a" / "x.png").read_bytes() == b"X2"
    assert (processed / "a" / "x.png").read_bytes() == b"x"


def test_changed_file_is_redone_touched_file_is_not(dirs):
    src, out = dirs
    cfg = config(src, out)
    photo = src / "p.png"
    photo.write_bytes(b"one")
    with running(cfg):
        wait_for(lambda: (out / "p.png").exists())
        first_hash = ledger_row(cfg, "p.png").hash
        photo.write_bytes(b"two")
        wait_for(lambda: (out / "p.png").read_bytes() == b"TWO", what="redo of changed file")
        assert ledger_row(cfg, "p.png").hash != first_hash
        mtime = time.time_ns() + 5_000_000_000
        os.utime(photo, ns=(mtime, mtime))
        wait_for(lambda: ledger_row(cfg, "p.png").mtime_ns == mtime, what="touch recorded")
    assert ledger_row(cfg, "p.png").attempts == 1  # the touch did not trigger processing


def test_restart_does_not_redo_and_status_reports(dirs):
    src, out = dirs
    cfg = config(src, out)
    for i in range(3):
        (src / f"{i}.png").write_bytes(b"x")
    (src / "bad.png").write_bytes(b"BAD")
    with running(cfg):
        wait_for(lambda: len(list(out.glob("*.png"))) == 3 and ledger_row(cfg, "bad.png") is not None)
        wait_for(lambda: ledger_row(cfg, "bad.png").state == "failed")
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    with running(cfg):
        time.sleep(0.6)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    status = read_status(cfg.state)
    assert status["running"] is False
    assert status["counts"] == {"pending": 0, "processing": 0, "done": 3, "failed": 1}
    assert "not an image" in status["last_errors"][0]["error"]
    snapshot = json.loads((cfg.state / "status.json").read_text())
    assert snapshot["counts"]["done"] == 3 and snapshot["running"] is False


def test_interrupted_row_is_redone_or_recognised(dirs):
    src, out = dirs
    cfg = config(src, out)
    (src / "redo.png").write_bytes(b"redo")
    (src / "kept.png").write_bytes(b"kept")
    cfg.state.mkdir(parents=True)
    out.mkdir(exist_ok=True)
    (out / f"{TEMP_MARK}redo.png").write_bytes(b"half")  # what a SIGKILL mid-write leaves
    with Ledger(cfg.state / LEDGER_NAME) as led:
        for name in ("redo.png", "kept.png"):
            st = (src / name).stat()
            led.set_pending(name, st.st_size, st.st_mtime_ns, None)
            led.set_processing(name, name)
    (out / "kept.png").write_bytes(b"KEPT-BY-KILLED-RUN")  # renamed into place just before the kill
    with running(cfg):
        wait_for(lambda: (out / "redo.png").exists())
    assert (out / "redo.png").read_bytes() == b"REDO"
    assert (out / "kept.png").read_bytes() == b"KEPT-BY-KILLED-RUN"
    assert ledger_row(cfg, "kept.png").state == "done"
    assert no_temps(out)


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


def test_output_inside_input_is_not_watched(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cfg = config(src, src / "out")
    (src / "a.png").write_bytes(b"a")
    with running(cfg):
        wait_for(lambda: (src / "out" / "a.png").exists())
        time.sleep(0.6)
    with Ledger(cfg.state / LEDGER_NAME) as led:
        assert led.counts()["done"] == 1


def test_second_daemon_on_same_state_is_refused(dirs):
    src, out = dirs
    cfg = config(src, out)
    with running(cfg), pytest.raises(UsageError, match="already running"):
        Daemon(cfg, fake_factory).run()


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
    thread = threading.Thread(target=lambda: _capture(daemon.run, errors), daemon=True)
    thread.start()
    wait_for(daemon.ready.is_set, 30, "daemon start")
    src.rmdir()
    thread.join(20)
    assert not thread.is_alive()
    assert len(errors) == 1 and "observer stopped" in str(errors[0])


def _capture(function: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        function()
    except BaseException as err:
        errors.append(err)


def test_workers_are_recycled_after_n_files(dirs):
    src, out = dirs
    cfg = config(src, out, recycle_after=2)
    for i in range(5):
        (src / f"{i}.png").write_bytes(b"PID")
    with running(cfg):
        wait_for(lambda: len(list(out.glob("*.png"))) == 5)
    pids = [int((out / f"{i}.png").read_text()) for i in range(5)]
    assert len(set(pids)) == 3  # 2 + 2 + 1 files, each pair in a fresh process


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


def test_second_stop_request_abandons_at_once(dirs):
    src, out = dirs
    (src / "hang.png").write_bytes(b"HANG")
    daemon = Daemon(config(src, out, grace=60), fake_factory)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(daemon.run, errors), daemon=True)
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
