"""The training loop: AdamW + one-cycle, bf16 autocast + channels_last on CPU (AMP on CUDA), EMA
weights, gradient clipping, a step and/or wall-clock budget, checkpoints, validation against
bicubic/identity, sample sheets and a loss curve in the run folder. DDP when started under torchrun.

The schedule is a function of *progress* (the larger of steps done / `steps` and seconds spent /
`minutes`), so a run budgeted in minutes still anneals to the end of its time.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from photosr.errors import UsageError
from photosr.tasks import MASK_CHANNEL

from . import ddp
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import PatchStream, describe_crappifier, find_images, load_images, make_loader, resolve_crappifier
from .data import validation_pairs as make_validation_pairs
from .evaluate import bicubic_upscale, score_pairs, torch_predictor
from .losses import LossConfig, build_losses, critic_loss
from .models import build_model, count_parameters, default_arch
from .qat import fake_quantize_convs
from .reports import loss_curve, sample_sheet, save_png

Callback = Callable[[dict[str, Any]], None]


def one_cycle_lr(
    progress: float, peak: float, pct_start: float, div: float = 25.0, final_div: float = 1e4
) -> float:
    """torch's OneCycleLR shape (cosine up from peak/div, cosine down to peak/div/final_div) on 0..1."""
    progress = min(max(progress, 0.0), 1.0)
    start, end = peak / div, peak / div / final_div
    if progress < pct_start:
        t = progress / pct_start
        return start + (peak - start) * (1 - math.cos(math.pi * t)) / 2
    t = (progress - pct_start) / (1 - pct_start)
    return end + (peak - end) * (1 + math.cos(math.pi * t)) / 2


class EMA:
    """Exponential moving average of a model's weights (buffers copied), the weights we validate and ship."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Short runs: ramp the decay up so early weights do not dominate (as timm/BasicSR do).
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1 - decay)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buf.copy_(buf)


@dataclass
class RunState:
    """Counters that survive a resume."""

    step: int = 0
    seconds: float = 0.0
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": [], "val": []})


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    seconds: float
    parameters: int
    metrics: dict[str, Any]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it ("measured 2.7x faster" on this project's AVX512-BF16 CPU)."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    has_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return torch.bfloat16 if precision == "bf16" or has_bf16 else None


def new_model(cfg: TrainConfig) -> tuple[str, nn.Module]:
    """The run's network: fresh, or with the weights of `init_from` (whose architecture it then takes,
    unless the config names a different one - an error, since the weights would not fit). Only the
    activation may change (`model={act="leaky"}`): the convs' weights carry over and the net fine-tunes;
    a plain net may train on as edge blocks (`model={block="ecb"}`: the convs become the blocks' 3x3
    branches, the other branches start at zero) and an edge-block net as plain convs (`block="conv"`:
    the blocks' merged kernels); and a 1x U-Net may gain a mask head
    (`model={mask_head=true}`) and an overlay inversion (`invert=true`): its tail keeps the weights it
    has, the new channels start as a fresh model's do; it may take the JPEG quality as a fourth input
    plane (`quality_input=true`): the head's new input weights start at zero, so the net starts as the
    one it was, and learns what the quality is worth; it may also grow deeper (`model={blocks=N}`, more
    than it has): the added ResBlocks start as the identity, so training resumes from the same function.
    A plain net may grow wider (`model={channels=N}`): the added channels start unread (see
    `PlainSR.widened_state`), so it too resumes from the same function.
    A plain upscaler may also start a run at another scale: head and body carry over, the tail starts
    fresh."""
    arch = default_arch(cfg.task) if cfg.arch == "auto" else cfg.arch
    if not cfg.init_from:
        return arch, build_model(arch, scale=cfg.scale, **cfg.model)
    init = load_checkpoint(cfg.init_from)
    hparams = dict(init["hparams"])
    rescaled = hparams.pop("scale") != cfg.scale
    if cfg.arch not in ("auto", init["arch"]):
        raise UsageError(f"init-from holds {init['arch']} {hparams}; this run asks for {arch} {cfg.model}")
    # Rebuilt from its own hparams first, so defaults added since it was saved count as its values.
    own = build_model(init["arch"], scale=cfg.scale, **hparams)
    # A net that names its scale-specific weights lends the others to a run at another scale (as EDSR
    # starts x4 from x2); those start fresh (a plain net's zero tail: this scale's bicubic skip).
    scale_specific = tuple(getattr(own, "scale_specific", ()))
    if rescaled and not scale_specific:
        raise UsageError(f"init-from is a x{init['hparams']['scale']} model; this run is x{cfg.scale}")
    hparams = dict(own.hparams)
    changed = {k for k, v in cfg.model.items() if hparams.get(k, False if k in _ADDABLE else None) != v}
    to_edge_blocks = "block" in changed and (hparams.get("block"), cfg.model["block"]) == ("conv", "ecb")
    to_plain_convs = "block" in changed and (hparams.get("block"), cfg.model["block"]) == ("ecb", "conv")
    old_blocks = hparams.get("blocks", 0)
    deeper = "blocks" in changed and getattr(own, "grows_deeper", False) and cfg.model["blocks"] > old_blocks
    wider = (
        "channels" in changed
        and hasattr(own, "widened_state")
        and isinstance(cfg.model["channels"], int)
        and cfg.model["channels"] > hparams["channels"]
    )
    if (
        changed
        - {"act", "block", *_ADDABLE, *(["blocks"] if deeper else []), *(["channels"] if wider else [])}
        or ((wider or to_plain_convs) and rescaled)
        or any(not cfg.model[k] for k in changed & _ADDABLE)
        or ("block" in changed and not (to_edge_blocks or to_plain_convs))
    ):
        raise UsageError(f"init-from holds {init['arch']} {hparams}; this run asks for {arch} {cfg.model}")
    hparams.pop("scale")
    model = build_model(init["arch"], scale=cfg.scale, **{**hparams, **cfg.model})
    state = dict(init.get("ema") or init["model"])
    if rescaled:
        state = {k: v for k, v in state.items() if not k.startswith(scale_specific)}
    if changed & _HEADS:
        state.update(_tail_with_heads(model, state))
    if "quality_input" in changed:
        state.update(_head_with_quality(model, state))
    if wider or to_plain_convs:  # merged edge blocks; added channels start unread: the same function
        own.load_state_dict(state)
        state = model.widened_state(own)
    elif to_edge_blocks:
        state = model.adopt_plain_state(state)
    missing, unexpected = model.load_state_dict(state, strict=not (changed or rescaled))
    added_blocks = set(model.state_dict()) - set(own.state_dict()) if deeper else set()
    modules = dict(model.named_modules())
    for key in [*missing, *unexpected]:
        if rescaled and key in missing and key.startswith(scale_specific):
            continue  # this scale's own weights keep their fresh start
        if (to_edge_blocks or wider) and key in missing and model.new_branch_parameter(key):
            continue  # the branches edge blocks add start fresh
        if key in missing and key in added_blocks:
            continue  # the blocks a deeper U-Net adds start as the identity
        if not isinstance(modules.get(key.rpartition(".")[0]), nn.PReLU | nn.LeakyReLU):
            # only activation parameters (PReLU slopes) may be dropped or start fresh
            raise UsageError(f"init-from: weight {key} does not fit the new activation")
    return init["arch"], model


_HEADS = {"mask_head", "invert"}  # output heads --init-from may add to a 1x U-Net
_ADDABLE = _HEADS | {"quality_input"}  # and the input plane it may add


def _head_with_quality(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The old head's weights for the photo's input channels, zero for the quality plane's. Pixel
    unshuffle puts input channel c's f x f phases at c*f^2 .. (c+1)*f^2 - 1, so RGB keep their places and
    the quality plane's phases come last."""
    weight = torch.zeros_like(model.head.weight)
    old = state["head.weight"]
    weight[:, : old.shape[1]] = old
    return {"head.weight": weight}


def _tail_with_heads(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The old tail's weights in the first rows of the wider tail (pixel shuffle takes output channel c
    from rows c*u^2 .. (c+1)*u^2 - 1, so the old channels keep their place); the new heads' rows keep
    the fresh model's initialisation (zeros; the opacity logit's bias at its start value)."""
    new = {}
    for name in ("tail.weight", "tail.bias"):
        target = getattr(model.tail, name.split(".")[1]).detach().clone()
        rows = state[name].shape[0]
        target[:rows] = state[name]
        new[name] = target
    return new


ENCODER_LR_SCALE = 0.1  # a pretrained encoder, once unfrozen, moves at a tenth of the decoder's rate


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no decay on biases and per-channel scalars (PReLU slopes): decaying them only hurts."""
    encoder = {id(p) for p in getattr(model, "encoder_parameters", list)()}
    groups = []
    for is_encoder, lr_scale in ((False, 1.0), (True, ENCODER_LR_SCALE)):
        params = [p for p in model.parameters() if (id(p) in encoder) == is_encoder]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                groups.append(
                    {"params": chosen, "weight_decay": cfg.weight_decay * decay, "lr_scale": lr_scale}
                )
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def build_loss(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """Generator loss (weights from the config's [loss] table) and the critic when a GAN term is on."""
    try:
        return build_losses(LossConfig(**cfg.loss))
    except TypeError as err:
        raise UsageError(f"bad [loss] settings: {err}") from err


class Trainer:
    """Holds the pieces of a run; `fit()` is the loop."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        callback: Callback | None = None,
        command: str = "",
    ):
        self.cfg, self.run_dir, self.callback = cfg, Path(run_dir), callback
        self.command = command  # the command line that started the run, for the plugin's model card
        self.dist = ddp.DistContext.from_env()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = self.dist.device(pick_device(cfg.device))
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.arch, model = new_model(cfg)
        if cfg.qat:  # before the EMA copy, which then rounds (and copies the ranges) as the model does
            fake_quantize_convs(model)
        self.model = model.to(self.device)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg)
        self.loss_fn, self.critic = build_loss(cfg)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=cfg.lr) if self.critic else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.state = RunState()
        self.crappifier = resolve_crappifier(cfg.recipe, task=cfg.task, scale=cfg.scale)
        if resume:
            self._restore(load_checkpoint(self.run_dir / "last.pt"))
        self.encoder_frozen = False
        self.net = self.dist.wrap(self.model)
        self.val_pairs: list = []
        self.last_metrics: dict[str, Any] = {}

    # ---- setup helpers -------------------------------------------------------------------------
    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        if self.ema and payload.get("ema"):
            self.ema.model.load_state_dict(payload["ema"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.critic and payload.get("critic"):
            self.critic.load_state_dict(payload["critic"])
            self.critic_opt.load_state_dict(payload["critic_optimizer"])
        self.state = RunState(int(payload["step"]), float(payload["seconds"]), payload["history"])
        self.command = payload.get("command") or self.command  # a resume continues the run that was started

    def load_data(self) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        paths = find_images(cfg.data)
        images = load_images(paths, min_side=cfg.patch * cfg.scale, limit=cfg.max_images)
        self.log(f"data: {len(images)} photos, {sum(i.size for i in images) / 3e6:.1f} MP in memory")
        stream = PatchStream(
            images,
            self.crappifier,
            scale=cfg.scale,
            patch=cfg.patch,
            batch_size=cfg.batch_size,
            with_mask=getattr(self.model, "mask_head", False),
            with_quality=getattr(self.model, "quality_input", False),
        )
        # A different stream after a resume and on every rank, all reproducible from `seed`.
        seed = cfg.seed + self.state.step + 1_000_003 * self.dist.rank
        return make_loader(stream, workers=cfg.workers, seed=seed)

    def load_validation(self) -> None:
        cfg = self.cfg
        if not cfg.val or not self.dist.is_main:
            return
        images = load_images(find_images([cfg.val]), min_side=cfg.scale * 8)
        damage = (
            resolve_crappifier(cfg.val_recipe, task=cfg.task, scale=cfg.scale)
            if cfg.val_recipe
            else self.crappifier
        )
        self.val_pairs = make_validation_pairs(
            images, damage, scale=cfg.scale, crop=cfg.val_crop, count=cfg.val_crops
        )

    # ---- the loop ------------------------------------------------------------------------------
    def progress(self) -> float:
        cfg, s = self.cfg, self.state
        parts = [
            s.step / cfg.steps if cfg.steps else 0.0,
            s.seconds / (60 * cfg.minutes) if cfg.minutes else 0.0,
        ]
        return self.dist.max(max(parts)) if cfg.minutes else max(parts)

    def fit(self) -> TrainResult:
        cfg = self.cfg
        if not cfg.steps and not cfg.minutes:
            raise UsageError("give a budget: steps or minutes")
        if not cfg.data:
            raise UsageError("no training data: give data folders (--data)")
        torch.manual_seed(cfg.seed + self.state.step)
        batches = iter(self.load_data())
        self.load_validation()
        self.log(f"model: {self.arch} {self.model.hparams}, {count_parameters(self.model):,} parameters")
        self.log(f"device {self.device}, autocast {self.amp_dtype}, threads {torch.get_num_threads()}")
        self.log(f"crappifier: {json.dumps(describe_crappifier(self.crappifier))}")
        losses: list[float] = []
        window = (self.state.step, time.perf_counter())  # (step, time) the steps/h figure counts from
        tick = window[1]
        while self.progress() < 1.0:
            losses.append(self.train_step(*next(batches)))
            self.state.step += 1
            now = time.perf_counter()
            self.state.seconds, tick = self.state.seconds + now - tick, now
            if self.state.step % cfg.log_every == 0:
                self.log_progress(float(np.mean(losses)), (self.state.step - window[0]) / (now - window[1]))
                losses, window = [], (self.state.step, now)
            if self.state.step % cfg.val_every == 0:
                self.validate()
            if self.state.step % cfg.checkpoint_every == 0:
                self.save()
            if self.state.step % cfg.val_every == 0 or self.state.step % cfg.checkpoint_every == 0:
                # Validation and saving do not count against the budget or the speed figure.
                tick = time.perf_counter()
                window = (self.state.step, tick)
        metrics = self.validate() if self.state.step % cfg.val_every else self.last_metrics
        path = self.save()
        self.write_reports()
        params = count_parameters(self.model)
        return TrainResult(self.run_dir, path, self.state.step, self.state.seconds, params, metrics)

    def train_step(self, lr_in: torch.Tensor, hr: torch.Tensor) -> float:
        cfg = self.cfg
        progress = self.progress()
        self.update_freezing(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = one_cycle_lr(progress, cfg.lr, cfg.pct_start) * group.get("lr_scale", 1.0)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        lr_in = lr_in.to(self.device, memory_format=fmt, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        self.net.train()
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            sr = self.net(lr_in)
        if self.critic is not None:
            self.critic.requires_grad_(False)  # the generator's step must not train the critic
        loss, _parts = self.loss_fn(sr.float(), hr, critic=self.critic)
        self.optimizer.zero_grad(set_to_none=True)
        self._backward_and_step(loss)
        if self.critic is not None:
            self.critic.requires_grad_(True)
            self.critic_step(sr.detach().float()[:, :MASK_CHANNEL], hr[:, :MASK_CHANNEL])  # images only
        if self.ema:
            self.ema.update(self.model, self.state.step)
        return float(loss.detach())

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def update_freezing(self, progress: float) -> None:
        """Gradual unfreezing: a pretrained encoder trains only after `unfreeze_at` of the budget."""
        if not hasattr(self.model, "set_encoder_frozen"):
            return
        frozen = progress < self.cfg.unfreeze_at
        if frozen != self.encoder_frozen:
            self.model.set_encoder_frozen(frozen)
            self.encoder_frozen = frozen
            self.net = self.dist.wrap(self.model)  # DDP registers only parameters that need gradients
            self.log(f"step {self.state.step}: encoder {'frozen' if frozen else 'unfrozen'}")

    def critic_step(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        loss = critic_loss(self.critic, sr, hr)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()

    # ---- validation, checkpoints, reports ------------------------------------------------------
    def eval_model(self) -> nn.Module:
        return self.ema.model if self.ema else self.model

    def validate(self) -> dict[str, Any]:
        if not self.val_pairs:
            return {}
        model = self.eval_model().eval()
        table = score_pairs(
            self.val_pairs, {"model": torch_predictor(model)}, scale=self.cfg.scale, with_ssim=False
        )
        self.last_metrics = {"step": self.state.step, "val": table}
        self.state.history["val"].append([self.state.step, table["model"]["psnr"]])
        base = next(k for k in table if k != "model")
        self.log(
            f"val step {self.state.step}: PSNR-Y {table['model']['psnr']:.3f} dB, {base} {table[base]['psnr']:.3f} dB,"
            f" gain {table['model']['gain_db']:+.3f} dB"
        )
        self.emit({"event": "val", "step": self.state.step, "psnr": table["model"]["psnr"], "table": table})
        self.write_reports()  # the sheet and curve in the run folder always show the latest validation
        return self.last_metrics

    def save(self) -> Path:
        path = self.run_dir / "last.pt"
        if not self.dist.is_main:
            return path
        extra: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "step": self.state.step,
            "seconds": self.state.seconds,
            "history": self.state.history,
            "metrics": self.last_metrics,
            "command": self.command,
        }
        if self.ema:
            extra["ema"] = self.ema.model.state_dict()
        if self.critic:
            extra |= {"critic": self.critic.state_dict(), "critic_optimizer": self.critic_opt.state_dict()}
        return save_checkpoint(path, cfg=self.cfg, arch=self.arch, model=self.model, **extra)

    def write_reports(self) -> None:
        if not self.dist.is_main:
            return
        h = self.state.history
        save_png(loss_curve(h["step"], h["loss"], [tuple(v) for v in h["val"]]), self.run_dir / "loss.png")
        if self.val_pairs:
            predict = torch_predictor(self.eval_model().eval())
            rows = [
                (bicubic_upscale(lr, self.cfg.scale), predict(lr, quality), hr)
                for lr, hr, quality in self.val_pairs[:4]
            ]
            sheet = sample_sheet(
                rows, ["input (bicubic)" if self.cfg.scale > 1 else "input", "model", "target"]
            )
            save_png(sheet, self.run_dir / "samples.png")

    def log_progress(self, loss: float, rate: float) -> None:
        self.state.history["step"].append(self.state.step)
        self.state.history["loss"].append(loss)
        lr = self.optimizer.param_groups[0]["lr"]
        self.log(
            f"step {self.state.step} loss {loss:.5f} lr {lr:.2e} {rate * 3600:,.0f} steps/h"
            f" {self.state.seconds / 60:.1f} min ({100 * self.progress():.1f}%)"
        )
        self.emit({"event": "step", "step": self.state.step, "loss": loss, "progress": self.progress()})

    def log(self, message: str) -> None:
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.run_dir / "log.txt", "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")
        self.emit({"event": "log", "message": message})

    def emit(self, event: dict[str, Any]) -> None:
        if self.callback and self.dist.is_main:
            self.callback(event)


def train(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    callback: Callback | None = None,
    command: str = "",
) -> TrainResult:
    """Train one run to its budget; `resume` continues `run_dir/last.pt` from its step."""
    return Trainer(cfg, run_dir, resume=resume, callback=callback, command=command).fit()


__all__ = [
    "EMA",
    "RunState",
    "TrainResult",
    "Trainer",
    "autocast_dtype",
    "one_cycle_lr",
    "pick_device",
    "train",
]
