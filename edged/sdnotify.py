"""The systemd notification protocol (sd_notify) without libsystemd.

A datagram of newline-separated KEY=VALUE lines sent to the AF_UNIX socket named in
$NOTIFY_SOCKET (a leading '@' means the abstract namespace). Outside systemd the variable is
unset and every call is a no-op, so the daemon runs the same in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to the service manager; does nothing without NOTIFY_SOCKET."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # the watchdog thread and the main thread both send
        self._failing = False  # log a failing manager once, not every message

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send KEY=VALUE lines as one datagram; False if not under systemd or it failed."""
        if self.address is None:
            return False
        payload = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    # Non-blocking: a manager that stops reading (its queue holds only a few
                    # datagrams) costs a lost message, never a wedged daemon.
                    self._sock = socket.socket(
                        socket.AF_UNIX,
                        socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                    )
                self._sock.sendto(payload, self.address)
            except OSError as exc:
                # The manager going away must not take the daemon down; say so once and go on.
                if not self._failing:
                    log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._failing = True
                return False
            if self._failing:
                log.info("sd_notify to %s works again", self.address)
            self._failing = False
            return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up (models loaded and warmed) is complete."""
        return self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        """STATUS=: the one-line state `systemctl status` shows."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the keep-alive ping."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.send("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (systemd needs both for Type=notify-reload);
        send ready() again when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC=: more time for start-up or shutdown (slow model loading)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds from $WATCHDOG_USEC, or None if there is none for us."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class Watchdog:
    """Pings WATCHDOG=1 every half interval while `healthy()` says so.

    A stalled pipeline stage makes `healthy()` false: the pings stop and systemd restarts
    the service when the interval runs out. Health changes are logged once each way.
    """

    def __init__(self, notifier: Notifier, interval: float, healthy: Callable[[], bool]) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval}")
        self.notifier = notifier
        self.interval = interval
        self.healthy = healthy
        self.pings = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_healthy = True

    @classmethod
    def from_env(
        cls, notifier: Notifier, healthy: Callable[[], bool], env: Mapping[str, str] | None = None
    ) -> Watchdog | None:
        """A watchdog if systemd asked for one (WatchdogSec=), else None."""
        interval = watchdog_interval(env)
        if interval is None or not notifier.enabled:
            return None
        return cls(notifier, interval, healthy)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edged-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        period = self.interval / 2
        while True:
            if self._check():
                self.notifier.watchdog()
                self.pings += 1
            if self._stop.wait(period):
                return

    def _check(self) -> bool:
        try:
            ok = bool(self.healthy())
        except Exception:
            log.exception("watchdog health check failed; treating the daemon as unhealthy")
            ok = False
        if ok != self._was_healthy:
            if ok:
                log.warning("watchdog: healthy again, pings resumed")
            else:
                log.error("watchdog: a stage has stalled, pings withheld (systemd will restart)")
            self._was_healthy = ok
        return ok


def _address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # vsock: and other transports of newer systemd are for VMs, not a service on a board.
    log.warning("NOTIFY_SOCKET=%s is not an AF_UNIX socket path; notifications disabled", value)
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
