"""Quantization-aware training: a net trains against the rounding of the int8 model it will ship as.

`photosr quantize` (and `--int8`) give a plugin an int8 copy by ONNX Runtime's static QDQ quantization
of its convs (`export.quantize_int8`): each conv's input and output are rounded to uint8 over the
[min, max] ranges seen on calibration photos, its weights to int8 per output channel (symmetric,
-127..127); the activations between the convs run on those rounded values. Post-training, that rounding
costs a trained SR net a few hundredths of a dB (upscale-x2: -0.03) and a SiLU U-Net whole dBs.

`fake_quantize_convs(model)` makes the same convs compute with those rounded values in training
(straight-through gradients), so the weights learn to sit well on the int8 grid. Each conv tracks its
input's and output's ranges as moving averages of the batch minimum and maximum (in training mode only;
eval uses the ranges as they stand), which is what the calibration's min/max will find. The ranges are
non-persistent buffers: checkpoints, `--init-from` and the fp32 export see the same weights and keys
as without QAT, and the EMA copy (buffers copied each update) validates with the current ranges.

One difference is left: the int8 model's bicubic skip reads the head's rounded input. For 8-bit photos
with white somewhere in the calibration crops that grid is k / 255, so the skip sees the photo unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from .export import INT8_KEEP_FP32
from .models.plain import EdgeConv

# Modules the int8 model keeps in fp32: INT8_KEEP_FP32 names their ONNX nodes ("/tail/" -> module "tail").
KEEP_FP32 = tuple(prefix.strip("/") for prefix in INT8_KEEP_FP32)
RANGE_MOMENTUM = 0.01  # weight of each batch's min/max in the moving range


def fake_quantize_convs(model: nn.Module, keep_fp32: tuple[str, ...] = KEEP_FP32) -> list[str]:
    """Make every conv of `model` outside `keep_fp32` run on int8-rounded inputs, outputs and weights,
    in place; returns the names of those convs. An edge block counts as the one conv it exports as."""
    names = []
    inside_block: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if name.startswith(keep_fp32) or (inside_block and name.startswith(inside_block)):
            continue
        if isinstance(module, EdgeConv):
            inside_block = (f"{name}.",)
            module.forward = types.MethodType(_edge_forward, module)
        elif isinstance(module, nn.Conv2d):
            module.forward = types.MethodType(_conv_forward, module)
        else:
            continue
        # (min, max) of the input, then of the output
        module.register_buffer("qat_range", torch.zeros(2, 2), persistent=False)
        module.register_buffer("qat_seen", torch.zeros(2, dtype=torch.bool), persistent=False)
        module.qat_rounds = True
        names.append(name)
    return names


def set_rounding(model: nn.Module, rounds: bool) -> None:
    """Turn the rounding of `fake_quantize_convs`'s convs on or off; off, training-mode passes still
    track the ranges, as the int8 calibration sees them on the fp32 net."""
    for module in model.modules():
        if hasattr(module, "qat_rounds"):
            module.qat_rounds = rounds


def quantize_activation(module: nn.Module, x: torch.Tensor, which: int) -> torch.Tensor:
    """`x`, the conv's input (`which` 0) or output (1), rounded to uint8 over its range (ONNX Runtime's
    asymmetric scheme: the range widened to hold 0, scale (max - min) / 255, zero point
    round(-min / scale))."""
    x32 = x.float()
    if module.training:
        with torch.no_grad():
            batch = torch.stack([x32.min(), x32.max()])
            if bool(module.qat_seen[which]):
                module.qat_range[which].lerp_(batch, RANGE_MOMENTUM)
            else:
                module.qat_range[which].copy_(batch)
                module.qat_seen[which] = True
    if not module.qat_rounds:
        return x
    lo, hi = module.qat_range[which, 0].clamp(max=0.0), module.qat_range[which, 1].clamp(min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=torch.finfo(torch.float32).tiny).detach()
    zero_point = torch.round(-lo / scale).clamp(0, 255).to(torch.int32).detach()
    return torch.fake_quantize_per_tensor_affine(x32, scale, zero_point, 0, 255).to(x.dtype)


def quantize_weight(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """`weight` rounded to int8 per output channel, symmetric over -127..127 (scale max|w| / 127)."""
    if not module.qat_rounds:
        return weight
    w32 = weight.float()
    absmax = w32.detach().abs().amax(dim=tuple(range(1, w32.ndim)))
    scale = (absmax / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w32, scale, zero_point, 0, -127, 127)


def _conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    weight = quantize_weight(self, self.weight)
    out = self._conv_forward(quantize_activation(self, x, 0), weight.to(x.dtype), self.bias)
    return quantize_activation(self, out, 1)


def _edge_forward(self: EdgeConv, x: torch.Tensor) -> torch.Tensor:
    weight, bias = self.kernel()
    weight = quantize_weight(self, weight)
    out = F.conv2d(quantize_activation(self, x, 0), weight.to(x.dtype), bias.to(x.dtype), padding=1)
    return quantize_activation(self, out, 1)
