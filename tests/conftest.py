"""Fixtures that build real things: installed model bundles, the shared speech clips,
WAV files, and the `edged` command run as a real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings

from edged.audio import wavwrite

# No test asserts a speed: hypothesis' per-example deadline would make a loaded machine
# (two cores, a benchmark running beside) fail tests that are correct.
hypothesis_settings.register_profile("edged", deadline=None)
hypothesis_settings.load_profile("edged")

REPO = Path(__file__).resolve().parent.parent
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"

CLIPS = {
    "living_room_light_de.wav": ("de", "Schalte das Wohnzimmerlicht ein."),
    "living_room_light_es.wav": ("es", "Enciende la luz del salón."),
    "whats_your_name_french.wav": ("fr", "Comment t'appelles-tu ?"),
    "living_room_light_en.wav": ("en", "Turn on the living room light."),
    "turn_on_the_living_room_lamp.wav": ("en", "Turn on the living room lamp."),
}
BECKETT_TEXT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def normalise(text: str) -> str:
    """Lower case, no punctuation: how transcripts are compared."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.casefold()).split())


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from edged import store

    path = store.default_models_dir()
    catalogue = store.load_catalogue()
    problems = store.verify(catalogue, ["default"], path, progress=store.SilentProgress())
    if problems:
        pytest.fail(
            "default model bundles are not installed in "
            f"{path}: {problems[0]}. Run `bash tools/test.sh` or `edged models install default`."
        )
    return path


@pytest.fixture(scope="session")
def beckett(models_dir: Path) -> Path:
    return models_dir / "sample-beckett" / "beckett.wav"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not SHARED_SPEECH.is_dir():
        pytest.fail(f"shared speech clips not found at {SHARED_SPEECH} (../shared/data/speech)")
    return SHARED_SPEECH


def speech_of(path: Path) -> np.ndarray:
    """A clip at 16 kHz mono, cut to where its speech is (first to last loud 10 ms)."""
    from edged.audio.wav import WavSource

    audio = np.concatenate([c.samples for c in WavSource(path, tail_silence=0.0).chunks()])
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 0.02)
    return audio[loud[0] * 160 : (loud[-1] + 1) * 160]


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """16-bit mono WAV from float samples (edged's own writer)."""
    wavwrite.write_wav(path, samples, rate)
    return path


@dataclass
class Run:
    code: int
    events: list[dict]
    stderr: str

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


@pytest.fixture
def edged(models_dir: Path):
    """Run the real `edged` command; returns its exit code, events and stderr."""

    def run(*args: str, stdin: bytes | None = None, timeout: float = 240) -> Run:
        env = dict(os.environ, EDGED_MODELS_DIR=str(models_dir))
        proc = subprocess.run(
            [sys.executable, "-m", "edged", *args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env=env,
            cwd=REPO,
        )
        stdout = proc.stdout.decode()
        events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        return Run(proc.returncode, events, proc.stderr.decode())

    return run


# --- A suite that ran nothing, or skipped something, is not a green suite -----------------

_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif _SKIPPED and exitstatus == pytest.ExitCode.OK:
        print(
            f"\nedged: {len(_SKIPPED)} test(s) skipped, e.g. {_SKIPPED[0]}: "
            "a skipped test is not a passed one",
            file=sys.stderr,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
