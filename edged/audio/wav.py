"""WAV files as an audio source: RIFF parsed here because `wave` reads neither float nor
WAVE_FORMAT_EXTENSIBLE, and a truncated file must be an error, not silently short audio."""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.convert import StreamResampler
from edged.audio.fdread import InterruptibleReader
from edged.audio.pacing import Pacer
from edged.errors import AudioError

log = logging.getLogger(__name__)

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


_STREAMING_SIZES = (0, 0xFFFFFFFF)  # what recorders write when the length is not known yet
_MAX_FMT_BYTES = 1024  # a fmt chunk is 16-40 bytes; a huge one is a hostile or broken file
_MAX_CHUNKS = 1024  # before the data chunk; an endless run of empty chunks is not a WAV
_BLOCK_FRAMES = 4096  # input frames decoded per read: ~0.1 s at 44.1 kHz


class ByteReader(Protocol):
    """Where a WAV header and its audio are read from (InterruptibleReader, BlobReader)."""

    def read(self, size: int) -> bytes: ...

    def read_exact(self, size: int) -> bytes: ...

    def skip(self, size: int) -> int: ...


def read_header(
    reader: ByteReader, name: str, file_size: int | None
) -> tuple[WavFormat, int | None]:
    """Read up to the start of the audio: its format and its size in bytes (None: to the
    end of the file). `file_size` (a regular file's) finds truncation before any audio."""
    head = reader.read_exact(12)
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt: WavFormat | None = None
    offset = 12
    for _ in range(_MAX_CHUNKS):
        header = reader.read_exact(8)
        if len(header) < 8:
            break
        chunk_id, size = struct.unpack("<4sI", header)
        offset += 8
        if chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: WAV data chunk comes before its fmt chunk")
            if size in _STREAMING_SIZES:
                return fmt, None
            if file_size is not None and offset + size > file_size:
                raise _truncated(name, size, file_size - offset)
            return fmt, size
        if chunk_id == b"fmt ":
            if size > _MAX_FMT_BYTES:
                raise AudioError(f"{name}: WAV fmt chunk is {size} bytes, too large to be real")
            fmt = _parse_fmt(reader.read_exact(size), name)
        else:
            reader.skip(size)
        reader.skip(size & 1)  # chunks are word-aligned
        offset += size + (size & 1)
    else:
        raise AudioError(f"{name}: more than {_MAX_CHUNKS} WAV chunks before the audio")
    if fmt is None:
        raise AudioError(f"{name}: WAV file has no fmt chunk")
    raise AudioError(f"{name}: WAV file has no data chunk (truncated?)")


def _truncated(name: str, announced: int, held: int) -> AudioError:
    return AudioError(
        f"{name}: truncated WAV: header announces {announced} bytes of audio, file holds {held}"
    )


def parse_wav(blob: bytes, name: str = "input") -> tuple[WavFormat, bytes]:
    """Return the format and the raw sample bytes of an in-memory WAV, or raise AudioError."""
    reader = BlobReader(blob)
    fmt, size = read_header(reader, name, len(blob))
    raw = reader.read_exact(size if size is not None else len(blob))
    frame_bytes = fmt.channels * fmt.bits // 8
    return fmt, raw[: len(raw) - len(raw) % frame_bytes]


class BlobReader:
    """The ByteReader of bytes already in memory."""

    def __init__(self, blob: bytes) -> None:
        self._stream = io.BytesIO(blob)

    def read(self, size: int) -> bytes:
        return self._stream.read(size)

    def read_exact(self, size: int) -> bytes:
        return self._stream.read(size)

    def skip(self, size: int) -> int:
        return len(self._stream.read(size))


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
    """Read a whole WAV file as float32 (frames, channels) and its sample rate (for short
    clips: tests, the benchmark's set; the pipeline streams through WavSource)."""
    with WavStream(path) as stream:
        blocks = list(stream.blocks())
    audio = np.concatenate(blocks) if blocks else np.zeros((0, stream.format.channels), np.float32)
    return audio, stream.format.sample_rate


class WavStream:
    """An open WAV file, FIFO or device whose header has been read: its audio block by
    block, so memory does not grow with the file's length.

    A FIFO without a writer is waited for (with a message), as `cat` would. interrupt()
    from another thread ends a read blocked on an idle writer.
    """

    def __init__(self, path: Path, block_frames: int = _BLOCK_FRAMES) -> None:
        self.path = path
        self._reader, file_size = _open(path)
        try:
            self.format, self._size = read_header(self._reader, str(path), file_size)
        except BaseException:
            self._reader.close()
            raise
        self._frame_bytes = self.format.channels * self.format.bits // 8
        self._block_bytes = block_frames * self._frame_bytes
        if self._size is None and file_size is not None:
            known: int | None = file_size - self._reader.position
        else:
            known = self._size
        self.frames: int | None = None if known is None else known // self._frame_bytes
        """Frames of audio the file holds; None for a stream of unknown length."""

    def blocks(self) -> Iterator[np.ndarray]:
        """float32 (frames, channels) blocks until the data chunk (or the file) ends."""
        remaining = self._size
        carry = b""  # a read may end inside a frame: the rest comes with the next read
        while remaining is None or remaining > 0:
            want = self._block_bytes - len(carry)  # > 0: carry is less than one frame
            # Whatever is there now, not a full block: a FIFO's writer may be live.
            raw = self._reader.read(want if remaining is None else min(want, remaining))
            if not raw:
                break
            if remaining is not None:
                remaining -= len(raw)
            data = carry + raw
            usable = len(data) - len(data) % self._frame_bytes
            carry = data[usable:]
            if usable:
                yield decode_samples(self.format, data[:usable])
        if remaining and not self._reader.interrupted:
            # Only a FIFO gets here: a regular file's size was checked against the header.
            raise _truncated(str(self.path), self._size or 0, (self._size or 0) - remaining)

    def interrupt(self) -> None:
        self._reader.interrupt()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> WavStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _open(path: Path) -> tuple[InterruptibleReader, int | None]:
    """A reader of `path` and, for a regular file, its size."""
    name = str(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISFIFO(mode):
            fd, first = _open_fifo(path)
            return InterruptibleReader(fd, name, prefix=first), None
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise AudioError(f"{path}: cannot read: is a directory")
    return InterruptibleReader(fd, name), os.fstat(fd).st_size if stat.S_ISREG(mode) else None


def _open_fifo(path: Path) -> tuple[int, bytes]:
    """Open a FIFO for reading; if nobody writes to it yet, say so, then wait for a writer.

    A non-blocking open never waits; reading it returns EOF while there is no writer, and
    EAGAIN (or data) once there is one. Returns the descriptor and the byte read, if any.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        first = os.read(fd, 1)
    except BlockingIOError:  # a writer, nothing written yet
        first = b""
    else:
        if not first:
            os.close(fd)
            log.warning("%s: FIFO has no writer yet; waiting for one (Ctrl-C to stop)", path)
            fd = os.open(path, os.O_RDONLY)
    os.set_blocking(fd, True)
    return fd, first


class WavSource:
    """Streams a WAV file (or FIFO) into the pipeline, optionally paced like a live microphone.

    Memory is bounded by one read block and the pipeline's queues, not the file's length;
    resampling keeps its filter state across blocks (soxr.ResampleStream), so block
    boundaries are seamless.
    """

    def __init__(
        self,
        path: Path,
        realtime: bool = False,
        tail_silence: float = 1.0,
        block_frames: int = _BLOCK_FRAMES,
    ) -> None:
        self._stream = WavStream(path, block_frames)  # the header is read now: before models
        # A file ends abruptly; trailing silence lets the VAD close the last utterance as
        # it would on a live stream.
        self._tail_samples = int(tail_silence * SAMPLE_RATE)
        self._pacer = Pacer(realtime)
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self.path = path

    @property
    def duration(self) -> float:
        """Seconds of audio in the file (0.0 for a stream of unknown length)."""
        frames = self._stream.frames
        return 0.0 if frames is None else frames / self._stream.format.sample_rate

    def chunks(self) -> Iterator[AudioChunk]:
        with self._lock:
            if self._stopped:
                return
            self._started = True
        try:
            yield from self._chunks()
        finally:
            self._stream.close()

    def _chunks(self) -> Iterator[AudioChunk]:
        self._pacer.start()
        frame = np.empty(FRAME_SAMPLES, np.float32)
        filled = 0
        position = 0
        for samples in self._samples():
            used = 0
            while used < len(samples):
                take = min(FRAME_SAMPLES - filled, len(samples) - used)
                frame[filled : filled + take] = samples[used : used + take]
                filled += take
                used += take
                if filled == FRAME_SAMPLES:
                    if not self._pacer.wait_until(position + filled):
                        return
                    yield AudioChunk(frame.copy(), position, time.monotonic())
                    position += filled
                    filled = 0
        if filled and self._pacer.wait_until(position + filled):
            yield AudioChunk(frame[:filled].copy(), position, time.monotonic())

    def _samples(self) -> Iterator[np.ndarray]:
        """Pipeline-format samples: the file's audio, then the tail of silence."""
        fmt = self._stream.format
        resample = StreamResampler(fmt.sample_rate, fmt.channels)
        for block in self._stream.blocks():
            yield resample(block.reshape(-1))
        if self._pacer.stopped:
            return
        yield resample(np.zeros(0, np.float32), last=True)
        yield np.zeros(self._tail_samples, np.float32)

    def close(self) -> None:
        """End chunks() promptly, even while it waits on a FIFO (safe from any thread)."""
        self._pacer.stop()
        with self._lock:
            self._stopped = True
            started = self._started
        if started:
            self._stream.interrupt()  # the reading thread closes the file
        else:
            self._stream.close()
