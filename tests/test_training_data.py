"""Training data: folder discovery, in-memory photos, seeded patch streams, validation pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from photosr.training.data import (  # noqa: E402
    PatchStream,
    find_images,
    load_images,
    make_loader,
    mod_crop,
    resolve_crappifier,
    validation_pairs,
)

from photosr.errors import UsageError  # noqa: E402


def _images(count: int = 3, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size + 8 * i, 3), dtype=np.uint8) for i in range(count)]


def _stream(images: list[np.ndarray], scale: int = 2) -> PatchStream:
    crappifier = resolve_crappifier("upscale", task="upscale", scale=scale)
    return PatchStream(images, crappifier, scale=scale, patch=8, batch_size=4)


def test_find_images_recurses_and_skips_junk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("a/one.png", "a/b/two.JPG", ".hidden/three.png", "a/.four.png", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_images([tmp_path])] == ["two.JPG", "one.png"]
    with pytest.raises(UsageError, match="no such file"):
        find_images([tmp_path / "missing"])


def test_load_images_applies_exif_orientation_and_size_filter(tmp_path: Path) -> None:
    img = Image.new("RGB", (30, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the upright photo is 20 wide, 30 high
    img.save(tmp_path / "rot.jpg", exif=exif)
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    images = load_images(find_images([tmp_path]), min_side=16)
    assert len(images) == 1 and images[0].shape == (30, 20, 3) and images[0].dtype == np.uint8
    with pytest.raises(UsageError, match="no usable photos"):
        load_images(find_images([tmp_path]), min_side=64)


def test_stream_batches_have_the_right_shapes_and_ranges() -> None:
    lr, hr = next(iter(_stream(_images())))
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert lr.dtype == torch.float32 and lr.min() >= 0 and hr.max() <= 1


def test_stream_is_reproducible_from_the_seed_and_differs_across_seeds() -> None:
    stream = _stream(_images())

    def first(seed: int) -> torch.Tensor:
        return next(iter(make_loader(stream, workers=0, seed=seed)))[1]

    torch.manual_seed(5)
    a = first(5)
    torch.manual_seed(5)
    assert torch.equal(a, first(5))
    torch.manual_seed(6)
    assert not torch.equal(a, first(6))


def test_workers_get_different_streams() -> None:
    loader = make_loader(_stream(_images()), workers=2, seed=0)
    batches = iter(loader)
    a, b = next(batches)[1], next(batches)[1]  # consecutive batches come from the two workers
    assert not torch.equal(a, b)
    del batches, loader


def test_crappifier_with_the_wrong_output_size_is_reported() -> None:
    stream = PatchStream(_images(), lambda img, rng: img, scale=2, patch=8, batch_size=1)
    with pytest.raises(UsageError, match="expected 8x8"):
        next(iter(stream))


def test_quality_streams_add_the_damages_jpeg_quality_as_a_plane() -> None:
    """The fourth input plane is quality / 100 of the JPEG the damage ended with, or 0 when hidden
    (a QUALITY_HIDDEN share) or when there was no JPEG."""
    from photosr.training.data import QUALITY_HIDDEN, damaged_pair

    jpeg30 = resolve_crappifier("noise10-jpeg30", task="restore", scale=1)
    stream = PatchStream(_images(), jpeg30, scale=1, patch=16, batch_size=4, with_quality=True)
    rng = np.random.default_rng(0)
    planes = []
    for _ in range(200):
        damaged, target = stream.sample(rng)
        assert damaged.shape == (4, 16, 16) and target.shape == (3, 16, 16)
        planes.append(damaged[3])
    values = torch.stack(planes)
    assert all(torch.all(p == p[0, 0]) for p in values)  # constant over the patch
    firsts = values[:, 0, 0]
    assert set(firsts.tolist()) == {0.0, float(np.float32(0.30))}
    assert abs(float((firsts == 0).float().mean()) - QUALITY_HIDDEN) < 0.1
    lr, hr, quality = damaged_pair(_images(1)[0], jpeg30, scale=1, seed=0)
    assert quality == 30 and lr.shape == hr.shape

    def darker(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return Image.fromarray(np.asarray(img) // 2)

    plain = PatchStream(_images(), darker, scale=1, patch=16, batch_size=4, with_quality=True)
    assert not any(plain.sample(rng)[0][3].any() for _ in range(10))  # no JPEG: nothing to tell


def test_validation_pairs_are_fixed_and_mod_cropped() -> None:
    crappifier = resolve_crappifier("bicubic", task="upscale", scale=4)
    pairs = validation_pairs(_images(5, 42), crappifier, scale=4, crop=30, count=3)
    again = validation_pairs(_images(5, 42), crappifier, scale=4, crop=30, count=3)
    assert len(pairs) == 3
    for (lr, hr, quality), (lr2, _, _) in zip(pairs, again, strict=True):
        assert hr.shape == (28, 28, 3) and lr.shape == (7, 7, 3)
        assert quality is None  # no JPEG in this damage
        assert np.array_equal(lr, lr2)
    assert mod_crop(np.zeros((10, 7, 3)), 4).shape == (8, 4, 3)
    with pytest.raises(UsageError, match="only makes sense for upscaling"):
        resolve_crappifier("bicubic", task="restore", scale=1)


def test_a_damage_draw_that_skipped_every_step_is_drawn_again() -> None:
    """Random 1x recipes sometimes leave the photo untouched; an evaluation pair must carry damage."""
    from photosr.training.data import degrade_pair

    calls = []

    def sometimes(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        calls.append(1)
        if len(calls) < 3:
            return img  # the first two draws skip everything
        return Image.fromarray(np.asarray(img) // 2)

    hr = _images(1, 16)[0]
    lr, target = degrade_pair(hr, sometimes, scale=1, seed=0)
    assert len(calls) == 3 and np.array_equal(lr, hr // 2) and np.array_equal(target, hr)
    lr, _ = degrade_pair(hr, lambda img, rng: img, scale=1, seed=0)  # a recipe that never damages: gives up
    assert np.array_equal(lr, hr)


def test_pregenerated_pairs_are_sharded_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import photosr.training.data as data

    monkeypatch.setattr(data, "SHARD_SIZE", 3)  # 1,000 in real use; 3 keeps the test small
    shards = data.pregenerate_pairs(_stream(_images()), tmp_path, count=7, seed=1)
    assert [s.name for s in shards] == ["shard-0000", "shard-0001", "shard-0002"]
    assert len(list(shards[0].glob("*.png"))) == 6  # 3 pairs
    pairs = data.PairFolder(tmp_path)
    assert len(pairs) == 7
    lr, hr = pairs[6]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)
    with pytest.raises(UsageError, match="no pregenerated pairs"):
        data.PairFolder(tmp_path / "empty")


def test_mask_targets_carry_the_overlay_alpha() -> None:
    """with_mask: the target's 4th channel is the alpha the dewatermark recipe's overlays drew."""
    from photosr.training.data import PatchStream, resolve_crappifier

    rng = np.random.default_rng(0)
    ramp = np.linspace(60, 190, 96, dtype=np.float32)  # smooth, so JPEG alone changes little
    flat = np.full((96, 96), 128, np.float32)
    images = [
        np.stack([ramp[None, :].repeat(96, 0), ramp[:, None].repeat(96, 1), flat], axis=2).astype(np.uint8)
    ]
    crappifier = resolve_crappifier("dewatermark", task="dewatermark", scale=1)
    stream = PatchStream(images, crappifier, scale=1, patch=64, batch_size=1, with_mask=True)
    masks = []
    for _ in range(6):
        lr, target = stream.sample(rng)
        assert lr.shape == (3, 64, 64) and target.shape == (4, 64, 64)
        masks.append(target[3])
        change, alpha = (lr - target[:3]).abs().amax(0), target[3]
        if (alpha > 0.1).any() and (alpha == 0).any():  # drawn pixels changed far more than the rest
            assert float(change[alpha > 0.1].mean()) > 3 * float(change[alpha == 0].mean())
    assert any(float(m.max()) > 0.1 for m in masks) and all(float(m.min()) >= 0 for m in masks)
    with pytest.raises(UsageError, match="mask head"):
        PatchStream(images, lambda img, rng: img, scale=1, patch=64, batch_size=1, with_mask=True)
