"""Worker processes that keep the pipeline warm and can be killed when a file runs away.

Each worker is a long-lived process (multiprocessing "spawn": safe next to the observer's threads) that
builds its processing function once - plugins loaded, ONNX sessions cached - then handles one file at a
time over a pipe. A per-file time limit is enforced from outside: a decode stuck in C code cannot be
interrupted from within, so the parent kills the process and starts a fresh one. Workers die with the
parent (PR_SET_PDEATHSIG on Linux, a parent check elsewhere) so a SIGKILLed daemon leaves no orphan
still writing files.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from photosr.errors import PhotosrError, TransientError

# Builds the processing function inside the worker: must be picklable (a module-level function, or a
# functools.partial of one with picklable arguments). The function takes (src, dst) and returns an
# object with `.status` ("ok"|"failed"|"skipped") and `.error`, like photosr.pipeline.FileResult.
ProcessorFactory = Callable[[], Callable[[Path, Path], Any]]

_START_TIMEOUT = 300.0  # seconds for a worker to build its pipeline (hash check and session of a big model)
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.ENOSPC, errno.EDQUOT, errno.ETXTBSY, errno.EINTR}
# Errors come back from the pipeline as text; "[Errno N]" is how an OSError prints.
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


@dataclass(frozen=True)
class Outcome:
    """How one file went. status: ok | skipped | failed | transient | timeout | crashed | abandoned."""

    status: str
    error: str | None = None
    seconds: float = 0.0
    output: str | None = None  # what the processor wrote (it may change the extension)


def is_transient_text(message: str) -> bool:
    """True for failures worth retrying: locked or busy files, a full disk.

    The pipeline reports errors as text: an OSError printed whole ("[Errno 28] ...") or just its
    strerror ("cannot write (No space left on device)"); both are recognised, in the worker's locale.
    """
    if any(int(code) in _TRANSIENT_ERRNOS for code in _ERRNO_IN_TEXT.findall(message)):
        return True
    return any(os.strerror(code) in message for code in _TRANSIENT_ERRNOS)


def run_processor(process: Callable[[Path, Path], Any], src: Path, dst: Path) -> Outcome:
    """Call the processing function and classify what happened; never raises."""
    start = time.perf_counter()
    try:
        result = process(src, dst)
    except TransientError as err:
        return Outcome("transient", str(err), time.perf_counter() - start)
    except OSError as err:
        status = "transient" if err.errno in _TRANSIENT_ERRNOS else "failed"
        return Outcome(status, f"{src}: {err}", time.perf_counter() - start)
    except PhotosrError as err:
        return Outcome("failed", str(err), time.perf_counter() - start)
    except Exception as err:  # a plugin bug must cost one file, not the daemon
        return Outcome("failed", f"{src}: {type(err).__name__}: {err}", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if result.status == "failed":
        error = result.error or f"{src}: failed"
        return Outcome("transient" if is_transient_text(error) else "failed", error, seconds)
    output = getattr(result, "output", None)
    return Outcome(result.status, None, seconds, None if output is None else str(output))


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch_parent() -> None:  # where prctl is missing: notice re-parenting within a second
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True, name="photosr-parent-check").start()


def _worker_main(conn: Connection, factory: ProcessorFactory) -> None:
    # The daemon decides when workers stop: Ctrl-C in a terminal and systemd's SIGTERM reach the whole
    # process group, and a worker dying mid-file on them would turn a clean stop into abandoned work.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # SIGHUP: the terminal closed
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _die_with_parent()
    try:
        process = factory()
    except Exception as err:
        message = str(err) if isinstance(err, PhotosrError) else f"{type(err).__name__}: {err}"
        conn.send(("init-failed", message))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(run_processor(process, Path(job[0]), Path(job[1])))


class WorkerStartError(PhotosrError):
    """A worker could not build its processing function (bad plugin, bad options)."""


class Worker:
    """The parent's handle on one worker process; `run` is called from one thread at a time."""

    def __init__(self, factory: ProcessorFactory, *, name: str = "photosr-worker", recycle_after: int = 0):
        self._factory = factory
        self._name = name
        # A process that has run for months accumulates what decoders and runtimes never give back;
        # a fresh one after `recycle_after` files (0 = never) costs one start-up, well under a second.
        self._recycle_after = recycle_after
        self._files = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start the process and wait until its pipeline is built; raises WorkerStartError if not."""
        parent_conn, child_conn = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_worker_main, args=(child_conn, self._factory), name=self._name, daemon=True
        )
        self._proc.start()
        self._files = 0
        child_conn.close()
        self._conn = parent_conn
        try:
            if not parent_conn.poll(_START_TIMEOUT):  # a factory stuck on a hung share or device
                raise OSError(f"no answer within {_START_TIMEOUT:g} s")
            kind, message = parent_conn.recv()
        except OSError as err:
            kind, message = "init-failed", f"worker did not start: {err}"
        except EOFError:
            self._proc.join(1.0)
            kind, message = "init-failed", f"worker exited with code {self._proc.exitcode}"
        if kind != "ready":
            self.kill()
            raise WorkerStartError(f"cannot start a worker: {message}")

    def run(self, src: Path, dst: Path, *, timeout: float, abort: threading.Event) -> Outcome:
        """Process one file. Past `timeout` (0 = none) or once `abort` is set, the process is killed
        and restarted and the outcome says so."""
        if self._conn is None:  # first use, or killed after a timeout or crash: a fresh process
            self.start()
        assert self._conn is not None
        start = time.monotonic()
        try:
            self._conn.send((str(src), str(dst)))
            while not self._conn.poll(0.1):
                if abort.is_set():
                    self.kill()
                    return Outcome("abandoned", "stopped before the file was finished")
                if timeout and time.monotonic() - start > timeout:
                    self.kill()
                    return Outcome("timeout", f"{src}: took longer than {timeout:g} s; stopped", timeout)
            outcome = self._conn.recv()
            self._files += 1
            if self._recycle_after and self._files >= self._recycle_after:
                self.stop()  # the next file starts a fresh process
            return outcome
        except (EOFError, OSError):
            if self._proc is not None:
                self._proc.join(1.0)  # reap it, so exitcode tells how it died
            code = self._proc.exitcode if self._proc is not None else None
            self.kill()
            reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return Outcome("crashed", f"{src}: the worker process died ({reason})", time.monotonic() - start)

    def kill(self) -> None:
        started = self._proc is not None and self._proc.pid is not None
        if started and self._proc.is_alive():
            self._proc.kill()
        if started:
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit after its current file; kill it if it does not within `timeout`."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        if self._proc is not None:
            self._proc.join(timeout)
        self.kill()


__all__ = ["Outcome", "ProcessorFactory", "Worker", "WorkerStartError", "is_transient_text", "run_processor"]
