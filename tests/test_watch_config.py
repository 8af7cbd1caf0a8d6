"""Watch settings: validation, the TOML config file, and the log line formats."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from photosr.errors import UsageError
from photosr.watch.config import WATCH_FIELDS, WatchConfig, load_config_file
from photosr.watch.logs import JsonFormatter, KeyValueFormatter
from photosr.watch.workers import is_transient_text


def test_defaults_and_derived_paths(tmp_path):
    config = WatchConfig(tmp_path / "in", tmp_path / "out", workers=3)
    assert config.state == tmp_path / "out" / ".photosr-watch"
    assert config.max_queued == 6
    assert config.skip_dirs == (tmp_path / "out", tmp_path / "out" / ".photosr-watch")
    custom = WatchConfig("in", "out", state_dir="/var/lib/x", queue_size=1)
    assert custom.state == Path("/var/lib/x") and custom.max_queued == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workers": 0}, "workers must be >= 1"),
        ({"poll": 0}, "poll must be > 0"),
        ({"settle": -1}, "settle must be >= 0"),
        ({"retries": 0}, "retries must be >= 1"),
        ({"recycle_after": -1}, "recycle after"),
        ({"format": "gif"}, "format must be keep or one of png"),
        ({"suffix": "../x"}, "suffix must not contain a path separator"),
    ],
)
def test_bad_values_are_usage_errors(tmp_path, changes, message):
    with pytest.raises(UsageError, match=message):
        WatchConfig(tmp_path / "in", tmp_path / "out", **changes)


def test_output_must_not_be_the_input(tmp_path):
    with pytest.raises(UsageError, match="must not be the input"):
        WatchConfig(tmp_path, tmp_path / "." / "")


def test_config_file_normalises_dashes_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "watch.toml"
    path.write_text(
        'failed-dir = "/srv/failed"\nsettle = 5\ntask = ["restore", "upscale"]\n', encoding="utf-8"
    )
    known = set(WATCH_FIELDS) | {"task"}
    assert load_config_file(path, known) == {
        "failed_dir": "/srv/failed",
        "settle": 5,
        "task": ["restore", "upscale"],
    }
    path.write_text("setle = 5\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"watch\.toml: unknown key\(s\) setle"):
        load_config_file(path, known)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("settle = = 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"broken\.toml: not valid TOML"):
        load_config_file(path, WATCH_FIELDS)
    path.write_text("[settle]\nx = 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="must be values, not tables"):
        load_config_file(path, WATCH_FIELDS)
    with pytest.raises(UsageError, match="missing.toml: cannot read config"):
        load_config_file(tmp_path / "missing.toml", WATCH_FIELDS)


def _record(fields: dict) -> logging.LogRecord:
    record = logging.LogRecord("photosr.watch", logging.INFO, __file__, 1, "file", (), None)
    record.fields = fields
    return record


def test_key_value_lines_quote_what_would_split():
    fields = {
        "status": "failed",
        "input": "a b/é.jpg",
        "output": None,
        "seconds": 0.12345,
        "error": 'x="1"\nY',
    }
    line = KeyValueFormatter().format(_record(fields))
    assert " INFO file status=failed " in line
    assert 'input="a b/é.jpg"' in line and "seconds=0.123" in line and "output" not in line
    assert 'error="x=\\"1\\"\\nY"' in line and "\n" not in line


def test_json_lines_parse_and_carry_fields():
    data = json.loads(JsonFormatter().format(_record({"status": "ok", "input": "ü.png", "seconds": 0.5})))
    assert data["event"] == "file" and data["input"] == "ü.png" and data["seconds"] == 0.5
    assert data["time"].endswith("Z") and data["level"] == "INFO"


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("out/a.png: cannot write: [Errno 28] No space left on device", True),
        ("a.jpg: [Errno 11] Resource temporarily unavailable", True),
        ("out/a.png: cannot write (No space left on device)", True),  # how photosr.io reports it
        ("out/a.png: cannot write (Disk quota exceeded)", True),
        ("out/a.png: cannot write (Permission denied)", False),
        ("a.jpg: [Errno 2] No such file or directory", False),
        ("a.jpg: not an image format photosr can read", False),
    ],
)
def test_transient_errors_are_told_from_their_errno(message, transient):
    assert is_transient_text(message) is transient
