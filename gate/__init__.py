"""gate: a CI regression gate for fine-tuned LLM checkpoints.

`gate.run(ckpt, ...)` scores a checkpoint against its base and returns a GateResult (see gate.api).
"""

from typing import Any

from gate.errors import ExitCode, GateError

__all__ = ["ExitCode", "GateError", "run"]


def __getattr__(name: str) -> Any:
    # The API pulls in numpy and the report templates; importing it lazily keeps `gate --help` instant.
    if name == "run":
        from gate.api import run

        return run
    raise AttributeError(name)
