"""Home Assistant discovery against a real `edged run` and a real mosquitto: the configs on
`homeassistant/#` are retained and valid, the payloads Home Assistant would send on their
command topics change the daemon (its retained status shows it), a removed target's entity
is cleared (by command, and across a restart with fewer targets) and a reload brings it back,
and Home Assistant's birth message brings the configs again.

The daemon reads raw audio from a stdin pipe the test keeps open and silent: it runs, with
real models, until the pipe is closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mqtt_broker
import pytest
from conftest import REPO
from hass_schema import available, check_configs, command_payload, entity_state
from mqtt_broker import Broker, Received, Subscriber, retained_messages

mosquitto = mqtt_broker.mosquitto
subscribers = mqtt_broker.subscribers
pytestmark = pytest.mark.slow

DEVICE = "pi-ha"
BASE = f"edged/{DEVICE}"
STATUS, CMD, REPLY = f"{BASE}/status", f"{BASE}/cmd", f"{BASE}/cmd/reply"
NODE = f"edged_{DEVICE}"
ES_SENSOR = f"homeassistant/sensor/{NODE}/translation_es/config"
STARTUP = 180  # seconds: loading Whisper on a shared 2-core machine


def write_config(path: Path, broker: Broker, targets: list[str]) -> Path:
    path.write_text(
        f'device_id = "{DEVICE}"\n'
        '[audio]\nsource = "stdin"\nrealtime = false\n'
        f"[mt]\ntargets = {json.dumps(targets)}\n"
        "[tts]\nenabled = false\n"
        "[playback]\nenabled = false\n"
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'spool_dir = "{path.parent / "spool"}"\ndiscovery = true\n'
        "reconnect_min = 1\nreconnect_max = 1\n"
        "[service]\nmetrics_interval = 0.0\ndrain_timeout = 5.0\n"
    )
    return path


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        """Close its audio (the input ends, the daemon exits 0)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(60)


@pytest.fixture
def start_daemon(models_dir: Path, tmp_path: Path) -> Iterator:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        log = tmp_path / f"daemon-{len(started)}.log"
        env = dict(os.environ, EDGED_MODELS_DIR=str(models_dir))
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "-c", str(config)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        daemon = Daemon(proc, log)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)


def configs_in(messages: list[Received]) -> dict[str, bytes]:
    """The latest payload per discovery topic (b"" = cleared)."""
    latest: dict[str, bytes] = {}
    for message in messages:
        if message.topic.startswith("homeassistant/") and message.topic.endswith("/config"):
            latest[message.topic] = message.payload
    return latest


def statuses(messages: list[Received]) -> list[dict]:
    return [m.json() for m in messages if m.topic == STATUS]


def ready(messages: list[Received]) -> bool:
    """The daemon is up: an online status with its settings."""
    return any(s["state"] == "online" and s.get("detail") for s in statuses(messages))


def test_discovery_configs_are_valid_retained_and_their_commands_work(
    mosquitto, subscribers, start_daemon, tmp_path: Path
) -> None:
    broker = mosquitto()
    sub: Subscriber = subscribers(broker, ["homeassistant/#", STATUS, REPLY])
    sub.wait_subscribed()
    daemon = start_daemon(write_config(tmp_path / "edged.toml", broker, ["en", "es"]))
    got = sub.wait_for(lambda ms: ready(ms) and len(configs_in(ms)) == 7, STARTUP)

    # What a Home Assistant starting now gets: retained, valid configs for one device.
    retained = retained_messages(broker, ["homeassistant/#"])
    assert all(m.retain for m in retained)
    configs = check_configs({m.topic: m.payload for m in retained})
    assert set(configs) == set(configs_in(got))
    entities = {topic.split("/")[3]: config for topic, config in configs.items()}
    assert set(entities) == {
        "transcript",
        "translation_en",
        "translation_es",
        "listening",
        "speak",
        "ptt_start",
        "ptt_stop",
    }
    switch, select = entities["listening"], entities["speak"]
    assert switch["command_topic"] == CMD and switch["state_topic"] == STATUS

    def send_as_home_assistant(config: dict, **how: object) -> dict:
        """Publish what Home Assistant would; return the status that follows the reply."""
        seen = len(sub.messages)
        sub.publish(config["command_topic"], command_payload(config, **how), qos=config["qos"])
        later = sub.wait_for(
            lambda ms: (
                any(m.topic == REPLY for m in ms[seen:])
                and any(m.topic == STATUS for m in ms[seen:])
            ),
            30,
        )[seen:]
        (reply,) = [m.json() for m in later if m.topic == REPLY]
        assert reply["ok"], reply
        last = [m for m in later if m.topic == STATUS][-1]
        assert available(switch, last.payload) is True
        return {"reply": reply, "status": last}

    off = send_as_home_assistant(switch, turn_on=False)
    assert off["reply"]["op"] == "pause"
    assert entity_state(switch, off["status"].payload) == "off"
    on = send_as_home_assistant(switch, turn_on=True)
    assert entity_state(switch, on["status"].payload) == "on"

    chosen = send_as_home_assistant(select, value="es")
    assert chosen["reply"]["result"]["speak"] == "es"
    assert entity_state(select, chosen["status"].payload) == "es"
    assert (
        entity_state(select, send_as_home_assistant(select, value="en")["status"].payload) == "en"
    )

    for key, op in (("ptt_start", "ptt_start"), ("ptt_stop", "ptt_stop")):
        assert send_as_home_assistant(entities[key])["reply"]["op"] == op

    # Removing a target removes its entity: an empty retained config, and a select without it.
    seen = len(sub.messages)
    sub.publish(CMD, json.dumps({"op": "set_targets", "targets": ["en"]}))
    later = sub.wait_for(lambda ms: configs_in(ms[seen:]).get(ES_SENSOR) == b"", 30)[seen:]
    assert json.loads(configs_in(later)[f"homeassistant/select/{NODE}/speak/config"])[
        "options"
    ] == ["en"]
    now = {m.topic: m.payload for m in retained_messages(broker, ["homeassistant/#"])}
    assert ES_SENSOR not in now and len(check_configs(now)) == 6

    # Home Assistant restarting announces itself; edged publishes its configs again.
    seen = len(sub.messages)
    sub.publish("homeassistant/status", b"online")
    again = sub.wait_for(lambda ms: len(configs_in(ms[seen:])) == 6, 30)[seen:]
    assert configs_in(again) == now

    assert daemon.stop() == 0, daemon.log.read_text()
    final = retained_messages(broker, [STATUS])
    assert available(switch, final[0].payload) is False  # offline: entities unavailable


def test_a_target_removed_while_edged_was_stopped_is_cleared_and_a_reload_brings_it_back(
    mosquitto, subscribers, start_daemon, tmp_path: Path
) -> None:
    broker = mosquitto()
    config = tmp_path / "edged.toml"
    sub: Subscriber = subscribers(broker, ["homeassistant/#", STATUS])
    sub.wait_subscribed()
    first = start_daemon(write_config(config, broker, ["en", "es"]))
    sub.wait_for(lambda ms: ready(ms) and ES_SENSOR in configs_in(ms), STARTUP)
    assert first.stop() == 0, first.log.read_text()

    seen = len(sub.messages)
    second = start_daemon(write_config(config, broker, ["en"]))
    sub.wait_for(lambda ms: configs_in(ms[seen:]).get(ES_SENSOR) == b"", STARTUP)
    sub.wait_for(lambda ms: ready(ms[seen:]), STARTUP)
    now = {m.topic: m.payload for m in retained_messages(broker, ["homeassistant/#"])}
    assert ES_SENSOR not in now and len(check_configs(now)) == 6

    # A reload (SIGHUP) with the target back brings its entity back.
    seen = len(sub.messages)
    write_config(config, broker, ["en", "es"])
    second.proc.send_signal(signal.SIGHUP)
    sub.wait_for(lambda ms: configs_in(ms[seen:]).get(ES_SENSOR, b""), STARTUP)
    now = {m.topic: m.payload for m in retained_messages(broker, ["homeassistant/#"])}
    assert len(check_configs(now)) == 7
    assert json.loads(now[f"homeassistant/select/{NODE}/speak/config"])["options"] == ["en", "es"]
    assert second.stop() == 0, second.log.read_text()
