"""Which plugins the benchmarks measure, and the pipeline they run them through (the one users run).

The bundled plugins are found by the plugin registry, so a newly bundled plugin is measured without
touching the scripts; `--plugin DIR` adds plugin folders (or folders of them) from elsewhere, e.g. a
fresh export not yet bundled.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from photosr.pipeline import Pipeline, ProcessOptions
from photosr.plugins import Plugin, PluginRegistry, bundled_plugin_dir


def find_plugins(extra: Sequence[str | Path] = (), only: Sequence[str] = ()) -> list[Plugin]:
    """Bundled plugins plus those in `extra` folders, by name; `only` keeps just the named ones.

    Broken plugin folders are reported on stderr and skipped; an unknown name in `only` is an error.
    """
    registry = PluginRegistry()
    for folder in extra:  # first, so an extra folder wins over a bundled plugin of the same name
        registry.discover(folder, "--plugin")
    bundled = bundled_plugin_dir()
    if bundled is not None:
        registry.discover(bundled, "bundled")
    for folder, error in registry.broken:
        print(f"skipping {folder}: {error}", file=sys.stderr)
    missing = sorted(set(only) - set(registry.names()))
    if missing:
        raise SystemExit(f"no plugin named {', '.join(missing)}; found: {', '.join(registry.names())}")
    return [p for p in registry if not only or p.name in only]


def pipeline_for(plugin: Plugin, *, threads: int, **options: Any) -> Pipeline:
    """A Pipeline running `plugin` for its own task, as `photosr run --plugin FOLDER` would."""
    opts = ProcessOptions(
        tasks=(plugin.manifest.task,), plugins=(str(plugin.folder),), threads=threads, **options
    )
    return Pipeline(opts, registry=PluginRegistry())


def describe(plugin: Plugin) -> str:
    """A one-line label, e.g. `upscale-x2 0.1.0 (upscale x2, bundled)`."""
    m = plugin.manifest
    return f"{m.name} {m.version} ({m.task} x{m.model.scale}, {plugin.source})"


__all__ = ["describe", "find_plugins", "pipeline_for"]
