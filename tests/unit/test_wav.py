"""WAV parsing: every encoding edged accepts, and a clear AudioError for everything else."""

import itertools
import os
import struct
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE
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


# --- streaming (issue 10, defect 8) ---------------------------------------------------


def pcm16(signal: np.ndarray) -> bytes:
    return (signal * 32767).astype("<i2").tobytes()


def with_data_size(blob: bytes, size: int) -> bytes:
    """The WAV with its data chunk's (and RIFF's) size replaced, as a recorder that does
    not know the length yet writes it."""
    at = blob.index(b"data") + 4
    riff_size = 0xFFFFFFFF if size == 0xFFFFFFFF else size
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + blob[8:at]
        + struct.pack("<I", size)
        + blob[at + 4 :]
    )


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0])
def test_streaming_data_size_is_read_to_the_end_of_the_file(size: int, tmp_path: Path) -> None:
    signal = tone(SAMPLE_RATE, 1.0)
    path = tmp_path / "stream.wav"
    path.write_bytes(with_data_size(riff(1, 1, SAMPLE_RATE, 16, pcm16(signal)), size))
    samples, _ = read_wav(path)
    assert len(samples) == len(signal)
    assert np.allclose(samples[:, 0], signal, atol=1e-3)
    assert WavSource(path).duration == 1.0


def test_resampling_is_seamless_across_read_blocks(tmp_path: Path) -> None:
    left, right = tone(48000, 1.5), 0.5 * tone(48000, 1.5)
    stereo = np.stack([left, right], axis=1)
    path = tmp_path / "s48.wav"
    path.write_bytes(riff(3, 2, 48000, 32, stereo.astype("<f4").tobytes()))
    # 997 frames per read: block boundaries fall everywhere against 512-sample frames.
    source = WavSource(path, tail_silence=0, block_frames=997)
    streamed = np.concatenate([c.samples for c in source.chunks()])
    whole = to_pipeline_format(stereo, 48000)
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 1e-5


def test_a_fifo_is_streamed_as_it_is_written_and_close_ends_it(tmp_path: Path) -> None:
    """A WAV is read block by block: chunks come while the writer still holds the FIFO open
    (reading the whole file first would wait for its end forever)."""
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    frames = 32  # whole pipeline frames, so nothing waits for the rest of a frame
    audio = pcm16(tone(SAMPLE_RATE, frames * FRAME_SAMPLES / SAMPLE_RATE))
    header = riff(1, 1, SAMPLE_RATE, 16, b"")
    header = with_data_size(header, 0xFFFFFFFF)
    writer_fd: list[int] = []
    opened = threading.Thread(target=lambda: writer_fd.append(os.open(fifo, os.O_WRONLY)))
    opened.start()
    made: list[WavSource] = []
    maker = threading.Thread(target=lambda: made.append(WavSource(fifo, tail_silence=0)))
    maker.start()
    opened.join(10)
    os.write(writer_fd[0], header + audio)  # ... and the writer stays, idle
    maker.join(10)
    assert made, "WavSource waited for the end of the FIFO"
    source = made[0]
    got: list[int] = []
    all_written = threading.Event()

    def consume() -> None:
        for chunk in source.chunks():
            got.append(len(chunk.samples))
            if sum(got) == frames * FRAME_SAMPLES:
                all_written.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        assert all_written.wait(10), f"only {sum(got)} samples while the writer is open"
        source.close()
        reader.join(10)
        assert not reader.is_alive(), "close() did not wake the read blocked on the FIFO"
    finally:
        os.close(writer_fd[0])
    assert sum(got) == frames * FRAME_SAMPLES  # a closed source invents no trailing silence


def test_a_fifo_that_ends_before_its_announced_size_is_truncated(tmp_path: Path) -> None:
    fifo = tmp_path / "cut.wav"
    os.mkfifo(fifo)
    blob = riff(1, 1, SAMPLE_RATE, 16, pcm16(tone(SAMPLE_RATE, 1.0)))

    def write() -> None:
        with open(fifo, "wb") as stream:
            stream.write(blob[: len(blob) // 2])

    writer = threading.Thread(target=write)
    writer.start()
    source = WavSource(fifo, tail_silence=0)
    with pytest.raises(AudioError, match="truncated"):
        list(source.chunks())
    writer.join(10)


def test_a_huge_fmt_chunk_is_refused_without_reading_it() -> None:
    blob = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 1 << 30)
    with pytest.raises(AudioError, match="fmt chunk"):
        parse_wav(blob)
