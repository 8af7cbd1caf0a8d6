"""Distributed data parallel when started under `torchrun` (or any launcher setting RANK/WORLD_SIZE).

Single-process runs get a context whose methods are no-ops, so the trainer has one code path. CPU runs
use the gloo backend, CUDA runs nccl with one GPU per local rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistContext:
        """Join the process group described by torchrun's environment variables, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call in the training step: DDP-wrapped when distributed (gradients all-reduced)."""
        if not self.enabled:
            return model
        ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def max(self, value: float) -> float:
        """The largest value over all ranks: ranks agree on time-based progress and stop together."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistContext", "shutdown"]
