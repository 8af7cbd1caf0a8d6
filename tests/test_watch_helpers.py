"""Parent-side helpers for the daemon tests: a daemon run in a thread, waiting with a deadline, ledger rows.

(Worker-side fakes live in test_watch_fakes.py, which the worker processes import.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_watch_fakes import fake_factory

from photosr.watch import Daemon, Ledger, WatchConfig
from photosr.watch.files import TEMP_MARK
from photosr.watch.status import LEDGER_NAME


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


def capture(function: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        function()
    except BaseException as err:
        errors.append(err)
