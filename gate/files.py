"""Atomic file writes and the modes of what the gate writes.

A result is either complete on disk or absent, never half-written. Files and folders get the modes a plain `open` /
`mkdir` would give them (0644 / 0755 under the usual umask), not the 0600 / 0700 of `mkstemp` / `mkdtemp`: the next
CI step (artifact upload, cache save, a script reading result.json) often runs as another user.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from gate.errors import BadInputError

FILE_MODE = 0o666
FOLDER_MODE = 0o777


def process_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is set-and-return)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created file gets under the process umask (0644 under umask 022)."""
    return FILE_MODE & ~process_umask()


def folder_mode() -> int:
    """The mode a newly created folder gets under the process umask (0755 under umask 022)."""
    return FOLDER_MODE & ~process_umask()


def make_readable(path: Path) -> None:
    """Give a file or a folder made by mkstemp/mkdtemp (0600/0700) the mode a plain open/mkdir would give it."""
    path.chmod(folder_mode() if path.is_dir() else file_mode())


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write data to path via a temporary file in the same folder and an atomic rename; returns path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
            os.fchmod(stream.fileno(), file_mode())
        Path(temp_name).replace(path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text (with \\n line ends) to path atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def chown_tree(roots: Iterable[Path], uid: int, gid: int) -> list[Path]:
    """Hand every file and folder under roots (the roots included; symlinks not followed) to uid:gid.

    Returns the paths that could not be changed.
    """
    failed: list[Path] = []
    for root in roots:
        if not root.exists() or root.is_symlink():
            continue
        paths = [root]
        for folder, folders, files in os.walk(root):  # does not descend into symlinked folders
            paths += [Path(folder, name) for name in folders + files]
        for path in paths:
            try:
                os.chown(path, uid, gid, follow_symlinks=False)
            except OSError:
                failed.append(path)
    return failed


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
