"""The checkout's tracked files, read from git's index without git (the Action's image has none).

The Action refuses a cache folder holding tracked files: they came with the change, which can write anything.
"""

from __future__ import annotations

import struct
from pathlib import Path

_HEADER = struct.Struct(">4sII")
_ENTRY_FIXED = 62  # ctime, mtime, dev, ino, mode, uid, gid, size (4 bytes each but times 8), sha1 20, flags 2
_EXTENDED = 0x4000


class GitIndexError(ValueError):
    """The index is not one this reader understands."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """git's offset encoding of index v4 (each continuation adds one before shifting)."""
    byte = data[at]
    value, at = byte & 0x7F, at + 1
    while byte & 0x80:
        byte = data[at]
        value = ((value + 1) << 7) | (byte & 0x7F)
        at += 1
    return value, at


def tracked_paths(index: bytes) -> list[str]:
    """The paths an index (format 2, 3 or 4) lists; GitIndexError when it is not one."""
    if len(index) < _HEADER.size:
        raise GitIndexError("too short")
    signature, version, count = _HEADER.unpack_from(index)
    if signature != b"DIRC" or version not in (2, 3, 4):
        raise GitIndexError(f"signature {signature!r} version {version}")
    paths: list[str] = []
    at, previous = _HEADER.size, b""
    for _ in range(count):
        start = at
        flags = struct.unpack_from(">H", index, at + _ENTRY_FIXED - 2)[0]
        at += _ENTRY_FIXED + (2 if version >= 3 and flags & _EXTENDED else 0)
        if version == 4:
            strip, at = _varint(index, at)
            end = index.index(b"\0", at)
            name = previous[: len(previous) - strip] + index[at:end]
            at = end + 1
        else:
            end = index.index(b"\0", at)
            name = index[at:end]
            at = start + ((end - start + 8) // 8) * 8  # the entry, its NUL and padding: a multiple of 8 bytes
        paths.append(name.decode("utf-8", "replace"))
        previous = name
    return paths


def tracked_under(workspace: Path, folder: Path) -> list[str] | None:
    """Tracked files of the workspace's checkout inside `folder`; None when there is no readable git index."""
    git = workspace / ".git"
    try:
        if git.is_file():  # a worktree or submodule: `gitdir: <path>`
            git = (workspace / git.read_text(encoding="utf-8").removeprefix("gitdir:").strip()).resolve()
        paths = tracked_paths((git / "index").read_bytes())
    except (OSError, GitIndexError, struct.error, ValueError):
        return None
    try:
        prefix = folder.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return []
    if prefix == ".":
        return paths
    return [path for path in paths if path == prefix or path.startswith(prefix + "/")]
