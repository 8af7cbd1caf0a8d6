"""Parent-side helpers for the daemon tests: a daemon in a thread or as a `photosr watch` process,
waiting with a deadline, tiny photos, ledger rows.

(Worker-side fakes live in test_watch_fakes.py, which the worker processes import.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from test_watch_fakes import fake_factory

from photosr.watch import Daemon, Ledger, WatchConfig
from photosr.watch.files import TEMP_MARK
from photosr.watch.status import LEDGER_NAME


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
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


def capture(function: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        function()
    except BaseException as err:
        errors.append(err)


# --- the daemon as a real `photosr watch` process -------------------------------------------------

STATE = ".photosr-watch"


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


def alive(pid: int) -> bool:
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
