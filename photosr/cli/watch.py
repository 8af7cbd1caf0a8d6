"""`photosr watch`: the watch-folder daemon, and `photosr watch --status` to see what it has done.

Processing options are `photosr run`'s own click parameters, reused, so the two commands never drift.
`--config FILE.toml` supplies defaults for any option (same names); the command line wins.
Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 daemon failure, 2 bad usage.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from photosr.cli.run import run as _run_command
from photosr.errors import PhotosrError, PluginNotFoundError, UsageError
from photosr.pipeline import Pipeline, ProcessOptions
from photosr.watch.config import STATE_DIR_NAME, WatchConfig, load_config_file
from photosr.watch.logs import LOGGER_NAME, JsonFormatter, KeyValueFormatter

# run's parameter name -> ProcessOptions field, where they differ.
_RENAMED = {"fmt": "format", "keep_profile": "keep_source_profile"}
# ProcessOptions fields that make no sense for a daemon: the ledger decides what is done, not the output.
_NOT_FOR_WATCH = {"skip_existing"}
_OPTION_FIELDS = {f.name for f in dataclasses.fields(ProcessOptions)} - _NOT_FOR_WATCH
_PROCESSING_PARAMS = [
    p
    for p in _run_command.params
    if isinstance(p, click.Option) and _RENAMED.get(p.name, p.name) in _OPTION_FIELDS
]
_PROCESSING_NAMES = {p.name for p in _PROCESSING_PARAMS}


def _config_keys(command: click.Command) -> dict[str, str]:
    """TOML key -> parameter name: every long option name (dashes or underscores) and the param name."""
    keys: dict[str, str] = {}
    for param in command.params:
        if param.name in ("config", "show_status", "as_json"):  # one-off actions, not settings
            continue
        keys[param.name] = param.name
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                keys[opt[2:].replace("-", "_")] = param.name
    keys["input"] = "in_dir"
    return keys


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    # Eager: runs before the other parameters are read, so the file's values become their defaults.
    if value is None:
        return
    keys = _config_keys(ctx.command)
    try:
        settings = load_config_file(value, set(keys))
    except UsageError as err:
        raise click.BadParameter(str(err)) from err
    defaults = {}
    for key, item in settings.items():
        param = next(p for p in ctx.command.params if p.name == keys[key])
        defaults[param.name] = [item] if param.multiple and isinstance(item, str) else item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _pointer(in_dir: Path) -> Path:
    """Where `--status IN` finds the state folder of the daemon watching IN (per user)."""
    from platformdirs import user_state_dir

    digest = hashlib.sha1(os.fsencode(os.path.realpath(in_dir))).hexdigest()[:16]
    return Path(user_state_dir("photosr")) / "watch" / f"{digest}.json"


def _remember_state_dir(in_dir: Path, state: Path) -> None:
    pointer = _pointer(in_dir)
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        data = {"input": os.path.realpath(in_dir), "state_dir": os.path.realpath(state)}
        pointer.write_text(json.dumps(data), encoding="utf-8")
    except OSError:  # only `--status IN` without -o needs it; -o OUT or --state-dir still work
        pass


def _state_dir_for_status(in_dir: Path | None, out_dir: Path | None, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    if out_dir is not None:
        return out_dir / STATE_DIR_NAME
    if in_dir is None:
        raise click.UsageError("--status needs the watched folder IN, or -o OUT / --state-dir")
    try:
        return Path(json.loads(_pointer(in_dir).read_text(encoding="utf-8"))["state_dir"])
    except (OSError, ValueError, KeyError) as err:
        raise click.UsageError(
            f"{in_dir}: no daemon has watched this folder as this user; give -o OUT"
        ) from err


def _show_status(in_dir: Path | None, out_dir: Path | None, state_dir: Path | None, as_json: bool) -> None:
    from photosr.watch.status import format_status, read_status

    state = _state_dir_for_status(in_dir, out_dir, state_dir)
    try:
        status = read_status(state)
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(status, ensure_ascii=False) if as_json else format_status(status))


def _setup_logging(as_json: bool) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _process_options(values: dict[str, Any], workers: int) -> ProcessOptions:
    settings = {_RENAMED.get(name, name): value for name, value in values.items()}
    if not settings.get("threads") and workers > 1:
        # N workers each using every core would fight over them; share the cores out instead.
        settings["threads"] = max(1, (os.cpu_count() or 1) // workers)
    return ProcessOptions.from_kwargs(**settings)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("in_dir", metavar="IN", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help="TOML file of option defaults (same names as the options; the command line wins).",
)
@click.option(
    "-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--failed-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copies of bad files + NAME.error.txt.",
)
@click.option(
    "--processed-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move originals here once their output is safely written.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Ledger, lock and status.json (default OUT/.photosr-watch; use a local disk if OUT is a network share).",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--poll", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Poll the folder every SECONDS instead of OS events (network shares).")  # fmt: skip
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="A file is complete when its size and mtime hold this many seconds.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), default=900.0, show_default=True,
              help="Per-file time limit in seconds; the worker is killed past it (0 = none).")  # fmt: skip
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="On SIGTERM/SIGINT, seconds to let current files finish.")  # fmt: skip
@click.option("--rescan", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Seconds between full rescans for missed events (0 = never).")  # fmt: skip
@click.option("--retries", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts for transient errors (file locked, disk full), with backoff.")  # fmt: skip
@click.option("--recycle-after", type=click.IntRange(min=0), default=1000, show_default=True, metavar="FILES",
              help="Replace each worker process with a fresh one after this many files (0 = never).")  # fmt: skip
@click.option("--log-json", is_flag=True, help="Log one JSON object per line instead of key=value.")
@click.option("--status", "show_status", is_flag=True, help="Print counts and the last errors, then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
def watch(**values: Any) -> None:
    """Watch IN and process every photo that lands in it into OUT: photosr watch IN -o OUT --task T"""
    in_dir, out_dir = values.pop("in_dir"), values.pop("out_dir")
    if values.pop("show_status"):
        _show_status(in_dir, out_dir, values["state_dir"], values["as_json"])
        return
    if in_dir is None or out_dir is None:
        raise click.UsageError("give the folder to watch and -o OUT (or set input/output in --config)")
    processing = {name: values.pop(name) for name in _PROCESSING_NAMES}
    logger = _setup_logging(values.pop("log_json"))
    values.pop("as_json")
    try:
        options = _process_options(processing, values["workers"])
        pipeline = Pipeline(options)  # resolve plugins here: a bad name is a usage error now, not per worker
        config = WatchConfig(in_dir, out_dir, format=options.format, suffix=options.suffix, **values)
    except (UsageError, PluginNotFoundError) as err:
        raise click.UsageError(str(err)) from err
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    if not in_dir.is_dir():
        raise click.UsageError(f"{in_dir}: the folder to watch does not exist")
    logger.info("pipeline", extra={"fields": {"steps": _describe(pipeline)}})
    _run_daemon(config, options, logger)


def _describe(pipeline: Pipeline) -> str:
    """`restore:restore-conv@1.0.0,upscale:upscale-x4@1.0.0` - which plugin versions made the outputs."""
    steps = []
    for step in pipeline.steps:
        manifest = getattr(step.plugin, "manifest", None)
        steps.append(step.task.name + (f":{manifest.name}@{manifest.version}" if manifest else ""))
    return ",".join(steps)


# run's processing options, shown right after -o in --help.
watch.params[3:3] = _PROCESSING_PARAMS


def _run_daemon(config: WatchConfig, options: ProcessOptions, logger: logging.Logger) -> None:
    from photosr.watch.daemon import Daemon, pipeline_processor

    daemon = Daemon(config, functools.partial(pipeline_processor, options), logger=logger)
    signals = []

    def on_signal(signum: int, _frame: Any) -> None:
        # First signal: stop taking files, let current ones finish within --grace. Second: abandon now.
        signals.append(signum)
        daemon.request_stop(now=len(signals) > 1)

    # SIGHUP (the terminal closed) stops cleanly too, rather than killing the daemon mid-file.
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    _remember_state_dir(config.in_dir, config.state)
    try:
        daemon.run()
    except UsageError as err:
        raise click.UsageError(str(err)) from err
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
