"""A U-Net of residual blocks with residual cross connections, for 1x restoration (and upscaling).

Down path: ResBlocks then a stride-2 conv per level. Up path: nearest (or pixel-shuffle) upsampling,
the skip features passed through their own ResBlock ("cross connection") and concatenated, then
ResBlocks. The input (upsampled when scale > 1) is added back at the end and the last conv is
zero-initialised, so an untrained net is the identity.

With `mask_head` (1x only) the net also predicts where the input was damaged, for overlay removal: a
fourth output channel m = sigmoid(logit) in 0..1, and the RGB output is the input plus m times the
correction, so wherever the net says "clean" (m ~ 0) the photo passes through. Output: RGB + m, 4 channels.
With `invert` as well, the correction includes undoing a semi-transparent overlay: the net also predicts
the overlay's opacity a (0..0.95) and colour c per pixel, and the correction is (x - a c) / (1 - a) - x
(the inverse of drawing c at opacity a over the photo) plus a free residual. Under an overlay the photo
is still partly visible; inverting the blend recovers it, where inpainting could only guess.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_ALPHA = 0.95  # inverting an overlay more opaque than this amplifies noise 20x and more
ALPHA_INIT_LOGIT = -4.0


class ResBlock(nn.Module):
    """conv-act-conv with an identity shortcut; the second conv starts at zero so the block starts as x."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class UpBlock(nn.Module):
    """Doubles the resolution: nearest + conv (no checkerboard) or conv + pixel shuffle."""

    def __init__(self, c_in: int, c_out: int, mode: str):
        super().__init__()
        if mode not in ("nearest", "shuffle"):
            raise ValueError(f"up must be 'nearest' or 'shuffle', got {mode!r}")
        self.mode = mode
        c_conv = c_out * 4 if mode == "shuffle" else c_out
        self.conv = nn.Conv2d(c_in, c_conv, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "shuffle":
            return F.pixel_shuffle(self.conv(x), 2)
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad H and W up to a multiple; returns the padded tensor and the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        # Reflect needs pad < size; replicate covers tiny inputs.
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


class ResUNet(nn.Module):
    """U-Net of ResBlocks; `channels` gives the width of each level (len(channels) - 1 downsamplings)."""

    # A fresh ResBlock is the identity (its second conv is zero), so `--init-from` a net with fewer
    # `blocks` per stage starts a deeper one as exactly that net: the added blocks change nothing yet.
    grows_deeper = True

    def __init__(
        self,
        *,
        scale: int = 1,
        channels: tuple[int, ...] | list[int] = (32, 64, 128),
        blocks: int = 2,
        up: str = "nearest",
        unshuffle: int = 1,
        mask_head: bool = False,
        invert: bool = False,
        quality_input: bool = False,
    ):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if unshuffle < 1:
            raise ValueError(f"unshuffle must be >= 1, got {unshuffle}")
        if mask_head and scale != 1:
            raise ValueError(f"mask_head is for 1x models, not scale {scale}")
        if invert and not mask_head:
            raise ValueError("invert needs mask_head")
        self.scale, self.levels, self.unshuffle = scale, len(channels) - 1, unshuffle
        self.size_multiple = unshuffle * 2**self.levels
        self.hparams = {
            "scale": scale,
            "channels": list(channels),
            "blocks": blocks,
            "up": up,
            "unshuffle": unshuffle,
        }
        self.mask_head = bool(mask_head)
        self.invert = bool(invert)
        # recorded only when on, so older manifests and checkpoints stay the same
        self.quality_input = bool(quality_input)
        self.hparams.update(
            {
                k: True
                for k, on in (("mask_head", mask_head), ("invert", invert), ("quality_input", quality_input))
                if on
            }
        )
        # quality_input: a fourth input plane holds the JPEG quality the photo was saved at (photosr.jpeg);
        # the output is still the RGB correction.
        self.in_channels = 4 if self.quality_input else 3
        # unshuffle > 1 folds each f x f block of pixels into channels first (as FFDNet does): the whole
        # U-Net then runs at 1/f resolution, f^2 times cheaper, and the tail unfolds at the end.
        self.head = nn.Conv2d(self.in_channels * unshuffle * unshuffle, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(_blocks(c, blocks) for c in channels[:-1])
        self.downs = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(channels, channels[1:], strict=False)
        )
        self.middle = _blocks(channels[-1], blocks)
        self.ups = nn.ModuleList(UpBlock(b, a, up) for a, b in zip(channels, channels[1:], strict=False))
        self.cross = nn.ModuleList(ResBlock(c) for c in channels[:-1])
        self.merges = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in channels[:-1])
        self.up_blocks = nn.ModuleList(_blocks(c, blocks) for c in channels[:-1])
        # output channels: RGB correction, then mask logit, then opacity logit and colour (invert)
        out_channels = 8 if self.invert else 4 if self.mask_head else 3
        rows = (scale * unshuffle) ** 2  # tail rows per output channel (pixel shuffle)
        self.tail = nn.Conv2d(channels[0], out_channels * rows, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        if self.invert:  # start with (almost) no overlay: opacity MAX_ALPHA * sigmoid(-4) = 0.017
            nn.init.constant_(self.tail.bias[4 * rows : 5 * rows], ALPHA_INIT_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, h, w = pad_to_multiple(x, self.size_multiple)
        feats = self.head(F.pixel_unshuffle(padded, self.unshuffle) if self.unshuffle > 1 else padded)
        skips = []
        for block, down in zip(self.down_blocks, self.downs, strict=True):
            feats = block(feats)
            skips.append(feats)
            feats = down(feats)
        feats = self.middle(feats)
        for i in reversed(range(self.levels)):
            feats = self.ups[i](feats)
            feats = self.merges[i](torch.cat([feats, self.cross[i](skips[i])], dim=1))
            feats = self.up_blocks[i](feats)
        up = self.scale * self.unshuffle
        out = F.pixel_shuffle(self.tail(feats), up) if up > 1 else self.tail(feats)
        out = out[..., : h * self.scale, : w * self.scale]
        x = x[:, :3]  # the photo; what follows corrects it
        if self.mask_head:
            out = out.float()  # the head's arithmetic (a division when inverting) in fp32 under autocast
            mask = torch.sigmoid(out[:, 3:4])
            fix = out[:, :3]
            if self.invert:
                alpha = MAX_ALPHA * torch.sigmoid(out[:, 4:5])
                colour = torch.sigmoid(out[:, 5:8])
                fix = fix + (x - alpha * colour) / (1.0 - alpha) - x
            return torch.cat([x + mask * fix, mask], dim=1)
        base = (
            x
            if self.scale == 1
            else F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        )
        return out + base


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(count)))
