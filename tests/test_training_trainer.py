"""Trainer pieces: one-cycle schedule, EMA, budgets, GAN step, gradual unfreezing, reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from photosr.training.checkpoint import load_checkpoint  # noqa: E402
from photosr.training.config import TrainConfig  # noqa: E402
from photosr.training.trainer import EMA, Trainer, one_cycle_lr, train  # noqa: E402

from photosr.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _cfg(photos: Path, **changes) -> TrainConfig:
    base = {
        "task": "restore", "data": (str(photos),), "recipe": "restore", "arch": "resunet",
        "model": {"channels": [8, 16], "blocks": 1}, "steps": 4, "patch": 16, "batch_size": 2,
        "workers": 0, "threads": 1, "log_every": 2,
    }  # fmt: skip
    return TrainConfig(**{**base, **changes})


def test_one_cycle_warms_up_peaks_and_anneals() -> None:
    lrs = [one_cycle_lr(p, 1e-3, 0.1) for p in np.linspace(0, 1, 101)]
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert max(lrs) == pytest.approx(1e-3) and int(np.argmax(lrs)) == 10
    assert lrs[-1] < 1e-6 and all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert one_cycle_lr(2.0, 1e-3, 0.1) == lrs[-1]  # clamped past the end


def test_ema_follows_the_model_slowly() -> None:
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)
    moved = (ema.model.weight - (model.weight - 1.0)).abs()
    assert torch.allclose(moved, torch.full_like(moved, 0.1), atol=1e-6)
    assert not ema.model.weight.requires_grad


def test_budget_is_required_and_data_too(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="budget"):
        train(_cfg(photos, steps=0), tmp_path / "a")
    with pytest.raises(UsageError, match="no training data"):
        train(_cfg(photos, data=()), tmp_path / "b")


def test_run_writes_checkpoint_log_and_pictures(photos: Path, tmp_path: Path) -> None:
    result = train(_cfg(photos, val=str(photos), val_crops=2, val_crop=32, val_every=2), tmp_path / "run")
    assert result.step == 4 and result.metrics["val"]["model"]["psnr"] > 0
    for name in ("last.pt", "log.txt", "loss.png", "samples.png"):
        assert (tmp_path / "run" / name).is_file()
    payload = load_checkpoint(result.checkpoint)
    assert {"model", "ema", "optimizer", "config", "history"} <= set(payload)
    assert "val step 4" in (tmp_path / "run" / "log.txt").read_text()


def test_gan_step_trains_the_critic(photos: Path, tmp_path: Path) -> None:
    cfg = _cfg(photos, loss={"pixel": 1.0, "gan": 0.1, "critic_channels": 8, "critic_layers": 2}, steps=2)
    trainer = Trainer(cfg, tmp_path / "run")
    before = [p.detach().clone() for p in trainer.critic.parameters()]
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters(), strict=True))
    assert "critic" in load_checkpoint(tmp_path / "run" / "last.pt")


def test_pretrained_encoder_is_frozen_first_then_unfrozen(photos: Path, tmp_path: Path) -> None:
    model = {"depth": 2, "decoder": [8, 16], "full_res": 8}
    trainer = Trainer(_cfg(photos, arch="effunet", model=model, steps=4, unfreeze_at=0.5), tmp_path / "run")
    start = [p.detach().clone() for p in trainer.model.encoder_parameters()]
    trainer.state.step = 0
    trainer.update_freezing(0.0)
    assert trainer.encoder_frozen and not any(p.requires_grad for p in trainer.model.encoder_parameters())
    trainer.fit()
    assert not trainer.encoder_frozen
    assert any(not torch.equal(a, b) for a, b in zip(start, trainer.model.encoder_parameters(), strict=True))
    assert "encoder unfrozen" in (tmp_path / "run" / "log.txt").read_text()


def test_init_from_a_plugin_folder_starts_from_its_weights(photos: Path, tmp_path: Path) -> None:
    from photosr.training.export import export_plugin

    first = train(_cfg(photos, steps=2), tmp_path / "a")
    export_plugin(first.checkpoint, tmp_path / "plugin")
    weights = load_checkpoint(tmp_path / "plugin")["model"]
    trainer = Trainer(_cfg(photos, arch="auto", model={}, init_from=str(tmp_path / "plugin")), tmp_path / "b")
    assert trainer.arch == "resunet"
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    with pytest.raises(UsageError, match="init-from holds resunet"):
        Trainer(_cfg(photos, arch="plain", model={}, init_from=str(tmp_path / "plugin")), tmp_path / "c")
    with pytest.raises(UsageError, match="init-from holds resunet"):  # edge blocks are for plain nets
        Trainer(
            _cfg(photos, arch="auto", model={"block": "ecb"}, init_from=str(tmp_path / "plugin")),
            tmp_path / "d",
        )


def test_init_from_may_swap_prelu_for_a_fused_leaky_relu(photos: Path, tmp_path: Path) -> None:
    """The convs carry over, the PReLU slopes are dropped, and the export has no PRelu node left."""
    import onnx
    from photosr.training.export import export_plugin

    plain = {"task": "upscale", "scale": 2, "recipe": "bicubic", "arch": "plain", "patch": 8}
    first = train(_cfg(photos, **plain, model={"channels": 8, "convs": 1}, steps=1), tmp_path / "a")
    weights = load_checkpoint(first.checkpoint)["ema"]
    leaky = Trainer(
        _cfg(photos, **{**plain, "arch": "auto"}, model={"act": "leaky"}, init_from=str(first.checkpoint)),
        tmp_path / "b",
    )
    state = leaky.model.state_dict()
    assert leaky.model.hparams["act"] == "leaky" and leaky.model.hparams["channels"] == 8
    assert not any(key not in weights for key in state)
    assert all(torch.equal(state[key], weights[key]) for key in state)
    assert {key for key in weights if key not in state} == {"body.1.weight", "body.3.weight"}  # slopes
    result = leaky.fit()
    export_plugin(result.checkpoint, tmp_path / "plugin")
    ops = {node.op_type for node in onnx.load(tmp_path / "plugin" / "model.onnx").graph.node}
    assert "LeakyRelu" in ops and "PRelu" not in ops
    with pytest.raises(UsageError, match="init-from holds plain"):  # other shapes: narrower, shallower
        Trainer(_cfg(photos, **plain, model={"convs": 2}, init_from=str(first.checkpoint)), tmp_path / "c")


def test_init_from_may_retrain_a_plain_net_as_edge_blocks(photos: Path, tmp_path: Path) -> None:
    """The convs become the blocks' 3x3 branches, so training resumes from the same function; the export
    is a plain-conv net again, parity-checked against the blocks."""
    import onnx
    from photosr.training.export import export_plugin

    plain = {"task": "upscale", "scale": 2, "recipe": "bicubic", "arch": "plain", "patch": 8}
    first = train(_cfg(photos, **plain, model={"channels": 8, "convs": 1}, steps=2), tmp_path / "a")
    trainer = Trainer(
        _cfg(photos, **plain, model={"block": "ecb"}, init_from=str(first.checkpoint)), tmp_path / "b"
    )
    before = load_checkpoint(first.checkpoint)
    old = Trainer(_cfg(photos, **plain, model={}, init_from=str(first.checkpoint)), tmp_path / "c").model
    assert trainer.model.hparams["block"] == "ecb"
    assert torch.equal(trainer.model.state_dict()["body.0.conv.weight"], before["ema"]["body.0.weight"])
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(x), old.eval()(x), atol=1e-6)
    result = trainer.fit()
    manifest = export_plugin(result.checkpoint, tmp_path / "plugin")
    assert manifest["metrics"]["parameters"] == sum(p.numel() for p in old.parameters())
    assert manifest["training"]["hparams"]["block"] == "ecb"
    ops = [node.op_type for node in onnx.load(tmp_path / "plugin" / "model.onnx").graph.node]
    assert ops.count("Conv") == 3 + 1  # head, body, tail + the bicubic skip's fixed conv
    back = Trainer(
        _cfg(photos, **plain, model={"block": "conv"}, init_from=str(result.checkpoint)), tmp_path / "d"
    ).model  # and back to plain convs: the blocks' merged kernels
    assert back.hparams["block"] == "conv"
    trained = load_checkpoint(result.checkpoint)
    blocks = Trainer(_cfg(photos, **plain, model={}, init_from=str(result.checkpoint)), tmp_path / "e").model
    assert blocks.hparams["block"] == "ecb" and trained["hparams"]["block"] == "ecb"
    with torch.no_grad():
        assert torch.allclose(back.eval()(x), blocks.eval()(x), atol=1e-6)


def test_init_from_may_widen_a_plain_net_from_the_same_function(photos: Path, tmp_path: Path) -> None:
    """channels 8 -> 12: old weights keep their place, the added channels start unread (zero columns in
    the next conv and the tail), so the wider net computes what the trained one did - then it trains
    them. Narrower would drop trained weights, and widening does not combine with a change of scale."""
    plain = {"task": "upscale", "scale": 2, "recipe": "bicubic", "arch": "plain", "patch": 8}
    first = train(
        _cfg(photos, **plain, model={"channels": 8, "convs": 2, "block": "ecb"}, steps=3), tmp_path / "a"
    )
    narrow = Trainer(_cfg(photos, **plain, model={}, init_from=str(first.checkpoint)), tmp_path / "b").model
    narrow = narrow.deployed()
    wide = Trainer(
        _cfg(photos, **plain, model={"channels": 12, "block": "conv"}, init_from=str(first.checkpoint)),
        tmp_path / "c",
    )
    state, old = wide.model.state_dict(), narrow.state_dict()
    assert wide.model.hparams["channels"] == 12 and state["body.2.weight"].shape == (12, 12, 3, 3)
    assert torch.equal(state["body.2.weight"][:8, :8], old["body.2.weight"])
    assert not state["body.2.weight"][:, 8:].any() and not state["tail.weight"][:, 8:].any()
    assert state["body.2.weight"][8:].abs().sum() > 0  # the added channels compute something
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        before = narrow.eval()(x)
        assert not torch.allclose(before, narrow.upsample(x), atol=1e-4)  # a trained net, not the skip
        assert torch.allclose(wide.model.eval()(x), before, atol=1e-6)
    wide.fit()
    assert wide.model.state_dict()["tail.weight"][:, 8:].any()  # the new channels are read now
    edge = Trainer(
        _cfg(photos, **plain, model={"channels": 12}, init_from=str(first.checkpoint)), tmp_path / "d"
    ).model  # still edge blocks: the widened convs are their 3x3 branches
    with torch.no_grad():
        assert edge.hparams["block"] == "ecb" and torch.allclose(edge.eval()(x), before, atol=1e-6)
    with pytest.raises(UsageError, match="init-from holds plain"):
        Trainer(_cfg(photos, **plain, model={"channels": 4}, init_from=str(first.checkpoint)), tmp_path / "e")
    with pytest.raises(UsageError, match="init-from holds plain"):
        Trainer(
            _cfg(photos, **{**plain, "scale": 4}, model={"channels": 12}, init_from=str(first.checkpoint)),
            tmp_path / "f",
        )


def test_init_from_another_scale_lends_a_plain_net_its_body(photos: Path, tmp_path: Path) -> None:
    """A x4 net's head and body start a x2 run (edge blocks and a leaky activation too); the x2 tail is
    fresh, so the new net starts as exactly the x2 bicubic skip. U-Nets do not change scale."""
    plain = {"task": "upscale", "recipe": "bicubic", "arch": "plain", "patch": 8}
    x4 = train(_cfg(photos, **plain, scale=4, model={"channels": 8, "convs": 2}, steps=2), tmp_path / "a")
    weights = load_checkpoint(x4.checkpoint)["ema"]
    x2 = Trainer(
        _cfg(photos, **plain, scale=2, model={"act": "leaky", "block": "ecb"}, init_from=str(x4.checkpoint)),
        tmp_path / "b",
    ).model
    assert x2.hparams["scale"] == 2 and x2.hparams["channels"] == 8 and x2.hparams["convs"] == 2
    state = x2.state_dict()
    assert torch.equal(state["body.2.conv.weight"], weights["body.2.weight"])
    assert state["tail.weight"].shape[0] == 3 * 2 * 2 and not state["tail.weight"].any()
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert torch.allclose(x2.eval()(x), x2.upsample(x), atol=1e-6)
    restore = train(_cfg(photos), tmp_path / "c")
    with pytest.raises(UsageError, match="x1 model; this run is x2"):
        Trainer(
            _cfg(photos, task="upscale", scale=2, recipe="bicubic", init_from=str(restore.checkpoint)),
            tmp_path / "d",
        )


def test_init_from_may_add_a_mask_head_to_a_restoration_unet(photos: Path, tmp_path: Path) -> None:
    """Body and RGB tail carry over; the mask rows start at zero; the run trains on overlay masks."""
    unet = {
        "task": "dewatermark",
        "recipe": None,
        "model": {"channels": [8, 16], "blocks": 1, "unshuffle": 2},
    }
    first = train(_cfg(photos, **unet, steps=1), tmp_path / "a")
    weights = load_checkpoint(first.checkpoint)["ema"]
    masked = Trainer(
        _cfg(photos, **{**unet, "model": {"mask_head": True}}, init_from=str(first.checkpoint)),
        tmp_path / "b",
    )
    state = masked.model.state_dict()
    assert masked.model.hparams["mask_head"] is True
    for key, value in weights.items():
        if key.startswith("tail."):
            assert torch.equal(state[key][: value.shape[0]], value), key
            assert not state[key][value.shape[0] :].any(), key
        else:
            assert torch.equal(state[key], value), key
    result = masked.fit()
    assert result.step == 4
    assert {"mask", "pixel"} <= set(
        masked.loss_fn(masked.model(torch.rand(1, 3, 16, 16)), torch.rand(1, 4, 16, 16))[1]
    )
    with pytest.raises(UsageError, match="init-from holds resunet"):
        Trainer(
            _cfg(photos, **{**unet, "model": {"mask_head": False}}, init_from=str(result.checkpoint)),
            tmp_path / "c",
        )
    inverting = Trainer(
        _cfg(photos, **{**unet, "model": {"invert": True}}, init_from=str(result.checkpoint)), tmp_path / "d"
    )
    masked_state = load_checkpoint(result.checkpoint)["ema"]
    bias = inverting.model.state_dict()["tail.bias"]
    assert torch.equal(bias[:16], masked_state["tail.bias"])  # RGB and mask rows (4 per channel) kept
    assert torch.all(bias[16:20] == -4.0) and not bias[20:].any()  # opacity starts low, colour at 0


def test_init_from_may_grow_a_unet_deeper_from_the_same_function(photos: Path, tmp_path: Path) -> None:
    """blocks 1 -> 2: every weight carries over, the added ResBlocks start as the identity, so the deeper
    net computes what the trained one did; fewer blocks would drop trained weights and is refused."""
    unet = {"model": {"channels": [8, 16], "blocks": 1, "unshuffle": 2}}
    first = train(_cfg(photos, **unet, steps=2), tmp_path / "a")
    weights = load_checkpoint(first.checkpoint)["ema"]
    deeper = Trainer(_cfg(photos, model={"blocks": 2}, init_from=str(first.checkpoint)), tmp_path / "b")
    state = deeper.model.state_dict()
    assert deeper.model.hparams["blocks"] == 2 and set(weights) < set(state)
    for key, value in weights.items():
        assert torch.equal(state[key], value), key
    added = sorted(set(state) - set(weights))
    assert added and all(".1.conv" in key for key in added)  # the second block of each stage
    shallow = Trainer(_cfg(photos, **unet, init_from=str(first.checkpoint)), tmp_path / "c").model
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.allclose(deeper.model.eval()(x), shallow.eval()(x), atol=1e-6)
        assert not torch.allclose(shallow(x), x, atol=1e-4)  # trained: not the untrained identity
    result = deeper.fit()
    with pytest.raises(UsageError, match="init-from holds resunet"):
        Trainer(_cfg(photos, model={"blocks": 1}, init_from=str(result.checkpoint)), tmp_path / "d")


def test_init_from_may_add_the_jpeg_quality_input_from_the_same_function(
    photos: Path, tmp_path: Path
) -> None:
    """The head's new input columns start at zero: whatever the plane holds, the net computes what the
    trained one did, and training on JPEG damage then feeds it the quality."""
    unet = {"model": {"channels": [8, 16], "blocks": 1, "unshuffle": 2}}
    first = train(_cfg(photos, **unet, steps=2), tmp_path / "a")
    aware = Trainer(
        _cfg(photos, model={"quality_input": True}, init_from=str(first.checkpoint)), tmp_path / "b"
    )
    blind = Trainer(_cfg(photos, **unet, init_from=str(first.checkpoint)), tmp_path / "c").model.eval()
    assert aware.model.hparams["quality_input"] is True and aware.model.head.in_channels == 16
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        for value in (0.0, 0.3, 0.9):
            plane = torch.full_like(x[:, :1], value)
            assert torch.equal(aware.model.eval()(torch.cat([x, plane], 1)), blind(x))
    result = aware.fit()
    assert result.step == 4
    with pytest.raises(UsageError, match="init-from holds resunet"):
        Trainer(
            _cfg(photos, model={"quality_input": False}, init_from=str(result.checkpoint)), tmp_path / "d"
        )


@pytest.mark.parametrize("task", ["restore", "colorize", "dewatermark"])
def test_every_task_preset_trains(photos: Path, tmp_path: Path, task: str) -> None:
    """Each 1x task's default crappification feeds the loop (inputs and targets the same size)."""
    result = train(_cfg(photos, task=task, recipe=None, steps=1, log_every=1), tmp_path / task)
    assert result.step == 1 and np.isfinite(load_checkpoint(result.checkpoint)["history"]["loss"][0])


def test_bad_loss_settings_are_usage_errors(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="loss"):
        Trainer(_cfg(photos, loss={"bogus": 1.0}), tmp_path / "run")
