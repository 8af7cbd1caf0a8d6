"""A fast plain-conv super-resolution net in the ESPCN / SRVGG-compact style.

Every conv runs at input resolution, the upsampling is a pixel shuffle, and the net only learns the
residual over an upsampled copy of its input, so an untrained net (zero-initialised tail) is exactly
that upsampling. No final activation: the runtime clips to 0..1.

`block="ecb"` trains every head and body conv as ECBSR's edge-oriented convolution block (Zhang et al.,
2021): a 3x3 conv plus a 1x1-expand-3x3 branch and 1x1 branches into fixed Sobel-x, Sobel-y and
Laplacian filters with learned per-channel scales. All branches are linear, so they sum to one 3x3 conv:
the forward pass merges them first and runs that conv (training costs about what the plain net does), and
`deployed()` hands the exporter the plain net with the merged kernels - the same inference graph and
speed, a different (over-parameterised) path through training.

`unshuffle=f` folds each f x f block of input pixels into channels before the head (as Real-ESRGAN's x2
net does) and the tail unfolds them again with the upscaling: the body then runs at 1/f of the input's
resolution, so `channels` f times wider cost the same FLOPs for f^2 times the weights and an f times
wider receptive field. Inputs are padded to a multiple of f.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resunet import pad_to_multiple


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
        # Always fp32: under bf16 autocast the rounded taps of a phase sum to 1.0008-1.0021, so the skip
        # brightened mid-grey by ~0.2 levels in a pattern that repeats every `scale` pixels, and 8-bit
        # inputs lost up to half a level. The net learned to undo that, and at fp32 inference its outputs
        # came out ~0.3-0.6 levels dark (seen on upscale-x4).
        with torch.autocast(x.device.type, enabled=False):
            padded = F.pad(x.float(), (2, 2, 2, 2), mode="replicate")
            out = F.conv2d(padded, self.weight.float().unsqueeze(1), groups=3)
        return F.pixel_shuffle(out, self.scale)


# Activation -> its negative slope at init. "leaky" (fixed slope, as ESRGAN) exports as LeakyRelu, which
# ONNX Runtime fuses into the preceding conv; "prelu" (a learned slope per channel) runs as a separate
# PRelu node that took 24% of the x2 plugin's time, and the same net with LeakyRelu ran 1.5x faster.
ACTIVATIONS = {"prelu": 0.25, "leaky": 0.2}


def _activation(act: str, channels: int) -> nn.Module:
    return nn.PReLU(channels) if act == "prelu" else nn.LeakyReLU(ACTIVATIONS[act])


BLOCKS = ("conv", "ecb")
# Fixed 3x3 filters of the ECB's edge branches: Sobel-x, Sobel-y, Laplacian.
EDGE_FILTERS = (
    ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),
    ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),
    ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),
)


class EdgeConv(nn.Module):
    """ECBSR's edge-oriented block as one 3x3 conv (zero padding) whose kernel is the sum of its branches:

    - `conv`: a plain 3x3 conv (the whole block at initialisation);
    - 1x1 conv to `expand` x out channels, then 3x3 (`expand_weight`, zero at initialisation). The 1x1
      output is bias-padded before the 3x3 (as ECBSR does), which is what makes the merge exact at borders;
    - three 1x1 convs, each into a fixed filter (Sobel-x, Sobel-y, Laplacian) scaled per channel
      (`edge_scale`, zero at initialisation).

    So a fresh block computes exactly what its `conv` does, and `kernel()` is its exact 3x3 equivalent.
    """

    def __init__(self, cin: int, cout: int, *, expand: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.expand = nn.Conv2d(cin, cout * expand, 1)
        self.expand_weight = nn.Parameter(torch.zeros(cout, cout * expand, 3, 3))
        self.expand_bias = nn.Parameter(torch.zeros(cout))
        self.edge = nn.Conv2d(cin, 3 * cout, 1)
        # 1-D (branch-major) so the optimiser treats the scales as it does biases: no weight decay.
        self.edge_scale = nn.Parameter(torch.zeros(3 * cout))
        self.edge_bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("filters", torch.tensor(EDGE_FILTERS), persistent=False)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the 3x3 conv this block equals, in fp32 whatever the autocast."""
        with torch.autocast(self.conv.weight.device.type, enabled=False):
            cout, cin = self.conv.out_channels, self.conv.in_channels
            weight, bias = self.conv.weight.float(), self.conv.bias.float()
            # 1x1 then 3x3: W[o, i] = sum_m W3[o, m] W1[m, i]; the 1x1's bias b1 passes through the 3x3
            # as sum_{m,k} W3[o, m, k] b1[m] (exact because the 1x1's output is padded with b1 itself).
            w3 = self.expand_weight.float()
            weight = weight + torch.einsum("omkl,mi->oikl", w3, self.expand.weight.float()[:, :, 0, 0])
            bias = bias + self.expand_bias.float() + torch.einsum("omkl,m->o", w3, self.expand.bias.float())
            # 1x1 into a fixed filter F scaled by s: W[o, i] = s[o] F W1[o, i]; the filters sum to 0, so
            # the 1x1's bias adds nothing (its output bias-padded here too).
            scale = self.edge_scale.float().view(3, cout)
            w1 = self.edge.weight.float()[:, :, 0, 0].view(3, cout, cin)
            weight = weight + torch.einsum("eo,ekl,eoi->oikl", scale, self.filters.float(), w1)
            bias = bias + self.edge_bias.float()
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.kernel()
        return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), padding=1)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        """The same output computed branch by branch, as ECBSR trains it (for tests)."""
        out = self.conv(x)
        expanded = F.pad(F.conv2d(x, self.expand.weight), (1, 1, 1, 1)) + self.expand.bias.view(1, -1, 1, 1)
        out = out + F.conv2d(expanded, self.expand_weight, self.expand_bias)
        cout = self.conv.out_channels
        edges = F.pad(F.conv2d(x, self.edge.weight), (1, 1, 1, 1)) + self.edge.bias.view(1, -1, 1, 1)
        for e in range(3):
            part = edges[:, e * cout : (e + 1) * cout]
            scale = self.edge_scale[e * cout : (e + 1) * cout].view(-1, 1, 1, 1)
            filt = self.filters[e].expand(cout, 1, 3, 3) * scale
            out = out + F.conv2d(part, filt, groups=cout)
        return out + self.edge_bias.view(1, -1, 1, 1)


class PlainSR(nn.Module):
    """conv-PReLU head, `convs` conv-PReLU body layers of `channels`, conv + pixel shuffle tail; head and
    body convs trained as plain convs or as edge-oriented blocks (`block`)."""

    # Weights that depend on the scale (the tail makes scale^2 sub-pixels per channel). Head and body
    # work at the input's resolution (1/unshuffle of it) whatever the scale, so `--init-from` another
    # scale's net lends them.
    scale_specific = ("tail.",)

    def __init__(
        self,
        *,
        scale: int = 4,
        channels: int = 48,
        convs: int = 12,
        skip: str = "bicubic",
        tail_init: float = 0.0,
        act: str = "prelu",
        block: str = "conv",
        unshuffle: int = 1,
    ):
        super().__init__()
        if unshuffle < 1:
            raise ValueError(f"unshuffle must be >= 1, got {unshuffle}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
        if skip not in ("nearest", "bicubic"):
            raise ValueError(f"skip must be 'nearest' or 'bicubic', got {skip!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.scale, self.skip, self.unshuffle = scale, skip, unshuffle
        self.size_multiple = unshuffle
        self.hparams = {
            "scale": scale,
            "channels": channels,
            "convs": convs,
            "skip": skip,
            "tail_init": tail_init,
            "act": act,
            "block": block,
            "unshuffle": unshuffle,
        }

        def conv(cin: int) -> nn.Module:
            return EdgeConv(cin, channels) if block == "ecb" else nn.Conv2d(cin, channels, 3, padding=1)

        layers: list[nn.Module] = [conv(3 * unshuffle * unshuffle), _activation(act, channels)]
        for _ in range(convs):
            layers += [conv(channels), _activation(act, channels)]
        self.body = nn.Sequential(*layers)
        # He init for the activation's negative slope: PyTorch's default conv init shrinks the signal ~2x
        # per layer, so a 13-layer body starts with features ~1e-4 and the net never leaves its bicubic
        # skip (seen here). An edge block's other branches start at zero, so it starts as this conv.
        for layer in self.body:
            plain = layer.conv if isinstance(layer, EdgeConv) else layer
            if isinstance(plain, nn.Conv2d):
                nn.init.kaiming_normal_(plain.weight, a=ACTIVATIONS[act], nonlinearity="leaky_relu")
                nn.init.zeros_(plain.bias)
        self.tail = nn.Conv2d(channels, 3 * (scale * unshuffle) ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale * unshuffle)
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
        if self.unshuffle == 1:  # the bundled upscalers' graph: no pad, unshuffle or crop ops
            return self.shuffle(self.tail(self.body(x))) + self.upsample(x)
        padded, h, w = pad_to_multiple(x, self.unshuffle)
        residual = self.shuffle(self.tail(self.body(F.pixel_unshuffle(padded, self.unshuffle))))
        return residual[..., : h * self.scale, : w * self.scale] + self.upsample(x)

    def deployed(self) -> PlainSR:
        """The net to export: itself, or for `block="ecb"` the plain-conv net with each block's merged
        kernel (the same function, up to fp32 rounding)."""
        if self.hparams["block"] == "conv":
            return self
        blocks = self._edge_blocks()
        state = {k: v for k, v in self.state_dict().items() if not any(k.startswith(f"{b}.") for b in blocks)}
        for name, block in blocks.items():
            state[f"{name}.weight"], state[f"{name}.bias"] = (t.detach() for t in block.kernel())
        plain = PlainSR(**{**self.hparams, "block": "conv"}).to(self.tail.weight.device)
        plain.load_state_dict(state)
        return plain

    def adopt_plain_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A plain-conv net's weights renamed for this net's edge blocks (they go to each block's `conv`
        branch; the other branches keep their zero start, so the net starts as the plain one)."""
        blocks = self._edge_blocks()
        renamed = {}
        for key, value in state.items():
            owner, _, leaf = key.rpartition(".")
            renamed[f"{owner}.conv.{leaf}" if owner in blocks else key] = value
        return renamed

    def widened_state(self, narrow: PlainSR) -> dict[str, torch.Tensor]:
        """`narrow`'s function in this wider net's weights (same scale, convs and unshuffle; this net's
        `channels` >= its): each conv's old channels keep their weights in its first rows and columns;
        the added output rows keep this net's fresh init (the new channels compute something), and the
        added input columns of the next conv and the tail are zero, so nothing reads them yet and the
        wider net starts as exactly `narrow`. Plain-conv names (an edge-block net is merged first); an
        edge-block net adopts them with `adopt_plain_state`."""
        old, fresh = narrow.deployed().state_dict(), self.deployed().state_dict()
        state = {}
        for key, target in fresh.items():
            target = target.detach().clone()
            source = old[key]
            if key.endswith(".weight") and target.ndim == 4:
                target[:, source.shape[1] :] = 0  # inputs from the added channels: not read yet
            target[tuple(slice(0, n) for n in source.shape)] = source
            state[key] = target
        return self.adopt_plain_state(state) if self.hparams["block"] == "ecb" else state

    def new_branch_parameter(self, key: str) -> bool:
        """Whether `key` is one of the branches an edge block adds to a plain conv (not its `conv`)."""
        return any(key.startswith(f"{n}.") and not key.startswith(f"{n}.conv.") for n in self._edge_blocks())

    def _edge_blocks(self) -> dict[str, EdgeConv]:
        """The edge blocks by module name ("body.0", "body.2", ...); empty for `block="conv"`."""
        return {name: m for name, m in self.named_modules() if isinstance(m, EdgeConv)}
