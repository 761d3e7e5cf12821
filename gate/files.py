"""Atomic file writes and locks: a result is either complete on disk or absent, never half-written or mixed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gate.errors import BadInputError


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temp_name).replace(path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing), held for the block: writers of one file queue."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def check_writable_folder(folder: Path, what: str) -> None:
    """BadInputError unless `folder` is (or can be made) a folder this process can write files in; leaves no trace."""
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"{what} {folder} is a file, not a folder: pass a folder for the reports")
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".gate-write-check.", dir=folder)
        os.close(handle)
        Path(probe).unlink()
    except OSError as exc:
        raise BadInputError(
            f"{what} {folder} is not writable ({exc.strerror or type(exc).__name__}): pass a folder you can write to"
        ) from None
    finally:
        for created in missing:  # deepest first: the run creates them again when it writes
            with contextlib.suppress(OSError):
                created.rmdir()
