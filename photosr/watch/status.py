"""What a running (or stopped) daemon has done: the status file it keeps and `photosr watch --status`.

The ledger is the truth; `status.json` in the state folder is a snapshot refreshed every few seconds
for monitoring tools that would rather not open SQLite.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from photosr.watch.files import is_locked
from photosr.watch.ledger import Ledger

LEDGER_NAME = "ledger.sqlite"
STATUS_NAME = "status.json"


def _errors(ledger: Ledger, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "input": e.rel,
            "state": e.state,
            "error": e.error,
            "attempts": e.attempts,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.updated)),
        }
        for e in ledger.last_errors(limit)
    ]


def write_status(state_dir: Path, ledger: Ledger, **fields: Any) -> None:
    """Atomically replace `state_dir/status.json` with counts, recent errors and `fields`."""
    document = {
        **fields,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": ledger.counts(),
        "last_errors": _errors(ledger, 10),
    }
    target = state_dir / STATUS_NAME
    temp = target.with_name(f".{STATUS_NAME}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(temp, target)


def read_status(state_dir: Path, *, errors: int = 10) -> dict[str, Any]:
    """Counts and last errors from the ledger, plus whether a daemon is running on this state folder."""
    state_dir = Path(state_dir)
    with Ledger(state_dir / LEDGER_NAME, create=False) as ledger:
        counts = ledger.counts()
        last = _errors(ledger, errors)
    snapshot: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        snapshot = json.loads((state_dir / STATUS_NAME).read_text(encoding="utf-8"))
    running = is_locked(state_dir)
    return {
        "state_dir": str(state_dir),
        "running": running,
        "pid": snapshot.get("pid") if running else None,
        "input": snapshot.get("input"),
        "output": snapshot.get("output"),
        "counts": counts,
        "waiting": snapshot.get("waiting", 0) if running else 0,
        "in_flight": snapshot.get("in_flight", []) if running else [],
        "last_errors": last,
    }


def format_status(status: dict[str, Any]) -> str:
    """The human-readable report `photosr watch --status` prints."""
    c = status["counts"]
    head = f"running (pid {status['pid']})" if status["running"] else "not running"
    lines = [
        f"photosr watch: {head}; state in {status['state_dir']}",
        f"  input {status['input'] or '?'} -> output {status['output'] or '?'}",
        f"  done {c['done']}  failed {c['failed']}  pending {c['pending']}  processing {c['processing']}"
        f"  settling {status['waiting']}",
    ]
    if status["in_flight"]:
        lines.append(f"  now: {', '.join(status['in_flight'][:5])}")
    if status["last_errors"]:
        lines.append("  last errors:")
        lines += [f"    {e['time']} {e['state']} {e['error']}" for e in status["last_errors"]]
    return "\n".join(lines)


__all__ = ["LEDGER_NAME", "STATUS_NAME", "format_status", "read_status", "write_status"]
