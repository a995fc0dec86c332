"""AlsaSource's state machine (overruns, lost and stalled devices, back-off, close) driven by
scripted fake devices passed through the constructor: the ALSA file plugin cannot fail a
read or overrun on demand (alsa-lib 1.2.8 logs infile read errors and goes on)."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.alsa import (
    AlsaSource,
    Backoff,
    CaptureRequest,
    DeviceState,
    Wait,
)
from edged.errors import AudioError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Audio:
    samples: np.ndarray  # float, interleaved


@dataclass
class Overrun:
    lost: float  # seconds that pass before the overrun is seen


@dataclass
class Fail:
    message: str


@dataclass
class Stall:
    pass


class FakeMic:
    """A capture device that plays a script, then idles until woken by close()."""

    def __init__(
        self,
        script: list[Audio | Overrun | Fail | Stall],
        clock: FakeClock,
        rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str = "S16_LE",
    ) -> None:
        self.script = list(script)
        self.clock = clock
        self.rate = rate
        self.channels = channels
        self.period_frames = 512
        self.sample_format = sample_format
        self.closed = False
        self.waiting = threading.Event()
        self._stalled = False

    def read(self) -> tuple[int, bytes]:
        if not self.script:
            return 0, b""
        step = self.script.pop(0)
        if isinstance(step, Audio):
            frames = len(step.samples) // self.channels
            self.clock.now += frames / self.rate
            return frames, encode(step.samples, self.sample_format)
        if isinstance(step, Overrun):
            self.clock.now += step.lost
            return -32, b""  # -EPIPE
        if isinstance(step, Fail):
            raise AudioError(step.message)
        self._stalled = True
        return 0, b""

    def wait(self, timeout: float, wake: socket.socket) -> Wait:
        if self._stalled:
            return Wait.TIMEOUT
        if self.script:
            return Wait.READY
        self.waiting.set()
        readable, _, _ = select.select([wake], [], [], timeout)
        return Wait.WOKEN if readable else Wait.TIMEOUT

    def close(self) -> None:
        self.closed = True


def encode(samples: np.ndarray, sample_format: str) -> bytes:
    if sample_format == "S16_LE":
        return (samples * 32767).astype("<i2").tobytes()
    if sample_format == "S32_LE":
        return (samples * 2147483647).astype("<i4").tobytes()
    if sample_format == "S24_LE":
        value = (samples * 8388607).astype("<i4")
        return (value & 0xFFFFFF).astype("<i4").tobytes()  # top byte zero, as cards send it
    raise ValueError(sample_format)


class FakeOpener:
    """Hands out scripted devices (or open failures) in turn; each open takes `open_time`."""

    def __init__(
        self, devices: list[FakeMic | AudioError], clock: FakeClock, open_time: float = 1.0
    ) -> None:
        self.devices = list(devices)
        self.clock = clock
        self.open_time = open_time
        self.requests: list[CaptureRequest] = []

    def __call__(self, request: CaptureRequest) -> FakeMic:
        self.requests.append(request)
        self.clock.now += self.open_time
        device = self.devices.pop(0)
        if isinstance(device, AudioError):
            raise device
        return device


def frames(n: int, value: float = 0.25) -> Audio:
    return Audio(np.full(n * FRAME_SAMPLES, value, np.float32))


def source_for(opener: FakeOpener, clock: FakeClock, **kwargs: object) -> AlsaSource:
    options: dict = {"backoff_initial": 0.01, "backoff_max": 0.02, "opener": opener}
    options.update(kwargs)
    return AlsaSource("mic", clock=clock, **options)


def run_until(
    source: AlsaSource, done: Callable[[list[AudioChunk]], bool], timeout: float = 10
) -> list[AudioChunk]:
    """Consume chunks in a thread until `done(chunks)`, then close; fail if it hangs."""
    chunks: list[AudioChunk] = []

    def consume() -> None:
        for chunk in source.chunks():
            chunks.append(chunk)
            if done(chunks):
                source.close()

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        source.close()
        thread.join(5)
        pytest.fail(f"capture did not finish; got {len(chunks)} chunks, state {source.state}")
    return chunks


def record_states(source: AlsaSource) -> list[tuple[DeviceState, str]]:
    states: list[tuple[DeviceState, str]] = []
    source.on_state(lambda state, reason: states.append((state, reason)))
    return states


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 8.0)
    assert [backoff.next() for _ in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next() == 0.5
    with pytest.raises(ValueError):
        Backoff(0, 1)


@pytest.mark.timeout(30)
def test_overrun_is_counted_logged_once_and_skipped_on_the_timeline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    mic = FakeMic([frames(2), Overrun(0.5), Overrun(0.25), frames(2)], clock)
    source = source_for(FakeOpener([mic], clock), clock)

    with caplog.at_level(logging.WARNING, logger="edged.audio.alsa"):
        chunks = run_until(source, lambda c: len(c) == 4)

    lost = round(0.75 * SAMPLE_RATE)
    assert [c.start for c in chunks] == [0, 512, 1024 + lost, 1536 + lost]
    assert source.overruns == 2 and source.lost_samples == lost
    overrun_logs = [r for r in caplog.records if "overrun" in r.getMessage()]
    assert len(overrun_logs) == 1  # one line per episode, not per overrun


@pytest.mark.timeout(30)
def test_end_of_an_overrun_episode_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    mic = FakeMic([frames(1), Overrun(0.1), frames(1), Audio(np.zeros(6 * SAMPLE_RATE))], clock)
    source = source_for(FakeOpener([mic], clock), clock)

    with caplog.at_level(logging.WARNING, logger="edged.audio.alsa"):
        run_until(source, lambda c: c[-1].end >= 6 * SAMPLE_RATE)

    assert any("clean again after 1 overrun" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(30)
def test_lost_device_is_reopened_and_the_outage_skipped() -> None:
    clock = FakeClock()
    unplugged = FakeMic([frames(2), Fail("No such device [mic]")], clock)
    replugged = FakeMic([frames(2)], clock)
    opener = FakeOpener([unplugged, AudioError("mic: No such file or directory"), replugged], clock)
    source = source_for(opener, clock)
    states = record_states(source)

    chunks = run_until(source, lambda c: len(c) == 4)

    assert [s for s, _ in states] == [
        DeviceState.RUNNING,
        DeviceState.DEGRADED,
        DeviceState.RUNNING,
        DeviceState.STOPPED,
    ]
    assert "No such device" in states[1][1]
    # Last good read, two 1 s opens, then the first read's own 32 ms: 2 s were lost.
    gap = 2 * SAMPLE_RATE
    assert [c.start for c in chunks] == [0, 512, 1024 + gap, 1536 + gap]
    assert source.failures == 2 and source.reopens == 1 and source.lost_samples == gap
    assert unplugged.closed and replugged.closed


@pytest.mark.timeout(30)
def test_device_missing_at_start_is_retried_without_a_timeline_gap() -> None:
    clock = FakeClock()
    missing = AudioError("mic: No such file or directory")
    mic = FakeMic([frames(1)], clock)
    source = source_for(FakeOpener([missing, missing, missing, mic], clock), clock)
    states = record_states(source)

    chunks = run_until(source, lambda c: len(c) == 1)

    assert [s for s, _ in states] == [
        DeviceState.DEGRADED,
        DeviceState.RUNNING,
        DeviceState.STOPPED,
    ]
    assert chunks[0].start == 0 and source.failures == 3 and source.reopens == 0


@pytest.mark.timeout(30)
def test_a_device_that_stops_delivering_is_treated_as_lost() -> None:
    clock = FakeClock()
    hung = FakeMic([frames(1), Stall()], clock)
    fresh = FakeMic([frames(1)], clock)
    source = source_for(FakeOpener([hung, fresh], clock), clock, stall_timeout=0.5)
    states = record_states(source)

    run_until(source, lambda c: len(c) == 2)

    assert states[1][0] is DeviceState.DEGRADED
    assert "no audio from 'mic' for 0.5 s" in states[1][1]
    assert source.reopens == 1


@pytest.mark.timeout(30)
def test_close_wakes_a_capture_waiting_for_audio() -> None:
    clock = FakeClock()
    mic = FakeMic([frames(1)], clock)
    source = source_for(FakeOpener([mic], clock), clock, stall_timeout=60)
    thread = threading.Thread(target=lambda: list(source.chunks()))
    thread.start()
    assert mic.waiting.wait(5)

    closed_at = time.monotonic()
    source.close()
    thread.join(5)

    assert not thread.is_alive()
    assert time.monotonic() - closed_at < 0.5
    assert source.state is DeviceState.STOPPED and mic.closed


@pytest.mark.timeout(30)
def test_close_during_backoff_ends_capture() -> None:
    clock = FakeClock()
    source = source_for(
        FakeOpener([AudioError("gone")] * 3, clock), clock, backoff_initial=30, backoff_max=60
    )
    degraded = threading.Event()
    source.on_state(lambda state, reason: degraded.set())
    thread = threading.Thread(target=lambda: list(source.chunks()))
    thread.start()
    assert degraded.wait(5)

    source.close()
    thread.join(5)

    assert not thread.is_alive() and source.state is DeviceState.STOPPED


@pytest.mark.timeout(30)
def test_the_rate_the_card_grants_is_resampled_from() -> None:
    clock = FakeClock()
    t = np.arange(44_100) / 44_100
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    mic = FakeMic([Audio(tone[i : i + 441]) for i in range(0, 44_100, 441)], clock, rate=44_100)
    opener = FakeOpener([mic], clock)
    source = source_for(opener, clock)

    chunks = run_until(source, lambda c: c[-1].end >= 15_000)

    assert opener.requests[0].rate == SAMPLE_RATE  # asked for 16 kHz, got 44.1 kHz
    assert source.actual_rate == 44_100
    audio = np.concatenate([c.samples for c in chunks])[1000:15_000]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(audio) == pytest.approx(1000, abs=3)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sample_format", ["S32_LE", "S24_LE"])
def test_wide_sample_formats_decode_to_the_same_scale(sample_format: str) -> None:
    clock = FakeClock()
    ramp = np.linspace(-0.9, 0.9, FRAME_SAMPLES * 2).astype(np.float32)
    stereo = np.repeat(ramp, 2)  # interleaved L R L R: mixed to mono
    mic = FakeMic([Audio(stereo)], clock, channels=2, sample_format=sample_format)
    source = source_for(FakeOpener([mic], clock), clock)

    chunks = run_until(source, lambda c: len(c) == 2)

    audio = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(audio, ramp, atol=1e-6)


def test_a_format_edged_cannot_read_is_an_audio_error() -> None:
    clock = FakeClock()
    mic = FakeMic([frames(1)], clock, sample_format="U8")
    source = source_for(FakeOpener([mic], clock), clock)
    with pytest.raises(AudioError, match="U8"):
        list(source.chunks())
    with pytest.raises(AudioError, match="S8"):
        AlsaSource("mic", sample_format="S8")


@pytest.mark.timeout(30)
def test_a_failing_state_callback_does_not_stop_capture(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    source = source_for(FakeOpener([FakeMic([frames(2)], clock)], clock), clock)

    def broken(state: DeviceState, reason: str) -> None:
        raise RuntimeError("subscriber bug")

    source.on_state(broken)
    chunks = run_until(source, lambda c: len(c) == 2)
    assert len(chunks) == 2
    assert any("state callback failed" in r.getMessage() for r in caplog.records)
