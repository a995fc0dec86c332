"""Home Assistant MQTT discovery: one Home Assistant device per edged device, its entities
published as retained configs on `<discovery_prefix>/<component>/<node_id>/<object_id>/config`.

| entity              | component | state from                      | command (on `cmd`)      |
|---------------------|-----------|---------------------------------|-------------------------|
| Transcript          | sensor    | `asr/final` (`text`)            |                         |
| Translation <lang>  | sensor    | `translation/<lang>/final`      |                         |
| Listening           | switch    | `status` (`detail.listening`)   | `resume` / `pause`      |
| Spoken language     | select    | `status` (`detail.speak`)       | `set_targets` + `speak` |
| Push-to-talk start  | button    |                                 | `ptt_start`             |
| Push-to-talk stop   | button    |                                 | `ptt_stop`              |

Commands are edged's own JSON commands (edged.control) on its `cmd` topic, so Home Assistant
needs nothing edged does not already understand. Push-to-talk is two buttons: Home Assistant's
button only presses (no hold, no release), and a switch would claim a state edged does not keep.

Availability is edged's retained `status` (its last will says `offline`); `degraded` counts as
available, since the device still answers commands. Every entity has a `unique_id`, the device
block and an `origin` block (Home Assistant's discovery schema); `default_entity_id` (which
replaced the deprecated `object_id` in Home Assistant 2025.10) proposes the entity id.

The configs are published on every (re)connect and whenever Home Assistant announces itself
(its birth message `online` on `<discovery_prefix>/status`). A config this device no longer has
(a removed target, also one removed while edged was not running) is cleared with an empty
retained payload, which makes Home Assistant delete the entity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, Protocol

from edged import __version__
from edged.errors import ConfigError
from edged.langs import lang_name

log = logging.getLogger(__name__)

MANUFACTURER = "edged"
MODEL = "edged offline speech translator"
# Home Assistant refuses a state longer than 255 characters; the full text is an attribute.
MAX_STATE_CHARS = 255

_NODE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")  # Home Assistant's node_id / object_id alphabet
_ENTITY_CHARS = re.compile(r"[^a-z0-9_]")

# Jinja templates Home Assistant renders against edged's status event
# {"type": "status", "state": "online", "detail": {"listening": true, "speak": "es", ...}}.
# "None" is Home Assistant's payload for an unknown state (a status without the field).
AVAILABILITY_TEMPLATE = "{{ 'offline' if value_json.state == 'offline' else 'online' }}"
LISTENING_TEMPLATE = (
    "{% if value_json.detail and value_json.detail.listening is defined %}"
    "{{ 'ON' if value_json.detail.listening else 'OFF' }}{% else %}None{% endif %}"
)
SPEAK_TEMPLATE = (
    "{% if value_json.detail and value_json.detail.speak %}"
    "{{ value_json.detail.speak }}{% else %}None{% endif %}"
)
TEXT_TEMPLATE = "{{ value_json.text[:" + str(MAX_STATE_CHARS) + "] }}"


class DiscoveryTransport(Protocol):
    """What discovery needs of the broker connection (MqttPublisher provides it)."""

    def publish_retained(self, topic: str, payload: bytes) -> bool: ...

    def add_connect_hook(self, hook: Callable[[], None]) -> None: ...

    def add_subscription(
        self, topic: str, listener: Callable[[str, bytes, bool], None]
    ) -> None: ...


def check_prefix(prefix: str) -> str:
    """The discovery prefix, validated as MQTT topic levels."""
    levels = prefix.split("/")
    if any(not level or any(c in level for c in "+#\0") for level in levels) or prefix[0] == "$":
        raise ConfigError(
            f"mqtt.discovery_prefix = {prefix!r}: must be topic levels without '+', '#', empty "
            "levels or a leading '$' (Home Assistant's default is 'homeassistant')"
        )
    return prefix


def node_id(device_id: str) -> str:
    """The discovery topics' <node_id> for a device: `edged_<device_id>` in Home Assistant's
    alphabet; a device id that had to be changed gets a hash, so two devices never share one."""
    clean = _NODE_CHARS.sub("_", device_id)
    if clean != device_id:
        clean += "_" + hashlib.sha1(device_id.encode()).hexdigest()[:6]
    return f"edged_{clean}"


def _command(op: str, **fields: Any) -> str:
    return json.dumps({"op": op, **fields}, separators=(",", ":"))


def discovery_configs(
    *,
    device_id: str,
    base: str,
    prefix: str,
    targets: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Every entity's config, by discovery topic. `base` is edged's `<prefix>/<device_id>`."""
    node = node_id(device_id)
    entity_slug = _ENTITY_CHARS.sub("_", node.lower())
    status, cmd = f"{base}/status", f"{base}/cmd"
    shared: dict[str, Any] = {
        "device": {
            "identifiers": [node],
            "name": f"edged {device_id}",
            "manufacturer": MANUFACTURER,
            "model": MODEL,
            "sw_version": __version__,
        },
        "origin": {"name": "edged", "sw_version": __version__},
        "availability": [{"topic": status, "value_template": AVAILABILITY_TEMPLATE}],
        "availability_mode": "latest",
        "qos": 1,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "transcript",
            {
                "name": "Transcript",
                "icon": "mdi:text-recognition",
                "state_topic": f"{base}/asr/final",
                "value_template": TEXT_TEMPLATE,
                "json_attributes_topic": f"{base}/asr/final",
            },
        ),
    ]
    for lang in targets:
        topic = f"{base}/translation/{lang}/final"
        entities.append(
            (
                "sensor",
                f"translation_{lang}",
                {
                    "name": f"Translation {lang_name(lang)}",
                    "icon": "mdi:translate",
                    "state_topic": topic,
                    "value_template": TEXT_TEMPLATE,
                    "json_attributes_topic": topic,
                },
            )
        )
    entities += [
        (
            "switch",
            "listening",
            {
                "name": "Listening",
                "icon": "mdi:microphone",
                "command_topic": cmd,
                "payload_on": _command("resume"),
                "payload_off": _command("pause"),
                "state_topic": status,
                "value_template": LISTENING_TEMPLATE,
                "state_on": "ON",
                "state_off": "OFF",
            },
        ),
        (
            "select",
            "speak",
            {
                "name": "Spoken language",
                "icon": "mdi:account-voice",
                "command_topic": cmd,
                # The targets stay as they are; the config is republished when they change.
                "command_template": '{"op":"set_targets","targets":'
                + json.dumps(list(targets))
                + ',"speak":"{{ value }}"}',
                "options": list(targets),
                "state_topic": status,
                "value_template": SPEAK_TEMPLATE,
            },
        ),
        (
            "button",
            "ptt_start",
            {
                "name": "Push-to-talk start",
                "icon": "mdi:microphone-message",
                "command_topic": cmd,
                "payload_press": _command("ptt_start"),
            },
        ),
        (
            "button",
            "ptt_stop",
            {
                "name": "Push-to-talk stop",
                "icon": "mdi:microphone-message-off",
                "command_topic": cmd,
                "payload_press": _command("ptt_stop"),
            },
        ),
    ]
    configs = {}
    for component, key, fields in entities:
        unique = f"{node}_{key}"
        configs[f"{prefix}/{component}/{node}/{key}/config"] = {
            **fields,
            "unique_id": unique,
            "default_entity_id": f"{component}.{entity_slug}_{key}",
            **shared,
        }
    return configs


def _encode(config: dict[str, Any]) -> bytes:
    return json.dumps(config, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class HomeAssistantDiscovery:
    """Keeps one device's discovery configs on the broker current: published on connect, on
    Home Assistant's birth message and on a change of targets; removed entities cleared."""

    def __init__(
        self,
        transport: DiscoveryTransport,
        *,
        device_id: str,
        base: str,
        targets: tuple[str, ...],
        prefix: str = "homeassistant",
    ) -> None:
        self._transport = transport
        self._device_id, self._base = device_id, base
        self._prefix = check_prefix(prefix)
        self._node = node_id(device_id)
        # Guards the configs and orders their publication: a change from a command thread and
        # a republish from paho's thread never interleave.
        self._lock = threading.Lock()
        self._configs = self._build(targets)
        self._published: dict[str, bytes] = {}

    @property
    def configs(self) -> dict[str, bytes]:
        """The current configs, by discovery topic (JSON payloads)."""
        with self._lock:
            return dict(self._configs)

    def start(self) -> None:
        """Register with the connection: publish on each connect, listen for Home Assistant's
        birth message and for this device's own retained configs (to clear stale ones)."""
        self._transport.add_connect_hook(self.republish)
        self._transport.add_subscription(f"{self._prefix}/status", self._on_birth)
        self._transport.add_subscription(
            f"{self._prefix}/+/{self._node}/+/config", self._on_own_config
        )
        self.republish()  # already connected: the hook has missed this connection

    def update(self, targets: tuple[str, ...]) -> None:
        """The device's targets may have changed: publish the configs that changed, clear
        those of removed entities (Home Assistant deletes them)."""
        with self._lock:
            configs = self._build(targets)
            if configs == self._configs:
                return
            removed = set(self._configs) - set(configs)
            self._configs = configs
            for topic, payload in configs.items():
                if self._published.get(topic) != payload:
                    self._send(topic, payload)
            for topic in sorted(removed):
                self._send(topic, b"")
        if removed:
            log.info("home assistant: removed %s", ", ".join(sorted(removed)))

    def republish(self) -> None:
        """Publish every config again (after a connect, or when Home Assistant restarts)."""
        with self._lock:
            self._published.clear()
            for topic, payload in self._configs.items():
                self._send(topic, payload)

    def _build(self, targets: tuple[str, ...]) -> dict[str, bytes]:
        configs = discovery_configs(
            device_id=self._device_id, base=self._base, prefix=self._prefix, targets=targets
        )
        return {topic: _encode(config) for topic, config in configs.items()}

    def _send(self, topic: str, payload: bytes) -> None:
        # Disconnected: nothing is sent; the connect hook publishes the current set.
        if self._transport.publish_retained(topic, payload):
            if payload:
                self._published[topic] = payload
            else:
                self._published.pop(topic, None)

    def _on_birth(self, topic: str, payload: bytes, retained: bool) -> None:
        if payload.strip() == b"online":
            log.info("home assistant came online; publishing discovery configs")
            self.republish()

    def _on_own_config(self, topic: str, payload: bytes, retained: bool) -> None:
        # Retained messages arrive on subscribing: the configs on the broker. One this device no
        # longer has was left by an earlier run (a target removed in the config file).
        if not retained or not payload:
            return
        with self._lock:
            stale = topic not in self._configs
            if stale:
                self._send(topic, b"")
        if stale:
            log.info("home assistant: cleared stale discovery config %s", topic)
