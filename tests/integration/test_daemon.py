"""`edged run` as a real process: ALSA capture and playback through `type file` devices, a
real mosquitto broker, commands on MQTT, sd_notify on a socket the test binds.

The capture device reads a raw file at once (the null plugin has no clock), so the daemon
runs with audio.realtime = false: capture waits for the recognizer instead of dropping, as
a file needs. After the file, alsa-lib repeats its last (silent) buffer forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mqtt_broker
import numpy as np
import pytest
from alsa_files import AlsaFiles, played, read_raw, write_asoundrc, write_raw
from conftest import REPO, normalise, write_wav
from control_payloads import Malformed, malformed
from hypothesis import HealthCheck, given, settings
from mqtt_broker import Broker, Subscriber

from edged.audio.convert import to_pipeline_format
from edged.audio.wav import read_wav

mosquitto = mqtt_broker.mosquitto
subscribers = mqtt_broker.subscribers
pytestmark = pytest.mark.slow

DEVICE = "pi-test"
BASE = f"edged/{DEVICE}"
CLIP = "living_room_light_de.wav"
VOICE_RATE = 22050  # Piper medium voices


@dataclass
class Rig:
    """Everything one daemon needs: ALSA files, broker, config, models."""

    alsa: AlsaFiles
    broker: Broker
    config: Path
    spool: Path
    models_dir: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, EDGED_MODELS_DIR=str(self.models_dir), **self.alsa.env)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        return env | extra

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "-c", str(self.config)],
            cwd=REPO,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )


def write_config(path: Path, rig_port: int, spool: Path, targets: str = '["en"]') -> Path:
    path.write_text(
        f'device_id = "{DEVICE}"\n'
        '[audio]\nsource = "alsa"\ndevice = "edged_capture"\nrealtime = false\n'
        f"[mt]\ntargets = {targets}\n"
        '[playback]\ndevice = "edged_playback"\ngate_tail = 0.0\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {rig_port}\nspool_dir = "{spool}"\n'
        "reconnect_min = 1\nreconnect_max = 1\n"
        '[publish]\njsonl = ""\n'
        "[service]\nmetrics_interval = 1.0\ndrain_timeout = 5.0\n"
    )
    return path


@pytest.fixture
def rig(tmp_path: Path, mosquitto, models_dir: Path, speech_dir: Path) -> Rig:
    alsa = write_asoundrc(tmp_path / "alsa")
    samples, rate = read_wav(speech_dir / CLIP)
    speech = to_pipeline_format(samples, rate)
    write_raw(alsa.infile, np.concatenate([speech, np.zeros(16000 * 4, np.float32)]))
    broker = mosquitto()
    spool = tmp_path / "spool"
    config = write_config(tmp_path / "edged.toml", broker.port, spool)
    return Rig(alsa, broker, config, spool, models_dir, tmp_path / "daemon.log")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def events_of(messages: list[mqtt_broker.Received]) -> list[dict]:
    out = []
    for message in messages:
        if message.topic.endswith(("/status", "/metrics", "/cmd/reply")) or not message.payload:
            continue
        out.append(message.json())
    return out


def comparable(events: list[dict]) -> list[tuple]:
    """What must match between runs: the finals, translations and speech with their texts,
    in order. How many partials come before them depends on how fast the machine decodes
    (their rate adapts to decoding time), so partials and interims only have to exist."""
    assert any(e["type"] == "asr.partial" for e in events)
    keep = ("type", "utt", "src", "tgt", "text", "engine", "lang", "voice")
    kept = [e for e in events if e["type"] not in ("asr.partial", "mt.interim")]
    for utt in {e["utt"] for e in kept}:
        seqs = [e["seq"] for e in events if e["utt"] == utt]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    return sorted(tuple(e.get(k) for k in keep) for e in kept)


def test_capture_device_gives_the_same_events_on_mqtt_as_translate_on_stdout(
    rig: Rig, daemons, subscribers, edged, speech_dir: Path
) -> None:
    sub: Subscriber = subscribers(rig.broker, [f"{BASE}/#"], qos=1)
    sub.wait_subscribed()
    daemon = rig.start()
    daemons.append(daemon)
    got = sub.wait_for(
        lambda msgs: any(m.topic == f"{BASE}/tts" and b'"tts.end"' in m.payload for m in msgs),
        timeout=120,
    )
    assert stop(daemon) == 0, rig.log.read_text()
    reference = edged(
        "translate",
        str(speech_dir / CLIP),
        "--to",
        "en",
        "--tts",
        str(rig.log.with_name("ref.wav")),
    )
    assert reference.code == 0, reference.stderr
    assert comparable(events_of(got)) == comparable(reference.events)
    statuses = [
        m.json()["state"]
        for m in sub.wait_for(lambda msgs: any(b'"offline"' in m.payload for m in msgs), timeout=20)
        if m.topic == f"{BASE}/status"
    ]
    changes = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert changes[:2] == ["starting", "online"] and changes[-1] == "offline"
    # The playback device's file holds the spoken translation.
    spoken = np.concatenate([read_raw(path) for path in played(rig.alsa)])
    heard_wav = write_wav(rig.log.with_name("played.wav"), spoken, VOICE_RATE)
    heard = edged("translate", str(heard_wav), "--from", "en", "--to", "en", "--no-interim")
    (mt,) = reference.of("mt.final")
    assert normalise(" ".join(f["text"] for f in heard.of("asr.final"))) == normalise(mt["text"])


def test_kill_9_leaves_the_will_offline_and_a_restart_says_online(
    rig: Rig, daemons, subscribers
) -> None:
    status = f"{BASE}/status"
    daemon = rig.start()
    daemons.append(daemon)
    sub = subscribers(rig.broker, [status], qos=1)
    sub.wait_for(lambda msgs: any(b'"online"' in m.payload for m in msgs), timeout=60)
    daemon.kill()
    daemon.wait(10)
    sub.wait_for(lambda msgs: b'"offline"' in msgs[-1].payload, timeout=20)
    retained = mqtt_broker.retained_messages(rig.broker, [status])
    assert [m.json()["state"] for m in retained] == ["offline"]
    daemons.append(rig.start())
    sub.wait_for(lambda msgs: b'"online"' in msgs[-1].payload, timeout=60)


def test_finals_made_while_the_broker_is_down_survive_a_daemon_restart(
    rig: Rig, daemons, subscribers
) -> None:
    # A persistent subscriber session exists on the broker before it goes away.
    sub = subscribers(
        rig.broker,
        [f"{BASE}/asr/final", f"{BASE}/translation/+/final"],
        qos=1,
        client_id="persistent-listener",
        clean_session=False,
    )
    sub.wait_subscribed()
    sub.settle()
    rig.broker.stop()
    events_file = rig.log.with_name("events.jsonl")
    rig.config.write_text(rig.config.read_text().replace('jsonl = ""', f'jsonl = "{events_file}"'))
    first = rig.start()  # broker unreachable: it must still work and spool its finals
    daemons.append(first)
    deadline = time.monotonic() + 120
    while not (events_file.exists() and '"mt.final"' in events_file.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, rig.log.read_text()
        proc_wait(first, 0.2)  # the daemon works on; this only bounds each look at the file
    assert stop(first) == 0, rig.log.read_text()
    # Silence only for the second daemon: whatever arrives was spooled by the first.
    write_raw(rig.alsa.infile, np.zeros(16000 * 3, np.float32))
    rig.broker.start()
    daemons.append(rig.start())
    got = sub.wait_for(lambda msgs: len(msgs) >= 2, timeout=60)
    events = [m.json() for m in got]
    assert [e["type"] for e in events] == ["asr.final", "mt.final"]
    assert normalise(events[0]["text"]) == normalise("Schalte das Wohnzimmerlicht ein.")
    assert len({(e["utt"], e["seq"]) for e in events}) == len(events)  # none twice


def proc_wait(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait for the process for up to `seconds` (it is expected to keep running)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(seconds)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    yield sock, path
    sock.close()


def read_notifications(sock: socket.socket, until: str, log: Path) -> list[str]:
    """sd_notify lines up to and including the datagram with a line starting `until`."""
    lines: list[str] = []
    while not any(line.startswith(until) for line in lines):
        try:
            lines += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            pytest.fail(f"no {until} after {lines}; daemon log:\n{log.read_text()[-3000:]}")
    return lines


def test_readiness_watchdog_reload_and_orderly_stop(
    rig: Rig, daemons, notify_socket, subscribers
) -> None:
    sock, path = notify_socket
    started = time.monotonic()
    daemon = rig.start(NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    daemons.append(daemon)
    lines = read_notifications(sock, "READY=1", rig.log)
    assert any(line.startswith("STATUS=") for line in lines)
    ready_after = time.monotonic() - started
    # Pings every half interval while healthy.
    pings = [
        line for line in read_notifications(sock, "WATCHDOG=1", rig.log) if line == "WATCHDOG=1"
    ]
    pings += [x for x in read_notifications(sock, "WATCHDOG=1", rig.log) if x == "WATCHDOG=1"]
    assert len(pings) >= 2
    # SIGHUP with a bad config is refused and the daemon keeps going ...
    good = rig.config.read_text()
    rig.config.write_text(good + "\n[mt]\nbogus = 1\n")
    daemon.send_signal(signal.SIGHUP)
    lines = read_notifications(sock, "READY=1", rig.log)
    assert any(line.startswith("RELOADING=1") for line in lines)
    assert any("reload refused" in line for line in lines)
    # ... a good one is applied: status reports the new targets.
    write_config(rig.config, rig.broker.port, rig.spool, targets='["en", "es"]')
    daemon.send_signal(signal.SIGHUP)
    read_notifications(sock, "READY=1", rig.log)
    sub = subscribers(rig.broker, [f"{BASE}/cmd/reply"], qos=1)
    sub.wait_subscribed()
    sub.publish(f"{BASE}/cmd", json.dumps({"op": "status", "id": "s"}))
    reply = sub.wait_for(lambda msgs: bool(msgs), timeout=20)[0].json()
    assert reply["ok"] and reply["result"]["targets"] == ["en", "es"]
    assert stop(daemon) == 0
    assert "STOPPING=1" in read_notifications(sock, "STOPPING=1", rig.log)
    assert ready_after < 60


def test_bad_config_exits_78_before_loading_models(rig: Rig) -> None:
    rig.config.write_text(rig.config.read_text() + "\n[asr]\nengnie = 'whisper'\n")
    started = time.monotonic()
    proc = rig.start()
    assert proc.wait(30) == 78
    assert time.monotonic() - started < 10
    assert "asr.engnie" in rig.log.read_text()


# --- a thousand malformed commands at a live daemon ------------------------------------------


@dataclass
class LiveDaemon:
    rig: Rig
    proc: subprocess.Popen[bytes]
    sub: Subscriber
    count: int = 0

    def ask(self, payload: bytes, timeout: float = 10) -> dict:
        before = self.count
        self.sub.publish(f"{BASE}/cmd", payload, qos=1)
        got = self.sub.wait_for(lambda msgs: len(msgs) > before, timeout)
        self.count = len(got)
        return got[before].json()


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory, models_dir: Path, speech_dir: Path) -> Iterator[LiveDaemon]:
    root = tmp_path_factory.mktemp("live-daemon")
    alsa = write_asoundrc(root / "alsa")
    write_raw(alsa.infile, np.zeros(16000 * 2, np.float32))
    broker = Broker(root / "broker").start()
    spool = root / "spool"
    rig = Rig(
        alsa,
        broker,
        write_config(root / "edged.toml", broker.port, spool),
        spool,
        models_dir,
        root / "daemon.log",
    )
    proc = rig.start()
    sub = Subscriber(broker, [f"{BASE}/cmd/reply"], qos=1)
    sub.wait_subscribed()
    live = LiveDaemon(rig, proc, sub)
    deadline = time.monotonic() + 120
    while True:  # the command server answers at once; the pipeline once models are loaded
        try:
            if live.ask(json.dumps({"op": "status", "id": "hello"}).encode(), timeout=2)["ok"]:
                break
        except AssertionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, rig.log.read_text()
    yield live
    sub.close()
    proc.kill()
    proc.wait(10)
    broker.kill()


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(case=malformed)
def test_malformed_commands_each_get_an_error_and_change_nothing(
    live_daemon: LiveDaemon, case: Malformed
) -> None:
    reply = live_daemon.ask(case.payload)
    assert reply["ok"] is False and reply["id"] == case.request_id
    assert reply["error"]


def test_the_daemon_survived_with_its_state_unchanged(live_daemon: LiveDaemon) -> None:
    assert live_daemon.proc.poll() is None
    reply = live_daemon.ask(json.dumps({"op": "status", "id": "after"}).encode())
    result = reply["result"]
    assert (
        result["languages"],
        result["targets"],
        result["listening"],
        result["speech_muted"],
    ) == (["en", "es", "de", "fr"], ["en"], True, False)
    assert result["metrics"]["frames_dropped"] == 0


def test_valid_commands_change_state_and_invalid_ones_do_not(live_daemon: LiveDaemon) -> None:
    ask = lambda obj: live_daemon.ask(json.dumps(obj).encode())  # noqa: E731
    assert ask({"op": "set_targets", "id": 1, "targets": ["es"], "speak": "es"})["ok"]
    refused = ask({"op": "set_targets", "id": 2, "targets": ["de"]})
    assert not refused["ok"] and "no translation path" in refused["error"]
    assert ask({"op": "pause", "id": 3})["result"]["listening"] is False
    assert ask({"op": "mute", "id": 4})["result"]["speech_muted"] is True
    muted = ask({"op": "speak", "id": 5, "text": "hello", "lang": "en"})
    assert not muted["ok"] and "muted" in muted["error"]  # mute covers speak commands too
    state = ask({"op": "status", "id": 6})["result"]
    assert (state["targets"], state["speak"]) == (["es"], "es")
    assert ask({"op": "resume", "id": 7})["ok"] and ask({"op": "unmute", "id": 8})["ok"]
    assert ask({"op": "speak", "id": 10, "text": "hello", "lang": "en"})["ok"]
    # Without `speak`, the first target is spoken (as with tts.speak = "").
    result = ask({"op": "set_targets", "id": 9, "targets": ["en", "es"]})["result"]
    assert result["speak"] == "en"


def test_a_burst_of_signals_does_not_wedge_the_main_loop(rig: Rig, daemons, notify_socket) -> None:
    """Signal handlers run on the main thread, possibly inside its wait for the next signal;
    a handler that takes the lock the wait holds deadlocks the daemon (seen with SIGHUP).
    The socket is not read meanwhile: 400 RELOADING/READY datagrams overflow its queue,
    and sd_notify must drop them rather than block the main loop."""
    sock, path = notify_socket
    daemon = rig.start(NOTIFY_SOCKET=path)
    daemons.append(daemon)
    read_notifications(sock, "READY=1", rig.log)
    rig.config.write_text(rig.config.read_text() + "\n[mt]\nbogus = 1\n")  # reloads refused fast
    for _ in range(200):
        daemon.send_signal(signal.SIGHUP)
    assert stop(daemon) == 0, rig.log.read_text()[-2000:]


# --- status says what is true; a reload that cannot load keeps serving (issue 10) -------------


def states(messages: list[mqtt_broker.Received]) -> list[str]:
    return [m.json()["state"] for m in messages if m.payload]


def test_status_is_starting_until_ready_and_a_clean_stop_goes_straight_to_offline(
    rig: Rig, daemons, subscribers
) -> None:
    sub = subscribers(rig.broker, [f"{BASE}/status"], qos=1)
    sub.wait_subscribed()
    daemon = rig.start()
    daemons.append(daemon)
    sub.wait_for(lambda msgs: "online" in states(msgs), timeout=120)
    assert stop(daemon) == 0
    seen = states(sub.wait_for(lambda msgs: states(msgs)[-1:] == ["offline"], timeout=30))
    assert seen[0] == "starting", seen  # never "online" while the models load
    assert "degraded" not in seen, seen  # closing the microphone is not a device problem
    online = [m.json() for m in sub.messages if m.payload and m.json()["state"] == "online"]
    assert online[0]["detail"]["targets"] == ["en"] and online[0]["session"]


def test_a_reload_whose_model_will_not_load_keeps_the_running_config(
    rig: Rig, daemons, notify_socket, subscribers, tmp_path: Path
) -> None:
    sock, path = notify_socket
    sub = subscribers(rig.broker, [f"{BASE}/#"], qos=1)
    sub.wait_subscribed()
    daemon = rig.start(NOTIFY_SOCKET=path)
    daemons.append(daemon)
    read_notifications(sock, "READY=1", rig.log)
    first = sub.wait_for(lambda msgs: any(m.topic.endswith("asr/final") for m in msgs), 120)
    # A Whisper bundle whose model.bin is cut short: it validates, then fails to load.
    broken = tmp_path / "whisper-broken"
    broken.mkdir()
    original = rig.models_dir / "whisper-base"
    for item in original.iterdir():
        if item.name != "model.bin":
            (broken / item.name).symlink_to(item)
    (broken / "model.bin").write_bytes((original / "model.bin").read_bytes()[:4096])
    good = rig.config.read_text()
    rig.config.write_text(good + f'\n[asr.whisper]\nbundle = "{broken}"\n')
    daemon.send_signal(signal.SIGHUP)
    lines = read_notifications(sock, "READY=1", rig.log)
    assert any("reload refused" in line for line in lines), lines
    assert daemon.poll() is None
    refused = sub.wait_for(
        lambda msgs: any(
            m.topic.endswith("/status")
            and "refused" in m.json().get("detail", {}).get("reload", "")
            for m in msgs
            if m.payload
        ),
        30,
    )
    assert refused
    # A good reload then: the running generation hands over, numbering goes on.
    rig.config.write_text(good)
    daemon.send_signal(signal.SIGHUP)
    read_notifications(sock, "READY=1", rig.log)
    finals = [
        m.json()
        for m in sub.wait_for(
            lambda msgs: sum(m.topic.endswith("asr/final") for m in msgs) >= 2, 120
        )
        if m.topic.endswith("asr/final")
    ]
    assert (finals[0]["utt"], finals[1]["utt"]) == (1, 2)  # not 1 again after the reload
    assert finals[1]["t0"] > finals[0]["t1"] and finals[0]["session"] == finals[1]["session"]
    assert len([m for m in first if m.topic.endswith("asr/final")]) == 1
    assert stop(daemon) == 0


def test_set_source_can_add_a_language_only_whispers_translation_serves(
    live_daemon: LiveDaemon,
) -> None:
    ask = lambda obj: live_daemon.ask(json.dumps(obj).encode())  # noqa: E731
    assert ask({"op": "set_targets", "id": 20, "targets": ["en"]})["ok"]
    reply = ask({"op": "set_source", "id": 21, "languages": ["it", "de"]})
    assert reply["ok"], reply  # it->en and de->en: Whisper's speech->English
    assert reply["result"]["languages"] == ["it", "de"]
    assert ask({"op": "set_source", "id": 22, "languages": ["en", "es", "de", "fr"]})["ok"]


def test_conversation_is_switched_on_changed_and_off_by_command(live_daemon: LiveDaemon) -> None:
    ask = lambda obj: live_daemon.ask(json.dumps(obj).encode())  # noqa: E731
    on = ask({"op": "set_conversation", "id": 30, "languages": ["en", "es"]})
    assert on["ok"] and on["result"]["conversation"] == ["en", "es"], on
    assert ask({"op": "ptt_start", "id": 31, "lang": "es"})["ok"]
    assert ask({"op": "ptt_stop", "id": 32})["ok"]
    wrong = ask({"op": "ptt_start", "id": 33, "lang": "de"})
    assert not wrong["ok"] and "not one of the languages" in wrong["error"]
    changed = ask({"op": "set_conversation", "id": 34, "languages": ["es", "fr"]})
    assert changed["ok"] and changed["result"]["conversation"] == ["es", "fr"], changed
    off = ask({"op": "set_conversation", "id": 35, "languages": []})
    assert off["ok"] and off["result"]["conversation"] is None
