"""AlsaSink's control flow (stop, underrun, waiting out the buffer) with a fake speaker whose
writes block until the test lets them through: the ALSA null plugin plays instantly, so
only a fake can hold playback mid-way."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from edged.audio.alsa import AlsaSink, PlaybackRequest
from edged.errors import AudioError


class FakeSpeaker:
    """Records writes; each write waits for a permit when `gated` (as hardware blocks)."""

    def __init__(
        self,
        request: PlaybackRequest,
        *,
        rate: int | None = None,
        gated: bool = False,
        underruns: int = 0,
        queued: int = 0,
    ) -> None:
        self.request = request
        self.rate = rate or request.rate
        self.channels = request.channels
        self.period_frames = request.period_frames
        self.buffer_frames = request.period_frames * request.periods
        self.writes: list[bytes] = []
        self.permits = threading.Semaphore(0)
        self.gated = gated
        self.underruns_left = underruns
        self.queued = queued
        self.wrote = threading.Condition()
        self.draining = threading.Event()
        self.dropped = self.drained = self.closed = False

    def write(self, data: bytes) -> int:
        if self.gated:
            self.permits.acquire()
        if self.underruns_left:
            self.underruns_left -= 1
            return -32
        with self.wrote:
            self.writes.append(data)
            self.wrote.notify_all()
        return len(data) // (2 * self.channels)

    def queued_frames(self) -> int:
        self.draining.set()
        return self.queued

    def drain(self) -> None:
        self.drained = True

    def drop(self) -> None:
        self.dropped = True

    def close(self) -> None:
        self.closed = True

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.writes), "<i2").reshape(-1, self.channels)


class SpeakerOpener:
    def __init__(self, **options: object) -> None:
        self.options = options
        self.opened: list[FakeSpeaker] = []
        self.first_open = threading.Event()

    def __call__(self, request: PlaybackRequest) -> FakeSpeaker:
        speaker = FakeSpeaker(request, **self.options)  # type: ignore[arg-type]
        self.opened.append(speaker)
        self.first_open.set()
        return speaker


def tone(seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)).astype(
        np.float32
    )


@pytest.mark.timeout(30)
def test_stop_cuts_playback_off_within_a_period() -> None:
    opener = SpeakerOpener(gated=True)
    sink = AlsaSink("spk", rate=16_000, opener=opener)
    thread = threading.Thread(target=sink.play, args=(tone(5.0, 16_000), 16_000))
    thread.start()
    assert opener.first_open.wait(5)
    speaker = opener.opened[0]
    assert sink.playing
    for _ in range(3):
        speaker.permits.release()
    with speaker.wrote:
        assert speaker.wrote.wait_for(lambda: len(speaker.writes) == 3, timeout=5)

    stopped_at = time.monotonic()
    sink.stop()
    speaker.permits.release()  # the write in progress completes, as a period would
    thread.join(5)

    assert not thread.is_alive() and time.monotonic() - stopped_at < 0.5
    assert sink.interrupted and not sink.playing
    assert speaker.dropped and not speaker.drained and speaker.closed
    assert len(speaker.writes) == 4  # of 5 s worth: the rest was never written


@pytest.mark.timeout(30)
def test_stop_while_the_buffer_plays_out_drops_it() -> None:
    # 10 s still queued after the last write: play() waits it out on an event, not drain().
    opener = SpeakerOpener(queued=160_000)
    sink = AlsaSink("spk", rate=16_000, opener=opener)
    thread = threading.Thread(target=sink.play, args=(tone(0.2, 16_000), 16_000))
    thread.start()
    assert opener.first_open.wait(5)
    assert opener.opened[0].draining.wait(5)

    sink.stop()
    thread.join(5)

    assert not thread.is_alive() and sink.interrupted
    assert opener.opened[0].dropped and not opener.opened[0].drained


def test_play_after_stop_plays_normally() -> None:
    opener = SpeakerOpener()
    sink = AlsaSink("spk", rate=16_000, opener=opener)
    sink.stop()  # nothing playing: no effect on what comes next
    sink.play(tone(0.1, 16_000), 16_000)
    assert not sink.interrupted and opener.opened[0].drained


def test_underrun_is_retried_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    opener = SpeakerOpener(underruns=1)
    sink = AlsaSink("spk", rate=16_000, lead_in=0.0, opener=opener)
    speech = tone(0.1, 16_000)

    with caplog.at_level(logging.WARNING, logger="edged.audio.alsa"):
        sink.play(speech, 16_000)

    played = opener.opened[0].samples()[:, 0]
    np.testing.assert_array_equal(played[: len(speech)], (speech * 32767).astype(np.int16))
    assert sink.underruns == 1
    assert any("underrun" in r.getMessage() for r in caplog.records)


def test_a_speaker_that_keeps_underrunning_is_an_error() -> None:
    sink = AlsaSink("spk", rate=16_000, opener=SpeakerOpener(underruns=100))
    with pytest.raises(AudioError, match="keeps underrunning"):
        sink.play(tone(0.1, 16_000), 16_000)
    assert not sink.playing


def test_mono_speech_fills_every_channel_at_the_granted_rate() -> None:
    opener = SpeakerOpener(rate=48_000)  # asked for 16 kHz, the card gives 48 kHz
    sink = AlsaSink("spk", rate=16_000, channels=2, lead_in=0.1, opener=opener)

    sink.play(tone(1.0, 22_050), 22_050)

    out = opener.opened[0].samples()
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    assert not out[:4800].any()  # 0.1 s lead-in at 48 kHz
    loud = np.flatnonzero(np.abs(out[:, 0]) > 1000)
    assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(1.0, abs=0.005)
    assert len(out) % opener.opened[0].period_frames == 0


def test_closed_sink_refuses_to_play() -> None:
    sink = AlsaSink("spk", opener=SpeakerOpener())
    sink.close()
    with pytest.raises(AudioError, match="closed"):
        sink.play(tone(0.1, 16_000), 16_000)
