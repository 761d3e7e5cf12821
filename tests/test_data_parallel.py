"""Data parallelism through lm-eval's own mechanism: two launched processes (a gloo group on the CPU) split the
log-likelihood requests of every harness call, lm-eval gathers them on rank 0, and the gate's result equals a
single process's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import add_tiny_task

from gate.api import baseline, run
from gate.config import GateConfig
from gate.errors import ConfigError, GateError


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """result.json without what may differ between launches: timing, and the thread count under the launcher."""
    result = {key: value for key, value in result.items() if key != "timing"}
    hardware = dict(result["provenance"]["hardware"])
    hardware.pop("torch_threads")
    result["provenance"] = {**result["provenance"], "hardware": hardware}
    return result


def test_two_processes_split_every_call_and_give_the_single_process_result(
    tiny_model: Path, other_tiny_model: Path, tiny_suite: Path, tmp_path: Path
) -> None:
    add_tiny_task(tiny_suite, "tiny_more", 150)  # several looks: the other process follows rank 0's decisions
    mirror = tiny_suite.parent / "mirror"
    single = run(
        str(other_tiny_model),
        base=str(tiny_model),
        config=GateConfig(cache=False),
        suite=str(tiny_suite),
        data_dir=mirror,
        out_dir=tmp_path / "single",
    )
    assert single.to_dict()["timing"]["looks"] > 1

    logs, out = tmp_path / "logs", tmp_path / "parallel"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--log-dir", str(logs),
        "--redirects", "3", "-m", "gate", "run", "--ckpt", str(other_tiny_model), "--base", str(tiny_model),
        "--suite", str(tiny_suite), "--data-dir", str(mirror), "--out", str(out), "--no-cache", "-v",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    launched = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert launched.returncode == single.exit_code, launched.stderr[-3000:]

    parallel = json.loads((out / "result.json").read_text())
    assert parallel["timing"]["processes"] == 2
    assert _comparable(parallel) == _comparable(json.loads((tmp_path / "single" / "result.json").read_text()))

    shares = {}
    for rank in (0, 1):
        (stderr,) = logs.glob(f"*/attempt_0/{rank}/stderr.log")
        counts = [int(n) for n in re.findall(rf"process {rank} of 2 scores (\d+) log-likelihood", stderr.read_text())]
        assert counts, f"rank {rank} scored nothing"
        shares[rank] = sum(counts)
    (stdout,) = logs.glob("*/attempt_0/1/stdout.log")
    assert stdout.read_text() == ""  # rank 0 alone reports
    assert abs(shares[0] - shares[1]) <= 0.05 * (shares[0] + shares[1])


def _share_on_rank(rank: int, folder: str, port: int, fail: bool) -> None:
    """One of two gloo processes: rank 0 computes (or fails), both write what share_from_main gave them."""
    import torch.distributed

    from gate.distributed import share_from_main

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)

    def compute() -> dict[str, int]:
        if fail:
            raise KeyError("samples")  # as a harness result missing a task would
        return {"rank that computed": rank}

    try:
        outcome = f"value {share_from_main(compute)}"
    except GateError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    (Path(folder) / f"rank{rank}.txt").write_text(outcome)
    torch.distributed.destroy_process_group()


def test_every_process_gets_rank_zeros_outputs_or_its_error(tmp_path: Path) -> None:
    """No process is left waiting: rank 0's value, or its error (any exception) as a RunError, reaches both."""
    import socket

    import torch.multiprocessing

    for fail in (False, True):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        torch.multiprocessing.spawn(_share_on_rank, args=(str(tmp_path), port, fail), nprocs=2, join=True)
        outcomes = {(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)}
        expected = "RunError: collecting the harness's results failed on rank 0 ('samples')"
        assert outcomes == ({expected} if fail else {"value {'rank that computed': 0}"})


def test_commands_that_run_in_one_process_refuse_a_launch(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="gate baseline runs in one process, but 2 were launched"):
        baseline(base=str(tiny_model))
