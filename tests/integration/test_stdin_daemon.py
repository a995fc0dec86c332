"""`edged run` reading raw PCM from a pipe that stays open: SIGTERM drains like the ALSA and
WAV sources do (issue 10, defect 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, normalise

from edged.audio.convert import to_pipeline_format
from edged.audio.wav import read_wav

pytestmark = pytest.mark.slow


def speech_without_trailing_silence(path: Path) -> bytes:
    """The clip cut just after its last loud sample, so the utterance is still open when the
    input goes idle: only the drain on SIGTERM can finish it."""
    samples, rate = read_wav(path)
    speech = to_pipeline_format(samples, rate)
    loud = np.flatnonzero(np.abs(speech) > 0.05)
    return (speech[: loud[-1] + 160] * 32767).astype("<i2").tobytes()


class LineReader:
    """Collects a process's stdout lines on a thread; wait_for() blocks on a condition."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            with self._cond:
                self.lines.append(raw.decode())
                self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: any(needle in line for line in self.lines), timeout=timeout
            )

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def test_sigterm_with_an_idle_stdin_drains_the_open_utterance(
    tmp_path: Path, models_dir: Path, speech_dir: Path
) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(
        'device_id = "pi-stdin"\n'
        '[audio]\nsource = "stdin"\nrealtime = false\n'
        '[asr]\nlanguages = ["es"]\n'
        '[mt]\ntargets = ["en"]\n'
        "[tts]\nenabled = false\n"
        "[mqtt]\nenabled = false\n"
        '[publish]\njsonl = "-"\n'
        "[service]\ndrain_timeout = 20.0\n"
    )
    env = dict(os.environ, EDGED_MODELS_DIR=str(models_dir))
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "run", "-c", str(config)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        out = LineReader(proc.stdout)
        proc.stdin.write(speech_without_trailing_silence(speech_dir / "living_room_light_es.wav"))
        proc.stdin.flush()  # ... and the pipe stays open, idle: no EOF
        assert out.wait_for('"speech.start"', timeout=120), proc.stderr
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        out.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdin is not None:
            proc.stdin.close()
    assert "Fatal Python error" not in stderr
    assert code == 0, stderr
    events = [json.loads(line) for line in out.lines if line.strip()]
    (final,) = [e for e in events if e["type"] == "asr.final"]
    assert normalise(final["text"]) == normalise("Enciende la luz del salón.")
    assert [e["tgt"] for e in events if e["type"] == "mt.final"] == ["en"]
