"""The daemon's logic with a fake processor in real worker processes, on real folders in tmp_path:
what gets taken, when, and what the ledger makes of restarts. Failures are in test_watch_failures.py.
"""

from __future__ import annotations

import json
import logging
import os
import time

from test_watch_helpers import config, dirs, ledger_row, no_temps, running, wait_for

from photosr.watch import Ledger, read_status
from photosr.watch.files import TEMP_MARK
from photosr.watch.status import LEDGER_NAME

__all__ = ["dirs"]  # the fixture, imported for pytest to find


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


def test_slowly_written_file_is_taken_whole(dirs, caplog):
    caplog.set_level(logging.INFO, logger="photosr.watch")
    src, out = dirs
    cfg = config(src, out, settle=0.5)
    with running(cfg):
        with (src / "slow.png").open("wb") as handle:
            for _ in range(8):  # 8 chunks, 0.15 s apart: never quiet for the settle time
                handle.write(b"chunk")
                handle.flush()
                time.sleep(0.15)
        wait_for(lambda: (out / "slow.png").exists(), what="slow file")
        time.sleep(0.3)  # a second (wrong) run would show up in the log by now
    assert (out / "slow.png").read_bytes() == b"CHUNK" * 8
    runs = [r for r in caplog.records if getattr(r, "fields", {}).get("input") == "slow.png"]
    assert [r.fields["status"] for r in runs] == ["ok"]  # taken once, when whole


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
        time.sleep(0.6)  # three settle times: long enough to redo something, were it taken again
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


def test_output_inside_input_is_not_watched(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cfg = config(src, src / "out")
    (src / "a.png").write_bytes(b"a")
    with running(cfg):
        wait_for(lambda: (src / "out" / "a.png").exists())
        time.sleep(0.3)
    with Ledger(cfg.state / LEDGER_NAME) as led:
        assert led.counts()["done"] == 1


def test_workers_are_recycled_after_n_files(dirs):
    src, out = dirs
    cfg = config(src, out, recycle_after=2)
    for i in range(5):
        (src / f"{i}.png").write_bytes(b"PID")
    with running(cfg):
        wait_for(lambda: len(list(out.glob("*.png"))) == 5)
    pids = [int((out / f"{i}.png").read_text()) for i in range(5)]
    assert len(set(pids)) == 3  # 2 + 2 + 1 files, each pair in a fresh process
