"""The watch-folder daemon: observer -> stability check -> ledger -> bounded queue -> worker processes.

Threads in the daemon process:
- the watchdog observer: its handler only notes paths in the stability tracker (never blocks, no I/O);
- the scanner: first scans IN (files present before start), then promotes settled files, asks the
  ledger (by size and mtime) whether each needs work, queues it, rescans IN now and then, and writes the
  status file;
- one dispatcher per worker process: hashes the file (a touched but unchanged file stops here), claims
  its output in the ledger, sends it to its worker, waits (time limit), renames the temp output into
  place, records the result, moves or copies the original as asked, logs one line.
The thread that calls `run()` waits for `request_stop()` (the CLI wires SIGTERM/SIGINT to it), then stops
taking files, gives the current ones `grace` seconds and abandons the rest cleanly (back to pending).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from photosr.batch import discover, output_path
from photosr.errors import PhotosrError, UsageError
from photosr.watch import files
from photosr.watch.config import WatchConfig
from photosr.watch.ledger import Entry, Ledger
from photosr.watch.logs import LOGGER_NAME
from photosr.watch.stability import StabilityTracker, Stable, is_candidate
from photosr.watch.status import LEDGER_NAME, write_status
from photosr.watch.workers import Outcome, ProcessorFactory, Worker

_BACKOFF_START, _BACKOFF_MAX = 1.0, 60.0  # seconds before retrying a transient failure, doubling
# status.json refresh: counting a ledger of a million rows takes tens of milliseconds, not for every tick.
_STATUS_EVERY = 5.0


@dataclass(frozen=True)
class _Job:
    rel: str
    src: Path
    size: int
    mtime_ns: int
    output: Path
    attempts: int  # attempts before this one


class _Handler(FileSystemEventHandler):
    """Thin on purpose: turns events into tracker notes; everything slow happens elsewhere."""

    def __init__(self, daemon: Daemon):
        self._daemon = daemon

    def on_created(self, event: FileSystemEvent) -> None:
        self._daemon._note(event.src_path, is_dir=event.is_directory)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._daemon._note(event.src_path)

    def on_attrib(self, event: FileSystemEvent) -> None:
        # A touch (new mtime) or a permission fix that makes an unreadable file readable.
        if not event.is_directory:
            self._daemon._note(event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._daemon._note(event.src_path, closed=True)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._daemon._forget(event.src_path)
        self._daemon._note(event.dest_path, is_dir=event.is_directory)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._daemon._forget(event.src_path)


class Daemon:
    """Watches `config.in_dir` and processes every complete photo in it with `factory()`'s function.

    `factory` runs inside each worker process and returns `process(src, dst)` (photosr's is
    `Pipeline(options).process_file`); it is the daemon's only link to what processing means.
    """

    def __init__(
        self, config: WatchConfig, factory: ProcessorFactory, *, logger: logging.Logger | None = None
    ):
        self.config = config
        self._factory = factory
        self._log = logger or logging.getLogger(LOGGER_NAME)
        self._in = Path(os.path.realpath(config.in_dir))
        self._out = Path(os.path.realpath(config.out_dir))
        self._state = Path(os.path.realpath(config.state))
        self._skip = tuple(Path(os.path.realpath(d)) for d in config.skip_dirs)
        self._stop = threading.Event()  # stop taking files
        self._abort = threading.Event()  # grace is over: abandon current files
        self.ready = threading.Event()  # workers up, observer on, first scan done
        self._tracker = StabilityTracker(config.settle)
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=config.max_queued)
        self._folders: queue.SimpleQueue[Path] = queue.SimpleQueue()  # new folders to scan
        self._room = threading.Event()  # a dispatcher took a job: the scanner may refill the queue
        self._in_flight: set[str] = set()
        self._flight_lock = threading.Lock()
        self._claim_lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._started = time.time()
        self._status_due = 0.0
        self._failure: str | None = None  # why the daemon stopped by itself, if it did

    # --- lifecycle --------------------------------------------------------------------------------------

    def request_stop(self, *, now: bool = False) -> None:
        """Stop taking new files; `run()` gives current ones `grace` seconds (none if `now`), then returns."""
        self._stop.set()
        self._room.set()
        if now:
            self._abort.set()

    def run(self) -> None:
        """Run until `request_stop()`. Raises UsageError/WorkerStartError before any file is touched."""
        if not self._in.is_dir():
            raise UsageError("the watched folder does not exist", self.config.in_dir)
        lock = files.lock_state_dir(self._state)
        try:
            self._out.mkdir(parents=True, exist_ok=True)
            with Ledger(self._state / LEDGER_NAME) as self._ledger:
                self._recover()
                workers = self._start_workers()
                try:
                    self._serve(workers)
                finally:
                    for worker in workers:
                        worker.kill()
                self._write_status(force=True, running=False)
            if self._failure is not None:
                # Exit non-zero so a supervisor (systemd Restart=on-failure) starts a fresh daemon.
                raise PhotosrError(self._failure, self.config.in_dir)
        finally:
            if lock is not None:
                lock.close()

    def _start_workers(self) -> list[Worker]:
        workers: list[Worker] = []
        try:
            for index in range(self.config.workers):
                name = f"photosr-worker-{index}"
                workers.append(Worker(self._factory, name=name, recycle_after=self.config.recycle_after))
                workers[-1].start()
        except BaseException:
            for worker in workers:
                worker.kill()
            raise
        return workers

    def _serve(self, workers: list[Worker]) -> None:
        observer = PollingObserver(timeout=self.config.poll) if self.config.poll else Observer()
        # Watch before the first scan, so nothing landing in between is missed.
        observer.schedule(_Handler(self), str(self._in), recursive=True)
        try:
            observer.start()
        except OSError as err:  # typically the inotify watch limit on a huge tree
            raise PhotosrError(
                f"cannot watch the folder: {err} (raise fs.inotify.max_user_watches, or use --poll)",
                self.config.in_dir,
            ) from err
        threads = [threading.Thread(target=self._scan_loop, name="photosr-scanner", daemon=True)]
        threads += [
            threading.Thread(target=self._dispatch_loop, args=(w,), name=f"photosr-dispatch-{i}", daemon=True)
            for i, w in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        pids = ",".join(str(w.pid) for w in workers)
        self._event("started", input=str(self._in), output=str(self._out), pid=os.getpid(), workers=pids)
        try:
            while not self._stop.wait(0.2):
                if not observer.is_alive() or not all(e.is_alive() for e in observer.emitters):
                    self._fail_daemon("the folder observer stopped (folder removed or unmounted?)")
        finally:
            self._stop.set()
            observer.stop()
            self._finish(threads)
            observer.join(5)

    def _finish(self, threads: list[threading.Thread]) -> None:
        busy = len(self._in_flight) - self._queue.qsize()
        self._event("stopping", busy=busy, grace=self.config.grace)
        deadline = time.monotonic() + self.config.grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()  # whoever is still working now abandons its file (worker killed)
        for thread in threads:
            thread.join(10)
        self._event("stopped", **self._ledger_counts())

    # --- start-up ---------------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Redo what a killed daemon left half done, unless its output had been completed already."""
        assert self._ledger is not None
        interrupted = self._ledger.reset_interrupted()
        for folder in {(self._out / row.output).parent for row in interrupted if row.output}:
            files.clear_stale_temps(folder)
        for row in interrupted:
            if self._output_completed(row):
                self._ledger.set_done(row.rel, str(row.output), row.seconds or 0.0)
                self._event("recovered", input=row.rel, output=row.output)
        if interrupted:
            self._event("resumed", interrupted=len(interrupted))

    def _output_completed(self, row: Entry) -> bool:
        # Outputs appear by atomic rename, so one that exists is whole; it belongs to this attempt (not an
        # older version of the file) if written after the row went to `processing`, and the input must
        # still be the content that row describes.
        if not row.output:
            return False
        try:
            out = (self._out / row.output).stat()
            src = (self._in / row.rel).stat()
        except OSError:
            return False
        return out.st_mtime >= row.updated - 1.0 and row.same_stat(src.st_size, src.st_mtime_ns)

    # --- events and scanning ----------------------------------------------------------------------------

    def _skipped(self, p: Path) -> bool:
        return any(p == d or d in p.parents for d in self._skip)

    def _rel(self, path: str | bytes) -> str | None:
        p = Path(os.fsdecode(path))
        try:
            rel = p.relative_to(self._in)
        except ValueError:
            return None
        return None if self._skipped(p) or not is_candidate(rel) else rel.as_posix()

    def _note(self, path: str | bytes, *, closed: bool = False, is_dir: bool = False) -> None:
        if is_dir:
            # Files can land in a new folder before its watch exists; the scanner looks inside.
            folder = Path(os.fsdecode(path))
            if not self._skipped(folder):
                self._folders.put(folder)
            return
        rel = self._rel(path)
        if rel is None:
            return
        p = Path(os.fsdecode(path))
        if closed:
            self._tracker.closed(rel, p)
        else:
            self._tracker.touch(rel, p)

    def _forget(self, path: str | bytes) -> None:
        rel = self._rel(path)
        if rel is not None:
            self._tracker.discard(rel)

    def _scan(self, folder: Path) -> None:
        """Note every photo under `folder` that the ledger does not already account for."""
        assert self._ledger is not None
        if not folder.is_dir():  # a new folder already moved away, or IN unmounted for a moment
            if folder == self._in:
                self._event(
                    "warning", input=str(folder), error="the watched folder is missing; will look again"
                )
            return
        try:
            found = discover([folder], recursive=True, skip_dirs=self._skip)
        except UsageError:  # removed between the check and the walk (an unpacker's temp folder)
            return
        for job in found:
            if self._stop.is_set():
                return
            rel = self._rel(str(job.src))
            if rel is None or rel in self._tracker or self._is_in_flight(rel):
                continue
            try:
                st = job.src.stat()
            except OSError:
                continue
            row = self._ledger.get(rel)
            if (
                row is not None
                and row.state in ("done", "failed")
                and row.same_stat(st.st_size, st.st_mtime_ns)
            ):
                if row.state == "done":
                    self._move_processed(rel, job.src)
                continue
            self._tracker.touch(rel, job.src)

    def _prune_vanished(self) -> None:
        # Pending rows whose input is gone (deleted while the daemon was down) have nothing left to do.
        assert self._ledger is not None
        for row in self._ledger.in_state("pending"):
            if not (self._in / row.rel).exists() and not self._is_in_flight(row.rel):
                self._ledger.delete(row.rel)

    def _scan_loop(self) -> None:
        try:
            self._scan(self._in)
            self._prune_vanished()
            self.ready.set()
            tick = min(0.5, max(0.02, self.config.settle / 4))
            next_rescan = time.monotonic() + (self.config.rescan or float("inf"))
            while not self._stop.is_set():
                # Wake on the tick (stability checks) or as soon as a worker frees a queue slot.
                self._room.wait(tick)
                self._room.clear()
                while not self._folders.empty():
                    self._scan(self._folders.get())
                self._promote()
                if time.monotonic() >= next_rescan:
                    self._scan(self._in)
                    next_rescan = time.monotonic() + self.config.rescan
                self._write_status()
        except Exception as err:  # the daemon cannot work without its scanner: say why and stop
            self._log.exception("scanner failed")
            self._fail_daemon(f"scanner failed: {type(err).__name__}: {err}")

    def _fail_daemon(self, reason: str) -> None:
        self._failure = self._failure or reason
        self._event("error", reason=reason)
        self.request_stop()

    def _promote(self) -> None:
        room = self._queue.maxsize - self._queue.qsize()
        if room <= 0:
            return
        for stable in self._tracker.ready(limit=room):
            if self._is_in_flight(stable.rel):
                # Changed while being processed: look again once the current run is over.
                self._tracker.touch(stable.rel, stable.path, delay=max(self.config.settle, 0.2))
                continue
            job = self._take(stable)
            if job is not None:
                with self._flight_lock:
                    self._in_flight.add(job.rel)
                self._queue.put_nowait(job)  # only this thread puts, and there was room

    def _take(self, s: Stable) -> _Job | None:
        """Cheap first decision, by size and mtime only: the scanner never reads file contents."""
        assert self._ledger is not None
        row = self._ledger.get(s.rel)
        if row is not None and row.state in ("done", "failed") and row.same_stat(s.size, s.mtime_ns):
            if row.state == "done":
                self._move_processed(s.rel, s.path)
            return None
        output = output_path(Path(s.rel), self._out, format=self.config.format, suffix=self.config.suffix)
        return _Job(s.rel, s.path, s.size, s.mtime_ns, output, s.attempts)

    def _claim(self, job: _Job) -> bool:
        """In the dispatcher: hash the content, skip it if only touched, claim the output, and mark the
        row `processing`. Hashing here (not in the scanner) keeps big files from stalling the others."""
        assert self._ledger is not None
        try:
            digest = files.file_digest(job.src)
        except OSError:
            return False  # gone again; a new event will bring it back
        row = self._ledger.get(job.rel)
        if (
            row is not None
            and row.state == "done"
            and row.hash == digest
            and (self._out / str(row.output)).exists()
        ):
            self._ledger.set_stat(job.rel, job.size, job.mtime_ns)  # touched, not changed
            self._move_processed(job.rel, job.src)
            return False
        out_rel = self._out_rel(job.output)
        with self._claim_lock:  # two inputs naming one output (a.jpg, a.png -> a.png): the first wins
            self._ledger.set_pending(job.rel, job.size, job.mtime_ns, digest, attempts=job.attempts)
            owner = self._ledger.owner_of(out_rel)
            if owner is None or owner == job.rel:
                self._ledger.set_processing(job.rel, out_rel)
                return True
        error = f"{job.src}: output {job.output} is already the output of {self._in / owner}"
        self._ledger.set_failed(job.rel, error)
        self._file_line("failed", job.rel, None, 0.0, job.attempts, error)
        self._copy_failed(job.rel, job.src, error)
        return False

    # --- processing -------------------------------------------------------------------------------------

    def _is_in_flight(self, rel: str) -> bool:
        with self._flight_lock:
            return rel in self._in_flight

    def _dispatch_loop(self, worker: Worker) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._room.set()
            if self._stop.is_set():  # stopping: a file not started stays pending for the next run
                self._release(job)
                return
            try:
                self._handle(worker, job)
            except Exception as err:  # a bug or a ledger/disk failure costs this file, not the daemon
                self._log.exception("internal error on %s", job.rel)
                files.remove_temps(job.output)
                self._fail(job, f"{job.src}: internal error: {type(err).__name__}: {err}", 0.0)
            finally:
                self._release(job)

    def _release(self, job: _Job) -> None:
        with self._flight_lock:
            self._in_flight.discard(job.rel)

    def _handle(self, worker: Worker, job: _Job) -> None:
        assert self._ledger is not None
        if not self._claim(job):
            return
        temp = files.temp_output(job.output)
        job.output.parent.mkdir(parents=True, exist_ok=True)
        outcome = worker.run(job.src, temp, timeout=self.config.timeout, abort=self._abort)
        if outcome.status in ("ok", "skipped"):
            self._finish_ok(job, temp, outcome)
            return
        files.remove_temps(job.output)
        if outcome.status == "abandoned":
            self._ledger.set_retry(job.rel, None)
            self._file_line("abandoned", job.rel, None, outcome.seconds, job.attempts + 1, None)
        elif outcome.status == "transient" and job.attempts + 1 < self.config.retries:
            self._retry(job, outcome)
        else:
            self._fail(job, outcome.error or f"{job.src}: {outcome.status}", outcome.seconds)

    def _finish_ok(self, job: _Job, temp: Path, outcome: Outcome) -> None:
        assert self._ledger is not None
        written = Path(outcome.output) if outcome.output else temp
        if not written.is_file():
            self._fail(job, f"{job.src}: the processor reported success but wrote no file", outcome.seconds)
            return
        final = job.output.with_suffix(written.suffix)  # the writer may have had to change the format
        if self._changed_since_taken(job):
            # Our output is of the old bytes: drop it and let the new content settle and come round.
            files.remove_temps(job.output)
            self._ledger.set_retry(job.rel, None)
            self._tracker.touch(job.rel, job.src)
            return
        if self.config.processed_dir is not None:
            files.fsync_file(written)  # the original is about to leave: its output must be on disk
        os.replace(written, final)
        self._ledger.set_done(job.rel, self._out_rel(final), outcome.seconds)
        self._file_line("ok", job.rel, self._out_rel(final), outcome.seconds, job.attempts + 1, None)
        self._move_processed(job.rel, job.src)

    def _changed_since_taken(self, job: _Job) -> bool:
        try:
            st = job.src.stat()
        except OSError:
            return False  # moved away (e.g. by the user) after we read it: the output is still right
        return (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns)

    def _retry(self, job: _Job, outcome: Outcome) -> None:
        assert self._ledger is not None
        attempts = job.attempts + 1
        delay = min(_BACKOFF_MAX, _BACKOFF_START * 2 ** (attempts - 1))
        self._ledger.set_retry(job.rel, outcome.error)
        self._file_line("retry", job.rel, None, outcome.seconds, attempts, outcome.error, retry_in=delay)
        self._tracker.touch(job.rel, job.src, delay=delay, attempts=attempts)

    def _fail(self, job: _Job, error: str, seconds: float) -> None:
        assert self._ledger is not None
        self._ledger.set_failed(job.rel, error, seconds)
        self._file_line("failed", job.rel, None, seconds, job.attempts + 1, error)
        self._copy_failed(job.rel, job.src, error)

    def _copy_failed(self, rel: str, src: Path, error: str) -> None:
        if self.config.failed_dir is None:
            return
        try:
            files.copy_failed(src, self.config.failed_dir / rel, error)
        except OSError as err:
            self._event("warning", input=rel, error=f"cannot copy to the failed folder: {err}")

    def _move_processed(self, rel: str, src: Path) -> None:
        if self.config.processed_dir is None or not src.exists():
            return
        try:
            files.move_original(src, self.config.processed_dir / rel)
        except OSError as err:  # the output is safe; the next rescan tries the move again
            self._event("warning", input=rel, error=f"cannot move to the processed folder: {err}")

    # --- reporting --------------------------------------------------------------------------------------

    def _out_rel(self, path: Path) -> str:
        return path.relative_to(self._out).as_posix()

    def _file_line(
        self,
        status: str,
        rel: str,
        output: str | None,
        seconds: float,
        attempts: int,
        error: str | None,
        **more: Any,
    ) -> None:
        fields = {"status": status, "input": rel, "output": output, "seconds": round(seconds, 3)}
        fields.update(attempts=attempts, error=error, **more)
        level = logging.WARNING if status in ("failed", "retry") else logging.INFO
        self._log.log(level, "file", extra={"fields": fields})

    def _event(self, name: str, **fields: Any) -> None:
        level = {"warning": logging.WARNING, "error": logging.ERROR}.get(name, logging.INFO)
        self._log.log(level, name, extra={"fields": fields})

    def _ledger_counts(self) -> dict[str, int]:
        assert self._ledger is not None
        return self._ledger.counts()

    def _write_status(self, *, force: bool = False, running: bool = True) -> None:
        now = time.monotonic()
        if not force and now < self._status_due:
            return
        self._status_due = now + _STATUS_EVERY
        assert self._ledger is not None
        with self._flight_lock:
            in_flight = sorted(self._in_flight)
        write_status(
            self._state,
            self._ledger,
            pid=os.getpid(),
            running=running,
            started=self._started,
            input=str(self._in),
            output=str(self._out),
            waiting=len(self._tracker),
            in_flight=in_flight,
        )


def pipeline_processor(options: Any) -> Any:
    """photosr's own processing for `Daemon`: `functools.partial(pipeline_processor, ProcessOptions(...))`.

    Runs in each worker process: plugins are resolved and sessions kept for the worker's whole life.
    """
    from photosr.pipeline import Pipeline

    return Pipeline(options).process_file


__all__ = ["Daemon", "pipeline_processor"]
