"""Cost of each training loss term per step on CPU: forward + backward for a batch of 128x128 crops,
fp32 and bf16 autocast (channels_last), median of N runs, and the ratio to the L1 pixel loss measured in
the same process. What a trainer pays on top of its own network for `perceptual` and `gan` weights.

    .venv/bin/python benchmarks/losses_cost.py [--batch 8] [--size 128] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from photosr.training.losses import (
    PatchCritic,
    PerceptualLoss,
    PixelLoss,
    critic_loss,
    relativistic_generator_loss,
)


def median_ms(step: Callable[[], torch.Tensor], runs: int) -> float:
    step().backward()  # warm-up: lazy initialisation, allocator
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def terms(batch: int, size: int) -> dict[str, Callable[[bool], torch.Tensor]]:
    target = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    pred = target.clone().add_(0.05 * torch.randn_like(target)).requires_grad_(True)
    pixel, perceptual, critic = PixelLoss("l1"), PerceptualLoss(), PatchCritic()
    perceptual.features.to(memory_format=torch.channels_last)
    critic.to(memory_format=torch.channels_last)

    def generator_gan(_: bool) -> torch.Tensor:
        with torch.no_grad():
            real = critic(target)
        return relativistic_generator_loss(real, critic(pred))

    return {
        "pixel l1": lambda _: pixel(pred, target),
        "perceptual effnet-lite0": lambda _: perceptual(pred, target),
        "gan generator term": generator_gan,
        "gan critic step": lambda _: critic_loss(critic, pred, target),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name, fn in terms(args.batch, args.size).items():
        fp32 = median_ms(lambda fn=fn: fn(False), args.runs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = median_ms(lambda fn=fn: fn(True), args.runs)
        rows.append((name, fp32, bf16))
    base = rows[0][1]
    print(
        f"loss cost per step, batch {args.batch}x3x{args.size}x{args.size}, {torch.get_num_threads()} threads, median of {args.runs}"
    )
    print(f"{'term':26} {'fp32 ms':>9} {'bf16 ms':>9} {'fp32/bf16':>10} {'fp32 x l1':>10}")
    for name, fp32, bf16 in rows:
        print(f"{name:26} {fp32:9.1f} {bf16:9.1f} {fp32 / bf16:10.2f} {fp32 / base:10.0f}")


if __name__ == "__main__":
    main()
