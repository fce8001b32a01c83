"""Reading user text files (grammars, includes, ``@FILE`` arguments, space TOMLs) safely.

Only regular files are opened (a FIFO, a directory or ``/dev/zero`` behind a ``.pcfg``
name would hang or never end), at most ``limit`` bytes are read whatever ``st_size``
says, and the bytes must be UTF-8; every failure is one :class:`UnreadableFileError`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nas.exceptions import ConfigurationError

# What a grammar, an include, a space or an architecture file may weigh (einspace.pcfg: 2 KB;
# parsing 256 KiB of grammar takes about 3 s).
MAX_TEXT_BYTES = 256 << 10

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnreadableFileError(ConfigurationError):
    """A text file cannot be used: missing, not a regular file, too large or not UTF-8."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read {path}: {reason}.")


def read_text(path: str | Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, read with at most ``limit`` bytes.

    Raises:
        UnreadableFileError: the file is missing, unreadable, not a regular file, larger
            than ``limit`` bytes or not valid UTF-8 (the reason says where).
    """
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UnreadableFileError(name, (e.strerror or str(e)).lower()) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
            raise UnreadableFileError(name, f"it is {kind}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise UnreadableFileError(name, (e.strerror or str(e)).lower()) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UnreadableFileError(name, f"it is larger than {limit:,} bytes")
    return decode_utf8(data, name)


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as text; invalid UTF-8 is an UnreadableFileError naming line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UnreadableFileError(
            name, f"not valid UTF-8 (byte 0x{data[e.start]:02x} at line {line}, column {col})"
        ) from None
