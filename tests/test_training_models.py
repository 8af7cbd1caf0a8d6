"""Architectures: output shapes at 16x16 and at sizes no multiple of anything; identity at init."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from photosr.training.models import ARCHITECTURES, build_model, count_parameters, default_arch  # noqa: E402

from photosr.errors import UsageError  # noqa: E402

TINY = {
    "plain": {"channels": 8, "convs": 2},
    "plain-unshuffle": {"channels": 8, "convs": 2, "unshuffle": 2},
    "resunet": {"channels": [8, 16, 24], "blocks": 1},
    "resunet-unshuffle": {"channels": [8, 16], "blocks": 1, "unshuffle": 2},
    "effunet": {"depth": 3, "decoder": [8, 16, 24], "full_res": 8, "pretrained": False},
}
SIZES = [(16, 16), (17, 23), (5, 9), (40, 33)]


@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_output_shape_every_arch(arch: str, scale: int) -> None:
    model = build_model(arch.split("-")[0], scale=scale, **TINY[arch]).eval()
    for h, w in SIZES:
        with torch.no_grad():
            out = model(torch.rand(2, 3, h, w))
        assert out.shape == (2, 3, h * scale, w * scale)
        assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize("scale", [1, 3])
def test_untrained_net_is_the_upsampled_input(arch: str, scale: int) -> None:
    """Zero-initialised last convs: before training, out = input (1x) or its bicubic enlargement."""
    model = build_model(arch.split("-")[0], scale=scale, **TINY[arch]).eval()
    x = torch.rand(1, 3, 16, 20)
    base = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), base, atol=1e-6)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_hparams_rebuild_the_same_architecture(arch: str) -> None:
    model = build_model(arch.split("-")[0], scale=2, **TINY[arch])
    hparams = dict(model.hparams)
    again = build_model(arch.split("-")[0], scale=hparams.pop("scale"), **hparams)
    assert again.state_dict().keys() == model.state_dict().keys()
    assert count_parameters(again) == count_parameters(model)


def test_every_variant_is_tested() -> None:
    assert {name.split("-")[0] for name in TINY} == set(ARCHITECTURES)


def test_unshuffle_runs_the_unet_at_lower_resolution() -> None:
    """unshuffle=2 costs about a quarter of the same U-Net at full resolution."""
    from photosr.training.export import gflops_per_megapixel

    full = build_model("resunet", scale=1, channels=[16, 32], blocks=1)
    folded = build_model("resunet", scale=1, channels=[16, 32], blocks=1, unshuffle=2)
    ratio = gflops_per_megapixel(folded) / gflops_per_megapixel(full)
    assert 0.2 < ratio < 0.35, ratio
    assert folded.size_multiple == 4


def test_unshuffle_gives_a_plain_net_width_for_the_same_flops() -> None:
    """A plain x2 body at half resolution and twice the width: the same FLOPs, 4x the body's weights."""
    from photosr.training.export import gflops_per_megapixel

    full = build_model("plain", scale=2, channels=16, convs=12)
    folded = build_model("plain", scale=2, channels=32, convs=12, unshuffle=2)
    ratio = gflops_per_megapixel(folded) / gflops_per_megapixel(full)
    assert 1.0 < ratio < 1.1, ratio  # the head and tail, which see 4x the channels, cost the difference
    assert count_parameters(folded) > 3.5 * count_parameters(full)
    assert folded.size_multiple == 2 and full.size_multiple == 1
    # Each output pixel sees twice as far: a change at one input pixel reaches farther in the output.
    reach = []
    for model in (full, folded):
        model = _perturbed(model).eval()
        x = torch.rand(1, 3, 64, 64)
        y = x.clone()
        y[..., 32, 32] += 0.5
        with torch.no_grad():
            diff = (model(y) - model(x)).abs().sum(dim=(0, 1, 2))  # per output column
        columns = torch.nonzero(diff > 1e-6).flatten()
        reach.append(int(columns.max() - columns.min()))
    assert reach[1] >= 1.8 * reach[0], reach


def test_gradients_reach_every_layer_within_three_steps() -> None:
    """Zero-initialised convs must not block learning: the tail and each ResBlock's second conv move in
    step 1, the blocks' first convs get gradients from step 3 on (two zero layers deep)."""
    model = build_model("resunet", scale=1, **TINY["resunet"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    for _ in range(3):
        opt.zero_grad()
        F.l1_loss(model(x), y).backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_effunet_pretrained_encoder_and_freezing() -> None:
    model = build_model("effunet", scale=1, depth=2, decoder=[8, 16], full_res=8)
    first_conv = model.stem[0].weight
    assert first_conv.abs().sum() > 0  # ImageNet weights were loaded
    model.set_encoder_frozen(True)
    assert not any(p.requires_grad for p in model.encoder_parameters())
    assert all(p.requires_grad for p in model.tail.parameters())
    model.train()
    assert not model.stem[1].training  # encoder batch norms keep their ImageNet statistics


def test_unknown_arch_and_bad_hyperparameters_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown architecture"):
        build_model("nope", scale=2)
    with pytest.raises(UsageError, match="plain"):
        build_model("plain", scale=2, widht=3)
    assert default_arch("upscale") == "plain" and default_arch("restore") == "resunet"


def test_plain_body_keeps_its_signal_at_init() -> None:
    """With PyTorch's default init a 13-layer PReLU body output ~1e-4 of its input and never learned."""
    model = build_model("plain", scale=4, channels=48, convs=12)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert model.body(x).abs().mean() > 0.05 * x.abs().mean()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_conv_bicubic_equals_torch_bicubic(scale: int) -> None:
    from photosr.training.models.plain import BicubicUpsample

    up = BicubicUpsample(scale)
    for h, w in [(16, 16), (2, 3), (33, 20)]:
        x = torch.rand(2, 3, h, w)
        expected = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        assert torch.allclose(up(x), expected, atol=1e-5)
    assert "weight" not in up.state_dict()  # checkpoints of older nets still load


def test_bicubic_skip_stays_fp32_under_bf16_autocast() -> None:
    """In bf16 the taps' rounding brightened the skip by ~0.2 levels, which the net learned to undo and
    then applied at fp32 inference as a darkening."""
    from photosr.training.models.plain import BicubicUpsample

    up = BicubicUpsample(4)
    x = torch.rand(1, 3, 20, 20) * 0.5 + 0.25
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = up(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, up(x), atol=1e-6)


def test_mask_head_adds_a_mask_channel_and_passes_clean_pixels_through() -> None:
    """RGB = input + m * correction, m = sigmoid in 0..1 as a 4th channel; at init the input, m = 0.5."""
    model = build_model("resunet", scale=1, channels=[8, 16], blocks=1, unshuffle=2, mask_head=True).eval()
    assert model.hparams["mask_head"] is True
    x = torch.rand(1, 3, 18, 22)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 4, 18, 22)
        assert torch.allclose(out[:, :3], x, atol=1e-6) and torch.allclose(out[:, 3], torch.tensor(0.5))
        torch.nn.init.normal_(model.tail.weight, std=0.5)
        out = model(x)
    m = out[:, 3:]
    assert float(m.min()) >= 0 and float(m.max()) <= 1 and float(m.std()) > 0.01
    # Where the mask is ~0 the photo passes through, whatever the correction is.
    correction = (out[:, :3] - x) / m
    assert torch.allclose(out[:, :3], x + m * correction, atol=1e-5)
    with pytest.raises(UsageError, match="1x"):
        build_model("resunet", scale=2, channels=[8, 16], mask_head=True)
    assert "mask_head" not in build_model("resunet", scale=1, channels=[8, 16]).hparams


def test_invert_head_undoes_a_semi_transparent_overlay() -> None:
    """With the tail set to "overlay everywhere, opacity 0.6, colour 0.9", the output is the photo
    under a 0.6 x 0.9 overlay, exactly; a fresh net is close to the identity."""
    from photosr.training.models.resunet import MAX_ALPHA

    model = build_model(
        "resunet", scale=1, channels=[8, 16], blocks=1, unshuffle=2, mask_head=True, invert=True
    )
    model.eval()
    photo = torch.rand(1, 3, 16, 20)
    stamped = 0.4 * photo + 0.6 * 0.9
    with torch.no_grad():
        fresh = model(stamped)
        assert fresh.shape == (1, 8 - 4, 16, 20)
        assert float((fresh[:, :3] - stamped).abs().max()) < 0.01  # opacity starts at 0.017
        rows = 4  # unshuffle 2: 4 tail rows per output channel
        bias = model.tail.bias
        bias[3 * rows : 4 * rows] = 30.0  # mask: 1
        bias[4 * rows : 5 * rows] = float(torch.logit(torch.tensor(0.6 / MAX_ALPHA)))
        bias[5 * rows :] = float(torch.logit(torch.tensor(0.9)))
        out = model(stamped)
    assert torch.allclose(out[:, :3], photo, atol=1e-4) and torch.allclose(out[:, 3], torch.tensor(1.0))
    with pytest.raises(UsageError, match="needs mask_head"):
        build_model("resunet", scale=1, channels=[8, 16], invert=True)


def _perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initialisation, so zero-started branches take part."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module


def test_edge_block_is_one_3x3_conv_that_starts_as_its_plain_branch() -> None:
    """The merged kernel reproduces the branch-by-branch sum, border pixels included."""
    from photosr.training.models.plain import EdgeConv

    block = EdgeConv(5, 6)
    x = torch.rand(2, 5, 9, 11)
    with torch.no_grad():
        assert torch.allclose(block(x), block.conv(x), atol=1e-6)  # fresh: only the 3x3 branch
        _perturbed(block)
        merged, branches = block(x), block.branches(x)
        assert not torch.allclose(merged, block.conv(x), atol=1e-2)  # the other branches now count
        assert torch.allclose(merged, branches, atol=1e-5)
        weight, bias = block.kernel()
        assert weight.shape == (6, 5, 3, 3) and bias.shape == (6,)
    assert block.edge_scale.ndim == 1  # a per-channel scale: no weight decay, as biases


def test_ecb_plain_net_deploys_as_the_plain_net_with_merged_kernels() -> None:
    model = _perturbed(build_model("plain", scale=2, channels=8, convs=2, block="ecb", unshuffle=2)).eval()
    deployed = model.deployed()
    reference = build_model("plain", scale=2, channels=8, convs=2, unshuffle=2)
    assert deployed.hparams == {**model.hparams, "block": "conv"}
    assert count_parameters(deployed) == count_parameters(reference) < count_parameters(model)
    assert not any(isinstance(m, type(model.body[0])) for m in deployed.modules())
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        assert torch.allclose(deployed(x), model(x), atol=1e-5)
    assert reference.deployed() is reference
    with pytest.raises(UsageError, match="block"):
        build_model("plain", scale=2, block="rep")
