"""The MQTT command server: `cmd` payloads in, parsed and run one at a time, replies out.

It sits next to the parsing (edged.control) and reaches the broker only through the
`CommandTransport` it is given (in the daemon, the MqttPublisher).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from edged.control import AnyCommand, CommandError, parse_command, reply_error, reply_ok
from edged.errors import EdgedError

log = logging.getLogger(__name__)


class CommandTransport(Protocol):
    """Where commands come from and replies go (MqttPublisher implements it)."""

    def set_command_listener(self, listener: Callable[[bytes, bool], None] | None) -> None: ...

    def wait_subscribed(self, timeout: float) -> bool: ...

    def publish_reply(self, payload: bytes) -> None: ...


class CommandServer:
    """Answers `cmd`: validates each payload, runs `handle(command)` on its own thread,
    publishes `{"v":1,"id":...,"ok":...}` on `cmd/reply`.

    `handle` returns the reply's `result` (a JSON-serializable dict) or raises; an
    EdgedError's message goes into the reply, any other exception is logged with its
    traceback and answered as an internal error. Retained `cmd` messages are ignored.
    """

    def __init__(
        self,
        publisher: CommandTransport,
        handle: Callable[[AnyCommand], dict[str, Any] | None],
        backlog: int = 32,
    ) -> None:
        self._publisher = publisher
        self._handle = handle
        self._queue: queue.Queue[AnyCommand | None] = queue.Queue(maxsize=backlog)
        self._thread = threading.Thread(target=self._run, name="edged-cmd", daemon=True)
        self._lock = threading.Lock()
        self._counts = {
            "received": 0,
            "ignored_retained": 0,
            "rejected": 0,
            "busy": 0,
            "ok": 0,
            "failed": 0,
        }

    def start(self) -> None:
        """Start the worker and subscribe to `cmd` (now, or on the next connect)."""
        self._thread.start()
        self._publisher.set_command_listener(self._on_payload)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the broker confirmed the `cmd` subscription; True if it did."""
        return self._publisher.wait_subscribed(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Unsubscribe and stop the worker after the command it is running."""
        self._publisher.set_command_listener(None)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        """How many commands were received, ignored, rejected, refused as busy, ok, failed."""
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _on_payload(self, payload: bytes, retained: bool) -> None:
        # paho's thread: parsing is bounded by the 4 KiB payload limit, so bad commands are
        # answered here and never reach the handler.
        self._count("received")
        if retained:
            self._count("ignored_retained")
            log.info("ignoring a retained command (commands must not be retained)")
            return
        try:
            command = parse_command(payload)
        except CommandError as err:
            self._count("rejected")
            log.debug("rejected command (id %r): %s", err.request_id, err)
            self._publisher.publish_reply(reply_error(err.request_id, err.op, str(err)))
            return
        try:
            self._queue.put_nowait(command)
        except queue.Full:
            self._count("busy")
            message = f"busy: {self._queue.maxsize} commands are waiting; try again later"
            self._publisher.publish_reply(reply_error(command.id, command.op, message))

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None:
                return
            self._publisher.publish_reply(self._execute(command))

    def _execute(self, command: AnyCommand) -> bytes:
        log.info("command %s (id %r)", command.op, command.id)
        try:
            result = self._handle(command)
            reply = reply_ok(command, result)
        except EdgedError as err:
            self._count("failed")
            log.warning("command %s (id %r) failed: %s", command.op, command.id, err)
            return reply_error(command.id, command.op, str(err))
        except Exception as err:
            self._count("failed")
            log.exception("command %s (id %r) raised", command.op, command.id)
            return reply_error(
                command.id, command.op, f"internal error: {type(err).__name__}: {err}"
            )
        self._count("ok")
        return reply
