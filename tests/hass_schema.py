"""Home Assistant's MQTT discovery schema, as its documentation states it, and its template
rendering, so tests can check discovery configs the way Home Assistant reads them.

Written from home-assistant.io `source/_integrations/mqtt.markdown` (discovery topic, payload,
origin, availability) and `{sensor,switch,select,button}.mqtt.markdown` (each component's
configuration variables; "required: true" ones are listed in REQUIRED). Home Assistant ignores
unknown keys, so a misspelt key would silently do nothing: the schema allows documented keys
only. `default_entity_id` replaced `object_id` in Home Assistant 2025.10 (object_id stopped
working in 2026.4).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import jsonschema
from jinja2.sandbox import ImmutableSandboxedEnvironment

COMPONENTS = ("sensor", "switch", "select", "button")
DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>[^+#]+)/(?P<component>[a-z_]+)/(?P<node>[a-zA-Z0-9_-]+)/"
    r"(?P<object>[a-zA-Z0-9_-]+)/config$"
)
TOPIC = {"type": "string", "minLength": 1, "pattern": r"^[^+#\u0000]+$"}  # no wildcards
TEMPLATE = {"type": "string", "minLength": 1}
TEXT = {"type": "string", "minLength": 1}

DEVICE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["identifiers", "name"],
    "properties": {
        "identifiers": {"type": "array", "items": TEXT, "minItems": 1},
        "connections": {"type": "array"},
        "name": TEXT,
        "manufacturer": TEXT,
        "model": TEXT,
        "model_id": TEXT,
        "sw_version": TEXT,
        "hw_version": TEXT,
        "serial_number": TEXT,
        "suggested_area": TEXT,
        "configuration_url": TEXT,
        "via_device": TEXT,
    },
}
ORIGIN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": TEXT, "sw_version": TEXT, "support_url": TEXT},
}
AVAILABILITY = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["topic"],
        "properties": {
            "topic": TOPIC,
            "value_template": TEMPLATE,
            "payload_available": TEXT,
            "payload_not_available": TEXT,
        },
    },
}
COMMON = {
    "availability": AVAILABILITY,
    "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability_template": TEMPLATE,
    "availability_topic": TOPIC,
    "payload_available": TEXT,
    "payload_not_available": TEXT,
    "default_entity_id": {"type": "string", "pattern": r"^[a-z_]+\.[a-z0-9_]+$"},
    "device": DEVICE,
    "origin": ORIGIN,
    "enabled_by_default": {"type": "boolean"},
    "encoding": {"type": "string"},
    "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": TEXT,
    "icon": {"type": "string", "pattern": r"^mdi:[a-z0-9-]+$"},
    "json_attributes_template": TEMPLATE,
    "json_attributes_topic": TOPIC,
    "name": {"type": ["string", "null"]},
    "qos": {"enum": [0, 1, 2]},
    "unique_id": TEXT,
}
SPECIFIC: dict[str, dict[str, Any]] = {
    "sensor": {
        "state_topic": TOPIC,
        "value_template": TEMPLATE,
        "device_class": {"type": ["string", "null"]},
        "state_class": TEXT,
        "unit_of_measurement": TEXT,
        "expire_after": {"type": "integer"},
        "force_update": {"type": "boolean"},
        "last_reset_value_template": TEMPLATE,
        "suggested_display_precision": {"type": "integer"},
        "options": {"type": "array"},
    },
    "switch": {
        "command_topic": TOPIC,
        "command_template": TEMPLATE,
        "state_topic": TOPIC,
        "value_template": TEMPLATE,
        "payload_on": TEXT,
        "payload_off": TEXT,
        "state_on": TEXT,
        "state_off": TEXT,
        "optimistic": {"type": "boolean"},
        "retain": {"type": "boolean"},
        "device_class": {"enum": [None, "outlet", "switch"]},
    },
    "select": {
        "command_topic": TOPIC,
        "command_template": TEMPLATE,
        "options": {"type": "array", "items": TEXT},
        "state_topic": TOPIC,
        "value_template": TEMPLATE,
        "optimistic": {"type": "boolean"},
        "retain": {"type": "boolean"},
    },
    "button": {
        "command_topic": TOPIC,
        "command_template": TEMPLATE,
        "payload_press": TEXT,
        "retain": {"type": "boolean"},
        "device_class": {"enum": [None, "identify", "restart", "update"]},
    },
}
# "required: true" in each component's documentation, plus what discovery itself needs: a
# unique_id (entities are set up again after a restart only with one), the device and origin.
REQUIRED = {
    "sensor": ["state_topic"],
    "switch": ["command_topic"],
    "select": ["command_topic", "options"],
    "button": ["command_topic"],
}
DISCOVERY_REQUIRED = ["unique_id", "device", "origin", "availability"]


def schema(component: str) -> dict[str, Any]:
    """JSON Schema of one component's discovery payload."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": REQUIRED[component] + DISCOVERY_REQUIRED,
        "properties": COMMON | SPECIFIC[component],
    }


def check_configs(configs: dict[str, bytes], prefix: str = "homeassistant") -> dict[str, dict]:
    """Validate every (topic -> payload) config; return them decoded. Raises on any fault."""
    decoded: dict[str, dict] = {}
    unique_ids: dict[str, str] = {}
    devices = set()
    for topic, payload in configs.items():
        match = DISCOVERY_TOPIC.match(topic)
        assert match, f"not a discovery topic: {topic}"
        assert match["prefix"] == prefix, topic
        component = match["component"]
        assert component in COMPONENTS, topic
        config = json.loads(payload)
        jsonschema.validate(config, schema(component))
        if "default_entity_id" in config:
            assert config["default_entity_id"].startswith(component + "."), topic
        assert config["unique_id"] not in unique_ids, (
            f"unique_id {config['unique_id']} on {topic} and {unique_ids[config['unique_id']]}"
        )
        unique_ids[config["unique_id"]] = topic
        devices.add(json.dumps(config["device"], sort_keys=True))
        if component == "select":
            assert config["options"], f"{topic}: a select needs options"
        decoded[topic] = config
    assert len(devices) <= 1, f"one device expected, got {devices}"
    return decoded


_JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes | str | None = None, **variables: Any) -> str:
    """Render a template as Home Assistant's MQTT integration does: `value` is the payload,
    `value_json` the payload parsed as JSON (when it is JSON)."""
    context: dict[str, Any] = dict(variables)
    if payload is not None:
        value = payload.decode() if isinstance(payload, bytes) else payload
        context["value"] = value
        with contextlib.suppress(ValueError):  # not JSON: Home Assistant has no value_json
            context["value_json"] = json.loads(value)
    return _JINJA.from_string(template).render(context).strip()


def command_payload(config: dict, value: str | None = None, turn_on: bool = True) -> str:
    """The payload Home Assistant publishes on `command_topic` for this entity: a button's
    press, a switch turned on/off, a select set to `value` (command_template rendered)."""
    if "payload_press" in config:
        return config["payload_press"]
    if "payload_on" in config:
        return config["payload_on"] if turn_on else config["payload_off"]
    assert value is not None, "a select needs the option chosen"
    template = config.get("command_template")
    return render(template, value=value) if template else value


def entity_state(config: dict, payload: bytes) -> str | None:
    """The state Home Assistant shows after `payload` arrives on the state topic ("None" means
    unknown); for a switch "on"/"off"."""
    rendered = render(config["value_template"], payload) if "value_template" in config else ""
    if "payload_on" in config:  # a switch
        on = config.get("state_on", config["payload_on"])
        off = config.get("state_off", config["payload_off"])
        return {on: "on", off: "off"}.get(rendered)
    return rendered


def available(config: dict, payload: bytes) -> bool | None:
    """Availability after `payload` on the availability topic (None: neither payload matched,
    Home Assistant keeps the previous availability)."""
    entry = config["availability"][0]
    rendered = render(entry["value_template"], payload) if "value_template" in entry else payload
    if rendered == entry.get("payload_available", "online"):
        return True
    if rendered == entry.get("payload_not_available", "offline"):
        return False
    return None
