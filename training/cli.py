"""`photosr train`, `photosr export`, `photosr eval` (and `photosr crappify`, re-exported).

Library errors (photosr.errors) become one-line click errors here; nothing below this layer prints.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from photosr.errors import PhotosrError, UsageError
from photosr.jpeg import QUALITY_INPUT

from .cli_crappify import crappify
from .config import TrainConfig, config_from_dict, load_config

INT8_HELP = (
    "Also write an int8 copy of the model (convs quantized, calibrated on the training photos), which"
    " photosr run uses on CPU: 2.5-3x faster. The table then scores both."
)

# CLI option -> TrainConfig field, for options that are plain overrides.
_OVERRIDES = {
    "task": "task",
    "scale": "scale",
    "data": "data",
    "val": "val",
    "recipe": "recipe",
    "val_recipe": "val_recipe",
    "arch": "arch",
    "steps": "steps",
    "minutes": "minutes",
    "init_from": "init_from",
    "batch_size": "batch_size",
    "patch": "patch",
    "lr": "lr",
    "threads": "threads",
    "workers": "workers",
    "seed": "seed",
    "precision": "precision",
    "name": "name",
}


def _given(ctx: click.Context) -> dict[str, Any]:
    """Options the user actually passed (so defaults never override a config file)."""
    source = click.core.ParameterSource
    return {
        key: value
        for key, value in ctx.params.items()
        if ctx.get_parameter_source(key) not in (source.DEFAULT, source.DEFAULT_MAP) and value is not None
    }


def _command_line(ctx: click.Context) -> str:
    # `photosr ...` or `python -m photosr ...`; any other program (pytest, python -m pytest) ran the CLI
    # in-process, so its argv is not this command's.
    started = Path(sys.argv[0])
    ours = started.name == "photosr" or (started.name == "__main__.py" and started.parent.name == "photosr")
    argv = sys.argv[1:] if ours else []
    return (
        shlex.join(["photosr", *argv])
        if argv
        else f"photosr {ctx.info_name} "
        + " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in _given(ctx).items())
    )


def build_config(ctx: click.Context, config_file: Path | None, resume: Path | None) -> TrainConfig:
    given = _given(ctx)
    overrides = {_OVERRIDES[k]: v for k, v in given.items() if k in _OVERRIDES}
    if "crappify" in given:
        if "recipe" in given:
            raise UsageError("give --recipe or --crappify, not both")
        overrides["recipe"] = given["crappify"]
    for item in given.get("set_", ()):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _parse_value(value)
    if resume is not None:
        from .checkpoint import checkpoint_config, load_checkpoint

        base = checkpoint_config(load_checkpoint(resume / "last.pt"))
        return config_from_dict(overrides, source="command line", base=base)
    if config_file is not None:
        return load_config(config_file, **overrides)
    return config_from_dict(overrides, source="command line")


def _parse_value(text: str) -> Any:
    """A --set value as TOML would read it (numbers, booleans, lists, tables), else a plain string."""
    from .config import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


class _Progress:
    """One status line on stderr: step, loss, budget used and the latest validation PSNR."""

    def __init__(self) -> None:
        self.psnr = ""

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "val":
            self.psnr = f"  val PSNR-Y {event['psnr']:.3f} dB"
        elif event["event"] == "step":
            line = f"step {event['step']:>7,}  loss {event['loss']:.5f}  {100 * event['progress']:5.1f}%{self.psnr}"
            click.echo(f"\r{line}", nl=False, err=True)


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML config.",
)
@click.option("--task", type=click.Choice(["upscale", "restore", "colorize", "dewatermark"]))
@click.option("--scale", type=int, help="Output/input size ratio (upscale only).")
@click.option("--data", multiple=True, help="Folder of training photos (repeatable).")
@click.option("--val", help="Held-out folder for validation and the final scores.")
@click.option("--recipe", help="Crappification: preset name or TOML recipe.")
@click.option(
    "--val-recipe", help="Damage of the --val photos, e.g. a fixed benchmark recipe (default: --recipe)."
)
@click.option("--crappify", help="Custom crappification: path/to/file.py:func or module:func.")
@click.option("--arch", help="plain | resunet | effunet (default: by task).")
@click.option("--steps", type=int, help="Budget in optimizer steps.")
@click.option("--minutes", type=float, help="Budget in wall-clock minutes.")
@click.option("--init-from", help="Start from a plugin folder or checkpoint.")
@click.option("--batch-size", type=int)
@click.option("--patch", type=int, help="Input patch side in pixels.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--threads", type=int, help="Torch threads (0 = default).")
@click.option("--workers", type=int, help="DataLoader worker processes.")
@click.option("--seed", type=int)
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--name", help="Plugin name (default: from task and scale).")
@click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other config field, e.g. model={channels=32}.",
)
@click.option(
    "--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Where checkpoints and logs go."
)
@click.option(
    "--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Continue a run folder."
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Plugin folder to write."
)
@click.option(
    "--eval-limit", type=int, default=0, help="Score on only this many validation photos (0 = all)."
)
@click.option("--int8", is_flag=True, help=INT8_HELP)
@click.pass_context
def train(ctx: click.Context, config_file, resume, run_dir, out, eval_limit, int8, **_options) -> None:
    """Train a model on photos damaged by a crappification, then write a plugin folder for `photosr run`."""
    from . import ddp
    from .export import publish_plugin
    from .trainer import train as run_training

    try:
        cfg = build_config(ctx, config_file, resume)
        run_dir = resume or run_dir or Path("runs") / f"{cfg.plugin_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        result = run_training(
            cfg, run_dir, resume=resume is not None, callback=_Progress(), command=_command_line(ctx)
        )
        if not ddp.DistContext.from_env().is_main:
            return ddp.shutdown()
        click.echo("", err=True)
        _manifest, table = publish_plugin(
            result.checkpoint, out, val=cfg.val, recipe=cfg.val_recipe, limit=eval_limit, threads=cfg.threads,
            int8=int8,
        )  # fmt: skip
        ddp.shutdown()
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"trained {result.step:,} steps in {result.seconds / 60:.1f} min; run folder {run_dir}")
    if table:
        click.echo(table)
    click.echo(f"plugin written to {out} (try: photosr run --plugin {out} PHOTO -o OUT)")


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Plugin folder to write."
)
@click.option(
    "--val",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Score and draw a sheet on this folder.",
)
@click.option("--eval-limit", type=int, default=0, help="Only this many validation photos (0 = all).")
@click.option("--recipe", help="Damage of the --val photos (default: the run's val_recipe, else its recipe).")
@click.option("--name", help="Plugin name (default: from the training config).")
@click.option("--version", "version", default="0.1.0", show_default=True)
@click.option("--description", default="")
@click.option("--time", "timing", is_flag=True, help="Time the plugin on a 1-MP photo for the model card.")
@click.option("--threads", type=int, default=0, help="ONNX Runtime threads for scoring and timing (0 = all).")
@click.option("--int8", is_flag=True, help=INT8_HELP)
def export(
    checkpoint: Path,
    out: Path,
    val: Path | None,
    eval_limit: int,
    recipe: str | None,
    name,
    version,
    description,
    timing,
    threads,
    int8,
) -> None:
    """Export a training checkpoint (or run folder) as a plugin folder: ONNX, manifest, model card."""
    from .export import publish_plugin

    try:
        manifest, table = publish_plugin(
            checkpoint, out, val=val, recipe=recipe, limit=eval_limit, threads=threads, timing=timing,
            int8=int8, name=name, version=version, description=description,
        )  # fmt: skip
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    metrics = manifest["metrics"]
    click.echo(
        f"{out}: {metrics['parameters']:,} parameters, {metrics['gflops_per_input_mp']} GFLOPs/input MP,"
        f" ONNX parity max abs diff {metrics['onnx_parity_max_abs_diff']:.2g}"
    )
    if "int8_vs_fp32_psnr" in metrics:
        click.echo(
            f"int8 model {manifest['model']['int8_file']}: agrees with fp32 to {metrics['int8_vs_fp32_psnr']} dB"
        )
    if table:
        click.echo(table)


@click.command()
@click.argument("plugin_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Photos to calibrate on (default: the plugin's training data, if this machine has it).",
)
@click.option("--recipe", help="Damage for the calibration inputs (default: the one the plugin trained on).")
def quantize(plugin_dir: Path, data: tuple[Path, ...], recipe: str | None) -> None:
    """Add an int8 copy of a plugin's model (convs quantized), which photosr run then uses on CPU.

    The fp32 model stays (CUDA and `--precision fp32` use it); the manifest gains `int8_file` and
    `int8_sha256`, and `metrics.int8_vs_fp32_psnr` says how closely the two agree.
    """
    from .data import resolve_crappifier
    from .export import add_int8_model, calibration_inputs, read_manifest, write_manifest

    try:
        manifest = read_manifest(plugin_dir)
        training, model = manifest.get("training", {}), manifest["model"]
        folders = list(data) or [d for d in training.get("data", []) if Path(d).exists()]
        if not folders:
            raise UsageError("no calibration photos: the plugin's training data is not here; give --data")
        trained = training.get("recipe")
        recipe = recipe or (None if trained in (None, "", "(task preset)") else trained)
        crappifier = resolve_crappifier(recipe, task=manifest["task"], scale=model.get("scale", 1))
        inputs = calibration_inputs(
            folders,
            crappifier,
            scale=model.get("scale", 1),
            multiple=model.get("size_multiple", 1),
            takes_quality=model.get("input") == QUALITY_INPUT,
        )
        agreement = add_int8_model(plugin_dir, manifest, inputs)
        write_manifest(plugin_dir, manifest)
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{plugin_dir}: wrote {model['int8_file']}; agrees with the fp32 model to {agreement} dB PSNR")


@click.command(name="eval")
@click.option(
    "--plugin", "plugin_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option(
    "--data", type=click.Path(exists=True, path_type=Path), required=True, help="Folder of clean photos."
)
@click.option("--recipe", help="Degradation (default: the one the plugin was trained with).")
@click.option("--limit", type=int, default=0, help="Only the first N photos (0 = all).")
@click.option("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores).")
def evaluate(plugin_dir: Path, data: Path, recipe: str | None, limit: int, threads: int) -> None:
    """Score a plugin: PSNR/SSIM (Y channel, `scale` border cropped) against bicubic or the damaged input."""
    from .evaluate import evaluate_plugin, format_table

    try:
        table = evaluate_plugin(plugin_dir, data, recipe=recipe, limit=limit, threads=threads)
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    click.echo(format_table(table))


__all__ = ["crappify", "evaluate", "export", "quantize", "train"]
