"""Silence a file descriptor around native code that prints without asking."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

# The redirect is process-wide: two threads interleaving save/restore could leave fd 2 pointing
# at /dev/null for good. One at a time.
_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_fd(fd: int) -> Iterator[None]:
    """Send ``fd`` (1 or 2) to /dev/null inside the block, at the OS level, so C++ writes go too.

    The redirect is process-wide, so other threads' writes to ``fd`` are lost inside the
    block; concurrent blocks run one at a time.
    """
    with _LOCK:
        # None in a GUI app without a console (pythonw on Windows): nothing to flush.
        stream = sys.stdout if fd == 1 else sys.stderr
        if stream is not None:
            stream.flush()
        try:
            saved = os.dup(fd)
        except OSError:
            # Closed (a daemon started with 2>&-): nothing to silence. It raised, and no
            # classifier could be made.
            yield
            return
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), fd)
                yield
        finally:
            if stream is not None:
                stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
