"""`photosr` command line. Subcommands live in their own modules and are imported only when invoked,
so `photosr run` never imports the training stack (torch)."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command
_COMMANDS = {
    "run": "photosr.cli.run:run",
    "plugins": "photosr.cli.plugins:plugins",
    "watch": "photosr.cli.watch:watch",
    "train": "photosr.training.cli:train",
    "export": "photosr.training.cli:export",
    "eval": "photosr.training.cli:evaluate",
    "crappify": "photosr.training.cli:crappify",
}
_TRAINING = {"train", "export", "eval", "crappify"}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            if name in _TRAINING:
                raise click.UsageError(
                    f"'photosr {name}' needs the training extra: pip install 'photosr[train]' ({err})"
                ) from err
            raise
        return getattr(module, attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="photosr")
def main() -> None:
    """Bring photos back to life in bulk: restore, upscale, colorize, dewatermark, normalize."""
