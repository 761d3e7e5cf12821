"""The gate's exit codes and error hierarchy: raised deep, turned into a line and an exit code by gate.exits."""

from __future__ import annotations

import unicodedata
from enum import IntEnum
from typing import Any

# An error is one line: at most this many characters, whatever value it quotes.
MESSAGE_LIMIT = 400  # two real paths (CI workspaces, temp folders) in one message run past 300
VALUE_LIMIT = 80
ELLIPSIS = "…"


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    REGRESSION = 1
    BAD_INPUT = 2
    RUNTIME = 3
    INTERRUPTED = 130


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Text as one printable line of at most `limit` characters; a cut keeps the start and the end (the fix)."""
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[: limit - tail - 1] + ELLIPSIS + text[len(text) - tail :]


def shown(value: Any, limit: int = VALUE_LIMIT) -> str:
    """An offending value as an error quotes it: its repr, one line, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


class GateError(Exception):
    """Base class: a one-line message naming the problem and the fix, bounded to MESSAGE_LIMIT characters."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, message: str = "", *args: Any) -> None:
        super().__init__(one_line(str(message)), *args)


class BadInputError(GateError):
    """The user's input (reference, path, option) is wrong."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(BadInputError):
    """gate.yaml or a suite spec is invalid."""


class ModelRefError(BadInputError):
    """A model reference cannot be resolved or is refused (pickle, remote code, mismatch)."""


class SuiteError(BadInputError):
    """A suite, task or mirror file is missing or malformed."""


class RunError(GateError):
    """Loading or evaluating a model failed at run time."""

    exit_code = ExitCode.RUNTIME
