"""WAV parsing: every encoding edged accepts, and a clear AudioError for everything else."""

import itertools
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.audio import SAMPLE_RATE
from edged.audio.convert import to_pipeline_format
from edged.audio.wav import WavSource, parse_wav, read_wav
from edged.errors import AudioError


def riff(
    fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, extensible: bool = False
) -> bytes:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", fmt_tag) + b"\x00" * 14
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("tag", "bits", "encode"),
    [
        (1, 16, lambda x: (x * 32767).astype("<i2").tobytes()),
        (1, 32, lambda x: (x * 2**31 * 0.999).astype("<i4").tobytes()),
        (3, 32, lambda x: x.astype("<f4").tobytes()),
        (3, 64, lambda x: x.astype("<f8").tobytes()),
        (1, 8, lambda x: (x * 127 + 128).astype(np.uint8).tobytes()),
    ],
)
@pytest.mark.parametrize("extensible", [False, True])
def test_encodings_decode_to_the_same_signal(tag, bits, encode, extensible, tmp_path: Path) -> None:
    signal = tone(SAMPLE_RATE)
    path = tmp_path / "x.wav"
    path.write_bytes(riff(tag, 1, SAMPLE_RATE, bits, encode(signal), extensible))
    samples, rate = read_wav(path)
    assert rate == SAMPLE_RATE
    assert np.allclose(samples[:, 0], signal, atol=max(0.01, 3 / 2 ** (bits - 1)))


def test_24_bit_pcm(tmp_path: Path) -> None:
    signal = tone(SAMPLE_RATE)
    ints = (signal * (2**23 - 1)).astype("<i4")
    data = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    path = tmp_path / "x.wav"
    path.write_bytes(riff(1, 1, SAMPLE_RATE, 24, data))
    samples, _ = read_wav(path)
    assert np.allclose(samples[:, 0], signal, atol=1e-4)


def test_stereo_44k_becomes_16k_mono(tmp_path: Path) -> None:
    left = tone(44100, 1.0)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / "s.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())
    source = WavSource(path, tail_silence=0)
    audio = np.concatenate([c.samples for c in source.chunks()])
    assert abs(len(audio) - SAMPLE_RATE) <= 1
    peak = np.abs(np.fft.rfft(audio[1000:15000])).argmax() * SAMPLE_RATE / 14000
    assert abs(peak - 440) < 5


def test_chunks_carry_their_timeline_position(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(riff(3, 1, SAMPLE_RATE, 32, tone(SAMPLE_RATE, 1.0).tobytes()))
    chunks = list(WavSource(path, tail_silence=0.5).chunks())
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert chunks[-1].end == int(1.5 * SAMPLE_RATE)


def test_text_file_named_wav_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioError, match="not a WAV file"):
        read_wav(path)


def test_truncated_wav_names_the_shortfall(tmp_path: Path) -> None:
    blob = riff(1, 1, SAMPLE_RATE, 16, b"\x00\x01" * 8000)
    path = tmp_path / "cut.wav"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(AudioError, match="truncated"):
        read_wav(path)


def test_missing_file_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot read"):
        read_wav(tmp_path / "absent.wav")


def test_resampling_keeps_duration() -> None:
    out = to_pipeline_format(tone(48000, 2.0), 48000)
    assert abs(len(out) - 2 * SAMPLE_RATE) <= 2


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_audio_error(blob: bytes) -> None:
    try:
        fmt, data = parse_wav(blob)
    except AudioError:
        return
    assert len(data) % (fmt.channels * fmt.bits // 8) == 0


@given(
    tag=st.integers(0, 0xFFFF),
    channels=st.integers(0, 64),
    rate=st.integers(0, 10**6),
    bits=st.integers(0, 128),
    data=st.binary(max_size=64),
)
def test_arbitrary_headers_are_accepted_or_rejected_cleanly(
    tag, channels, rate, bits, data
) -> None:
    try:
        blob = riff(tag, channels, rate, bits, data)
    except struct.error:
        return
    try:
        fmt, _raw = parse_wav(blob)
    except AudioError:
        return
    assert fmt.channels >= 1 and fmt.bits in (8, 16, 24, 32, 64)
