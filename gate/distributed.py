"""Data parallelism under `accelerate launch` or `torchrun`: which process this is, and rank 0's results for all.

lm-eval splits each harness call's requests across the launched processes and gathers the per-item results on
rank 0 (its `world_size > 1` path). The gate then sends rank 0's outputs to every process, so each one pairs the
same items and takes the same sequential decisions; only rank 0 writes reports and result files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar, cast

from gate.errors import ConfigError, GateError, RunError

T = TypeVar("T")


def world_size() -> int:
    """Processes the launcher started (WORLD_SIZE, set by `accelerate launch` and `torchrun`); 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this is rank 0, the process that writes (always, without a launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


def prepare(device: str) -> None:
    """Before any model loads: CPU processes join one gloo group (accelerate only does with ACCELERATE_USE_CPU)."""
    if world_size() > 1 and device == "cpu":
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")


def share_from_main(compute: Callable[[], T]) -> T:
    """compute() on rank 0, and its value, or its error as a GateError, on every process; compute() alone otherwise.

    The other ranks must call this at the same point: it is a collective broadcast.
    """
    if world_size() == 1:
        return compute()
    import torch.distributed

    payload: list[T | GateError | None] = [None]
    if is_main():
        try:
            payload[0] = compute()
        except GateError as exc:
            payload[0] = exc
        except Exception as exc:  # every rank must leave the broadcast, with rank 0's error
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            payload[0] = RunError(f"collecting the harness's results failed on rank 0 ({reason})")
    torch.distributed.broadcast_object_list(payload, src=0)
    shared = payload[0]
    if isinstance(shared, GateError):
        raise shared
    return cast(T, shared)


def single_process(command: str) -> None:
    """ConfigError when launched data-parallel: `command` runs in one process."""
    if world_size() > 1:
        raise ConfigError(
            f"{command} runs in one process, but {world_size()} were launched: run it without accelerate launch "
            "or torchrun (only gate run splits its items across processes)"
        )
