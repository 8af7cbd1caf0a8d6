"""`photosr watch` as a real daemon process on real folders, with real (tiny) photos.

`--task normalize` needs no model, so these tests exercise the whole chain: observer, stability,
ledger, worker processes running the real pipeline, signals. One test runs a tiny ONNX plugin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from onnx_models import write_plugin
from PIL import Image

from photosr.watch import Ledger
from photosr.watch.files import TEMP_MARK

STATE = ".photosr-watch"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def photo(path: Path, seed: int = 0, size: tuple[int, int] = (12, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (seed * 37 % 256, seed * 91 % 256, 128)
    Image.new("RGB", size, colour).save(path)
    return path


def outputs(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and STATE not in p.parts
    )


def decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except OSError:
        return False


def temps(*folders: Path) -> list[Path]:
    return [
        p for f in folders for p in f.rglob("*") if TEMP_MARK in p.name or p.name.endswith(".photosr-tmp")
    ]


@pytest.fixture
def env(tmp_path):
    # Keep the per-user pointer file (for `--status IN`) inside the test's folder.
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except OSError:
        return False


def start(env: dict, *args: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "photosr", "watch", *args]
    handle = log.open("ab")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    process.send_signal(sig)
    return process.wait(timeout=20)


def photosr(env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "photosr", "watch", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


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
    wait_for(lambda: not any(_alive(pid) for pid in worker_pids), timeout=5, what="orphan workers to die")
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


def test_config_file_supplies_options_and_rejects_unknown_keys(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    photo(src / "a.png")
    config = tmp_path / "watch.toml"
    config.write_text(
        f'input = "{src.as_posix()}"\noutput = "{out.as_posix()}"\ntask = "normalize"\n'
        'format = "jpeg"\nsuffix = "_n"\nsettle = 0.2\n',
        encoding="utf-8",
    )
    daemon = start(env, "--config", str(config), log=tmp_path / "log.txt")
    try:
        wait_for(lambda: "a_n.jpg" in outputs(out), what="output named by the config")
        assert stop(daemon, signal.SIGINT) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    with Image.open(out / "a_n.jpg") as image:
        assert image.format == "JPEG"
    config.write_text('output = "x"\nstatus = true\n', encoding="utf-8")
    result = photosr(env, str(src), "--config", str(config))
    assert result.returncode == 2 and "unknown key(s) status" in result.stderr
    config.write_text('output = "x"\nsettel = 1\n', encoding="utf-8")
    result = photosr(env, str(src), "--config", str(config))
    assert result.returncode == 2 and "settel" in result.stderr and "watch.toml" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "upscale", "--plugin", "no-such-plugin"], "no-such-plugin"),
        (["--task", "sharpen"], "unknown task"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_usage_errors_exit_2_before_watching(tmp_path, env, args, message):
    (tmp_path / "in").mkdir()
    result = photosr(env, str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_tiny_onnx_plugin_through_the_daemon(tmp_path, env):
    plugins = tmp_path / "plugins"
    write_plugin(plugins / "tiny-up2", task="upscale", scale=2)
    env = {**env, "PHOTOSR_PLUGIN_PATH": str(plugins)}
    src, out = tmp_path / "in", tmp_path / "out"
    photo(src / "small.png", 7, size=(10, 6))
    daemon = start(env, str(src), "-o", str(out), "--task", "upscale", "--plugin", "tiny-up2", "--settle", "0.2",
                   log=tmp_path / "log.txt")  # fmt: skip
    try:
        wait_for(lambda: "small.png" in outputs(out), what="upscaled output")
        assert stop(daemon) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    with Image.open(out / "small.png") as image:
        assert image.size == (20, 12)
    assert "steps=upscale:tiny-up2@1.0.0" in (tmp_path / "log.txt").read_text()  # which model made it


def test_polling_observer_for_network_shares(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    args = [str(src), "-o", str(out), "--task", "normalize", "--settle", "0.2", "--poll", "0.2"]
    daemon = start(env, *args, log=tmp_path / "log.txt")
    try:
        wait_for(lambda: (out / STATE / "status.json").exists(), what="daemon up")
        photo(src / "share" / "p.jpg", 3)
        wait_for(lambda: "share/p.jpg" in outputs(out), what="output found by polling")
        assert stop(daemon) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert decodes(out / "share" / "p.jpg")


def test_ctrl_c_to_the_whole_process_group_lets_the_current_file_finish(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    command = [sys.executable, "-m", "photosr", "watch", str(src), "-o", str(out), "--task", "normalize",
               "--settle", "0.1", "--format", "png"]  # fmt: skip
    with (tmp_path / "log.txt").open("ab") as log:
        # Its own process group, as a terminal gives it: Ctrl-C reaches the daemon and its workers alike.
        daemon = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: (out / STATE / "ledger.sqlite").exists(), what="daemon up")
        big = tmp_path / "big.png"
        Image.effect_noise((2400, 1600), 64).convert("RGB").save(big)  # a second or so to normalize
        big.rename(src / "big.png")
        with Ledger(out / STATE / "ledger.sqlite") as ledger:
            wait_for(lambda: getattr(ledger.get("big.png"), "state", None) == "processing", what="processing")
            os.killpg(daemon.pid, signal.SIGINT)
            assert daemon.wait(timeout=20) == 0
            row = ledger.get("big.png")
        assert row.state == "done", row.error
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert decodes(out / "big.png") and temps(out) == []
