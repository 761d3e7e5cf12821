"""The Action's secrets, out of reach of the change's code: taken out of the environment before anything runs.

Removing a variable from os.environ leaves it in the process's initial environment (/proc/self/environ), which any
code in the process could read. So the entrypoint first starts itself again with a clean environment and hands the
secrets over on a pipe; then only the process's memory holds them, and only the reporting step uses the token.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping

# Secrets a Docker action's environment can hold: its inputs, and what the runner passes to every container step.
SECRET_VARIABLES = (
    "INPUT_GITHUB-TOKEN", "INPUT_CACHE-KEY-SECRET", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_CACHE_URL", "ACTIONS_RESULTS_URL",
)
SECRETS_FD_VARIABLE = "GATE_ACTION_SECRETS_FD"
_MAX_BYTES = 60_000  # below a pipe's buffer: written whole before the exec, read after it


def remove_secrets(environ: MutableMapping[str, str]) -> None:
    """Take every secret out of the environment, before any model, suite or user code runs."""
    for name in SECRET_VARIABLES:
        environ.pop(name, None)


def reexec_without_secrets() -> None:
    """Start `python -m gate.ci.action` again without the secrets in its environment, handed over on a pipe."""
    secrets = {name: os.environ[name] for name in SECRET_VARIABLES if name in os.environ}
    if not secrets or SECRETS_FD_VARIABLE in os.environ:
        return
    payload = json.dumps(secrets).encode()
    if len(payload) > _MAX_BYTES:
        return  # cannot be handed over whole: they stay, and main() removes them from os.environ
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    clean = {name: value for name, value in os.environ.items() if name not in SECRET_VARIABLES}
    clean[SECRETS_FD_VARIABLE] = str(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    # -P as the first start had it: the checkout (the working folder) stays off the import path.
    safe_path = ["-P"] if getattr(sys.flags, "safe_path", False) else []
    os.execve(sys.executable, [sys.executable, *safe_path, "-m", "gate.ci.action"], clean)  # noqa: S606


def secrets_from_pipe() -> dict[str, str]:
    """The secrets the process before the exec handed over (none without a pipe)."""
    descriptor = os.environ.pop(SECRETS_FD_VARIABLE, "")
    if not descriptor.isdigit():
        return {}
    with os.fdopen(int(descriptor), "rb") as pipe:
        secrets = json.loads(pipe.read(_MAX_BYTES + 1) or b"{}")
    return {str(k): str(v) for k, v in secrets.items()} if isinstance(secrets, dict) else {}
