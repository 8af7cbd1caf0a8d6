"""A fast plain-conv super-resolution net in the ESPCN / SRVGG-compact style.

Every conv runs at input resolution, the upsampling is a pixel shuffle, and the net only learns the
residual over an upsampled copy of its input, so an untrained net (zero-initialised tail) is exactly
that upsampling. No final activation: the runtime clips to 0..1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
    ):
        super().__init__()
        if skip not in ("nearest", "bicubic"):
            raise ValueError(f"skip must be 'nearest' or 'bicubic', got {skip!r}")
        self.scale, self.skip = scale, skip
        self.hparams = {
            "scale": scale,
            "channels": channels,
            "convs": convs,
            "skip": skip,
            "tail_init": tail_init,
        }
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.PReLU(channels)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels)]
        self.body = nn.Sequential(*layers)
        # He init for PReLU(0.25): PyTorch's default conv init shrinks the signal ~2x per layer, so a
        # 13-layer body starts with features ~1e-4 and the net never leaves its bicubic skip (seen here).
        for conv in self.body:
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=0.25, nonlinearity="leaky_relu")
                nn.init.zeros_(conv.bias)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
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
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x))) + self.upsample(x)
