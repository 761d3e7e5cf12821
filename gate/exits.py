"""How a run ends when it cannot finish: a cancelled job's SIGTERM stops like Ctrl-C, and whatever stopped the run
becomes one line and an exit code. Shared by the CLI and the Action."""

from __future__ import annotations

import signal
import threading

from gate.errors import ExitCode, GateError, one_line

INTERRUPTED = (
    "interrupted; no result was written; items already scored stay in the result cache (unless --no-cache): "
    "run the same command again to resume"
)
OUT_OF_MEMORY = "out of memory: lower --batch-size, or run on a machine with more memory"

# Set by SIGTERM: whatever error then surfaces (a library may catch the interrupt and raise its own) is the stop.
_TERMINATED = threading.Event()


def stop_on_sigterm() -> None:
    """From now on SIGTERM (a cancelled CI job) stops the run as Ctrl-C does: exit 130, no partial result."""
    _TERMINATED.clear()
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    _TERMINATED.set()
    raise KeyboardInterrupt


def failure(exc: BaseException) -> tuple[str, ExitCode, bool]:
    """The one-line message and exit code of what stopped a run, and whether it was unexpected (a bug's traceback
    is worth showing)."""
    if isinstance(exc, KeyboardInterrupt) or _TERMINATED.is_set():
        return INTERRUPTED, ExitCode.INTERRUPTED, False
    if isinstance(exc, GateError):
        return str(exc), exc.exit_code, False
    if isinstance(exc, MemoryError):
        return OUT_OF_MEMORY, ExitCode.RUNTIME, False
    return f"unexpected {type(exc).__name__}: {one_line(str(exc))}", ExitCode.RUNTIME, True
