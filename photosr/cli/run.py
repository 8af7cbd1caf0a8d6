"""`photosr run`: process files and folders with one or more tasks.

Exit codes: 0 every file ok or skipped, 1 any file failed, 2 bad usage (click's or photosr's UsageError,
unknown plugin). One line per failure on stderr; `--json` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from photosr.batch import PlannedOutput, discover, plan_outputs
from photosr.errors import PhotosrError, PluginNotFoundError, UsageError
from photosr.pipeline import FileResult, Pipeline, ProcessOptions

_FORMAT_CHOICES = click.Choice(["keep", "png", "jpeg", "jpg", "webp", "tiff", "tif"], case_sensitive=False)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; the input tree is mirrored inside it.",
)
@click.option(
    "-t",
    "--task",
    "tasks",
    multiple=True,
    metavar="TASK",
    help="restore | upscale | colorize | dewatermark | normalize; repeat to chain (default restore).",
)
@click.option(
    "-p",
    "--plugin",
    "plugins",
    multiple=True,
    metavar="NAME|PATH|TASK=NAME",
    help="Plugin per task, in task order, or TASK=NAME. Default: the installed plugin for the task.",
)
@click.option("--scale", type=click.IntRange(min=1), help="Upscale: use the plugin with this scale.")
@click.option(
    "--outscale",
    type=click.FloatRange(min=0, min_open=True),
    help="Final size = input size x this (linear-light resize after the model).",
)
@click.option("--max-size", type=click.IntRange(min=1), help="Cap the longest side of the output (pixels).")
@click.option(
    "--format", "fmt", type=_FORMAT_CHOICES, default="keep", show_default=True, help="Output format."
)
@click.option(
    "--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality."
)
@click.option("--suffix", default="", help="Added to output file names before the extension, e.g. _x4.")
@click.option("-r", "--recursive", is_flag=True, help="Walk into subfolders (the tree is kept).")
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only files whose relative path matches (repeatable)."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files or folders matching (repeatable).")
@click.option("--skip-existing", is_flag=True, help="Leave files whose output already exists (resume).")
@click.option("--strip-metadata", is_flag=True, help="Do not copy EXIF/XMP/ICC to the output.")
@click.option("--keep-profile", is_flag=True, help="Convert back to the source ICC profile (default: sRGB).")
@click.option(
    "--strength",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Restore: blend of model output with the input (0 = untouched).",
)
@click.option("--render-size", type=click.IntRange(min=0), help="Colorize: longest side the model sees.")
@click.option(
    "--save-mask",
    is_flag=True,
    help="Dewatermark: also write <name>_mask.png of the overlays the model found.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "int8"]),
    default="auto",
    show_default=True,
    help="Model weights: auto = int8 on CPU when the plugin ships an int8 model, else fp32; "
    "fp32 = always the full-precision model; int8 = the int8 model wherever the plugin has one.",
)
@click.option(
    "--ensemble",
    type=click.IntRange(min=1),
    metavar="N",
    help="1, 2, 4 or 8: run each model on N flips/transposes of the photo and average them - a little "
    "sharper and cleaner (upscale x2: +0.07 dB at 8), N times slower. Default: each plugin's own "
    "(1, or what its manifest says).",
)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="CPU threads for the model (0 = all).")
@click.option("--tile", type=click.IntRange(min=0), help="Tile side in input pixels (0 = automatic).")
@click.option("--tile-overlap", type=click.IntRange(min=0), help="Tile overlap in input pixels.")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=0),
    help="Refuse images with more pixels (bomb guard; 0 = no limit).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
def run(
    inputs: tuple[Path, ...],
    out_dir: Path,
    tasks: tuple[str, ...],
    plugins: tuple[str, ...],
    fmt: str,
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    **settings: object,
) -> None:
    """Process photos and folders with one or more tasks; the input tree is mirrored under OUT.

    \b
    photosr run old.jpg -o out                        restore (the default task)
    photosr run -t upscale --scale 4 -r photos -o out
    photosr run -t restore -t upscale scans -o out --format png --suffix _x2
    photosr run -t colorize --plugin ./my-plugin grey/ -o out --json

    Exit status: 0 all ok or skipped, 1 some files failed (one stderr line each), 2 bad usage.
    """
    try:
        options = ProcessOptions(
            tasks=tasks,
            plugins=plugins,
            format=fmt,
            keep_source_profile=settings.pop("keep_profile"),
            **settings,
        )
        pipeline = Pipeline(options)  # plugins first: a bad name should not wait for a big folder walk
        jobs = discover(inputs, recursive=recursive, include=include, exclude=exclude, skip_dirs=[out_dir])
    except (UsageError, PluginNotFoundError) as err:
        raise click.UsageError(str(err)) from err
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    planned = plan_outputs(jobs, out_dir, format=options.format, suffix=options.suffix)
    if not (quiet or as_json):
        click.echo(f"photosr: {_describe(pipeline)}; {len(planned)} file(s) -> {out_dir}", err=True)
    if not planned and not quiet:
        click.echo(f"photosr: no photos found in {', '.join(map(str, inputs))}", err=True)
    start = time.perf_counter()
    results = _process_all(pipeline, planned, show_progress=not (as_json or quiet))
    _report(results, time.perf_counter() - start, as_json=as_json, quiet=quiet)
    sys.exit(1 if any(r.status == "failed" for r in results) else 0)


def _process_all(
    pipeline: Pipeline, planned: Sequence[PlannedOutput], *, show_progress: bool
) -> list[FileResult]:
    """Every planned file in order; each failure gets its stderr line as it happens."""
    results = []
    with _progress(len(planned), enabled=show_progress) as advance:
        for plan in planned:
            result = _run_one(pipeline, plan)
            if result.status == "failed":
                click.echo(f"photosr: {_failure_line(result)}", err=True)
            results.append(result)
            advance()
    return results


def _describe(pipeline: Pipeline) -> str:
    """ "restore (restore-conv 1.0.0) -> upscale (upscale-x4 1.0.0)": what will run, for the log."""
    steps = []
    for step in pipeline.steps:
        plugin = step.plugin
        steps.append(
            step.task.name
            if plugin is None
            else f"{step.task.name} ({plugin.name} {plugin.manifest.version})"
        )
    return " -> ".join(steps)


def _run_one(pipeline: Pipeline, plan: PlannedOutput) -> FileResult:
    if plan.error is not None:
        return FileResult(plan.job.src, plan.dst, "failed", plan.error, 0.0)
    return pipeline.process_file(plan.job.src, plan.dst)


def _failure_line(result: FileResult) -> str:
    # Errors already name the file; only prefix it when one does not.
    error = result.error or "failed"
    return error if error.startswith(str(result.input)) else f"{result.input}: {error}"


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator:
    """`advance()` moves a bar on stderr - only on a terminal, so logs and pipes stay clean."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield lambda: None
        return
    with click.progressbar(length=total, label="photosr", file=sys.stderr, show_pos=True) as bar:
        yield lambda: bar.update(1)


def summarize(results: Sequence[FileResult], seconds: float) -> dict[str, object]:
    """The `--json` document: every file's result and the counts."""
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "failed", "skipped")}
    summary = {**counts, "total": len(results), "seconds": round(seconds, 3)}
    return {"files": [r.to_dict() for r in results], "summary": summary}


def _report(results: Sequence[FileResult], seconds: float, *, as_json: bool, quiet: bool) -> None:
    document = summarize(results, seconds)
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False))
    elif not quiet:
        s = document["summary"]
        click.echo(
            f"photosr: {s['ok']} ok, {s['skipped']} skipped, {s['failed']} failed in {s['seconds']:.1f} s",
            err=True,
        )
