"""Events to an MQTT broker (paho-mqtt 2.x), and commands from it.

Topics, under `<prefix>/<device_id>/`:

| topic                          | events                    | QoS | retained |
|--------------------------------|---------------------------|-----|----------|
| `status`                       | status (will: offline)    | 1   | yes      |
| `asr/partial`                  | speech.start, asr.partial | 0   | no       |
| `asr/final`                    | asr.final                 | 1   | no       |
| `translation/<lang>/interim`   | mt.interim                | 0   | no       |
| `translation/<lang>/final`     | mt.final                  | 1   | no       |
| `tts`                          | tts.start, tts.end        | 0   | no       |
| `error`                        | error                     | 1   | no       |
| `cmd` (in), `cmd/reply` (out)  | see edged.control.server  | 0/1 | no       |

Delivery of finals (asr.final, mt.final, error): every one is first stored in the on-disk
`Spool` (held in its memory if the disk is full), and the spool is the only owner of
redelivery. One sender thread publishes spooled
finals, at most `inflight` un-acknowledged at a time, and deletes each on its PUBACK. On
every (re)connect, paho's own copies of un-acknowledged messages are dropped
(`drop_out_messages()` in `on_connect`, before paho would resend them) and the spool re-drives
everything not acknowledged, oldest first: one code path for a reconnect and for a restart.
Interim events are QoS 0, dropped (and counted) while disconnected or when more than
`interim_backlog` of them wait in paho's outgoing buffer.

`status` is device state, not history: the latest one is kept in memory and republished
(retained) on every connect; a fresh `online` if the pipeline has published none.

Connection failures: paho gives no cause, so after each failed attempt paho's thread runs
`edged.publish.diagnose` (a few seconds at most, during what would be its back-off anyway);
the cause is logged once per change and kept as `problem`.

Threads: paho's network thread runs the callbacks; they share state with other threads only
through `self._lock`, the ack queue and the wake event. Our lock is never taken by a callback
that paho runs while holding its outgoing-message lock (on_publish), so calling
`client.publish()` with our lock held cannot deadlock.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import stat
import threading
from collections import deque
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edged.config import check_tls_keys, topic_prefix
from edged.errors import ConfigError
from edged.events import Event, Status
from edged.publish.diagnose import diagnose
from edged.publish.spool import Spool

log = logging.getLogger(__name__)

QOS_INTERIM = 0
QOS_FINAL = 1
QOS_COMMANDS = 0  # commands are not queued for an offline device: no stale "speak" an hour later
EARLY_COMMANDS = 32  # commands held while no listener is set yet (a resumed session's)


class ConnectionState(Enum):
    """Where the MQTT connection is; only CONNECTED means a successful CONNACK."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    REFUSED = "refused"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


def _check_level(value: str, key: str) -> str:
    if not value or any(c in value for c in "/+#\0"):
        raise ConfigError(
            f"{key} = {value!r}: must be non-empty, without '/', '+' or '#' "
            "(it is one MQTT topic level)"
        )
    return value


class Topics:
    """The topic names of one device: `<prefix>/<device_id>/...`."""

    def __init__(self, prefix: str, device_id: str) -> None:
        topic_prefix(prefix)
        base = f"{prefix}/{_check_level(device_id, 'device_id')}"
        self.base = base
        self.status = f"{base}/status"
        self.asr_partial = f"{base}/asr/partial"
        self.asr_final = f"{base}/asr/final"
        self.tts = f"{base}/tts"
        self.error = f"{base}/error"
        self.cmd = f"{base}/cmd"
        self.cmd_reply = f"{base}/cmd/reply"
        self.metrics = f"{base}/metrics"

    def translation(self, lang: str, final: bool) -> str:
        """`translation/<lang>/final` or `.../interim`."""
        _check_level(lang, "tgt")
        return f"{self.base}/translation/{lang}/{'final' if final else 'interim'}"

    def for_event(self, event: Event) -> str:
        """The topic an event is published on."""
        kind = event.type
        if kind in ("mt.final", "mt.interim"):
            return self.translation(getattr(event, "tgt"), kind == "mt.final")  # noqa: B009
        by_type = {
            "speech.start": self.asr_partial,
            "asr.partial": self.asr_partial,
            "asr.final": self.asr_final,
            "tts.start": self.tts,
            "tts.end": self.tts,
            "error": self.error,
            "status": self.status,
        }
        return by_type[kind]


def read_password(password_file: str | Path | None, credential: str | None) -> str | None:
    """The broker password from a file or a systemd credential; None if neither is set."""
    if password_file and credential:
        raise ConfigError("mqtt.password_file and mqtt.password_credential are both set; keep one")
    if credential:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                f"mqtt.password_credential = {credential!r} but $CREDENTIALS_DIRECTORY is not "
                "set; add LoadCredential= to the unit or use mqtt.password_file"
            )
        path = Path(directory) / credential
        key = "mqtt.password_credential"
    elif password_file:
        path, key = Path(password_file), "mqtt.password_file"
    else:
        return None
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{key}: cannot read the password from {path} ({err})") from err
    if not secret:
        raise ConfigError(f"{key}: {path} is empty; it must hold the broker password")
    if key == "mqtt.password_file":  # systemd sets a credential's mode itself
        _warn_if_readable(path, key)
    return secret


def _warn_if_readable(path: Path, key: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    readers = [
        who for who, bit in (("its group", stat.S_IRGRP), ("everyone", stat.S_IROTH)) if mode & bit
    ]
    if readers:
        log.warning(
            "%s: %s (mode %03o) can be read by %s; run chmod 600 %s so only edged's user "
            "can read the broker password",
            key,
            path,
            stat.S_IMODE(mode),
            " and ".join(readers),
            path,
        )


def _tls_context(
    ca_file: str | Path | None,
    cert_file: str | Path | None,
    key_file: str | Path | None,
    insecure: bool,
) -> ssl.SSLContext:
    for path, key in (
        (ca_file, "mqtt.ca_file"),
        (cert_file, "mqtt.cert_file"),
        (key_file, "mqtt.key_file"),
    ):
        if path and not Path(path).is_file():
            raise ConfigError(f"{key}: {path} does not exist")
    if key_file and not cert_file:
        raise ConfigError("mqtt.key_file is set without mqtt.cert_file (the client certificate)")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"mqtt TLS: cannot load the CA or client certificate ({err})") from err
    # As in paho's tls_insecure_set(): the chain is still verified, the host name is not.
    context.check_hostname = not insecure
    return context


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: a partial right behind another waits for a delayed TCP ACK
    # (40 ms on Linux), visible on a live caption display.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as err:
        log.debug("cannot set TCP_NODELAY on the mqtt socket: %s", err)


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (ValueError, RuntimeError):
        return True  # lost with its connection: no longer in paho's buffer


class MqttPublisher:
    """Publishes events to `<prefix>/<device_id>/...`; finals survive outages and restarts.

    Build it (validates, reads the password, opens the spool), call `start()`, then
    `publish()` from the pipeline. Shutdown: `flush(timeout)`, then `close()`.
    """

    def __init__(
        self,
        *,
        host: str,
        device_id: str,
        spool_dir: str | Path,
        port: int = 1883,
        prefix: str = "edged",
        client_id: str | None = None,
        keepalive: int = 30,
        tls: bool = False,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        tls_insecure: bool = False,
        username: str | None = None,
        password_file: str | Path | None = None,
        password_credential: str | None = None,
        spool_limit: int = 10_000,
        inflight: int = 10,
        reconnect_min: int = 1,
        reconnect_max: int = 60,
        interim_backlog: int = 100,
    ) -> None:
        if not 0 < port < 65536:
            raise ConfigError(f"mqtt.port = {port}: must be 1-65535")
        if not 0 < reconnect_min <= reconnect_max:
            raise ConfigError("mqtt.reconnect_min and mqtt.reconnect_max: seconds, 0 < min <= max")
        if inflight < 1:
            raise ConfigError(f"mqtt.inflight = {inflight}: must be at least 1")
        self.host, self.port = host, port
        self.device_id = device_id
        self.topics = Topics(prefix, device_id)
        self.client_id = client_id or f"edged-{device_id}"
        self._keepalive = keepalive
        self._window = inflight
        self._reconnect_min, self._reconnect_max = reconnect_min, reconnect_max
        self._interim_limit = interim_backlog
        password = read_password(password_file, password_credential)
        if password and not username:
            raise ConfigError("mqtt: a password is configured but mqtt.username is empty")
        check_tls_keys(tls, ca_file, cert_file, key_file, tls_insecure)
        tls_context = _tls_context(ca_file, cert_file, key_file, tls_insecure) if tls else None
        self._tls_context = tls_context
        self._ca_file = str(ca_file) if ca_file else None
        self._spool = Spool(Path(spool_dir), spool_limit)

        self._lock = threading.Lock()
        self._state_changed = threading.Condition(self._lock)
        self._state = ConnectionState.NEW
        self._gen = 0  # connection generation: +1 on each successful CONNACK (paho thread)
        self._status: Status | None = None
        self._command_listener: Callable[[bytes, bool], None] | None = None
        self._commands_ready = False  # SUBACK received for `cmd` on this connection
        # Other users of this connection (Home Assistant discovery): hooks run after every
        # CONNACK, extra subscriptions are renewed then; their SUBACKs are not `cmd`'s.
        self._connect_hooks: list[Callable[[], None]] = []
        self._extra_subscriptions: dict[str, Callable[[str, bytes, bool], None]] = {}
        self._extra_mids: set[int] = set()
        # A resumed session (clean_session=False) still holds the `cmd` subscription of the
        # previous run: commands can arrive right after CONNACK, before a listener is set.
        # They wait here, in order, instead of being dropped.
        self._early_commands: deque[tuple[bytes, bool]] = deque()
        self._listener_was_set = False
        self._commands_dropped = 0
        self._command_order = threading.Lock()  # one delivery at a time, arrival order
        self._problem: str | None = None  # why we are not connected, in words (for status)
        self._connacked = False  # the broker answered CONNECT in this connection attempt
        self._connect_failures = 0

        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Owned by the sender thread alone.
        self._inflight: dict[tuple[int, int], int] = {}
        self._cursor = 0
        self._sent_gen = 0
        self._finals_sent = 0

        self._interim_lock = threading.Lock()
        self._interim_infos: deque[mqtt.MQTTMessageInfo] = deque()
        self._interim_dropped = 0

        self._client = self._make_client(username, password, tls_context)
        self._sender = threading.Thread(
            target=self._run_sender, name="edged-mqtt-spool", daemon=True
        )

    def _make_client(
        self, username: str | None, password: str | None, tls_context: ssl.SSLContext | None
    ) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,  # the broker keeps our session (and QoS 1 state) over reconnects
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(max(20, self._window))
        client.reconnect_delay_set(self._reconnect_min, self._reconnect_max)
        if username:
            client.username_pw_set(username, password)
        if tls_context is not None:
            client.tls_set_context(tls_context)
        self._set_will(client)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_pre_connect = self._on_pre_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = _no_delay
        client.on_subscribe = self._on_subscribe
        client.message_callback_add(self.topics.cmd, self._on_command_message)
        return client

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (a broker that is down is retried with back-off)."""
        with self._lock:
            if self._state is not ConnectionState.NEW:
                raise RuntimeError("MqttPublisher.start() called twice")
            self._state = ConnectionState.CONNECTING
        log.info("connecting to mqtt broker %s:%d as %s", self.host, self.port, self.client_id)
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()
        self._sender.start()
        self._wake.set()  # finals spooled by an earlier run go out once connected

    def publish(self, event: Event) -> None:
        """Queue one event; never waits for the network. Thread-safe.

        A final is on disk when this returns (one SQLite commit with fsync), or, if the disk
        refuses it, held in memory and counted in `finals_not_durable`; either way it is sent.
        """
        if isinstance(event, Status):
            self._publish_status(event)
            return
        try:
            topic = self.topics.for_event(event)
        except (ConfigError, KeyError) as err:
            # A bad topic in the spool would block every final behind it: refuse it here.
            log.error("cannot publish %s event: no valid topic (%s)", event.type, err)
            return
        payload = event.to_json().encode()
        if event.is_final:
            self._spool.append(topic, payload)  # held in memory if the disk refuses it
            self._wake.set()
            return
        self._publish_interim(topic, payload)

    def publish_reply(self, payload: bytes) -> None:
        """Publish a command reply on `cmd/reply` (QoS 1, not retained)."""
        with self._lock:
            self._client.publish(self.topics.cmd_reply, payload, qos=QOS_FINAL, retain=False)

    def publish_metrics(self, payload: bytes) -> None:
        """Publish periodic metrics on `metrics`: retained (a new subscriber sees the latest),
        QoS 0 (the next period replaces a lost one); dropped while disconnected."""
        if not self.connected:
            return
        with self._lock:
            self._client.publish(self.topics.metrics, payload, qos=0, retain=True)

    def set_command_listener(self, listener: Callable[[bytes, bool], None] | None) -> None:
        """Receive every `cmd` payload as `listener(payload, retained)` on paho's thread;
        commands that arrived before the first listener are handed to it first, here."""
        with self._command_order:
            with self._lock:
                self._command_listener = listener
                self._commands_ready = False
                early = list(self._early_commands) if listener is not None else []
                self._early_commands.clear()
                self._listener_was_set = self._listener_was_set or listener is not None
                if self._state is ConnectionState.CONNECTED:
                    if listener is None:
                        self._client.unsubscribe(self.topics.cmd)
                    else:
                        self._client.subscribe(self.topics.cmd, qos=QOS_COMMANDS)
            if early:
                log.info("answering %d commands that arrived before the command server", len(early))
            for payload, retained in early:
                self._deliver_command(listener, payload, retained)

    def wait_commands_waiting(self, count: int, timeout: float) -> bool:
        """Block until `count` commands wait for a listener; True if they do."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: len(self._early_commands) >= count, timeout)

    def publish_retained(self, topic: str, payload: bytes) -> bool:
        """Publish `payload` retained at QoS 1 on any `topic` (empty: clear the retained one).
        False, and nothing queued, while disconnected: use a connect hook to publish then."""
        with self._lock:
            if self._state is not ConnectionState.CONNECTED:
                return False
            self._client.publish(topic, payload, qos=QOS_FINAL, retain=True)
            return True

    def add_connect_hook(self, hook: Callable[[], None]) -> None:
        """Run `hook()` on paho's thread after every successful (re)connect, once `status` is
        republished; it may call publish_retained()."""
        with self._lock:
            self._connect_hooks.append(hook)

    def add_subscription(self, topic: str, listener: Callable[[str, bytes, bool], None]) -> None:
        """Also subscribe to `topic` (QoS 0, renewed on every connect); each message arrives
        as `listener(topic, payload, retained)` on paho's thread."""

        def deliver(client: mqtt.Client, userdata: Any, message: Any) -> None:
            try:
                listener(message.topic, bytes(message.payload), bool(message.retain))
            except Exception:
                log.exception("mqtt listener for %s failed on %s", topic, message.topic)

        with self._lock:
            self._extra_subscriptions[topic] = listener
            self._client.message_callback_add(topic, deliver)
            if self._state is ConnectionState.CONNECTED:
                self._subscribe_extra(self._client, topic)

    def _subscribe_extra(self, client: mqtt.Client, topic: str) -> None:
        _, mid = client.subscribe(topic, qos=0)
        if mid is not None:
            self._extra_mids.add(mid)

    @property
    def state(self) -> ConnectionState:
        """The connection state (CONNECTED only after a successful CONNACK)."""
        with self._lock:
            return self._state

    @property
    def problem(self) -> str | None:
        """Why the broker is not reachable or refuses us, in words; None once connected."""
        with self._lock:
            return self._problem

    def wait_connect_failures(self, count: int, timeout: float) -> bool:
        """Block until `count` connection attempts have failed; True if they did."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._connect_failures >= count, timeout)

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self.state is ConnectionState.CONNECTED

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` seconds pass; True if connected."""
        with self._state_changed:
            return self._state_changed.wait_for(
                lambda: self._state is ConnectionState.CONNECTED, timeout
            )

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the broker confirmed the `cmd` subscription; True if it did."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._commands_ready, timeout)

    def wait_state(self, state: ConnectionState, timeout: float) -> bool:
        """Block until the connection is in `state` or `timeout` seconds pass."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._state is state, timeout)

    def pending(self) -> int:
        """Finals stored but not yet acknowledged by the broker."""
        return self._spool.pending()

    def flush(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every final; False if `timeout` ran out."""
        return self._spool.wait_empty(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters for status and metrics."""
        with self._interim_lock:
            interim_dropped = self._interim_dropped
        with self._lock:
            state, reconnects = self._state, max(0, self._gen - 1)
            problem, failures = self._problem, self._connect_failures
            commands_dropped = self._commands_dropped
        return {
            "state": state.value,
            "problem": problem,
            "connect_failures": failures,
            "reconnects": reconnects,
            "finals_pending": self._spool.pending(),
            "finals_dropped": self._spool.dropped,
            "finals_in_memory": self._spool.in_memory(),
            "finals_not_durable": self._spool.not_durable,
            "finals_sent": self._finals_sent,
            "interim_dropped": interim_dropped,
            "commands_dropped": commands_dropped,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Publish `offline` (retained), disconnect; un-acknowledged finals stay spooled."""
        with self._lock:
            if self._state is ConnectionState.CLOSED:
                return
            started = self._state is not ConnectionState.NEW
        if started:
            self._stopping.set()
            self._wake.set()
            self._sender.join(timeout)
            self._say_offline(timeout)
            self._client.disconnect()
            self._client.loop_stop()
            self._apply_acks()  # PUBACKs that arrived after the sender stopped
        with self._lock:
            self._state = ConnectionState.CLOSED
            self._state_changed.notify_all()
        left = self._spool.pending()
        self._spool.close()
        log.info("mqtt publisher closed (%d finals left in the spool)", left)

    # -- publishing ---------------------------------------------------------------------------

    def _publish_status(self, event: Status) -> None:
        with self._lock:
            self._status = event
            if self._state is ConnectionState.CONNECTED:
                self._client.publish(
                    self.topics.status, event.to_json(), qos=QOS_FINAL, retain=True
                )

    def _publish_interim(self, topic: str, payload: bytes) -> None:
        with self._interim_lock:
            infos = self._interim_infos
            while infos and _published(infos[0]):
                infos.popleft()
            if not self.connected or len(infos) >= self._interim_limit:
                self._interim_dropped += 1
                return
            info = self._client.publish(topic, payload, qos=QOS_INTERIM, retain=False)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                infos.append(info)
            else:
                self._interim_dropped += 1

    def _say_offline(self, timeout: float) -> None:
        offline = Status(device=self.device_id, utt=0, seq=0, state="offline")
        with self._lock:
            if self._state is not ConnectionState.CONNECTED:
                return
            info = self._client.publish(
                self.topics.status, offline.to_json(), qos=QOS_FINAL, retain=True
            )
        try:
            # PUBACKs come in order, so this also collects the acks of finals sent before it.
            info.wait_for_publish(timeout)
        except RuntimeError as err:
            log.warning("could not publish the offline status: %s", err)

    # -- the sender thread: the spool's only reader -------------------------------------------

    def _run_sender(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._send_step()
            except Exception:
                # A spool or paho failure must not end delivery for good; the next event or
                # ack retries.
                log.exception("mqtt sender failed; retrying on the next event")

    def _send_step(self) -> None:
        with self._lock:
            gen, connected = self._gen, self._state is ConnectionState.CONNECTED
        # Acks are drained after reading `gen`: every ack of an older connection was queued
        # before that connection's successor ran on_connect, so none is missed below.
        self._apply_acks()
        if gen != self._sent_gen:
            # New connection: paho's copies were dropped in on_connect; re-drive from the
            # oldest un-acknowledged final.
            self._inflight.clear()
            self._cursor = 0
            self._sent_gen = gen
        if not connected:
            return
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        for record in self._spool.after(self._cursor, room):
            with self._lock:
                if self._gen != gen or self._state is not ConnectionState.CONNECTED:
                    self._wake.set()
                    return
                info = self._client.publish(record.topic, record.payload, qos=QOS_FINAL)
            self._inflight[(gen, info.mid)] = record.id
            self._cursor = record.id

    def _apply_acks(self) -> None:
        done = []
        while True:
            try:
                key = self._acks.get_nowait()
            except queue.Empty:
                break
            record_id = self._inflight.pop(key, None)
            if record_id is not None:
                done.append(record_id)
        if done:
            self._spool.ack(done)
            self._finals_sent += len(done)

    # -- paho callbacks (paho's network thread) -----------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: Any,
        properties: Any,
    ) -> None:
        try:
            with self._lock:
                self._connacked = True
            if reason.is_failure:
                self._failed(
                    f"{self.host}:{self.port} refused the connection: {reason} (check "
                    "mqtt.username, the password and the broker's ACL)",
                    ConnectionState.REFUSED,
                )
                return
            with self._lock:
                log.info(
                    "connected to mqtt broker %s:%d (%s session, %d finals spooled)",
                    self.host,
                    self.port,
                    "resumed" if flags.session_present else "new",
                    self._spool.pending(),
                )
                dropped = client.drop_out_messages()
                self._gen += 1
                self._state = ConnectionState.CONNECTED
                self._state_changed.notify_all()
                for message in dropped:
                    # Finals come back from the spool; replies are not spooled, so resend them.
                    if message.topic == self.topics.cmd_reply:
                        client.publish(message.topic, message.payload, qos=QOS_FINAL)
                status = self._status or Status(device=self.device_id, utt=0, seq=0, state="online")
                client.publish(self.topics.status, status.to_json(), qos=QOS_FINAL, retain=True)
                if self._command_listener is not None:
                    client.subscribe(self.topics.cmd, qos=QOS_COMMANDS)
                self._problem = None
                for topic in self._extra_subscriptions:
                    self._subscribe_extra(client, topic)
                hooks = list(self._connect_hooks)
            for hook in hooks:  # outside our lock: a hook publishes through it
                try:
                    hook()
                except Exception:
                    log.exception("mqtt connect hook %r failed", hook)
            self._wake.set()
        except Exception:
            log.exception("mqtt on_connect failed")

    def _failed(self, cause: str, state: ConnectionState | None = None) -> None:
        with self._lock:
            if cause != self._problem:  # once per change of cause, not once per retry
                log.error("mqtt: %s; retrying with back-off (finals are spooled meanwhile)", cause)
            self._problem = cause
            self._connect_failures += 1
            if state is not None:
                self._state = state
            self._state_changed.notify_all()

    def _diagnose(self) -> str:
        # On paho's thread, which would only wait out its back-off meanwhile.
        return diagnose(self.host, self.port, self._tls_context, self._ca_file)

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        with self._lock:
            self._connacked = False
        self._set_will(client)

    def _set_will(self, client: mqtt.Client) -> None:
        # The broker publishes the will when it notices the loss (up to 1.5 x keepalive
        # later) and cannot stamp it; so the will says what it knows: `ts` is when this
        # connection was opened, and `detail` says it is the will (README: MQTT topics).
        will = Status(
            device=self.device_id,
            utt=0,
            seq=0,
            state="offline",
            detail={"cause": "connection lost", "will": True},
        )
        client.will_set(self.topics.status, will.to_json(), qos=QOS_FINAL, retain=True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho passes no exception: find the cause by trying each step again.
        if self._stopping.is_set():
            return  # close() waits for this thread: no probe on the way out
        try:
            self._failed(self._diagnose())
        except Exception:
            log.exception(
                "mqtt: cannot diagnose a failed connection to %s:%d", self.host, self.port
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: Any,
        properties: Any,
    ) -> None:
        with self._lock:
            self._commands_ready = False
            # Closed before any CONNACK: a TLS listener spoken to in plain text says nothing
            # else.
            unanswered = not self._connacked and not self._stopping.is_set()
            if self._state is ConnectionState.CONNECTED:
                if not self._stopping.is_set():
                    log.warning(
                        "lost mqtt broker %s:%d (%s); reconnecting, finals are spooled",
                        self.host,
                        self.port,
                        reason,
                    )
                self._state = ConnectionState.DISCONNECTED
                self._state_changed.notify_all()
        if unanswered:
            try:
                self._failed(self._diagnose())
            except Exception:
                log.exception(
                    "mqtt: cannot diagnose a closed connection to %s:%d", self.host, self.port
                )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        # Runs while paho holds its outgoing-message lock: no self._lock here (see module doc).
        self._acks.put((self._gen, mid))
        self._wake.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        ok = all(not reason.is_failure for reason in reasons)
        with self._lock:
            if mid in self._extra_mids:  # add_subscription()'s, not `cmd`'s
                self._extra_mids.discard(mid)
                if not ok:
                    log.error("mqtt broker refused a subscription (%s)", reasons)
                return
            self._commands_ready = ok and self._command_listener is not None
            self._state_changed.notify_all()
        if not ok:
            log.error("mqtt broker refused the subscription to %s: %s", self.topics.cmd, reasons)

    def _on_command_message(self, client: mqtt.Client, userdata: Any, message: Any) -> None:
        payload, retained = bytes(message.payload), bool(message.retain)
        with self._command_order:
            with self._lock:
                listener = self._command_listener
                if listener is None:
                    self._hold_command(payload, retained)
                    return
            self._deliver_command(listener, payload, retained)

    def _hold_command(self, payload: bytes, retained: bool) -> None:
        # With self._lock held.
        if self._listener_was_set or len(self._early_commands) >= EARLY_COMMANDS:
            self._commands_dropped += 1  # shutting down, or a flood before start-up
            log.warning(
                "dropped a %d-byte command on %s: %s",
                len(payload),
                self.topics.cmd,
                "the command server has stopped"
                if self._listener_was_set
                else f"{EARLY_COMMANDS} commands already wait for the command server",
            )
            return
        self._early_commands.append((payload, retained))
        self._state_changed.notify_all()

    def _deliver_command(
        self, listener: Callable[[bytes, bool], None] | None, payload: bytes, retained: bool
    ) -> None:
        if listener is None:
            return
        try:
            listener(payload, retained)
        except Exception:
            log.exception("command listener failed on a %d-byte payload", len(payload))
