"""Training speed per architecture on this machine: steps/hour in fp32 and with bf16 autocast.

One training step = forward, L1 loss, backward, clip, AdamW step, on random data already in memory
(so the figure is the model's cost, not the data pipeline's). Each configuration is warmed up, then
timed over several short repeats; the table shows the median and the bf16/fp32 ratio measured in the
same process. Close other CPU-heavy work first: shared cores skew every figure.

    .venv/bin/python benchmarks/train_speed.py [--threads N] [--steps 10] [--repeats 3] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from photosr.training.config import TrainConfig
from photosr.training.models import build_model, count_parameters
from photosr.training.trainer import build_optimizer

# name, arch, scale, hyperparameters, input patch side
CASES = [
    ("plain x4 (upscale-x4)", "plain", 4, {"channels": 48, "convs": 12}, 48),
    ("plain x2 (upscale-x2)", "plain", 2, {"channels": 48, "convs": 12, "act": "leaky", "block": "ecb"}, 64),
    ("resunet 1x", "resunet", 1, {}, 64),
    ("effunet 1x (encoder trainable)", "effunet", 1, {}, 64),
]


def time_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, bf16: bool) -> float:
    """Seconds per step over `steps` steps."""
    opt = build_optimizer(model, TrainConfig())
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.l1_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - start) / steps


def measure(arch: str, scale: int, hparams: dict, patch: int, args: argparse.Namespace, bf16: bool) -> float:
    torch.manual_seed(0)
    model = build_model(arch, scale=scale, **hparams).train()
    fmt = torch.channels_last if bf16 else torch.contiguous_format  # channels_last goes with bf16 (oneDNN)
    model.to(memory_format=fmt)
    x = torch.rand(args.batch, 3, patch, patch).to(memory_format=fmt)
    y = torch.rand(args.batch, 3, patch * scale, patch * scale)
    time_steps(model, x, y, 2, bf16)  # warm-up: oneDNN picks its kernels
    return statistics.median(time_steps(model, x, y, args.steps, bf16) for _ in range(args.repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--only", default="", help="substring of the case names to run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.repeats}"
    )
    print("| model | params | input patch | fp32 steps/h | bf16+channels_last steps/h | bf16/fp32 |")
    print("|---|---|---|---|---|---|")
    for name, arch, scale, hparams, patch in CASES:
        if args.only and args.only not in name:
            continue
        fp32 = measure(arch, scale, hparams, patch, args, bf16=False)
        bf16 = measure(arch, scale, hparams, patch, args, bf16=True)
        params = count_parameters(build_model(arch, scale=scale, **hparams))
        print(
            f"| {name} | {params:,} | {patch} | {3600 / fp32:,.0f} | {3600 / bf16:,.0f} | {fp32 / bf16:.2f}x |"
        )


if __name__ == "__main__":
    main()
