"""WAV files as an audio source: RIFF parsed here because `wave` reads neither float nor
WAVE_FORMAT_EXTENSIBLE, and a truncated file must be an error, not silently short audio."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.convert import to_pipeline_format
from edged.audio.pacing import Pacer
from edged.errors import AudioError

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_MAX_CHANNELS = 32


@dataclass(frozen=True)
class WavFormat:
    """The fmt chunk fields edged uses."""

    encoding: int  # _PCM or _FLOAT
    channels: int
    sample_rate: int
    bits: int


def parse_wav(blob: bytes, name: str = "input") -> tuple[WavFormat, bytes]:
    """Return the format and the raw sample bytes of a WAV file, or raise AudioError."""
    if len(blob) < 12 or blob[0:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, pos)
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body, name)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: WAV data chunk comes before its fmt chunk")
            if len(body) < size:
                raise AudioError(
                    f"{name}: truncated WAV: header announces {size} bytes of audio, "
                    f"file holds {len(body)}"
                )
            frame_bytes = fmt.channels * fmt.bits // 8
            usable = len(body) - len(body) % frame_bytes
            return fmt, body[:usable]
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise AudioError(f"{name}: WAV file has no fmt chunk")
    raise AudioError(f"{name}: WAV file has no data chunk (truncated?)")


def _parse_fmt(body: bytes, name: str) -> WavFormat:
    if len(body) < 16:
        raise AudioError(f"{name}: WAV fmt chunk is {len(body)} bytes, expected at least 16")
    encoding, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if encoding == _EXTENSIBLE:
        if len(body) < 26:
            raise AudioError(f"{name}: WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
        (encoding,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format GUID
    supported = {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32), (_FLOAT, 64)}
    if (encoding, bits) not in supported:
        raise AudioError(
            f"{name}: unsupported WAV encoding (format tag {encoding}, {bits} bits); "
            "expected PCM 8/16/24/32-bit or IEEE float 32/64-bit"
        )
    if not 1 <= channels <= _MAX_CHANNELS:
        raise AudioError(f"{name}: WAV has {channels} channels, expected 1 to {_MAX_CHANNELS}")
    if not 1000 <= rate <= 384_000:
        raise AudioError(f"{name}: WAV sample rate {rate} Hz is out of range (1000-384000)")
    return WavFormat(encoding, channels, rate, bits)


def decode_samples(fmt: WavFormat, raw: bytes) -> np.ndarray:
    """Sample bytes to float32 of shape (frames, channels) in [-1, 1]."""
    if fmt.encoding == _FLOAT:
        data = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float32)
    elif fmt.bits == 8:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend
        data = ints.astype(np.float32) / float(1 << 23)
    else:
        dtype = "<i2" if fmt.bits == 16 else "<i4"
        data = np.frombuffer(raw, dtype=dtype).astype(np.float32) / float(1 << (fmt.bits - 1))
    return data.reshape(-1, fmt.channels)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 (frames, channels) and its sample rate."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror}") from exc
    fmt, raw = parse_wav(blob, str(path))
    return decode_samples(fmt, raw), fmt.sample_rate


class WavSource:
    """Plays a WAV file into the pipeline, optionally paced like a live microphone."""

    def __init__(self, path: Path, realtime: bool = False, tail_silence: float = 1.0) -> None:
        samples, rate = read_wav(path)  # fail at construction: before any model loads
        self._audio = to_pipeline_format(samples, rate)
        # A file ends abruptly; trailing silence lets the VAD close the last utterance as
        # it would on a live stream.
        self._tail = np.zeros(int(tail_silence * SAMPLE_RATE), dtype=np.float32)
        self._pacer = Pacer(realtime)
        self.path = path

    @property
    def duration(self) -> float:
        return len(self._audio) / SAMPLE_RATE

    def chunks(self) -> Iterator[AudioChunk]:
        audio = np.concatenate([self._audio, self._tail])
        self._pacer.start()
        for start in range(0, len(audio), FRAME_SAMPLES):
            frame = audio[start : start + FRAME_SAMPLES]
            if not self._pacer.wait_until(start + len(frame)):
                return
            yield AudioChunk(frame, start, time.monotonic())

    def close(self) -> None:
        self._pacer.stop()
