"""DDP on CPU: two processes with the gloo backend train a few steps and end with identical weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str) -> None:
    # What torchrun would set for each process.
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    from photosr.training import ddp
    from photosr.training.config import TrainConfig
    from photosr.training.trainer import Trainer

    cfg = TrainConfig(
        task="upscale", scale=2, data=(f"{root}/photos",), recipe="upscale", arch="plain",
        model={"channels": 8, "convs": 1}, steps=3, patch=8, batch_size=2, workers=0, threads=1, log_every=1,
    )  # fmt: skip
    trainer = Trainer(cfg, Path(root) / "run")
    assert trainer.dist.world_size == world and trainer.dist.rank == rank
    result = trainer.fit()
    torch.save({"state": trainer.model.state_dict(), "step": result.step}, f"{root}/rank{rank}.pt")
    ddp.shutdown()


def test_two_gloo_processes_stay_in_sync(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / "photos" / f"{i}.png"
        )
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key
    assert not torch.equal(
        a["state"]["tail.weight"], torch.zeros_like(a["state"]["tail.weight"])
    )  # it trained
    assert (tmp_path / "run" / "last.pt").is_file()  # written by rank 0 only
