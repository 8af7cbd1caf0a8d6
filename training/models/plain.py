"""A fast plain-conv super-resolution net in the ESPCN / SRVGG-compact style.

Every conv runs at input resolution, the upsampling is a pixel shuffle, and the net only learns the
residual over an upsampled copy of its input, so an untrained net (zero-initialised tail) is exactly
that upsampling. No final activation: the runtime clips to 0..1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bicubic_taps(scale: int, a: float = -0.75) -> torch.Tensor:
    """(scale, 5) weights of PyTorch's bicubic upsampling (align_corners=False) for each output phase,
    over the input offsets -2..2 around the output pixel's cell."""

    def near(x: float) -> float:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        t = (phase + 0.5) / scale - 0.5  # source position relative to the cell's own pixel
        base = 0 if t >= 0 else -1
        frac = t - base
        for offset, weight in zip(
            (-1, 0, 1, 2), (far(frac + 1), near(frac), near(1 - frac), far(2 - frac)), strict=True
        ):
            taps[phase, base + offset + 2] = weight
    return taps


class BicubicUpsample(nn.Module):
    """Exactly `F.interpolate(x, scale_factor=scale, mode="bicubic")`, as a fixed depthwise 5x5 conv and
    a pixel shuffle: ONNX Runtime runs that ~20x faster than its cubic Resize, which took a quarter of the
    upscalers' time. Border pixels are repeated, as PyTorch clamps its indices."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        taps = bicubic_taps(scale)
        kernel = taps[:, None, :, None] * taps[None, :, None, :]  # (phase y, phase x, ky, kx)
        weight = kernel.reshape(scale * scale, 5, 5).repeat(3, 1, 1).float()
        # Kept 3-D so `.to(memory_format=channels_last)` leaves it alone: DDP's buffer broadcast fails on a
        # channels_last (C=1) 4-D buffer ("...refer to a single memory location", torch 2.14, gloo).
        self.register_buffer("weight", weight, persistent=False)  # derived, not part of checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(padded, self.weight.to(x.dtype).unsqueeze(1), groups=3), self.scale)


# Activation -> its negative slope at init. "leaky" (fixed slope, as ESRGAN) exports as LeakyRelu, which
# ONNX Runtime fuses into the preceding conv; "prelu" (a learned slope per channel) runs as a separate
# PRelu node that took 24% of the x2 plugin's time, and the same net with LeakyRelu ran 1.5x faster.
ACTIVATIONS = {"prelu": 0.25, "leaky": 0.2}


def _activation(act: str, channels: int) -> nn.Module:
    return nn.PReLU(channels) if act == "prelu" else nn.LeakyReLU(ACTIVATIONS[act])


class PlainSR(nn.Module):
    """conv-PReLU head, `convs` conv-PReLU body layers of `channels`, conv + pixel shuffle tail."""

    size_multiple = 1

    def __init__(
        self,
        *,
        scale: int = 4,
        channels: int = 48,
        convs: int = 12,
        skip: str = "bicubic",
        tail_init: float = 0.0,
        act: str = "prelu",
    ):
        super().__init__()
        if skip not in ("nearest", "bicubic"):
            raise ValueError(f"skip must be 'nearest' or 'bicubic', got {skip!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.scale, self.skip = scale, skip
        self.hparams = {
            "scale": scale,
            "channels": channels,
            "convs": convs,
            "skip": skip,
            "tail_init": tail_init,
            "act": act,
        }
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), _activation(act, channels)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), _activation(act, channels)]
        self.body = nn.Sequential(*layers)
        # He init for the activation's negative slope: PyTorch's default conv init shrinks the signal ~2x
        # per layer, so a 13-layer body starts with features ~1e-4 and the net never leaves its bicubic
        # skip (seen here).
        for conv in self.body:
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=ACTIVATIONS[act], nonlinearity="leaky_relu")
                nn.init.zeros_(conv.bias)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.bicubic = BicubicUpsample(scale) if scale > 1 and skip == "bicubic" else None
        # tail_init 0: training starts exactly at the plain upsampling. A small non-zero tail (e.g. 0.1 x
        # the default init) lets gradients reach the body from the first step.
        with torch.no_grad():
            self.tail.weight.mul_(tail_init)
            nn.init.zeros_(self.tail.bias)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        if self.skip == "nearest":
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.bicubic(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x))) + self.upsample(x)
