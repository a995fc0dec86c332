"""A real mosquitto broker for tests, and a subscriber that records what it receives.

`Broker` runs `mosquitto` on a free loopback port with a config of its own in a temp
directory (persistence on, saved after every change), and can be stopped, killed (-9) and
started again on the same port with the same persistence file. The `mosquitto` fixture is a
factory: `broker = mosquitto()` (or `mosquitto(extra_config=..., anonymous=False)`); every
broker it made is killed after the test. Use it from a test module with
`import mqtt_broker` and `mosquitto = mqtt_broker.mosquitto` (a plain import of the name
trips ruff's F811), or list "mqtt_broker" in the root conftest's `pytest_plugins`.
"""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now (the broker binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    # Without it, request/reply round trips wait for delayed TCP ACKs (40 ms each).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Broker:
    """One mosquitto process; `start()` returns once it accepts connections."""

    def __init__(self, directory: Path, extra_config: str = "", anonymous: bool = True) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        # mosquitto drops root privileges to user "mosquitto" unless told to stay who we are.
        self.config.write_text(
            f"listener {self.port} {HOST}\n"
            f"{extra_config}\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            "max_queued_messages 10000\n"
            "set_tcp_nodelay true\n"
            f"user {getpass.getuser()}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self.log: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        """Start mosquitto and wait for its "running" line; fail with its log otherwise."""
        assert not self.running, "broker already running"
        ready = threading.Event()
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._proc = proc

        def read() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                if " running" in line:
                    ready.set()
            ready.set()  # exited: let start() see it

        self._reader = threading.Thread(target=read, name="mosquitto-log", daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or proc.poll() is not None:
            self.kill()
            raise RuntimeError("mosquitto did not start:\n" + "\n".join(self.log[-20:]))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no final save (the last autosave is what survives)."""
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        self._proc = None

    def restart(self) -> Broker:
        self.stop()
        return self.start()


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """Factory of running brokers: `mosquitto(extra_config="", anonymous=True)`."""
    brokers: list[Broker] = []

    def start(extra_config: str = "", anonymous: bool = True) -> Broker:
        broker = Broker(tmp_path_factory.mktemp("mosquitto"), extra_config, anonymous)
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.kill()


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool = False

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client that records every message; wait on it with `wait_for`, never sleep.

    `client_id` + `clean_session=False` make a persistent session: the broker keeps the
    subscription and queues QoS 1 messages while the subscriber (or the broker) is away.
    """

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        qos: int = 1,
        client_id: str = "",
        clean_session: bool = True,
        tls: dict[str, Any] | None = None,
        tls_insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self._subacks = 0
        self._connects = 0
        self._topics = topics
        self._qos = qos
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 1)
        if tls is not None:
            self.client.tls_set(**tls)
            self.client.tls_insecure_set(tls_insecure)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_socket_open = _no_delay
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            return
        with self._changed:
            self._connects += 1
            self._changed.notify_all()
        if self._topics:
            client.subscribe([(topic, self._qos) for topic in self._topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        with self._changed:
            self._subacks += 1
            self._changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(
                Received(
                    message.topic,
                    bytes(message.payload),
                    message.qos,
                    bool(message.retain),
                    bool(message.dup),
                )
            )
            self._changed.notify_all()

    def wait_subscribed(self, timeout: float = 10.0, times: int = 1) -> None:
        """Wait for the `times`-th SUBACK (one per connection)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._subacks >= times, timeout), "no SUBACK"

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until `predicate(messages)` holds; return a copy of the messages."""
        with self._changed:
            ok = self._changed.wait_for(lambda: predicate(self.messages), timeout)
            got = list(self.messages)
        assert ok, f"timed out after {timeout}s; received {len(got)}: {got[-5:]}"
        return got

    def wait_count(self, count: int, timeout: float = 10.0) -> list[Received]:
        return self.wait_for(lambda msgs: len(msgs) >= count, timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish once connected and wait for the broker's acknowledgement."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._connects > 0, 10), "not connected"
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def settle(self, topic: str = "test/settle") -> None:
        """Return once the broker has processed this subscriber's PUBACKs so far.

        paho queues the PUBACK of a message right after `on_message`; a QoS 1 publish
        acknowledged after that was read behind it. The first round trip makes sure the
        PUBACK of the last message was queued (paho's thread handled the first PUBACK after
        it), the second that the broker has read it.
        """
        for _ in range(2):
            self.publish(topic, b"")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    """Factory of `Subscriber`s, all disconnected after the test."""
    made: list[Subscriber] = []

    def make(broker: Broker, topics: list[str], **kwargs: Any) -> Subscriber:
        sub = Subscriber(broker, topics, **kwargs)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def retained_messages(broker: Broker, topics: list[str], timeout: float = 10.0) -> list[Received]:
    """What a new subscriber gets on subscribing to `topics`: the retained messages only.

    A marker published after the SUBACK arrives after every retained message, so waiting
    for it proves that nothing retained is still on its way.
    """
    marker = "test/retained-marker"
    sub = Subscriber(broker, [*topics, marker])
    try:
        sub.wait_subscribed(timeout)
        sub.publish(marker, b"m")
        got = sub.wait_for(lambda ms: any(m.topic == marker for m in ms), timeout)
    finally:
        sub.close()
    return [m for m in got if m.topic != marker]


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for DNS:localhost and a client certificate (EC keys)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    files |= {"client.crt": directory / "client.crt", "client.key": directory / "client.key"}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(files["ca.key"]), "-out", str(files["ca.crt"]),
            "-subj", "/CN=edged test CA", "-days", "2")  # fmt: skip
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=edged-client")):
        csr = directory / f"{name}.csr"
        openssl(
            "req", *ec, "-keyout", str(files[f"{name}.key"]), "-out", str(csr), "-subj", subject
        )
        ext = directory / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost\n" if name == "server" else "")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca.crt"]),
                "-CAkey", str(files["ca.key"]), "-CAcreateserial", "-days", "2",
                "-out", str(files[f"{name}.crt"]), "-extfile", str(ext))  # fmt: skip
    return files
