"""Process-group helpers: start from torchrun's or SLURM's environment (via timm), reduce, agree on a flag,
gather, broadcast, tear down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from timm.utils.distributed import init_distributed_device_so

__all__ = [
    "DistInfo",
    "init_distributed",
    "all_reduce_sum",
    "any_rank",
    "all_gather_objects",
    "broadcast_object",
    "barrier",
    "shutdown",
]


@dataclass
class DistInfo:
    """Where this process runs: device, global/local rank, world size, and whether it opened the group."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def primary(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun (or SLURM) describes, if any, and pick this rank's device.

    ``device`` defaults to ``cuda`` when available, else ``cpu``; the backend to NCCL on CUDA, else gloo.
    A group that is already initialised (e.g. by a caller) is reused and left open.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", 0))
        if device == "cuda":
            device = f"cuda:{local}"
            torch.cuda.set_device(device)
        return DistInfo(torch.device(device), rank, local, world, owns_group=False)
    info = init_distributed_device_so(device=device, dist_backend=backend)
    return DistInfo(
        torch.device(info["device"]),
        info["global_rank"],
        info["local_rank"],
        info["world_size"],
        owns_group=info["distributed"],
    )


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum ``values`` over ranks (float64); unchanged in a single process."""
    if not info.distributed:
        return list(values)
    device = info.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """Whether ``flag`` is true on any rank (one small all-reduce; the flag itself in a single process)."""
    if not info.distributed:
        return flag
    device = info.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (the others pass anything)."""
    if not info.distributed:
        return obj
    out = [obj]
    dist.broadcast_object_list(out, src=0)
    return out[0]


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Close the process group if this module opened it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
