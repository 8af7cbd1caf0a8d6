"""Fake processors for the daemon tests, in a module of their own so that worker processes, which
import it to unpickle the factory, do not pay for importing pytest and the test module.

The fake copies the input's bytes (upper-cased, so an output is told from its input) and reacts to
markers in the content: BAD fails, HANG never returns (time limit), FLAKY:<counter file> fails with a
full disk until its second call, CRASH kills its own worker, PID writes the worker's pid.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photosr.errors import UsageError


@dataclass(frozen=True)
class FakeResult:
    input: Path
    output: Path | None
    status: str
    error: str | None = None
    seconds: float = 0.0


def _fake_process(src: Path, dst: Path) -> FakeResult:
    data = src.read_bytes()
    if data.startswith(b"BAD"):
        return FakeResult(src, dst, "failed", f"{src}: not an image")
    if data.startswith(b"HANG"):
        time.sleep(3600)
    if data.startswith(b"PID"):  # which worker process did this one
        dst.write_bytes(str(os.getpid()).encode())
        return FakeResult(src, dst, "ok")
    if data.startswith(b"CRASH"):
        os._exit(3)
    if data.startswith(b"FLAKY:"):
        counter = Path(data[6:].decode().strip())
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        if calls < 2:
            return FakeResult(src, dst, "failed", f"{src}: [Errno 28] No space left on device")
    dst.write_bytes(data.upper())
    return FakeResult(src, dst, "ok")


def fake_factory() -> Callable[[Path, Path], FakeResult]:
    return _fake_process


def broken_factory() -> Callable[[Path, Path], FakeResult]:
    raise UsageError("no plugin for task 'upscale'")
