"""`photosr watch` as a real daemon process on real folders, with real (tiny) photos: the end-to-end run
(files before start, dropped, slow, nested, non-ASCII, bad, temp names; SIGTERM; --status) and a SIGKILL in
the middle of a batch. `--task normalize` needs no model, so the whole chain runs: observer, stability,
ledger, worker processes running the real pipeline, signals. Options and the rest: test_watch_cli_options.py.
"""

from __future__ import annotations

import json
import signal
import time

from PIL import Image
from test_watch_helpers import (
    STATE,
    alive,
    decodes,
    env,
    outputs,
    photo,
    photosr,
    start,
    stop,
    temps,
    wait_for,
)

from photosr.watch import Ledger

__all__ = ["env"]  # the fixture, imported for pytest to find


def test_daemon_end_to_end_then_sigterm_and_status(tmp_path, env):
    src, out, failed = tmp_path / "in", tmp_path / "out", tmp_path / "failed"
    photo(src / "before.png", 1)
    photo(src / "old" / "album" / "before.jpg", 2)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    log = tmp_path / "log.txt"
    daemon = start(env, str(src), "-o", str(out), "--task", "normalize", "--settle", "0.3",
                   "--failed-dir", str(failed), "--log-json", log=log)  # fmt: skip
    try:
        wait_for(
            lambda: {"before.png", "old/album/before.jpg"} <= set(outputs(out)), what="files present at start"
        )
        photo(src / "dropped.png", 3)
        photo(src / "новые" / "写真 é.png", 4)  # a new nested folder with non-ASCII names
        (src / "half.png.part").write_bytes(b"partial")  # a download in progress
        (src / ".~lock.doc#").write_bytes(b"x")
        with (src / "slow.png").open("wb") as handle:  # written in pieces, slower than nothing
            data = tmp_path / "ref.png"
            photo(data, 5, size=(64, 64))
            blob = data.read_bytes()
            for i in range(0, len(blob), max(1, len(blob) // 6)):
                handle.write(blob[i : i + max(1, len(blob) // 6)])
                handle.flush()
                time.sleep(0.12)
        expected = {"before.png", "old/album/before.jpg", "dropped.png", "новые/写真 é.png", "slow.png"}
        wait_for(lambda: expected <= set(outputs(out)), what="dropped files")
        wait_for(lambda: (failed / "broken.jpg.error.txt").exists(), what="bad file report")
        assert not (out / "half.png").exists()
        (src / "half.png.part").unlink()
        photo(src / "half.png", 6)
        wait_for(lambda: "half.png" in outputs(out), what="renamed download")
        live = photosr(env, str(src), "--status")
        assert f"running (pid {daemon.pid})" in live.stdout, live.stdout + live.stderr
        started = time.monotonic()
        code = stop(daemon)
        assert code == 0 and time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert set(outputs(out)) == expected | {"half.png"}
    assert all(decodes(out / rel) for rel in outputs(out))
    with Image.open(out / "slow.png") as image:
        assert image.size == (64, 64)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    files = [line for line in lines if line["event"] == "file"]
    assert {line["input"] for line in files if line["status"] == "ok"} == expected | {"half.png"}
    assert [line["input"] for line in files if line["status"] == "failed"] == ["broken.jpg"]
    assert [line["status"] for line in files if line["input"] == "slow.png"] == ["ok"]  # taken once, whole
    assert all({"output", "seconds"} <= set(line) for line in files if line["status"] == "ok")
    assert lines[-1]["event"] == "stopped"
    status = photosr(env, str(src), "--status")  # found through the per-user pointer
    assert status.returncode == 0, status.stderr
    assert "not running" in status.stdout and "done 6" in status.stdout and "failed 1" in status.stdout
    assert "broken.jpg" in status.stdout
    as_json = json.loads(photosr(env, "--status", "-o", str(out), "--json").stdout)
    assert as_json["counts"]["done"] == 6 and as_json["running"] is False


def test_sigkill_mid_batch_then_restart_gives_exactly_one_output_each(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"batch/{i // 50}/p{i:03d}.png" for i in range(150)]
    for i, name in enumerate(names):
        photo(src / name, i, size=(96, 64))
    args = [str(src), "-o", str(out), "--task", "normalize", "--settle", "0.2", "--workers", "2"]
    daemon = start(env, *args, log=tmp_path / "log1.txt")
    try:
        wait_for(lambda: len(outputs(out)) >= 20, what="some outputs")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    done_before = len(outputs(out))
    # The workers die with the daemon (none left writing files behind the restarted one).
    started = next(line for line in (tmp_path / "log1.txt").read_text().splitlines() if " started " in line)
    worker_pids = [int(pid) for pid in started.split("workers=")[1].split()[0].split(",")]
    assert len(worker_pids) == 2
    wait_for(lambda: not any(alive(pid) for pid in worker_pids), timeout=5, what="orphan workers to die")
    assert done_before < len(names), "the batch finished before the kill; make it bigger"
    daemon = start(env, *args, log=tmp_path / "log2.txt")
    try:
        wait_for(lambda: len(outputs(out)) == len(names), timeout=60, what="all outputs after restart")
        with Ledger(out / STATE / "ledger.sqlite") as ledger:
            wait_for(lambda: ledger.counts()["done"] == len(names), what="ledger done")
        assert stop(daemon) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert outputs(out) == sorted(names)  # one output per input, nothing else
    assert all(decodes(out / name) for name in names)
    assert temps(out) == []
    # Files finished before the kill were not redone: the restart's log names only the others.
    redone = [line for line in (tmp_path / "log2.txt").read_text().splitlines() if "status=ok" in line]
    assert len(redone) <= len(names) - done_before + 2  # at most the files in flight at the kill again
