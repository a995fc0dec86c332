"""Audio in and out: the pipeline's one audio format and the protocols for sources and sinks.

Everything downstream of a source sees SAMPLE_RATE mono float32 in [-1, 1];
sources convert, nothing else does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000
"""Rate of every frame inside the pipeline (Hz)."""

FRAME_SAMPLES = 512
"""Samples per frame handed downstream: 32 ms, silero VAD's window at 16 kHz."""


@dataclass(frozen=True)
class AudioChunk:
    """A run of pipeline-format samples and where it starts on the audio timeline."""

    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    start: int  # index of the first sample since the source began
    arrival: float  # time.monotonic() when the last sample became available

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    @property
    def t0(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def t1(self) -> float:
        return self.end / SAMPLE_RATE


class AudioSource(Protocol):
    """Yields AudioChunks in timeline order until the input ends or close() is called."""

    def chunks(self) -> Iterator[AudioChunk]: ...

    def close(self) -> None: ...


class AudioSink(Protocol):
    """Takes synthesized speech (mono float32 at its own rate) for playback or storage."""

    def play(self, samples: np.ndarray, sample_rate: int) -> None: ...

    def close(self) -> None: ...


class DeviceState(Enum):
    """What a capture source is doing: delivering audio, trying to get it back, or done."""

    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPED = "stopped"


@runtime_checkable
class LiveSource(AudioSource, Protocol):
    """A device that can be lost and found again (a microphone): it reports its state."""

    overruns: int

    @property
    def state(self) -> DeviceState: ...

    def on_state(self, callback: Callable[[DeviceState, str], None]) -> None: ...


@runtime_checkable
class Speaker(AudioSink, Protocol):
    """A sink a person hears: playback in progress can be cut short."""

    def stop(self) -> None: ...


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each whole `frame`-sample frame of `samples`, from the first sample (a
    trailing part frame is left out); never exactly zero, so it can go into a log."""
    n = len(samples) // frame
    power = np.mean(samples[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    return np.sqrt(power + 1e-12)
