"""Push-to-talk on a real `edged run` (audio from a pipe, a real broker, real models):
a press opens the microphone, a release gives the final at once — no endpoint silence is
ever written — and the next press works; in continuous mode ptt_stop leaves it open."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mqtt_broker
import numpy as np
import pytest
from conftest import REPO, normalise, speech_of
from mqtt_broker import Subscriber

from edged.audio.convert import to_pipeline_format
from edged.audio.wav import read_wav

pytestmark = pytest.mark.slow
mosquitto = mqtt_broker.mosquitto

DEVICE = "ptt-test"
BASE = f"edged/{DEVICE}"


def pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def clip(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    return to_pipeline_format(samples, rate)


class Daemon:
    def __init__(self, tmp_path: Path, port: int, models_dir: Path, trigger: str) -> None:
        config = tmp_path / "edged.toml"
        config.write_text(
            f'device_id = "{DEVICE}"\n'
            f'[audio]\nsource = "stdin"\nrealtime = false\ntrigger = "{trigger}"\n'
            '[asr]\nlanguages = ["en"]\n[mt]\ntargets = ["es"]\n[tts]\nenabled = false\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nspool_dir = "{tmp_path / "spool"}"\n'
            "[web]\nenabled = false\n[service]\nmetrics_interval = 0\n"
        )
        self.log = tmp_path / "daemon.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "-c", str(config)],
            cwd=REPO,
            env={"EDGED_MODELS_DIR": str(models_dir), "PATH": "/usr/bin:/bin"},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        self.replies = 0
        self.written = 0  # samples

    def write(self, samples: np.ndarray, sub: Subscriber) -> None:
        """Write audio and return once capture has read all of it (the metrics' frame
        count): a command sent next comes after that audio, as on a live microphone."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(pcm(samples))
        self.proc.stdin.flush()
        self.written += len(samples)
        for _ in range(600):
            if (
                self.ask(sub, "status")["result"]["metrics"]["frames_in"] * 512
                >= self.written - 511
            ):
                return
        raise AssertionError("capture did not read the audio")

    def ask(self, sub: Subscriber, op: str, timeout: float = 60) -> dict:
        self.replies += 1
        want = self.replies
        sub.publish(f"{BASE}/cmd", json.dumps({"op": op, "id": want}))
        got = sub.wait_for(
            lambda msgs: any(
                m.topic.endswith("cmd/reply") and m.json()["id"] == want for m in msgs
            ),
            timeout=timeout,
        )
        return next(
            m.json() for m in got if m.topic.endswith("cmd/reply") and m.json()["id"] == want
        )

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(60)


def finals(sub: Subscriber) -> list[dict]:
    return [m.json() for m in sub.messages if m.topic == f"{BASE}/asr/final"]


def wait_ready(daemon: Daemon, sub: Subscriber) -> None:
    """The retained status says online once the models are loaded."""
    sub.wait_for(
        lambda msgs: any(
            m.topic.endswith("/status") and m.payload and m.json()["state"] == "online"
            for m in msgs
        ),
        timeout=180,
    )


@pytest.fixture
def sub(mosquitto) -> Subscriber:
    broker = mosquitto()
    subscriber = Subscriber(broker, [f"{BASE}/cmd/reply", f"{BASE}/asr/#", f"{BASE}/status"], qos=1)
    subscriber.wait_subscribed()
    subscriber.broker_port = broker.port  # type: ignore[attr-defined]
    return subscriber


def test_a_press_opens_a_release_ends_the_utterance_and_the_next_press_works(
    sub: Subscriber, models_dir: Path, speech_dir: Path, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, sub.broker_port, models_dir, "push_to_talk")  # type: ignore[attr-defined]
    try:
        wait_ready(daemon, sub)
        light = speech_of(speech_dir / "living_room_light_en.wav")
        lamp = clip(speech_dir / "turn_on_the_living_room_lamp.wav")
        daemon.write(lamp, sub)  # not pressed: never heard
        assert daemon.ask(sub, "ptt_start")["ok"]
        daemon.write(light, sub)  # no trailing silence: only the release ends it
        sub.wait_for(lambda msgs: any(m.topic.endswith("asr/partial") for m in msgs), 60)
        assert not finals(sub)
        assert daemon.ask(sub, "ptt_stop")["ok"]
        sub.wait_for(lambda msgs: len(finals(sub)) == 1, 60)
        assert "living room" in normalise(finals(sub)[0]["text"])
        daemon.write(lamp, sub)  # released again: not heard
        assert daemon.ask(sub, "ptt_start")["ok"]
        daemon.write(lamp, sub)
        assert daemon.ask(sub, "ptt_stop")["ok"]
        sub.wait_for(lambda msgs: len(finals(sub)) == 2, 60)
        assert "lamp" in normalise(finals(sub)[1]["text"])
        status = daemon.ask(sub, "status")["result"]
        assert status["trigger"] == "push_to_talk" and status["listening"] is True
        assert daemon.close() == 0
        assert len(finals(sub)) == 2, finals(sub)  # the unpressed audio made nothing
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()


def test_ptt_stop_in_continuous_mode_leaves_the_microphone_open(
    sub: Subscriber, models_dir: Path, speech_dir: Path, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, sub.broker_port, models_dir, "continuous")  # type: ignore[attr-defined]
    try:
        wait_ready(daemon, sub)
        assert daemon.ask(sub, "ptt_start")["ok"] and daemon.ask(sub, "ptt_stop")["ok"]
        daemon.write(clip(speech_dir / "turn_on_the_living_room_lamp.wav"), sub)
        daemon.write(np.zeros(16000 * 2, np.float32), sub)
        sub.wait_for(lambda msgs: len(finals(sub)) == 1, 60)
        assert "lamp" in normalise(finals(sub)[0]["text"])
        assert daemon.close() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
