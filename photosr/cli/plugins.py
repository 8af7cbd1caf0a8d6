"""`photosr plugins list|show|verify`: what is installed, what a plugin is, whether its model is intact."""

from __future__ import annotations

import json
from typing import Any

import click

from photosr.errors import PhotosrError, PluginError


def _registry():
    from photosr.plugins import default_registry

    return default_registry()


@click.group()
def plugins() -> None:
    """List, show and verify installed plugins.

    Plugins are folders (photosr.toml + model.onnx + README.md) found in, first match of a name wins:
    the folders in PHOTOSR_PLUGIN_PATH, the per-user plugin folder, packages registering the
    'photosr.plugins' entry point, and the plugins bundled with photosr. `photosr plugins list` shows
    where it looked when nothing is installed.
    """


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
def list_plugins(as_json: bool) -> None:
    """Installed plugins: name, version, task, scale, int8 model, source and folder; then any that could
    not be loaded."""
    registry = _registry()
    rows = [
        {
            "name": p.name,
            "version": p.manifest.version,
            "task": p.manifest.task,
            "scale": p.manifest.model.scale,
            "int8": p.manifest.model.int8_file or None,
            "source": p.source,
            "folder": str(p.folder),
        }
        for p in registry
    ]
    broken = [{"path": str(path), "error": str(err)} for path, err in registry.broken]
    shadowed = [{"path": str(path), "used": str(p.folder), "name": p.name} for path, p in registry.shadowed]
    searched = [{"path": str(path), "source": source} for path, source in registry.searched]
    if as_json:
        document = {"plugins": rows, "broken": broken, "shadowed": shadowed, "searched": searched}
        click.echo(json.dumps(document, indent=2))
        return
    _print_table(rows)
    if not rows:
        for item in searched:
            click.echo(f"searched: {item['path']} ({item['source']})")
    for item in shadowed:
        click.echo(f"shadowed: {item['path']} (name {item['name']!r} already from {item['used']})")
    for item in broken:
        click.echo(f"broken: {item['error']}")


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no plugins installed (see PHOTOSR_PLUGIN_PATH or `photosr plugins --help`)")
        return
    columns = ["name", "version", "task", "scale", "int8", "source", "folder"]
    text = [["-" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in text:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@plugins.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def show(name: str, as_json: bool) -> None:
    """Manifest, model file, model card and metrics of the plugin NAME (a name or a folder path)."""
    try:
        plugin = _registry().get(name)
    except PhotosrError as err:
        raise click.ClickException(str(err)) from err
    data = plugin.manifest.to_dict()
    data["folder"] = str(plugin.folder)
    data["model_path"] = str(plugin.model_path)
    int8 = plugin.int8_model_path
    data["int8_model_path"] = str(int8) if int8 is not None else None
    data["model_card"] = str(plugin.model_card) if plugin.model_card else None
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_mapping(data)


def _print_mapping(data: dict[str, Any], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{indent}{key}:" + ("" if value else " (none)"))
            _print_mapping(value, indent + "  ")
        else:
            click.echo(f"{indent}{key}: {'-' if value in (None, '') else value}")


@plugins.command("verify")
@click.argument("names", nargs=-1)
def verify(names: tuple[str, ...]) -> None:
    """Check model hashes (fp32 and int8 models) of the named plugins (all when none given); exit 1 if
    any fails.

    With no names, plugins that could not be loaded at all count as failures too.
    """
    registry = _registry()
    failures = 0
    if not names and not len(registry) and not registry.broken:
        click.echo("no plugins installed")
    if not names:
        for _, err in registry.broken:
            click.echo(f"FAILED {err}")
            failures += 1
    for name in names or registry.names():
        try:
            plugin = registry.get(name)
            for path in plugin.model_paths:
                plugin.verify(path, force=True)
        except PluginError as err:
            click.echo(f"FAILED {name}: {err}")
            failures += 1
        else:
            click.echo(f"ok     {plugin.name}")
    if failures:
        click.echo(f"{failures} plugin(s) failed verification", err=True)
        raise click.exceptions.Exit(1)
