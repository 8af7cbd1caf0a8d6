"""Training data: photos decoded once into memory, random patches degraded on the fly in workers.

Decoding a PNG per sample would cost more than the training step itself, so every photo is decoded a
single time (through photosr's own loader, so EXIF orientation and colour profiles apply) into a uint8
array before the DataLoader forks its workers; workers share those arrays copy-on-write and only crop,
flip and crappify. Each worker draws from its own `numpy.random.Generator` seeded from torch's per-worker
seed, so a run is reproducible from `seed` and every worker sees a different stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from photosr.errors import ImageReadError, UsageError
from photosr.jpeg import quality_value

IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".webp",
    ".heic",
    ".heif",
    ".avif",
    ".ppm",
}
Crappifier = Callable[[Image.Image, np.random.Generator], Image.Image]
# Share of a quality-aware model's training inputs whose JPEG quality it is not told.
QUALITY_HIDDEN = 0.25


def resolve_crappifier(spec: str | None, *, task: str, scale: int) -> Crappifier:
    """The degradation of a run, from `photosr.training.degrade.load_crappifier`.

    "bicubic" is kept as an alias of the `upscale` preset (Pillow's antialiased bicubic downscale by
    the model's scale, the SR papers' protocol): the first upscale runs recorded that name.
    """
    from .degrade import load_crappifier

    if spec == "bicubic":
        if task != "upscale":
            raise UsageError(f"recipe 'bicubic' only makes sense for upscaling, not task {task!r}")
        spec = "upscale"
    return load_crappifier(spec, task=task, scale=scale)


def describe_crappifier(crappifier: Crappifier) -> dict[str, Any]:
    """Provenance of a degradation: its own description plus the hash of a custom source file."""
    describe = getattr(crappifier, "describe", None)
    info = dict(describe()) if describe else {"callable": repr(crappifier)}
    source_hash = getattr(crappifier, "source_hash", None)
    if source_hash is not None and source_hash() is not None:
        info["source_sha256"] = source_hash()
    return json.loads(json.dumps(info, default=str))


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files under the given folders (recursive, dotfiles skipped) or given directly, sorted."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_file():
            found.append(item)
        elif item.is_dir():
            for root, dirs, files in os.walk(item):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found += [
                    Path(root, f)
                    for f in files
                    if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
                ]
        else:
            raise UsageError("no such file or folder", item)
    return sorted(found)


def load_rgb_uint8(path: Path) -> np.ndarray:
    """One photo as HxWx3 uint8 sRGB, upright, decoded by photosr's loader when it is installed."""
    try:
        from photosr.io import load_photo
    except ImportError:
        load_photo = None
    if load_photo is not None:
        rgb = load_photo(path).rgb
        return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError) as err:
        raise ImageReadError(f"cannot decode: {err}", path) from err


def load_images(paths: Sequence[Path], *, min_side: int, limit: int = 0) -> list[np.ndarray]:
    """Decode photos into memory, keeping those at least `min_side` on both sides."""
    images = []
    for path in paths:
        rgb = load_rgb_uint8(path)
        if min(rgb.shape[:2]) >= min_side:
            images.append(rgb)
        if limit and len(images) >= limit:
            break
    if not images:
        raise UsageError(
            f"no usable photos (need at least {min_side}x{min_side} pixels) in {len(paths)} file(s)"
        )
    return images


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 0..1."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)


def random_dihedral(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/rotations, uniformly."""
    rgb = np.rot90(rgb, int(rng.integers(4)))
    return rgb[:, ::-1] if rng.integers(2) else rgb


class PatchStream(torch.utils.data.IterableDataset):
    """Endless (input, target) batches: random crops of the photos, degraded by `crappifier`.

    Photos are drawn with probability proportional to their area, so every pixel is equally likely to
    be seen. `patch` is the side of the model's input; targets are `patch * scale`. With `with_mask`
    (models with a mask head) the target has a fourth channel: the alpha of what the crappifier's
    overlays drew (`Crappifier.apply_with_mask`). With `with_quality` (quality-aware models) the input
    has a fourth plane: the JPEG quality the damage ended with (`photosr.jpeg.quality_value`).
    """

    def __init__(
        self,
        images: list[np.ndarray],
        crappifier: Crappifier,
        *,
        scale: int,
        patch: int,
        batch_size: int,
        with_mask: bool = False,
        with_quality: bool = False,
    ):
        super().__init__()
        if with_mask and not getattr(crappifier, "splittable", False):
            raise UsageError(
                f"a mask head needs a recipe crappification that reports its overlays, not {crappifier!r}"
            )
        self.images, self.crappifier = images, crappifier
        self.scale, self.patch, self.batch_size = scale, patch, batch_size
        self.with_mask, self.with_quality = with_mask, with_quality
        areas = np.array([img.shape[0] * img.shape[1] for img in images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        hr_side = self.patch * self.scale
        img = self.images[int(rng.choice(len(self.images), p=self.weights))]
        top = int(rng.integers(img.shape[0] - hr_side + 1))
        left = int(rng.integers(img.shape[1] - hr_side + 1))
        hr = random_dihedral(img[top : top + hr_side, left : left + hr_side], rng)
        clean = Image.fromarray(np.ascontiguousarray(hr))
        if self.with_mask:
            lr, mask = self.crappifier.apply_with_mask(clean, self.crappifier.sample(rng))
        else:
            lr = self.crappifier(clean, rng).convert("RGB")
        if lr.size != (self.patch, self.patch):
            raise UsageError(
                f"crappifier returned {lr.size[0]}x{lr.size[1]}, expected {self.patch}x{self.patch}"
            )
        target = to_tensor(hr)
        if self.with_mask:
            target = torch.cat([target, torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None]])
        damaged = to_tensor(np.asarray(lr))
        if self.with_quality:
            # Sometimes hidden, as for photos whose quality photosr cannot know (not a JPEG file, or
            # changed since): the model keeps a blind fallback.
            quality = None if rng.random() < QUALITY_HIDDEN else lr.info.get("jpeg_quality")
            damaged = torch.cat([damaged, torch.full_like(damaged[:1], quality_value(quality))])
        return damaged, target

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # torch.initial_seed() is base_seed + worker id inside a worker: distinct, reproducible streams.
        rng = np.random.default_rng(torch.initial_seed())
        while True:
            pairs = [self.sample(rng) for _ in range(self.batch_size)]
            yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


SHARD_SIZE = 1000


def pregenerate_pairs(stream: PatchStream, out: Path, *, count: int, seed: int = 0) -> list[Path]:
    """Write `count` (input, target) patch pairs as PNGs once, in shard folders of 1,000 files each.

    For degradations too slow to run on the fly; `PairFolder` reads them back. Returns the shard folders.
    """
    rng = np.random.default_rng(seed)
    shards: list[Path] = []
    for i in range(count):
        shard = Path(out) / f"shard-{i // SHARD_SIZE:04d}"
        if not shards or shards[-1] != shard:
            shard.mkdir(parents=True, exist_ok=True)
            shards.append(shard)
        lr, hr = stream.sample(rng)
        for tensor, kind in ((lr, "input"), (hr, "target")):
            rgb = (tensor.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
            Image.fromarray(rgb).save(shard / f"{i:07d}-{kind}.png")
    return shards


class PairFolder(torch.utils.data.Dataset):
    """Pairs written by `pregenerate_pairs`: item i is (input, target) as 3xHxW float tensors."""

    def __init__(self, root: str | Path):
        self.inputs = sorted(Path(root).glob("shard-*/*-input.png"))
        if not self.inputs:
            raise UsageError("no pregenerated pairs (shard-*/NNNNNNN-input.png)", root)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        src = self.inputs[index]
        target = src.with_name(src.name.replace("-input.png", "-target.png"))
        with Image.open(src) as a, Image.open(target) as b:
            return to_tensor(np.asarray(a.convert("RGB"))), to_tensor(np.asarray(b.convert("RGB")))


def make_loader(stream: PatchStream, *, workers: int, seed: int) -> torch.utils.data.DataLoader:
    """A DataLoader over pre-batched patches; `seed` fixes the worker streams (pass seed + step on resume)."""
    generator = torch.Generator().manual_seed(seed)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        # fork shares the decoded photos copy-on-write instead of pickling them to every worker
        kwargs = {"multiprocessing_context": "fork", "persistent_workers": True, "prefetch_factor": 4}
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        **kwargs,
    )


def _seed_worker(worker_id: int) -> None:
    # Third-party code in a crappifier may use the global RNGs; give them the worker's seed too.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def centre_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
    return rgb[top : top + side, left : left + side]


def mod_crop(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """Crop H and W down to a multiple of `multiple` (the SR papers' "modcrop")."""
    h, w = rgb.shape[0] - rgb.shape[0] % multiple, rgb.shape[1] - rgb.shape[1] % multiple
    return rgb[:h, :w]


def degrade_pair(
    hr: np.ndarray, crappifier: Crappifier, *, scale: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(input uint8, target uint8) for evaluation: target mod-cropped, input from a fixed-seed crappifier."""
    lr, hr, _ = damaged_pair(hr, crappifier, scale=scale, seed=seed)
    return lr, hr


def damaged_pair(
    hr: np.ndarray, crappifier: Crappifier, *, scale: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """`degrade_pair` plus the JPEG quality the damage ended with (None: it did not end with a JPEG),
    which quality-aware models take as an input.

    A 1x recipe whose random steps all happened to skip returns the photo untouched (the restore preset
    does ~2% of the time); such a draw scores nothing (PSNR inf), so it is drawn again with the next seed."""
    hr = mod_crop(hr, scale)
    for attempt in range(_REDRAWS):
        rng = np.random.default_rng(seed + attempt * 1_000_003)
        damaged = crappifier(Image.fromarray(hr), rng).convert("RGB")
        lr = np.asarray(damaged)
        if lr.shape != hr.shape or not np.array_equal(lr, hr):
            break
    return lr, hr, damaged.info.get("jpeg_quality")


_REDRAWS = 8


def validation_pairs(
    images: list[np.ndarray], crappifier: Crappifier, *, scale: int, crop: int, count: int
) -> list[tuple[np.ndarray, np.ndarray, int | None]]:
    """A small fixed validation set: centre crops of `count` photos spread over the set, fixed seeds;
    (input, target, JPEG quality) as `damaged_pair` makes them."""
    crop -= crop % scale
    picks = sorted({int(i) for i in np.linspace(0, len(images) - 1, min(count, len(images))).round()})
    pairs = []
    for i in picks:
        img = images[i]
        side = min(crop, min(img.shape[:2]) - min(img.shape[:2]) % scale)
        pairs.append(damaged_pair(centre_crop(img, side), crappifier, scale=scale, seed=i))
    return pairs


__all__ = [
    "Crappifier",
    "PairFolder",
    "PatchStream",
    "SHARD_SIZE",
    "centre_crop",
    "damaged_pair",
    "degrade_pair",
    "describe_crappifier",
    "find_images",
    "load_images",
    "load_rgb_uint8",
    "make_loader",
    "mod_crop",
    "pregenerate_pairs",
    "resolve_crappifier",
    "to_tensor",
    "validation_pairs",
]
