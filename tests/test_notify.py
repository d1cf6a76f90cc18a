"""The sd_notify protocol against real AF_UNIX datagram sockets (path and abstract)."""

import os
import socket
import uuid

import pytest

from edgefer.notify import Notifier, socket_address, watchdog_interval


@pytest.fixture
def listener(tmp_path):
    """A bound datagram socket, as systemd's notify socket; yields (socket, $NOTIFY_SOCKET)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def receive(sock) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_messages_over_a_path_socket(listener, monkeypatch):
    sock, address = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = Notifier.from_env()
    assert notifier.enabled
    assert notifier.ready("3 classified")
    assert receive(sock) == {"READY": "1", "STATUS": "3 classified"}
    assert notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}
    assert notifier.status("idle; 0 queued")
    assert receive(sock) == {"STATUS": "idle; 0 queued"}
    assert notifier.stopping()
    assert receive(sock) == {"STOPPING": "1", "STATUS": "stopping"}
    notifier.close()


def test_abstract_socket(monkeypatch):
    name = f"edgefer-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier.from_env().ready()
        assert receive(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_without_socket_every_call_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.status("x")


def test_a_vanished_socket_does_not_raise(tmp_path):
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled and not notifier.ready()


@pytest.mark.parametrize(
    ("value", "address"),
    [("/run/systemd/notify", "/run/systemd/notify"), ("@x", "\0x"), ("relative", None), ("", None)],
)
def test_socket_address(value, address):
    assert socket_address(value) == address


def test_watchdog_interval():
    pid = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
