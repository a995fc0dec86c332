"""AlsaSource against real ALSA: `type file` capture devices that read a raw file."""

from __future__ import annotations

import queue
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from alsa_files import AlsaFiles, capture_pcm, dominant_frequency, sine, write_asoundrc, write_raw

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.alsa import AlsaCaptureDevice, AlsaSource, CaptureRequest, DeviceState, Wait
from edged.errors import AudioError


@pytest.fixture
def alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaFiles:
    files = write_asoundrc(
        tmp_path / "alsa", extra={"edged_late": capture_pcm(tmp_path / "late.raw")}
    )
    for name, value in files.env.items():
        monkeypatch.setenv(name, value)
    return files


def take(source: AlsaSource, samples: int) -> list[AudioChunk]:
    """Chunks until the timeline reaches `samples` (a file device never ends by itself)."""
    chunks = []
    for chunk in source.chunks():
        chunks.append(chunk)
        if chunk.end >= samples:
            source.close()
    return chunks


def test_capture_converts_48k_stereo_to_pipeline_format(alsa: AlsaFiles) -> None:
    tone = np.concatenate([sine(440, 2.0, 48_000), np.zeros(72_000, np.float32)])
    write_raw(alsa.infile, np.stack([tone, tone], axis=1))  # 2 s of tone, 1.5 s of silence
    source = AlsaSource(alsa.capture, rate=48_000, channels=2, period_frames=960)
    states: list[DeviceState] = []
    source.on_state(lambda state, reason: states.append(state))

    chunks = take(source, 3 * SAMPLE_RATE)

    assert source.actual_rate == 48_000
    assert all(len(c.samples) == FRAME_SAMPLES and c.samples.dtype == np.float32 for c in chunks)
    assert [c.start for c in chunks] == [i * FRAME_SAMPLES for i in range(len(chunks))]
    audio = np.concatenate([c.samples for c in chunks])
    loud = np.flatnonzero(np.abs(audio) > 0.05)
    assert loud[-1] / SAMPLE_RATE == pytest.approx(2.0, abs=0.01)
    tone_16k = audio[: 2 * SAMPLE_RATE]
    assert dominant_frequency(tone_16k, SAMPLE_RATE) == pytest.approx(440, abs=2)
    assert np.sqrt(np.mean(tone_16k[800:-800] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert states == [DeviceState.RUNNING, DeviceState.STOPPED]
    assert source.overruns == 0 and source.lost_samples == 0


def test_capture_at_16k_mono_is_sample_exact(alsa: AlsaFiles) -> None:
    rng = np.random.default_rng(7)
    signal = rng.uniform(-0.9, 0.9, SAMPLE_RATE).astype(np.float32)
    write_raw(alsa.infile, signal)
    source = AlsaSource(alsa.capture, rate=SAMPLE_RATE, channels=1, period_frames=320)

    audio = np.concatenate([c.samples for c in take(source, SAMPLE_RATE)])

    expected = (np.clip(signal, -1, 1) * 32767).astype("<i2") / 32768.0
    np.testing.assert_array_equal(audio[:SAMPLE_RATE], expected.astype(np.float32))


def test_device_granted_values_are_read_back(alsa: AlsaFiles) -> None:
    write_raw(alsa.infile, np.zeros(4800, np.float32))
    device = AlsaCaptureDevice(CaptureRequest(alsa.capture, 22_050, 1, 441, 4, "S16_LE"))
    try:
        assert (device.rate, device.channels, device.sample_format) == (22_050, 1, "S16_LE")
        assert device.period_frames == 441
    finally:
        device.close()


def test_device_wait_polls_the_pcm_and_the_wake_socket(alsa: AlsaFiles) -> None:
    write_raw(alsa.infile, np.zeros(4800, np.float32))
    device = AlsaCaptureDevice(CaptureRequest(alsa.capture, SAMPLE_RATE, 1, 512, 4, "S16_LE"))
    wake, waker = socket.socketpair()
    try:
        assert device.read()[0] == 512  # starts the stream
        assert device.wait(1.0, wake) is Wait.READY  # the null plugin is always ready
        waker.send(b"x")
        assert device.wait(1.0, wake) is Wait.WOKEN  # close() wins over audio
    finally:
        device.close()
        wake.close()
        waker.close()


def test_unknown_device_is_an_audio_error_naming_it(alsa: AlsaFiles) -> None:
    with pytest.raises(AudioError, match="no_such_pcm"):
        AlsaCaptureDevice(CaptureRequest("no_such_pcm", SAMPLE_RATE, 1, 512, 4, "S16_LE"))


@pytest.mark.timeout(30)
def test_close_from_another_thread_ends_capture(alsa: AlsaFiles) -> None:
    write_raw(alsa.infile, sine(200, 1.0, SAMPLE_RATE))
    source = AlsaSource(alsa.capture)
    first = threading.Event()
    seen: list[AudioChunk] = []

    def consume() -> None:
        for chunk in source.chunks():
            seen.append(chunk)
            first.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert first.wait(5)
    closed_at = time.monotonic()
    source.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - closed_at < 1.0
    assert source.state is DeviceState.STOPPED


class CountingOpener:
    """The real ALSA opener, counting attempts and when they happened."""

    def __init__(self, attempts_wanted: int) -> None:
        self.times: list[float] = []
        self.enough = threading.Event()
        self._wanted = attempts_wanted

    def __call__(self, request: CaptureRequest) -> AlsaCaptureDevice:
        self.times.append(time.monotonic())
        if len(self.times) >= self._wanted:
            self.enough.set()
        return AlsaCaptureDevice(request)


@pytest.mark.timeout(30)
def test_missing_device_degrades_retries_with_backoff_and_recovers(
    alsa: AlsaFiles, tmp_path: Path
) -> None:
    # edged_late reads late.raw, which does not exist yet: opening the PCM fails as a
    # USB microphone that is not plugged in would.
    opener = CountingOpener(attempts_wanted=4)
    source = AlsaSource("edged_late", backoff_initial=0.05, backoff_max=0.2, opener=opener)
    states: queue.Queue[tuple[DeviceState, str]] = queue.Queue()
    source.on_state(lambda state, reason: states.put((state, reason)))
    chunks: list[AudioChunk] = []

    def consume() -> None:
        for chunk in source.chunks():
            chunks.append(chunk)
            if chunk.end >= SAMPLE_RATE:
                source.close()

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        state, reason = states.get(timeout=5)
        assert state is DeviceState.DEGRADED
        assert "edged_late" in reason
        assert opener.enough.wait(10)
        write_raw(tmp_path / "late.raw", sine(300, 1.5, SAMPLE_RATE))  # plugged in
        state, reason = states.get(timeout=10)
        assert state is DeviceState.RUNNING, reason
        thread.join(10)  # the consumer closes the source after 1 s of audio
        assert not thread.is_alive()
    finally:
        source.close()
        thread.join(10)
    gaps = np.diff(opener.times[:4])
    # 0.05, 0.1, 0.2 s: doubling, then capped (generous bounds: a loaded CI box is slow).
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert gaps[1] > gaps[0]
    assert source.failures >= 3 and source.state is DeviceState.STOPPED
    audio = np.concatenate([c.samples for c in chunks])
    assert dominant_frequency(audio[:SAMPLE_RATE], SAMPLE_RATE) == pytest.approx(300, abs=2)
