"""Talking to systemd: the notify protocol (``sd_notify``) and journald-friendly log lines.

``$NOTIFY_SOCKET`` names systemd's AF_UNIX datagram socket: a filesystem path, or ``@name``
for an abstract one (the ``@`` stands for the leading NUL byte). Each message is one datagram
of ``KEY=value`` lines. Without the variable (not under systemd, or not ``Type=notify``) every
call is a no-op, so the daemon needs no separate code path for a terminal. No libsystemd, no
extra dependency.

Log lines go to stderr one per message, prefixed ``<N>`` (a syslog priority) when stderr is the
journal's stream, so ``journalctl -p warning`` works; no colours or progress bars there.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from edgefer.csvout import printable

log = logging.getLogger(__name__)


def socket_address(value: str | None) -> str | None:
    """The address to send to for a ``$NOTIFY_SOCKET`` value; None when unusable.

    ``@name`` becomes the abstract address ``\\0name``; other values must be absolute paths
    (``vsock:`` addresses of newer systemd versions are not supported and yield None).
    """
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when systemd
    asks for none, or asks another process (``$WATCHDOG_PID`` names a different pid)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6


class Notifier:
    """Sends state changes to systemd; every method returns False (and does nothing) when there
    is no notify socket, and never raises: a lost status message must not stop the daemon."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (a no-op one when it is unset or unusable)."""
        value = os.environ.get("NOTIFY_SOCKET")
        address = socket_address(value)
        if value and address is None:
            log.warning("ignoring unsupported NOTIFY_SOCKET=%s", value)
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram of ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="idle")``."""
        if self._sock is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            # Non-blocking: a stalled systemd must not stall the daemon's main loop.
            self._sock.sendto(message.encode("utf-8", "replace"), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", ",".join(fields), exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


#: syslog priorities for journald's ``<N>`` line prefix.
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


class _Formatter(logging.Formatter):
    """Messages with their control characters as ``\\xNN`` (:func:`~edgefer.csvout.printable`):
    they name files, and a file name is anyone's text (a tracebacks' lines stay lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        safe = logging.makeLogRecord(record.__dict__)
        safe.message = printable(record.message)
        return super().formatMessage(safe)


class _JournalFormatter(_Formatter):
    """``<priority>message``: journald reads the level from the prefix and adds the time."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        level = _PRIORITIES.get(record.levelno, 2 if record.levelno > logging.ERROR else 6)
        return "\n".join(f"<{level}>{line}" for line in text.splitlines())


def stderr_is_journal() -> bool:
    """Whether stderr is journald's stream (systemd sets ``$JOURNAL_STREAM`` to its dev:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


def setup_logging(verbose: bool = False) -> None:
    """One plain line per message on stderr: ``<N>`` priorities for journald, else a time."""
    root = logging.getLogger()
    if any(getattr(h, "_edgefer", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._edgefer = True  # type: ignore[attr-defined]
    if stderr_is_journal():
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Only our own debug lines: Pillow's would log every PNG chunk.
    logging.getLogger("edgefer").setLevel(logging.DEBUG if verbose else logging.INFO)
