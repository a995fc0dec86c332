"""Commands on `cmd` through a real mosquitto: every op applied and answered, failures
answered without taking the server down, retained commands ignored, a full backlog refused,
and 1,000+ generated malformed payloads each answered with an error, state unchanged."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mqtt_broker
import pytest
from control_payloads import Malformed, malformed
from hypothesis import HealthCheck, given, settings
from mqtt_broker import Broker, Subscriber

from edged.control import (
    AnyCommand,
    Mute,
    Pause,
    PttStart,
    PttStop,
    QueryStatus,
    Resume,
    SetSource,
    SetTargets,
    Speak,
    StopPlayback,
    Unmute,
)
from edged.control.server import CommandServer
from edged.errors import EngineError
from edged.publish.mqtt import ConnectionState, MqttPublisher

mosquitto = mqtt_broker.mosquitto

DEV = "pi-cmd"
CMD = f"edged/{DEV}/cmd"
REPLY = f"edged/{DEV}/cmd/reply"


@dataclass
class DeviceState:
    languages: tuple[str, ...] = ("en", "es")
    targets: tuple[str, ...] = ("es",)
    speak: str | None = "es"
    listening: bool = True
    push_to_talk: bool = False
    muted: bool = False
    spoken: list[tuple[str, str]] = field(default_factory=list)
    playback_stops: int = 0


class Device:
    """Stands in for the pipeline: applies each command to its state, as the daemon will."""

    def __init__(self) -> None:
        self.state = DeviceState()
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def handle(self, command: AnyCommand) -> dict[str, Any]:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        state = self.state
        match command:
            case SetSource(languages=languages):
                state.languages = languages
            case SetTargets(targets=targets, speak=speak):
                state.targets = targets
                state.speak = speak if speak is not None else None
            case Pause():
                state.listening = False
            case Resume():
                state.listening = True
            case PttStart():
                state.push_to_talk = True
            case PttStop():
                state.push_to_talk = False
            case Mute():
                state.muted = True
            case Unmute():
                state.muted = False
            case Speak(text="explode"):
                raise RuntimeError("synthesizer crashed")
            case Speak(lang="haw"):
                raise EngineError("no voice installed for haw; install a Hawaiian voice")
            case Speak(text=text, lang=lang):
                state.spoken.append((lang, text))
            case StopPlayback():
                state.playback_stops += 1
            case QueryStatus():
                return {"state": asdict(state)}
        return {}


@dataclass
class Live:
    broker: Broker
    publisher: MqttPublisher
    server: CommandServer
    device: Device
    requester: Subscriber

    def send(self, payload: bytes | dict, retain: bool = False) -> None:
        raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.requester.publish(CMD, raw, qos=1, retain=retain)

    def ask(self, payload: bytes | dict, timeout: float = 10.0) -> dict[str, Any]:
        """Send one command and return the reply that answers it (the next one)."""
        seen = len(self.requester.messages)
        self.send(payload)
        return self.requester.wait_count(seen + 1, timeout)[seen].json()


def start_live(directory: Path, backlog: int = 32, broker: Broker | None = None) -> Live:
    broker = broker or Broker(directory / "broker").start()
    device = Device()
    publisher = MqttPublisher(
        host=broker.host, port=broker.port, device_id=DEV, spool_dir=directory / "spool"
    )
    server = CommandServer(publisher, device.handle, backlog=backlog)
    server.start()
    publisher.start()
    assert publisher.wait_connected(10)
    assert server.wait_ready(10)
    requester = Subscriber(broker, [REPLY])
    requester.wait_subscribed()
    return Live(broker, publisher, server, device, requester)


def stop_live(live: Live) -> None:
    live.requester.close()
    live.server.close()
    live.publisher.close(timeout=2)
    live.broker.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    running = start_live(tmp_path_factory.mktemp("commands"))
    yield running
    stop_live(running)


def test_every_op_is_applied_and_answered(live: Live) -> None:
    requests: list[tuple[dict, Any]] = [
        ({"op": "set_source", "languages": ["de", "fr"]}, ("languages", ("de", "fr"))),
        ({"op": "set_targets", "targets": ["en", "it"], "speak": "it"}, ("speak", "it")),
        ({"op": "pause"}, ("listening", False)),
        ({"op": "resume"}, ("listening", True)),
        ({"op": "ptt_start"}, ("push_to_talk", True)),
        ({"op": "ptt_stop"}, ("push_to_talk", False)),
        ({"op": "mute"}, ("muted", True)),
        ({"op": "unmute"}, ("muted", False)),
        ({"op": "speak", "text": "Buongiorno", "lang": "it"}, ("spoken", [("it", "Buongiorno")])),
        ({"op": "stop_playback"}, ("playback_stops", 1)),
    ]
    for number, (request, (key, value)) in enumerate(requests):
        reply = live.ask({**request, "id": f"req-{number}"})
        assert reply == {
            "v": 1,
            "id": f"req-{number}",
            "op": request["op"],
            "ok": True,
            "result": {},
        }
        assert getattr(live.device.state, key) == value, request
    status = live.ask({"op": "status", "id": 99})
    assert status["ok"] and status["id"] == 99
    assert status["result"]["state"]["targets"] == ["en", "it"]


def test_a_failing_handler_is_answered_and_the_server_stays_up(live: Live) -> None:
    crashed = live.ask({"op": "speak", "id": "x1", "text": "explode", "lang": "en"})
    assert crashed["ok"] is False
    assert crashed["error"] == "internal error: RuntimeError: synthesizer crashed"
    refused = live.ask({"op": "speak", "id": "x2", "text": "Aloha", "lang": "haw"})
    assert refused == {
        "v": 1,
        "id": "x2",
        "op": "speak",
        "ok": False,
        "error": "no voice installed for haw; install a Hawaiian voice",
    }
    assert live.ask({"op": "status", "id": "x3"})["ok"] is True


def test_an_invalid_command_names_the_problem_and_changes_nothing(live: Live) -> None:
    before = copy.deepcopy(live.device.state)
    calls = live.device.calls
    reply = live.ask({"op": "set_targets", "id": "t", "targets": ["es", "klingon"]})
    assert reply["ok"] is False and reply["id"] == "t" and reply["op"] == "set_targets"
    assert "unknown language code 'klingon' for targets[1]" in reply["error"]
    assert live.ask(b"{not json")["error"].startswith("invalid JSON")
    assert (live.device.state, live.device.calls) == (before, calls)


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=malformed)
def test_generated_malformed_payloads_each_get_an_error_reply(live: Live, case: Malformed) -> None:
    before = copy.deepcopy(live.device.state)
    calls = live.device.calls
    reply = live.ask(case.payload, timeout=5)
    assert reply["ok"] is False
    assert reply["id"] == case.request_id
    assert any(word in reply["error"] for word in case.words), (case.kind, reply["error"])
    assert live.device.calls == calls  # never reached the handler
    assert live.device.state == before


def test_the_server_survived_the_flood(live: Live) -> None:
    stats = live.server.stats()
    assert stats["rejected"] >= 1000
    assert live.publisher.connected
    assert live.ask({"op": "status", "id": "after"})["ok"] is True


def test_retained_commands_are_ignored(mosquitto, tmp_path: Path) -> None:
    broker = mosquitto()
    stale = Subscriber(broker, [])
    stale.publish(CMD, json.dumps({"op": "pause", "id": "stale"}), retain=True)
    stale.close()
    live = start_live(tmp_path, broker=broker)  # subscribes: the broker hands it the retained one
    try:
        reply = live.ask({"op": "status", "id": "fresh"})
        assert reply["id"] == "fresh"  # the first and only reply: none for "stale"
        assert live.device.state.listening is True
        assert live.server.stats()["ignored_retained"] == 1
    finally:
        stop_live(live)


def test_a_full_backlog_is_refused_as_busy(mosquitto, tmp_path: Path) -> None:
    live = start_live(tmp_path, backlog=1, broker=mosquitto())
    try:
        live.device.release.clear()
        live.device.entered.clear()
        live.send({"op": "mute", "id": "running"})
        assert live.device.entered.wait(10)  # the worker is inside the handler
        live.send({"op": "pause", "id": "queued"})
        busy = live.ask({"op": "resume", "id": "refused"})
        assert busy["id"] == "refused" and busy["ok"] is False
        assert busy["error"].startswith("busy")
        live.device.release.set()
        replies = live.requester.wait_count(3)
        assert [r.json()["id"] for r in replies] == ["refused", "running", "queued"]
        assert live.device.state.listening is False  # "queued" ran, "refused" did not
    finally:
        live.device.release.set()
        stop_live(live)


def test_a_command_that_arrives_before_the_command_server_is_answered(
    mosquitto, tmp_path: Path
) -> None:
    """After a crash the broker resumes the daemon's session, `cmd` subscription included, and
    delivers commands right after CONNACK, before the daemon has set up its command server.
    Those were dropped without a word: the reply that never arrived after a restart."""
    broker = mosquitto()
    previous_run = Subscriber(broker, [CMD], qos=0, client_id=f"edged-{DEV}", clean_session=False)
    previous_run.wait_subscribed()
    previous_run.client.disconnect()  # gone without unsubscribing, as a killed daemon is
    previous_run.client.loop_stop()
    publisher = MqttPublisher(
        host=broker.host, port=broker.port, device_id=DEV, spool_dir=tmp_path / "spool"
    )
    requester = Subscriber(broker, [REPLY])
    server: CommandServer | None = None
    try:
        publisher.start()
        assert publisher.wait_connected(10)
        requester.wait_subscribed()
        requester.publish(CMD, json.dumps({"op": "status", "id": "early"}))
        assert publisher.wait_commands_waiting(1, 10)  # arrived; no command server yet
        device = Device()
        server = CommandServer(publisher, device.handle)
        server.start()
        reply = requester.wait_count(1)[0].json()
        assert (reply["id"], reply["ok"]) == ("early", True)
        assert publisher.stats()["commands_dropped"] == 0
    finally:
        requester.close()
        if server is not None:
            server.close()
        publisher.close(timeout=2)


def test_a_reply_made_while_the_broker_is_down_is_sent_on_reconnect(
    mosquitto, tmp_path: Path
) -> None:
    """Replies are not spooled: paho keeps a QoS 1 reply made while disconnected, and the
    publisher re-sends it after it drops paho's other copies on reconnect."""
    broker = mosquitto()
    device = Device()
    publisher = MqttPublisher(
        host=broker.host,
        port=broker.port,
        device_id=DEV,
        spool_dir=tmp_path / "spool",
        reconnect_max=1,
    )
    server = CommandServer(publisher, device.handle)
    requester = Subscriber(broker, [REPLY], client_id="requester", clean_session=False)
    try:
        server.start()
        publisher.start()
        assert server.wait_ready(10)
        requester.wait_subscribed()
        device.release.clear()
        requester.publish(CMD, json.dumps({"op": "mute", "id": "during"}))
        assert device.entered.wait(10)  # the handler runs; the broker goes away
        broker.stop()
        assert publisher.wait_state(ConnectionState.DISCONNECTED, 10)
        device.release.set()  # the reply is made while nobody is connected
        broker.start()
        reply = requester.wait_count(1, timeout=20)[0].json()
        assert (reply["id"], reply["ok"]) == ("during", True)
    finally:
        device.release.set()
        requester.close()
        server.close()
        publisher.close(timeout=2)
