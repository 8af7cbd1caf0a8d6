"""Input discovery, junk skipping and output naming (no images needed: discovery looks at names only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photosr.batch import Job, discover, is_junk, output_path, plan_outputs
from photosr.errors import UsageError


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _rels(jobs: list[Job]) -> list[str]:
    return [job.rel.as_posix() for job in jobs]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    _touch(
        root,
        "b.jpg",
        "a.PNG",
        "notes.txt",
        "sub/c.tif",
        "sub/deeper/d.webp",
        "raw/e.jpg",
        "Thumbs.db",
        "desktop.ini",
        ".DS_Store",
        "._a.jpg",
        ".hidden.jpg",
        "half.jpg.part",
        "dl.jpg.crdownload",
        "x.jpg.tmp",
        "backup.jpg~",
        ".git/f.jpg",
        "@eaDir/thumb.jpg",
    )
    return root


def test_folder_not_recursive_takes_images_only_sorted(tree: Path) -> None:
    assert _rels(discover([tree])) == ["a.PNG", "b.jpg"]


def test_recursive_mirrors_relative_paths_and_skips_junk(tree: Path) -> None:
    jobs = discover([tree], recursive=True)
    assert _rels(jobs) == ["a.PNG", "b.jpg", "raw/e.jpg", "sub/c.tif", "sub/deeper/d.webp"]
    assert all(job.src == tree / job.rel for job in jobs)


def test_include_and_exclude_globs_on_relative_path(tree: Path) -> None:
    assert _rels(discover([tree], recursive=True, include=["*.jpg"])) == ["b.jpg", "raw/e.jpg"]
    # Case-insensitive, and a bare folder name excludes everything under it.
    assert _rels(discover([tree], recursive=True, include=["*.png", "sub/*"], exclude=["raw"])) == [
        "a.PNG",
        "sub/c.tif",
        "sub/deeper/d.webp",
    ]
    assert _rels(discover([tree], recursive=True, exclude=["sub/deeper/*", "*.jpg"])) == [
        "a.PNG",
        "sub/c.tif",
    ]


def test_explicit_files_are_taken_whatever_their_name_and_deduplicated(tree: Path) -> None:
    jobs = discover([tree / "notes.txt", tree / "b.jpg", tree, tree / "b.jpg"])
    assert [job.src.name for job in jobs] == ["notes.txt", "b.jpg", "a.PNG"]
    assert _rels(jobs) == ["notes.txt", "b.jpg", "a.PNG"]


def test_order_is_deterministic_across_calls(tree: Path) -> None:
    assert discover([tree], recursive=True) == discover([tree], recursive=True)


def test_jobs_unpack_as_src_rel_pairs(tree: Path) -> None:
    (src, rel), *_ = discover([tree])
    assert (src, rel) == (tree / "a.PNG", Path("a.PNG"))


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        discover([tmp_path / "nope"])


def test_skip_dirs_keeps_output_folder_out_of_discovery(tree: Path) -> None:
    _touch(tree, "out/old.jpg")
    assert "out/old.jpg" in _rels(discover([tree], recursive=True))
    assert "out/old.jpg" not in _rels(discover([tree], recursive=True, skip_dirs=[tree / "out"]))


@pytest.mark.parametrize(
    "name, junk",
    [
        ("Thumbs.db", True),
        ("thumbs.db", True),
        ("._IMG_1.JPG", True),
        (".DS_Store", True),
        ("IMG_1.JPG.part", True),
        ("IMG_1.jpg~", True),
        (".IMG_1.JPG.1a2b3c4d.photosr-tmp", True),  # io.save_photo's temp name
        ("IMG_1.JPG.photosr-tmp", True),
        ("IMG_1.JPG", False),
        ("my.photo.png", False),
    ],
)
def test_is_junk(name: str, junk: bool) -> None:
    assert is_junk(name) is junk


def test_output_path_mirrors_tree_with_suffix_and_format(tmp_path: Path) -> None:
    job = Job(Path("/x/in/sub/IMG_1.JPG"), Path("sub/IMG_1.JPG"))
    out = tmp_path / "out"
    assert output_path(job, out) == out / "sub/IMG_1.JPG"
    assert output_path(job, out, format="png", suffix="_x4") == out / "sub/IMG_1_x4.png"
    assert output_path(job, out, format="jpeg") == out / "sub/IMG_1.JPG"  # already a JPEG name
    assert output_path(Path("a.jpeg"), out, format="jpeg") == out / "a.jpeg"
    assert output_path(Path("a.png"), out, format="tiff") == out / "a.tif"
    assert output_path(Path("a.png"), out, format="webp") == out / "a.webp"
    assert output_path(Path("scan.TIFF"), out) == out / "scan.TIFF"
    assert output_path(Path("anim.gif"), out) == out / "anim.png"  # keep: GIF/BMP/HEIC are written as PNG
    assert output_path(Path("phone.HEIC"), out, suffix="_r") == out / "phone_r.png"
    with pytest.raises(UsageError, match="unknown output format"):
        output_path(job, out, format="gif")


def test_plan_refuses_overwriting_an_input_and_collisions(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "a.png", "b.jpg")
    jobs = discover([tmp_path])
    # Writing into the input folder with the same names would destroy the inputs.
    same = plan_outputs(jobs, tmp_path)
    assert all(p.error and "would overwrite an input" in p.error for p in same)
    # a.jpg and a.png both become a.png: the second one is refused, naming the first.
    planned = plan_outputs(jobs, tmp_path / "out", format="png")
    assert [p.error is None for p in planned] == [True, False, True]
    assert "already the output of" in planned[1].error and "a.jpg" in planned[1].error
    # A suffix into the same folder is fine.
    assert all(p.error is None for p in plan_outputs(jobs, tmp_path, suffix="_restored"))
