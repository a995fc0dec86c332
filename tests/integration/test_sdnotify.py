"""sd_notify against a real AF_UNIX datagram socket that the test provides as NOTIFY_SOCKET,
as systemd does for a Type=notify service."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.sdnotify import Notifier, Watchdog, watchdog_interval


class ServiceManager:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    def receive(self, timeout: float = 5.0) -> str | None:
        """The next message, or None if none arrives within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def manager() -> Iterator[ServiceManager]:
    # A short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can exceed it.
    with tempfile.TemporaryDirectory(prefix="edged-") as directory:
        manager = ServiceManager(str(Path(directory) / "notify"))
        yield manager
        manager.close()


def test_lifecycle_messages(manager: ServiceManager) -> None:
    notifier = Notifier(manager.env)
    assert notifier.enabled

    assert notifier.ready("models loaded in 3.1 s")
    assert manager.receive() == "READY=1\nSTATUS=models loaded in 3.1 s"
    notifier.status("listening\nmqtt: connected")
    assert manager.receive() == "STATUS=listening mqtt: connected"  # one line
    notifier.extend_timeout(90)
    assert manager.receive() == "EXTEND_TIMEOUT_USEC=90000000"
    notifier.stopping("draining")
    assert manager.receive() == "STOPPING=1\nSTATUS=draining"
    notifier.close()


def test_reloading_carries_the_monotonic_timestamp(manager: ServiceManager) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(manager.env).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    message = manager.receive()
    assert message is not None
    lines = dict(line.split("=", 1) for line in message.split("\n"))
    assert lines["RELOADING"] == "1"
    assert before <= int(lines["MONOTONIC_USEC"]) <= after


def test_abstract_namespace_socket() -> None:
    manager = ServiceManager(f"@edged-test-{uuid.uuid4().hex}")
    try:
        Notifier(manager.env).watchdog()
        assert manager.receive() == "WATCHDOG=1"
    finally:
        manager.close()


def test_a_real_process_notifies_through_the_inherited_variable(manager: ServiceManager) -> None:
    code = "from edged.sdnotify import Notifier; raise SystemExit(not Notifier().ready('up'))"
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **manager.env}, timeout=60
    )
    assert result.returncode == 0
    assert manager.receive() == "READY=1\nSTATUS=up"


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.reloading()
    assert Watchdog.from_env(notifier, lambda: True, {"WATCHDOG_USEC": "30000000"}) is None


def test_a_vanished_manager_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent/edged/notify"})
    assert notifier.status("x") is False
    assert any("sd_notify" in r.getMessage() for r in caplog.records)


def test_watchdog_interval_from_the_environment() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


@pytest.mark.timeout(60)
def test_watchdog_pings_at_half_the_interval_only_while_healthy(manager: ServiceManager) -> None:
    healthy = threading.Event()
    healthy.set()
    env = {**manager.env, "WATCHDOG_USEC": "400000"}  # 0.4 s: a ping every 0.2 s
    watchdog = Watchdog.from_env(Notifier(env), healthy.is_set, env)
    assert watchdog is not None and watchdog.interval == 0.4
    watchdog.start()
    try:
        arrivals = []
        for _ in range(6):
            assert manager.receive(timeout=2) == "WATCHDOG=1"
            arrivals.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert 0.15 <= sum(gaps) / len(gaps) <= 0.3
        assert max(gaps) < 0.4  # never as late as the interval itself

        healthy.clear()  # a stage stalls: pings stop (one may already be on its way)
        late = 0
        while manager.receive(timeout=0.6) is not None:
            late += 1
        assert late <= 1

        healthy.set()
        resumed_at = time.monotonic()
        assert manager.receive(timeout=2) == "WATCHDOG=1"
        assert time.monotonic() - resumed_at < 0.4
    finally:
        watchdog.stop()


@pytest.mark.timeout(30)
def test_a_crashing_health_check_withholds_pings(manager: ServiceManager) -> None:
    def broken() -> bool:
        raise RuntimeError("heartbeat table missing")

    watchdog = Watchdog(Notifier(manager.env), 0.1, broken)
    watchdog.start()
    try:
        assert manager.receive(timeout=0.3) is None
    finally:
        watchdog.stop()
    assert watchdog.pings == 0
