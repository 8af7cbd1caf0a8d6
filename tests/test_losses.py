"""Losses: pixel kinds, perceptual features (frozen, gradients to the input only), the spectral-norm
patch critic, the clamped relativistic GAN terms and the config-driven builder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from photosr.training.losses import (
    GeneratorLoss,
    LossConfig,
    PatchCritic,
    PerceptualLoss,
    PixelLoss,
    build_losses,
    critic_loss,
    relativistic_critic_loss,
    relativistic_generator_loss,
)

from photosr.errors import UsageError

torch.manual_seed(0)


def _images(n: int = 2, size: int = 48) -> torch.Tensor:
    # Smooth shapes plus fine texture, so blurring removes something a feature net notices.
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([x, y, 0.5 + 0.4 * torch.sin(12 * x) * torch.cos(9 * y)])
    return (base.expand(n, 3, size, size) * 0.8 + 0.2 * torch.rand(n, 3, size, size)).clamp(0, 1)


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma) + 1
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, k, groups=3)
    return F.conv2d(out, k.transpose(2, 3), groups=3)


@pytest.fixture(scope="module")
def perceptual() -> PerceptualLoss:
    return PerceptualLoss()


def test_pixel_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert PixelLoss("l1")(a, b).item() == pytest.approx(0.5)
    assert PixelLoss("mse")(a, b).item() == pytest.approx(0.25)
    assert PixelLoss("charbonnier", eps=1e-3)(a, b).item() == pytest.approx(math.sqrt(0.25 + 1e-6))
    assert PixelLoss("charbonnier", eps=1e-3)(a, a).item() == pytest.approx(1e-3)
    assert PixelLoss("l1")(a, a).item() == 0
    with pytest.raises(UsageError, match="unknown pixel loss 'l3'"):
        PixelLoss("l3")


def test_perceptual_is_zero_for_identical_images(perceptual):
    images = _images()
    assert perceptual(images, images).item() == 0.0


def test_perceptual_grows_with_blur(perceptual):
    images = _images()
    losses = [perceptual(_blur(images, sigma), images).item() for sigma in (0.6, 1.2, 2.5)]
    assert 0 < losses[0] < losses[1] < losses[2]


def test_perceptual_gradients_reach_the_input_not_the_frozen_net(perceptual):
    target = _images()
    pred = _blur(target, 1.0).requires_grad_(True)
    perceptual.train()  # a trainer calling .train() on everything must not unfreeze batch norms
    assert not perceptual.features.training
    perceptual(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in perceptual.parameters())


def test_perceptual_layers_are_configurable(perceptual):
    images = _images()
    shallow = PerceptualLoss(layers={"x2": 1.0})
    assert shallow.features.blocks.__len__() == 1  # stops at the deepest tap asked for
    blurred = _blur(images, 1.5)
    assert shallow(blurred, images).item() > 0
    with pytest.raises(UsageError, match="unknown layer 'conv9'"):
        PerceptualLoss(layers={"conv9": 1.0})
    with pytest.raises(UsageError, match=r"perceptual_layers\.x4: expected a weight >= 0"):
        PerceptualLoss(layers={"x4": -1.0})


def test_vgg_needs_a_local_weights_file(tmp_path):
    from torchvision.models import vgg

    with pytest.raises(UsageError, match="needs a local weights file"):
        PerceptualLoss(net="vgg16")
    with pytest.raises(UsageError, match="weights file not found"):
        PerceptualLoss(net="vgg16", weights_path=tmp_path / "vgg16.pth")
    # A torchvision-style file (features.* keys) holding the layers up to relu2_2; random weights
    # stand in for the real ones, which cannot be downloaded here.
    layers = vgg.make_layers(vgg.cfgs["D"])[:9]
    torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, tmp_path / "vgg16.pth")
    loss = PerceptualLoss(
        net="vgg16", weights_path=tmp_path / "vgg16.pth", layers={"relu1_2": 1.0, "relu2_2": 1.0}
    )
    images = _images(1, 32)
    assert loss(images, images).item() == 0.0
    assert loss(_blur(images, 1.5), images).item() > 0
    with pytest.raises(UsageError, match="not vgg16 weights up to layer 15"):
        PerceptualLoss(net="vgg16", weights_path=tmp_path / "vgg16.pth", layers={"relu3_3": 1.0})


def test_critic_output_shape_and_spectral_norm():
    critic = PatchCritic(channels=8, n_layers=3)
    out = critic(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, 1, 6, 4)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6 (and 48 -> ... -> 4)
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
    assert PatchCritic(channels=4, n_layers=1)(torch.rand(1, 3, 32, 32)).shape == (1, 1, 14, 14)


def test_relativistic_losses_signs():
    high, low = torch.full((4, 1, 3, 3), 3.0), torch.full((4, 1, 3, 3), -3.0)
    # The critic separates well: its loss is small, the generator's is large.
    assert relativistic_critic_loss(high, low).item() < 0.01
    assert relativistic_generator_loss(high, low).item() > 5
    # The critic is fooled the wrong way round: its loss is large.
    assert relativistic_critic_loss(low, high).item() > 5
    # Fakes "more real than real" earn the generator nothing: exactly 0, and no gradient.
    fake = high.clone().requires_grad_(True)
    loss = relativistic_generator_loss(low, fake)
    loss.backward()
    assert loss.item() == 0.0 and fake.grad.abs().sum() == 0
    assert relativistic_generator_loss(high, high).item() == 0.0  # parity: nothing left to gain
    # While behind, raising the fake scores lowers the generator loss.
    fake = low.clone().requires_grad_(True)
    relativistic_generator_loss(high, fake).backward()
    assert (fake.grad < 0).all()


def test_build_losses_weights_and_parts():
    target = _images(2, 32)
    pred = _blur(target, 1.0).requires_grad_(True)
    loss, critic = build_losses(LossConfig(pixel=1.0, pixel_kind="mse"))
    assert critic is None
    total, parts = loss(pred, target)
    assert set(parts) == {"pixel"} and total.item() == pytest.approx(parts["pixel"])

    cfg = LossConfig(pixel=2.0, perceptual=0.5, perceptual_layers={"x4": 1.0}, gan=0.1, critic_channels=8)
    loss, critic = build_losses(cfg)
    assert isinstance(critic, PatchCritic)
    total, parts = loss(pred, target, critic=critic)
    assert set(parts) == {"pixel", "perceptual", "gan"}
    expected = 2.0 * parts["pixel"] + 0.5 * parts["perceptual"] + 0.1 * parts["gan"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())  # the generator step does not train the critic
    critic_loss(critic, pred, target).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_luma_share_weighs_luma_errors_and_ignores_pure_chroma_at_one():
    target = torch.full((1, 3, 4, 4), 0.5)
    chroma = target.clone()  # a change with zero BT.601 luma: +R balanced by -G and -B
    chroma[:, 0] += 0.1
    chroma[:, 1] -= 0.1 * 0.299 / (0.587 + 0.114)
    chroma[:, 2] -= 0.1 * 0.299 / (0.587 + 0.114)
    grey = target + 0.1  # the same change on every channel: luma moves by as much
    rgb_only = GeneratorLoss(LossConfig(pixel_kind="mse"))
    luma_only = GeneratorLoss(LossConfig(pixel_kind="mse", luma=1.0))
    half = GeneratorLoss(LossConfig(pixel_kind="mse", luma=0.5))
    assert luma_only(chroma, target)[1]["pixel"] == pytest.approx(0.0, abs=1e-10)
    assert rgb_only(chroma, target)[1]["pixel"] > 1e-3
    assert luma_only(grey, target)[1]["pixel"] == pytest.approx(0.01, rel=1e-5)
    assert rgb_only(grey, target)[1]["pixel"] == pytest.approx(0.01, rel=1e-5)
    expected = 0.5 * rgb_only(chroma, target)[1]["pixel"]
    assert half(chroma, target)[1]["pixel"] == pytest.approx(expected, rel=1e-5)
    pred = chroma.clone().requires_grad_(True)
    half(pred, target)[0].backward()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"pixel": -1.0}, "pixel: expected a loss weight >= 0"),
        ({"pixel": 0.0}, "at least one loss weight"),
        ({"pixel_kind": "huber"}, "pixel_kind: unknown pixel loss 'huber'"),
        ({"luma": 1.5}, "luma: expected a share in"),
        ({"perceptual_net": "resnet"}, "perceptual_net: unknown network 'resnet'"),
        ({"perceptual_layers": {"relu3_3": 1.0}}, "unknown layer 'relu3_3' for efficientnet-lite0"),
    ],
)
def test_loss_config_rejects_bad_values(kwargs, needle):
    cfg = {"perceptual_net": "efficientnet-lite0", **kwargs}
    if cfg["perceptual_net"] == "resnet":
        cfg["perceptual_layers"] = {"x4": 1.0}
    with pytest.raises(UsageError, match=needle):
        LossConfig(**cfg)


def test_loss_config_is_frozen_hashable_and_copies_layers():
    cfg = LossConfig()
    with pytest.raises(AttributeError):
        cfg.pixel = 2.0  # type: ignore[misc]
    layers = {"x4": 1.0}
    a, b = (
        LossConfig(perceptual=1.0, perceptual_layers=layers),
        LossConfig(perceptual=1.0, perceptual_layers={"x4": 1.0}),
    )
    layers["x8"] = 1.0
    assert a.perceptual_layers == {"x4": 1.0}
    assert a == b and hash(a) == hash(b) and len({a, b, cfg}) == 2


def test_mask_head_term_is_bce_on_the_overlay_alpha() -> None:
    """4-channel predictions: pixel terms on RGB only, plus BCE of the mask vs alpha > mask_alpha."""
    from photosr.training.losses import GeneratorLoss, LossConfig

    loss = GeneratorLoss(LossConfig(pixel=1.0, mask=0.5))
    target = torch.rand(2, 4, 8, 8)
    target[:, 3] = 0.0
    target[:, 3, :4] = 0.6
    right = torch.cat([target[:, :3], (target[:, 3:] > 0.05).float()], dim=1)
    total, parts = loss(right, target)
    assert parts["pixel"] == 0 and parts["mask"] < 1e-4 and float(total) < 1e-4
    wrong = right.clone()
    wrong[:, 3] = 1 - wrong[:, 3]
    total, parts = loss(wrong, target)
    assert (
        parts["pixel"] == 0
        and parts["mask"] > 10
        and float(total) == pytest.approx(0.5 * parts["mask"], rel=1e-4)
    )
    with pytest.raises(UsageError, match="4th channel"):
        loss(right, target[:, :3])
    with pytest.raises(UsageError, match="mask_alpha"):
        LossConfig(mask_alpha=1.5)
