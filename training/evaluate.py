"""PSNR / SSIM the way the super-resolution papers report them, and scoring tables.

Protocol: results quantised to 8 bits, compared on the Y channel of BT.601 studio-range YCbCr (MATLAB's
`rgb2ycbcr`, 16..235), with `scale` pixels cropped from every border when upscaling (nothing cropped
for 1x tasks). SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03 on the 0..255 range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from photosr.jpeg import with_quality_plane
from photosr.tasks import MASK_CHANNEL

# HxWx3 uint8 input (and, optionally, its JPEG quality) -> HxWx3 float (0..1) or uint8 output
Predictor = Callable[..., np.ndarray]


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Quantise like saving a PNG would: float 0..1 -> uint8 (uint8 passes through)."""
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16..235) of a uint8 RGB image, float64."""
    rgb = rgb.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _crop(plane: np.ndarray, border: int) -> np.ndarray:
    return plane[border:-border, border:-border] if border else plane


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_only: bool = True) -> float:
    """PSNR in dB of two uint8 RGB images (Y channel unless `y_only=False`), `border` pixels cropped."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    x, y = (y_channel(a), y_channel(b)) if y_only else (a.astype(np.float64), b.astype(np.float64))
    mse = float(np.mean((_crop(x, border) - _crop(y, border)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian_blur(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """'valid' Gaussian filtering, separably (same result as the 2-D window, ~5x cheaper)."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g /= g.sum()
    return F.conv2d(F.conv2d(x, g.view(1, 1, size, 1)), g.view(1, 1, 1, size))


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0) -> float:
    """SSIM on the Y channel of two uint8 RGB images, `border` pixels cropped ('valid' filtering)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    x = torch.from_numpy(_crop(y_channel(a), border))[None, None]
    y = torch.from_numpy(_crop(y_channel(b), border))[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _gaussian_blur(x), _gaussian_blur(y)
    var_x = _gaussian_blur(x * x) - mu_x**2
    var_y = _gaussian_blur(y * y) - mu_y**2
    cov = _gaussian_blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float((num / den).mean())


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The baseline: Pillow bicubic upscaling (identity for scale 1)."""
    if scale == 1:
        return lr
    return np.asarray(
        Image.fromarray(lr).resize((lr.shape[1] * scale, lr.shape[0] * scale), Image.Resampling.BICUBIC)
    )


@dataclass
class Scores:
    """Mean PSNR/SSIM of one method over a set of pairs."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def add(self, out: np.ndarray, target: np.ndarray, border: int, with_ssim: bool) -> None:
        self.psnr.append(psnr(out, target, border=border))
        if with_ssim:
            self.ssim.append(ssim(out, target, border=border))

    def summary(self) -> dict[str, float]:
        out = {"psnr": round(float(np.mean(self.psnr)), 3)}
        if self.ssim:
            out["ssim"] = round(float(np.mean(self.ssim)), 4)
        return out


def score_pairs(
    pairs: Sequence[tuple[np.ndarray, ...]],
    predictors: dict[str, Predictor],
    *,
    scale: int,
    with_ssim: bool = True,
) -> dict[str, dict[str, float]]:
    """Score each predictor (plus the bicubic/identity baseline) on (input, target) uint8 pairs, or
    (input, target, JPEG quality) triples: a predictor gets the quality when it is known."""
    baseline = "bicubic" if scale > 1 else "identity"
    scores = {name: Scores() for name in [baseline, *predictors]}
    for lr, hr, *quality in pairs:
        scores[baseline].add(bicubic_upscale(lr, scale), hr, scale if scale > 1 else 0, with_ssim)
        for name, predict in predictors.items():
            out = to_uint8(predict(lr, *quality) if quality and quality[0] is not None else predict(lr))
            if out.shape != hr.shape:
                raise ValueError(f"{name} returned {out.shape}, expected {hr.shape}")
            scores[name].add(out, hr, scale if scale > 1 else 0, with_ssim)
    table = {name: s.summary() for name, s in scores.items()}
    for name in predictors:
        table[name]["gain_db"] = round(table[name]["psnr"] - table[baseline]["psnr"], 3)
    return table


def format_table(table: dict[str, dict[str, float]], *, title: str = "") -> str:
    """A Markdown table of `score_pairs` output."""
    lines = [title] if title else []
    lines += ["| method | PSNR-Y (dB) | SSIM-Y | gain (dB) |", "|---|---|---|---|"]
    for name, row in table.items():
        ssim_text = f"{row['ssim']:.4f}" if "ssim" in row else "-"
        gain = f"{row['gain_db']:+.3f}" if "gain_db" in row else "-"
        lines.append(f"| {name} | {row['psnr']:.3f} | {ssim_text} | {gain} |")
    return "\n".join(lines)


def torch_predictor(model: torch.nn.Module, *, device: str = "cpu") -> Predictor:
    """Run a PyTorch model on one uint8 photo (fp32, no autocast: evaluation is the reference); a
    quality-aware model also gets the photo's JPEG quality (None: unknown)."""
    takes_quality = getattr(model, "quality_input", False)

    @torch.no_grad()
    def predict(lr: np.ndarray, quality: int | None = None) -> np.ndarray:
        image = lr.astype(np.float32) / 255.0
        if takes_quality:
            image = with_quality_plane(image, quality)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)
        return model(x)[0, :MASK_CHANNEL].clamp(0, 1).permute(1, 2, 0).cpu().numpy()

    return predict


def plugin_predictor(
    plugin_dir: str | Path, *, threads: int = 0, precision: str = "auto"
) -> tuple[Predictor, Any]:
    """Run an exported plugin through photosr's own engine (tiling included), as `photosr run` would
    on CPU (`precision` as its --precision)."""
    from photosr.engine import EngineOptions
    from photosr.plugins import Plugin

    plugin = Plugin(plugin_dir)
    session = plugin.session(EngineOptions(device="cpu", threads=threads, precision=precision))

    def predict(lr: np.ndarray, quality: int | None = None) -> np.ndarray:
        rgb = lr.astype(np.float32) / 255.0
        return plugin.infer(session, rgb, quality=quality)[..., :MASK_CHANNEL]

    return predict, plugin.manifest


def full_pairs(
    data: str | Path, crappifier: Any, *, scale: int, limit: int = 0
) -> list[tuple[np.ndarray, np.ndarray, int | None]]:
    """Whole photos of a folder (mod-cropped), their degraded inputs and the JPEG quality the damage
    ended with (`damaged_pair`), with fixed per-photo seeds."""
    from .data import damaged_pair, find_images, load_rgb_uint8

    paths = find_images([data])[: limit or None]
    return [damaged_pair(load_rgb_uint8(p), crappifier, scale=scale, seed=i) for i, p in enumerate(paths)]


def evaluate_plugin(
    plugin_dir: str | Path,
    data: str | Path,
    *,
    recipe: str | None = None,
    limit: int = 0,
    threads: int = 0,
    precisions: Sequence[str] = ("auto",),
) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of a plugin on a folder, against bicubic (upscale) or the damaged input (1x tasks).

    The degradation is `recipe`, else the one the plugin was trained with (its manifest's provenance).
    One row per precision: the first is named after the plugin, the others "NAME (PRECISION)".
    """
    from .data import resolve_crappifier

    predictors = {}
    for i, precision in enumerate(precisions):
        predict, manifest = plugin_predictor(plugin_dir, threads=threads, precision=precision)
        predictors[manifest.name if i == 0 else f"{manifest.name} ({precision})"] = predict
    if recipe is None:
        trained = dict(manifest.training).get("recipe")
        recipe = None if trained in (None, "", "(task preset)") else trained
    crappifier = resolve_crappifier(recipe, task=manifest.task, scale=manifest.model.scale)
    pairs = full_pairs(data, crappifier, scale=manifest.model.scale, limit=limit)
    return score_pairs(pairs, predictors, scale=manifest.model.scale)


__all__ = [
    "evaluate_plugin",
    "full_pairs",
    "plugin_predictor",
    "Predictor",
    "Scores",
    "bicubic_upscale",
    "format_table",
    "psnr",
    "score_pairs",
    "ssim",
    "to_uint8",
    "torch_predictor",
    "y_channel",
]
