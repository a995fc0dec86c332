"""AlsaSink against real ALSA: a `type file` playback device that writes a raw file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alsa_files import AlsaFiles, dominant_frequency, played, read_raw, sine, write_asoundrc

from edged.audio.alsa import AlsaSink
from edged.errors import AudioError


@pytest.fixture
def alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaFiles:
    files = write_asoundrc(tmp_path / "alsa")
    for name, value in files.env.items():
        monkeypatch.setenv(name, value)
    return files


def test_speech_is_resampled_to_the_card_rate_with_a_silent_lead_in(alsa: AlsaFiles) -> None:
    speech = sine(300, 1.0, 22_050)
    sink = AlsaSink(alsa.playback, rate=48_000, channels=2, lead_in=0.05)

    sink.play(speech, 22_050)

    assert not sink.interrupted and not sink.playing
    [path] = played(alsa)
    out = read_raw(path, channels=2)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    left = out[:, 0]
    lead = round(0.05 * 48_000)
    assert not left[:lead].any()  # the lead-in is exact silence
    loud = np.flatnonzero(np.abs(left) > 0.05)
    assert loud[0] / 48_000 == pytest.approx(0.05, abs=0.002)
    assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(1.0, abs=0.005)  # same duration
    assert dominant_frequency(left[lead : lead + 48_000], 48_000) == pytest.approx(300, abs=2)
    assert np.abs(left).max() == pytest.approx(0.5, abs=0.02)
    assert len(out) % round(0.025 * 48_000) == 0  # whole periods were written


def test_without_a_configured_rate_the_speech_rate_is_used_unchanged(alsa: AlsaFiles) -> None:
    rng = np.random.default_rng(3)
    speech = rng.uniform(-0.8, 0.8, 11_025).astype(np.float32)
    sink = AlsaSink(alsa.playback, lead_in=0.0)

    sink.play(speech, 22_050)

    out = read_raw(played(alsa)[0])
    expected = (np.clip(speech, -1, 1) * 32767).astype(np.int16) / 32768.0
    np.testing.assert_array_equal(out[: len(speech)], expected.astype(np.float32))
    assert not out[len(speech) :].any()  # padding to a whole period is silence


def test_each_play_reaches_the_device_in_order(alsa: AlsaFiles) -> None:
    sink = AlsaSink(alsa.playback, rate=16_000, lead_in=0.01)
    for freq in (200, 400, 800):  # one play() per synthesized sentence
        sink.play(sine(freq, 0.5, 16_000), 16_000)

    files = played(alsa)
    assert len(files) == 3
    freqs = [dominant_frequency(read_raw(f)[160:8160], 16_000) for f in files]
    assert freqs == pytest.approx([200, 400, 800], abs=3)


def test_missing_playback_device_is_an_audio_error_naming_it(alsa: AlsaFiles) -> None:
    sink = AlsaSink("no_such_speaker")
    with pytest.raises(AudioError, match="no_such_speaker"):
        sink.play(sine(300, 0.1, 16_000), 16_000)
    assert not sink.playing
