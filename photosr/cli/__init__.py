"""`photosr` command line. Subcommands live in their own modules and are imported only when invoked,
so `photosr run` never imports the training stack (torch)."""

from __future__ import annotations

import importlib

import click

# name -> ("module:attribute" of a click command, one-line help shown without importing it)
_COMMANDS = {
    "run": ("photosr.cli.run:run", "Process photos and folders with one or more tasks."),
    "plugins": ("photosr.cli.plugins:plugins", "List, show and verify installed plugins."),
    "watch": ("photosr.cli.watch:watch", "Watch a folder and process every photo that lands in it."),
    "train": ("photosr.training.cli:train", "Train a plugin from photos and a crappification (train extra)."),
    "export": (
        "photosr.training.cli:export",
        "Export a training checkpoint as a plugin folder (train extra).",
    ),
    "quantize": (
        "photosr.training.cli:quantize",
        "Add an int8 copy of a plugin's model, 2.5-3x faster on CPU (train extra).",
    ),
    "eval": ("photosr.training.cli:evaluate", "Score a plugin: PSNR/SSIM against bicubic (train extra)."),
    "crappify": ("photosr.training.cli:crappify", "Preview a crappification recipe (train extra)."),
}
_TRAINING = {"train", "export", "quantize", "eval", "crappify"}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module_name, attr = _COMMANDS[name][0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            if name in _TRAINING:
                raise click.UsageError(
                    f"'photosr {name}' needs the training extra: pip install 'photosr[train]' ({err})"
                ) from err
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="photosr")
def main() -> None:
    """Bring photos back to life in bulk: restore, upscale, colorize, dewatermark, normalize."""
