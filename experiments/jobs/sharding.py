"""Shard seeded work across torch.distributed ranks (run under torchrun) with results identical to one process.

The unit of work is a chunk: a fixed batch of samples whose initial state and noise come from the chunk's
own seed. Rank r computes chunks r, r + W, r + 2W, ...; every rank then receives every chunk's result in
chunk order. A single process computes the same chunks with the same batches, so the union is the same,
bit for bit (a batch split differently could round differently in the network's reductions).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def init_from_environment() -> None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ...); nothing without one.
    NCCL when each rank has a GPU, gloo otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard_map(function, items: list) -> list:
    """[function(item) for item in items], each item computed on one rank, the full list returned on every
    rank. Results travel as pickled objects: return CPU tensors or numpy arrays."""
    rank, world = rank_and_world()
    mine = {index: function(item) for index, item in enumerate(items) if index % world == rank}
    if world == 1:
        return [mine[index] for index in range(len(items))]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    merged = {}
    for part in gathered:
        merged.update(part)
    return [merged[index] for index in range(len(items))]
