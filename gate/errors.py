"""The gate's exit codes and error hierarchy: raised deep, turned into exit codes only in the CLI."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    REGRESSION = 1
    BAD_INPUT = 2
    RUNTIME = 3
    INTERRUPTED = 130


class GateError(Exception):
    """Base class: a one-line message naming the problem and the fix."""

    exit_code: ExitCode = ExitCode.RUNTIME


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
