"""Reading a file that must be a regular file, without ever blocking on one that is not.

A corpus or a release may hold a FIFO, a device or a folder where a file is expected;
opening a FIFO for reading blocks until a writer comes. Everything that reads a corpus
or a release file goes through :func:`read_regular`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from builder.errors import FileTooLargeError, SpecialFileError

_KINDS = {
    stat.S_IFDIR: "folder",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def mode_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words (``"FIFO"``, ``"folder"``, ``"special file"``)."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (``"FIFO"``, ``"folder"``...).

    Uses ``stat`` only, so a FIFO or a device is never opened (opening a FIFO for
    reading blocks until a writer comes).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else mode_kind(mode)


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a corpus file that must be a regular file; every other kind is refused.

    The file is opened non-blocking and checked with ``fstat`` before any read, so
    a FIFO, a device or a folder in its place is an error, never a hang; a file
    over ``limit`` bytes is refused before any byte is read.

    Raises:
        SpecialFileError: ``path`` is a FIFO, a device, a socket or a folder.
        FileTooLargeError: ``path`` holds more than ``limit`` bytes.
        OSError: ``path`` cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = mode_kind(info.st_mode)
            raise SpecialFileError(f"{path} is a {kind}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise FileTooLargeError(f"{info.st_size} bytes; at most {limit} are read")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
