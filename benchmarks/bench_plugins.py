"""Which plugins the benchmarks measure, and the pipeline they run them through (the one users run).

The bundled plugins are found by the plugin registry, so a newly bundled plugin is measured without
touching the scripts; `--plugin DIR` adds plugin folders (or folders of them) from elsewhere, e.g. a
fresh export not yet bundled.

`--precision auto,fp32` (every plugin benchmark takes it) measures each plugin once per precision in the
same process: `precision_variants` says which rows that makes, what they are called and which model file
(int8 or fp32) each runs, and leaves out a row that would only rerun a model file already measured.
`--ensemble 1,8` (quality.py, speed.py) then runs each of those rows once per self-ensemble size
(`photosr run --ensemble N`); the rows after the first size read "<row> (ensemble 8)".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from photosr.engine import EngineOptions
from photosr.pipeline import ENSEMBLES, PRECISIONS, Pipeline, ProcessOptions
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


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    """`--plugin DIR` and `--only NAME` (both repeatable): what `find_plugins` gets."""
    parser.add_argument("--plugin", action="append", default=[], help="extra plugin folder (repeatable)")
    parser.add_argument("--only", action="append", default=[], help="only this plugin (repeatable)")


def pipeline_for(plugin: Plugin, *, threads: int, **options: Any) -> Pipeline:
    """A Pipeline running `plugin` for its own task, as `photosr run --plugin FOLDER` would."""
    opts = ProcessOptions(
        tasks=(plugin.manifest.task,), plugins=(str(plugin.folder),), threads=threads, **options
    )
    return Pipeline(opts, registry=PluginRegistry())


def _parse_choices(text: str, what: str, choices: Sequence[Any], convert: Any = str) -> tuple[Any, ...]:
    """ "a, b,a" -> (a, b): `choices` members (after `convert`), in the order given, each once."""
    try:
        values = tuple(dict.fromkeys(convert(v.strip()) for v in text.split(",") if v.strip()))
    except ValueError:
        values = ()
    if not values or any(v not in choices for v in values):
        raise argparse.ArgumentTypeError(
            f"{what} must be a comma-separated list of {', '.join(map(str, choices))}, got {text!r}"
        )
    return values


def parse_precisions(text: str) -> tuple[str, ...]:
    """`--precision auto,fp32` -> ("auto", "fp32"): known precisions, in the order given, each once."""
    return _parse_choices(text, "precision", PRECISIONS)


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        type=parse_precisions,
        default=("auto",),
        help="comma-separated precisions, one row per plugin and precision, e.g. auto,fp32 "
        "(auto = what photosr run picks: int8 on CPU when the plugin ships one; default: auto)",
    )


def parse_ensembles(text: str) -> tuple[int, ...]:
    """`--ensemble 1,8` -> (1, 8): self-ensemble sizes photosr run accepts, in the order given, each once."""
    return _parse_choices(text, "ensemble", ENSEMBLES, int)


def add_ensemble_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ensemble",
        type=parse_ensembles,
        default=(None,),
        help="comma-separated self-ensemble sizes (photosr run --ensemble), one row per plugin, precision "
        "and size, e.g. 1,8 (default: each plugin's own, as photosr run without --ensemble)",
    )


@dataclass(frozen=True)
class Variant:
    """One row of a plugin: the precision it runs at, the model file that picks (`model`) and its
    self-ensemble size (None: the plugin's manifest default, as `photosr run` without --ensemble)."""

    precision: str
    suffix: str  # "" for the first precision (the plugin's usual row name), else " (fp32)" etc.
    model: str  # "int8" or "fp32": which of the plugin's model files runs
    path: Path
    ensemble: int | None = None

    def name(self, base: str) -> str:
        """The row name: `base` for the first precision and size, then e.g. "base (fp32) (ensemble 8)"."""
        return base + self.suffix


def model_kind(plugin: Plugin, precision: str, device: str = "cpu") -> tuple[str, Path]:
    """("int8" | "fp32", path) of the model file a session at `precision` on `device` runs."""
    path = plugin.model_path_for(EngineOptions(device=device, precision=precision))
    return ("int8" if path == plugin.int8_model_path else "fp32"), path


def precision_variants(
    plugin: Plugin, precisions: Sequence[str], device: str = "cpu"
) -> tuple[list[Variant], list[str]]:
    """The rows `plugin` gets for `precisions`, and footnotes for the precisions left out.

    The first precision always gets a row, under the plugin's plain name. A later one is left out when it
    would run a model file an earlier row already runs: "fp32" and "int8" next to "auto" on a plugin
    without an int8 model; on one with an int8 model, "int8" next to "auto" where auto picks int8 (CPU)
    or "fp32" next to "auto" where it keeps fp32 (CUDA, a CPU without int8 dot products).
    """
    variants: list[Variant] = []
    notes: list[str] = []
    for i, precision in enumerate(precisions):
        kind, path = model_kind(plugin, precision, device)
        same = next((v for v in variants if v.path == path), None)
        if same is None:
            variants.append(Variant(precision, f" ({precision})" if i else "", kind, path))
        elif plugin.int8_model_path is None:
            notes.append(
                f"{plugin.name}: no int8 model; no {precision} row (it would rerun the {same.precision} "
                "row's fp32 model)"
            )
        else:
            notes.append(
                f"{plugin.name}: {precision} runs the same {kind} model as {same.precision}; no extra row"
            )
    return variants, notes


def with_ensembles(variants: Sequence[Variant], ensembles: Sequence[int | None]) -> list[Variant]:
    """Each variant once per self-ensemble size; after the first size the row name gains " (ensemble N)"."""
    return [
        replace(v, ensemble=n, suffix=v.suffix + (f" (ensemble {n})" if i else ""))
        for v in variants
        for i, n in enumerate(ensembles)
    ]


def describe(plugin: Plugin) -> str:
    """A one-line label, e.g. `upscale-x2 0.1.0 (upscale x2, bundled)`."""
    m = plugin.manifest
    return f"{m.name} {m.version} ({m.task} x{m.model.scale}, {plugin.source})"


__all__ = [
    "Variant",
    "add_plugin_options",
    "add_ensemble_option",
    "add_precision_option",
    "describe",
    "find_plugins",
    "model_kind",
    "parse_ensembles",
    "parse_precisions",
    "pipeline_for",
    "precision_variants",
    "with_ensembles",
]
