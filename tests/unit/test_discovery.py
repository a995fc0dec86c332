"""Home Assistant discovery configs: valid against Home Assistant's documented schema, their
templates read edged's real status and final events, their commands are edged commands, and
the configs on the broker follow the device (changes, removals, reconnects, births)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hass_schema import available, check_configs, command_payload, entity_state, render

from edged.control import Pause, PttStart, PttStop, Resume, SetTargets, parse_command
from edged.errors import ConfigError
from edged.events import AsrFinal, MtFinal, Status
from edged.publish.discovery import (
    MAX_STATE_CHARS,
    HomeAssistantDiscovery,
    check_prefix,
    discovery_configs,
    node_id,
)

BASE = "edged/pi-1"
NODE = "edged_pi-1"


def configs_for(targets: tuple[str, ...], prefix: str = "homeassistant") -> dict[str, dict]:
    raw = discovery_configs(device_id="pi-1", base=BASE, prefix=prefix, targets=targets)
    return check_configs({t: json.dumps(c).encode() for t, c in raw.items()}, prefix)


def by_key(configs: dict[str, dict], key: str) -> dict:
    (config,) = [c for t, c in configs.items() if t.endswith(f"/{key}/config")]
    return config


def status(state: str = "online", **detail: object) -> bytes:
    event = Status(device="pi-1", utt=0, seq=0, state=state, detail=detail or None)
    return event.to_json().encode()


def test_every_entity_is_valid_and_unique() -> None:
    configs = configs_for(("en", "es"))
    assert sorted(t.split("/")[1] + "/" + t.split("/")[3] for t in configs) == [
        "button/ptt_start",
        "button/ptt_stop",
        "select/speak",
        "sensor/transcript",
        "sensor/translation_en",
        "sensor/translation_es",
        "switch/listening",
    ]
    for topic, config in configs.items():
        assert topic.split("/")[2] == NODE
        assert config["availability"] == [
            {
                "topic": f"{BASE}/status",
                "value_template": config["availability"][0]["value_template"],
            }
        ]
        assert config["device"]["identifiers"] == [NODE]
        assert config["origin"]["name"] == "edged"


def test_a_custom_prefix_is_used_and_a_bad_one_refused() -> None:
    assert all(t.startswith("ha/disc/") for t in configs_for(("en",), prefix="ha/disc"))
    for bad in ("", "home/+", "a//b", "#", "$SYS"):
        with pytest.raises(ConfigError, match=r"mqtt\.discovery_prefix"):
            check_prefix(bad)


def test_node_ids_are_in_home_assistants_alphabet_and_never_collide() -> None:
    assert node_id("pi-1") == "edged_pi-1"
    dotted, underscored = node_id("pi.1"), node_id("pi_1")
    assert dotted != underscored and dotted.startswith("edged_pi_1_")
    configs = discovery_configs(
        device_id="Küche 2", base="edged/Küche 2", prefix="homeassistant", targets=("de",)
    )
    checked = check_configs({t: json.dumps(c).encode() for t, c in configs.items()})
    assert all(c["default_entity_id"].isascii() for c in checked.values())


def test_availability_follows_the_status_event() -> None:
    config = by_key(configs_for(("en",)), "listening")
    assert available(config, status("online")) is True
    assert available(config, status("degraded", capture="device lost")) is True
    assert available(config, status("offline")) is False


def test_switch_and_select_show_the_status_detail() -> None:
    configs = configs_for(("en", "es"))
    switch, select = by_key(configs, "listening"), by_key(configs, "speak")
    detail = {"targets": ["en", "es"], "conversation": None}
    assert entity_state(switch, status(listening=True, speak="es", **detail)) == "on"
    assert entity_state(switch, status(listening=False, speak="es", **detail)) == "off"
    assert entity_state(select, status(listening=True, speak="es", **detail)) == "es"
    # A status without the settings (the last will) leaves them unknown, not wrong.
    assert entity_state(switch, status("offline")) is None
    assert entity_state(select, status("offline")) == "None"


def test_sensors_show_the_final_text_cut_to_home_assistants_limit() -> None:
    configs = configs_for(("es",))
    words = "palabra " * 60
    final = AsrFinal(device="pi-1", utt=3, seq=1, src="en", text=words, t0=0, t1=2, lat_ms=9)
    translation = MtFinal(
        device="pi-1",
        utt=3,
        seq=2,
        src="en",
        tgt="es",
        text="Hola.",
        engine="apertium",
        t0=0,
        t1=2,
        lat_ms=30,
    )
    transcript = by_key(configs, "transcript")
    assert transcript["state_topic"] == f"{BASE}/asr/final"
    shown = entity_state(transcript, final.to_json().encode())
    assert shown == words[:MAX_STATE_CHARS].strip() and len(shown) <= MAX_STATE_CHARS
    spanish = by_key(configs, "translation_es")
    assert spanish["state_topic"] == f"{BASE}/translation/es/final"
    assert entity_state(spanish, translation.to_json().encode()) == "Hola."


def test_commands_are_edged_commands() -> None:
    configs = configs_for(("en", "es"))
    for config in configs.values():
        if "command_topic" in config:
            assert config["command_topic"] == f"{BASE}/cmd"
    switch = by_key(configs, "listening")
    assert isinstance(parse_command(command_payload(switch, turn_on=True).encode()), Resume)
    assert isinstance(parse_command(command_payload(switch, turn_on=False).encode()), Pause)
    start, stop = by_key(configs, "ptt_start"), by_key(configs, "ptt_stop")
    assert isinstance(parse_command(command_payload(start).encode()), PttStart)
    assert isinstance(parse_command(command_payload(stop).encode()), PttStop)
    select = by_key(configs, "speak")
    assert select["options"] == ["en", "es"]
    for option in select["options"]:
        command = parse_command(command_payload(select, option).encode())
        assert command == SetTargets(targets=("en", "es"), speak=option)


class FakeTransport:
    """The broker connection as discovery sees it: records what is published; `connected`
    decides whether publish_retained sends."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, bytes]] = []
        self.hooks: list[Callable[[], None]] = []
        self.listeners: dict[str, Callable[[str, bytes, bool], None]] = {}

    def publish_retained(self, topic: str, payload: bytes) -> bool:
        if self.connected:
            self.sent.append((topic, payload))
        return self.connected

    def add_connect_hook(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def add_subscription(self, topic: str, listener: Callable[[str, bytes, bool], None]) -> None:
        self.listeners[topic] = listener

    def take(self) -> dict[str, bytes]:
        sent, self.sent = self.sent, []
        return dict(sent)


def started(
    targets: tuple[str, ...] = ("en", "es"),
) -> tuple[FakeTransport, HomeAssistantDiscovery]:
    transport = FakeTransport()
    discovery = HomeAssistantDiscovery(transport, device_id="pi-1", base=BASE, targets=targets)
    discovery.start()
    return transport, discovery


ES = f"homeassistant/sensor/{NODE}/translation_es/config"
SELECT = f"homeassistant/select/{NODE}/speak/config"


def test_start_publishes_all_and_listens_for_births_and_own_configs() -> None:
    transport, discovery = started()
    assert transport.take() == discovery.configs and len(discovery.configs) == 7
    assert set(transport.listeners) == {
        "homeassistant/status",
        f"homeassistant/+/{NODE}/+/config",
    }


def test_removing_a_target_clears_its_entity_and_updates_the_select() -> None:
    transport, discovery = started()
    transport.take()
    discovery.update(("en",))
    sent = transport.take()
    assert sent[ES] == b""
    assert json.loads(sent[SELECT])["options"] == ["en"]
    assert set(sent) == {ES, SELECT}  # unchanged configs are not sent again
    discovery.update(("en",))
    assert transport.take() == {}


def test_while_disconnected_nothing_is_lost_the_connect_hook_publishes() -> None:
    transport, discovery = started()
    transport.take()
    transport.connected = False
    discovery.update(("en",))
    assert transport.take() == {}
    transport.connected = True
    (hook,) = transport.hooks
    hook()
    sent = transport.take()
    assert sent == discovery.configs and ES not in sent
    # The broker still holds the es config of before; it is cleared when it comes back.
    transport.listeners[f"homeassistant/+/{NODE}/+/config"](ES, b'{"old": 1}', True)
    assert transport.take() == {ES: b""}


def test_only_retained_stale_configs_are_cleared() -> None:
    transport, discovery = started(("en",))
    transport.take()
    own = transport.listeners[f"homeassistant/+/{NODE}/+/config"]
    own(ES, b'{"old": 1}', False)  # a live echo, not what the broker holds
    own(ES, b"", True)
    own(next(iter(discovery.configs)), b"{}", True)  # a current entity
    assert transport.take() == {}


def test_home_assistant_birth_republishes_everything() -> None:
    transport, discovery = started()
    transport.take()
    birth = transport.listeners["homeassistant/status"]
    birth("homeassistant/status", b"offline", False)
    assert transport.take() == {}
    birth("homeassistant/status", b"online", False)
    assert transport.take() == discovery.configs


def test_templates_render_like_home_assistant() -> None:
    # The helper itself: value and value_json, as Home Assistant passes them.
    assert render("{{ value_json.a }}-{{ value }}", b'{"a": 1}') == '1-{"a": 1}'
    assert render("{{ value }}", b"plain") == "plain"
