"""Running a model's generated program: only on explicit opt-in, one subprocess per program, confined.

Each program runs in a fresh `python -I` (no user site, no PYTHON* variables) in a temporary working folder that is
deleted afterwards, with an environment of PATH, HOME (that folder) and LANG only, limits on CPU time, address space,
file size and core dumps (resource.setrlimit), as user `nobody` when the gate runs as root (and `nobody` can run
this Python), a wall-clock timeout that kills its whole process group, and no network: a new network namespace
(`unshare --net`, through a user namespace or as root) where the platform allows it, else only a guard that makes
`socket` unusable inside the program (`network_isolation()` says which). It passes when it exits 0 in time. This
confines mistakes of a model, not a determined attacker: see docs/safety-code-chinese.md.

Nothing runs unless the run opted in: `run_program` refuses outside `code_execution_allowed()`, which the runner
enters only when the configuration allows code execution, whatever a task's config says.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import BadInputError

CODE_FLAG = "--allow-code-execution"
CODE_KEY = "allow_code_execution"
NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """What one program may use. HumanEval's own harness allows a program 3 s; its tests take well under 1 s."""

    cpu_seconds: int = 3
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    wall_seconds: float = 10.0


DEFAULT_LIMITS = Limits()
_permission = threading.local()


@contextlib.contextmanager
def code_execution_allowed() -> Iterator[None]:
    """Within this block (in this thread) run_program may run programs: the run's opt-in, entered by the runner."""
    before = getattr(_permission, "allowed", False)
    _permission.allowed = True
    try:
        yield
    finally:
        _permission.allowed = before


@dataclass(frozen=True)
class ProgramResult:
    """How a program ended: passed (exit 0 in time) or why not."""

    passed: bool
    reason: str  # "passed", "exit N", "killed by SIGNAME", "timeout"


# Prepended when no network namespace is available: the program cannot open a socket through the socket module.
_SOCKET_GUARD = """\
import socket as _gate_socket
def _gate_no_network(*args, **kwargs):
    raise OSError(101, "network access is disabled by the gate's sandbox")
_gate_socket.socket = _gate_no_network
_gate_socket.create_connection = _gate_no_network
_gate_socket.socketpair = _gate_no_network
del _gate_socket, _gate_no_network
"""


@dataclass(frozen=True)
class _Isolation:
    """How programs run on this machine: the command prefix for a new network namespace (or none), and whether
    they run as `nobody` (only when the gate is root and `nobody` can run this Python)."""

    prefix: tuple[str, ...]
    as_nobody: bool


@functools.cache
def _isolation() -> _Isolation:
    """The strongest isolation that runs this Python here, tried once per process."""
    unshare = shutil.which("unshare")
    namespaces = [(unshare, "--map-root-user", "--net"), (unshare, "--net")] if unshare else []
    root = os.geteuid() == 0
    candidates = [_Isolation(p, nobody) for nobody in ((True, False) if root else (False,)) for p in namespaces]
    for candidate in candidates:
        try:
            done = subprocess.run(
                [*candidate.prefix, sys.executable, "-I", "-c", "pass"],
                capture_output=True,
                timeout=30,
                check=False,
                preexec_fn=_drop_privileges if candidate.as_nobody else None,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return candidate
    return _Isolation((), False)


def network_isolation() -> str:
    """How programs are kept off the network here: 'network namespace' or 'socket guard only' (and the user)."""
    isolation = _isolation()
    user = ", as nobody" if isolation.as_nobody else ""
    return ("network namespace" if isolation.prefix else "socket guard only") + user


def _drop_privileges() -> None:
    """Run as `nobody` (the gate is root, as in a container): the program cannot touch root's files."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _confine(limits: Limits, as_nobody: bool) -> None:
    """In the child before exec: its own process group, the resource limits, `nobody` where that works."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if as_nobody:
        _drop_privileges()


def run_program(source: str, limits: Limits | None = None) -> ProgramResult:
    """Run a Python program confined as the module docstring says (DEFAULT_LIMITS unless told); whether it exits 0 in
    time. BadInputError, and nothing run, outside code_execution_allowed()."""
    if not getattr(_permission, "allowed", False):
        raise BadInputError(
            f"a task runs the model's generated code, which this run has not allowed: allow it on purpose with "
            f"{CODE_FLAG} (or `{CODE_KEY}: true` in gate.yaml, outside the Action), or drop the task"
        )
    limits = limits or DEFAULT_LIMITS
    isolation = _isolation()
    program = source if isolation.prefix else _SOCKET_GUARD + source
    with tempfile.TemporaryDirectory(prefix="gate-program-") as folder:
        Path(folder).chmod(0o777)  # the program's own working folder, writable when it runs as nobody
        path = Path(folder) / "program.py"
        path.write_text(program, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": folder, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        process = subprocess.Popen(
            [*isolation.prefix, sys.executable, "-I", str(path)],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _confine(limits, isolation.as_nobody),
        )
        try:
            code = process.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return ProgramResult(False, "timeout")
        finally:
            # Whatever the program left running in its group goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    if code == 0:
        return ProgramResult(True, "passed")
    if code < 0:
        return ProgramResult(False, f"killed by {signal.Signals(-code).name}")
    return ProgramResult(False, f"exit {code}")


def executes_code(config: dict[str, Any]) -> bool:
    """Whether an lm-eval task config runs generated code (lm-eval marks such tasks `unsafe_code`)."""
    return bool(config.get("unsafe_code"))


def check_code_execution(task_configs: Sequence[tuple[str, dict[str, Any]]], allowed: bool) -> None:
    """BadInputError (exit 2) naming the opt-in when a task runs generated code and the run has not allowed it."""
    if allowed:
        return
    running = [task_id for task_id, config in task_configs if executes_code(config)]
    if running:
        raise BadInputError(
            f"task {running[0]} runs the model's generated code: allow it on purpose with {CODE_FLAG} "
            f"(or `{CODE_KEY}: true` in gate.yaml; in the Action, allow-code: code-execution), or drop the task"
        )
