"""torch.distributed helpers: start-up under ``torchrun``, rank-0 work, weight fingerprints.

A process started by ``torchrun --nproc_per_node N`` sees ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK`` in its environment; :func:`setup` then joins the process group (NCCL on
CUDA, gloo on CPU) and picks ``cuda:LOCAL_RANK`` when the device is CUDA. Without those
variables everything runs in one process and the helpers are no-ops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, List, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> Context:
    """Join the ``torchrun`` process group if there is one; returns this process's :class:`Context`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Context(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), device)


def teardown(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


def on_main(ctx: Context, work: Callable[[], T]) -> None:
    """Run ``work`` on rank 0 only; every rank waits until it is done."""
    if ctx.is_main:
        work()
    barrier(ctx)


def wrap(module: nn.Module, ctx: Context) -> nn.Module:
    """``DistributedDataParallel(module)`` when there are several processes, else ``module``."""
    if ctx.world == 1:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def fingerprint(module: nn.Module) -> str:
    """SHA-256 of the module's parameters and buffers (bitwise identity check)."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def gather(ctx: Context, value: T) -> List[T]:
    """Every rank's ``value`` (a picklable object), in rank order."""
    if ctx.world == 1:
        return [value]
    out: List[T] = [None] * ctx.world  # type: ignore[list-item]
    dist.all_gather_object(out, value)
    return out
