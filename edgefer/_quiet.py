"""Silence a file descriptor around native code that prints without asking."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_fd(fd: int) -> Iterator[None]:
    """Send ``fd`` (1 or 2) to /dev/null inside the block, at the OS level, so C++ writes go too.

    Not for concurrent use around code whose own output matters: the redirect is process-wide.
    """
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        stream.flush()
        os.dup2(saved, fd)
        os.close(saved)
