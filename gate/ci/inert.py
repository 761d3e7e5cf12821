"""Everything the Action prints is inert: no untrusted text can start or embed a GitHub workflow command.

The runner reads a workflow command (`::error::`, `::add-mask::`, `::stop-commands::`, the older `##[...]`) from
any line of the step's stdout or stderr that starts with one, after leading whitespace. The Action's streams are
wrapped so that every line is written through `inert_line`, whoever prints it (the gate's log, a library, a
traceback, a model's own code); its own commands (annotations, its warnings and errors) take the one trusted path,
`InertStream.command`, and carry their text escaped as command data.
"""

from __future__ import annotations

import io
import logging
import re
from typing import TextIO

from gate.ci.github import WorkflowCommandFormatter

_COMMAND_START = ("::", "##[")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
INERT_PREFIX = "(inert) "


def inert_line(line: str) -> str:
    """One line the runner will not read as a workflow command (a prefix where it would)."""
    return INERT_PREFIX + line if line.lstrip().startswith(_COMMAND_START) else line


class InertStream(io.TextIOBase):
    """A text stream writing whole lines through inert_line; a line still open waits until it ends or the close."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self._raw = raw
        self._open_line = ""

    def writable(self) -> bool:
        """Always: this is an output stream."""
        return True

    def write(self, text: str) -> int:
        """Write the complete lines of what came so far, each made inert."""
        *lines, self._open_line = _LINE_BREAK.split(self._open_line + text)
        for line in lines:
            self._raw.write(inert_line(line) + "\n")
        return len(text)

    def command(self, line: str) -> None:
        """The trusted path: a workflow command built by the gate (its data already escaped), on a line of its own."""
        if "\n" in line or "\r" in line:
            raise ValueError("a workflow command is one line")
        self.end_line()
        self._raw.write(line + "\n")
        self._raw.flush()

    def end_line(self) -> None:
        """End a line still open (inert, as any other)."""
        if self._open_line:
            self._raw.write(inert_line(self._open_line) + "\n")
            self._open_line = ""

    def flush(self) -> None:
        """Flush the complete lines; an open line waits (flushed alone, its rest could start a command)."""
        self._raw.flush()

    def close(self) -> None:
        """Write what is left and flush; the wrapped stream stays open."""
        self.end_line()
        self._raw.flush()

    def fileno(self) -> int:
        """The wrapped stream's descriptor (for libraries that ask; what they write there bypasses this wrapper)."""
        return self._raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The wrapped stream's encoding (libraries ask before writing)."""
        return getattr(self._raw, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        """Never a terminal: libraries then skip their progress bars."""
        return False


class CommandLogHandler(logging.Handler):
    """Log records to an InertStream: warnings and errors as ::warning:: / ::error:: commands, the rest inert lines."""

    def __init__(self, stream: InertStream) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(WorkflowCommandFormatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record: its command through the trusted path, or its text as inert lines."""
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                self.stream.command(text)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()
        except Exception:  # logging must never raise into the gate
            self.handleError(record)
