"""Input discovery and output naming for batches.

`discover` turns the paths a user typed into an ordered list of `Job(src, rel)`: `rel` is where the file
sits relative to the folder it was found in, so the output tree mirrors the input tree. A folder given on
the command line maps to the output folder itself; a file given on its own maps to its bare name.
`plan_outputs` names every output and refuses (per file, with a reason) outputs that would overwrite an
input or collide with another output of the same batch.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from photosr.errors import UsageError

# Extensions looked at inside folders. A file named on the command line is taken whatever its name.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
    | {".heic", ".heif", ".avif", ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k", ".jxl"}
)

# OS droppings, sync/download partials and editor backups: never photos, often unreadable or half written.
_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
_JUNK_SUFFIXES = (".part", ".crdownload", ".tmp", ".temp", ".download", ".partial", ".photosr-tmp")
_JUNK_DIRS = frozenset({"@eadir", "__macosx", "$recycle.bin", "system volume information"})

FORMAT_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
# Extensions that already name a format: `--format jpeg` keeps `photo.jpeg` as `.jpeg`, not `.jpg`.
_SAME_FORMAT = {
    "png": {".png"},
    "jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "webp": {".webp"},
    "tiff": {".tif", ".tiff"},
}
_WRITABLE = frozenset().union(*_SAME_FORMAT.values())


class Job(NamedTuple):
    """One input file: `src` as found on disk, `rel` its path relative to the input it came from.

    A named tuple, so `for src, rel in discover(...)` works as well as `job.src`.
    """

    src: Path
    rel: Path


@dataclass(frozen=True)
class PlannedOutput:
    """A job with its output path, or the reason it cannot be written (`error` set, nothing to do)."""

    job: Job
    dst: Path
    error: str | None = None


def is_junk(name: str) -> bool:
    """True for names that are never photos: dotfiles, `._*`, Thumbs.db, partial downloads, temp files."""
    lower = name.lower()
    if lower.startswith(".") or lower.endswith("~") or lower in _JUNK_NAMES:
        return True
    return lower.endswith(_JUNK_SUFFIXES)


def _matches(rel: Path, patterns: Sequence[str]) -> bool:
    # Case-insensitive: users write `*.jpg` and expect IMG_0001.JPG. A pattern may match the whole
    # relative path, the file name, or a parent folder (`--exclude raw` drops everything under raw/).
    text = rel.as_posix().lower()
    candidates = [text, rel.name.lower()]
    candidates += [p.as_posix().lower() for p in rel.parents if p != Path(".")]
    return any(fnmatch.fnmatchcase(c, p.lower()) for p in patterns for c in candidates)


def _walk(folder: Path, recursive: bool, skip_dirs: frozenset[Path]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        if not recursive:
            dirs[:] = []
        # Pruning in place stops os.walk descending into junk folders and the output folder.
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d.lower() not in _JUNK_DIRS
            and (root_path / d).resolve() not in skip_dirs
        ]
        for name in files:
            if not is_junk(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield root_path / name


def discover(
    inputs: Iterable[str | Path],
    *,
    recursive: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_dirs: Iterable[str | Path] = (),
) -> list[Job]:
    """Expand files and folders into jobs, in input order then sorted by relative path.

    Inside folders only image extensions are taken and junk is skipped; `include` globs (any must match)
    and `exclude` globs (none may match) apply to the relative path of every file. `skip_dirs` (e.g. the
    output folder) are never walked into. A file reached twice is listed once. Raises UsageError for an
    input that does not exist.
    """
    skip = frozenset(Path(d).resolve() for d in skip_dirs)
    jobs: list[Job] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [Job(f, f.relative_to(path)) for f in _walk(path, recursive, skip)]
            found.sort(key=lambda job: job.rel.as_posix())
        elif path.is_file():
            found = [Job(path, Path(path.name))]
        else:
            raise UsageError("no such file or folder", path)
        for job in found:
            if include and not _matches(job.rel, include):
                continue
            if exclude and _matches(job.rel, exclude):
                continue
            key = job.src.resolve()
            if key not in seen:
                seen.add(key)
                jobs.append(job)
    return jobs


def output_path(
    job: Job | str | Path, out_dir: str | Path, *, format: str = "keep", suffix: str = ""
) -> Path:
    """Where a job's result goes: OUT/<rel folder>/<stem><suffix><extension of the output format>.

    `format="keep"` keeps the source extension (PNG for formats photosr cannot write: GIF, BMP, HEIC...);
    otherwise the extension names the new format, keeping a source extension that already names it
    (`.jpeg` stays `.jpeg` with `format="jpeg"`).
    """
    rel = job.rel if isinstance(job, Job) else Path(job)
    ext = rel.suffix
    if format == "keep" and ext.lower() not in _WRITABLE:
        ext = ".png"  # what io.save_photo writes for sources it cannot write back (GIF, BMP, HEIC, ...)
    elif format != "keep":
        if format not in FORMAT_EXTENSIONS:
            raise UsageError(f"unknown output format {format!r}; choose keep, {', '.join(FORMAT_EXTENSIONS)}")
        if ext.lower() not in _SAME_FORMAT[format]:
            ext = FORMAT_EXTENSIONS[format]
    return Path(out_dir) / rel.parent / f"{rel.stem}{suffix}{ext}"


def plan_outputs(
    jobs: Sequence[Job], out_dir: str | Path, *, format: str = "keep", suffix: str = ""
) -> list[PlannedOutput]:
    """Name every output; refuse one that would overwrite any input or that an earlier job already claims.

    Paths are compared case-insensitively because photo folders often live on case-insensitive disks.
    """
    inputs = {_key(job.src) for job in jobs}
    claimed: dict[str, Path] = {}
    planned = []
    for job in jobs:
        dst = output_path(job, out_dir, format=format, suffix=suffix)
        key = _key(dst)
        error = None
        if key in inputs:
            error = f"{job.src}: output {dst} would overwrite an input; choose another -o or a --suffix"
        elif key in claimed:
            error = f"{job.src}: output {dst} is already the output of {claimed[key]}"
        else:
            claimed[key] = job.src
        planned.append(PlannedOutput(job, dst, error))
    return planned


def _key(path: Path) -> str:
    return os.path.normcase(str(path.resolve())).lower()


__all__ = [
    "FORMAT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "Job",
    "PlannedOutput",
    "discover",
    "is_junk",
    "output_path",
    "plan_outputs",
]
