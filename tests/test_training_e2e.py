"""End to end: a custom crappify file and a TOML recipe each drive a tiny `photosr train`; the loss goes
down; the exported plugin runs through `photosr run` and matches PyTorch; resume continues the step count."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

torch = pytest.importorskip("torch")

from photosr.training.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from photosr.training.config import TrainConfig  # noqa: E402
from photosr.training.trainer import train  # noqa: E402

from photosr.cli import main  # noqa: E402


def _photo(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Smooth colour gradients plus a few edges: learnable, unlike white noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(1, 4, 3)
    rgb = np.stack([0.5 + 0.4 * np.sin(f[i] * np.pi * (x + (i + 1) * y)) for i in range(3)], -1)
    rgb[size // 3 : size // 2, :, :] *= 0.6
    return (rgb * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for folder, count in (("train", 6), ("val", 2)):
        (root / folder / "sub").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_photo(rng)).save(root / folder / "sub" / f"p{i}.png")
    return root / "train", root / "val"


CRAPPIFY_SOURCE = textwrap.dedent(
    """
    from PIL import ImageEnhance

    def darken(image, rng):
        # a damage a tiny net learns in a few steps: 30 % darker, slightly random
        return ImageEnhance.Brightness(image).enhance(0.7 + 0.02 * float(rng.random()))
    """
)

TINY_UNET = "model={channels=[8, 16], blocks=1}"
COMMON = ["--patch", "16", "--batch-size", "4", "--threads", "1", "--workers", "0", "--lr", "3e-3"]


def _run_cli(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _loss_went_down(run_dir: Path) -> None:
    history = load_checkpoint(run_dir / "last.pt")["history"]
    losses = history["loss"]
    assert len(losses) >= 4
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_custom_crappify_file_trains_and_plugin_runs(photo_dirs, tmp_path: Path) -> None:
    train_dir, val_dir = photo_dirs
    script = tmp_path / "my_damage.py"
    script.write_text(CRAPPIFY_SOURCE)
    plugin, run_dir = tmp_path / "plugin", tmp_path / "run"
    out = _run_cli(
        ["train", "--task", "restore", "--data", str(train_dir), "--val", str(val_dir), "--crappify",
         f"{script}:darken", "--val-recipe", "noise10-jpeg30", "--arch", "resunet", "--set", TINY_UNET,
         "--steps", "40", "--set", "log_every=5", "--run-dir", str(run_dir), "--out", str(plugin), *COMMON]
    )  # fmt: skip
    assert "identity" in out and "restore" in out  # the scores table
    assert "damage `noise10-jpeg30`" in out  # scored on the fixed benchmark damage, not the training one
    _loss_went_down(run_dir)
    manifest = (plugin / "photosr.toml").read_text()
    assert "darken" in manifest and "source_sha256" in manifest and "command" in manifest
    assert 'recipe = "noise10-jpeg30"' in manifest
    assert (plugin / "README.md").is_file() and (plugin / "sheet.png").is_file()
    # The run folder records the command too, so a later `photosr export RUN` card still says how to retrain.
    _run_cli(["export", str(run_dir), "--out", str(tmp_path / "again")])
    card = (tmp_path / "again" / "README.md").read_text()
    assert "- command: `photosr train " in card and f"{script}:darken" in card

    # The plugin through the real runtime CLI equals the PyTorch model on the same photo.
    src = val_dir / "sub" / "p0.png"
    dest = tmp_path / "out"
    _run_cli(["run", "--plugin", str(plugin), "--task", "restore", str(src), "-o", str(dest)])
    produced = np.asarray(Image.open(next(dest.rglob("*.png"))).convert("RGB"))
    model = model_from_checkpoint(load_checkpoint(plugin / "checkpoint.pt"))
    x = (
        torch.from_numpy(np.asarray(Image.open(src).convert("RGB")).transpose(2, 0, 1).copy()).float()[None]
        / 255
    )
    with torch.no_grad():
        expected = (model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    assert produced.shape == expected.shape
    assert np.abs(produced.astype(float) - expected).max() <= 2  # rounding and tile blending only


def test_toml_recipe_trains_an_upscaler(photo_dirs, tmp_path: Path) -> None:
    train_dir, val_dir = photo_dirs
    recipe = tmp_path / "shrink.toml"
    # A fixed fade on top of the shrink, so there is more to learn than bicubic already gets right.
    recipe.write_text(
        'name = "shrink-fade"\nscale = 2\n\n[[steps]]\nop = "downscale"\nmethods = ["bicubic"]\n\n'
        '[[steps]]\nop = "fade"\namount = 0.4\ncast = 0.0\n'
    )
    run_dir, plugin = tmp_path / "run", tmp_path / "plugin"
    _run_cli(
        ["train", "--task", "upscale", "--scale", "2", "--data", str(train_dir), "--val", str(val_dir),
         "--recipe", str(recipe), "--arch", "plain", "--set", "model={channels=8, convs=2}", "--steps", "40",
         "--set", "log_every=5", "--run-dir", str(run_dir), "--out", str(plugin), *COMMON]
    )  # fmt: skip
    _loss_went_down(run_dir)
    assert "scale = 2" in (plugin / "photosr.toml").read_text()
    out = _run_cli(["eval", "--plugin", str(plugin), "--data", str(val_dir)])
    assert "bicubic" in out and "upscale-x2" in out


def test_resume_continues_from_the_same_step(photo_dirs, tmp_path: Path) -> None:
    train_dir, _ = photo_dirs
    cfg = TrainConfig(
        task="upscale", scale=2, data=(str(train_dir),), recipe="upscale", arch="plain",
        model={"channels": 8, "convs": 1}, steps=6, patch=16, batch_size=2, workers=0, threads=1, log_every=2,
    )  # fmt: skip
    first = train(cfg, tmp_path / "run", command="photosr train --steps 6")
    assert first.step == 6
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    more = TrainConfig(**{**cfg.__dict__, "steps": 10})
    second = train(more, tmp_path / "run", resume=True, command="photosr train --resume run")
    assert second.step == 10  # 4 more steps, not 10 from scratch
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed["command"] == "photosr train --steps 6"  # the command that started the run
    assert resumed["history"]["step"][:3] == saved["history"]["step"] == [2, 4, 6]
    assert resumed["history"]["step"][3:] == [8, 10]
    assert not torch.equal(resumed["model"]["tail.weight"], saved["model"]["tail.weight"])
