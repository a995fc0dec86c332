"""Raw PCM (SAMPLE_RATE mono s16le) from a byte stream such as stdin."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.fdread import InterruptibleReader
from edged.audio.pacing import Pacer

_BYTES_PER_SAMPLE = 2
_BLOCK = FRAME_SAMPLES * _BYTES_PER_SAMPLE


class RawPcmSource:
    """Reads s16le mono at SAMPLE_RATE from a binary stream until EOF or close().

    A stream with a file descriptor (stdin, a pipe) is read through InterruptibleReader, so
    close() from another thread wakes a read blocked on an idle writer.
    """

    def __init__(self, stream: BinaryIO, realtime: bool = False, tail_silence: float = 1.0) -> None:
        self._stream = stream
        self._pacer = Pacer(realtime)
        self._tail_samples = int(tail_silence * SAMPLE_RATE)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._reader: InterruptibleReader | None = None

    def chunks(self) -> Iterator[AudioChunk]:
        self._pacer.start()
        position = 0
        carry = b""  # an odd trailing byte: a sample is never split across reads
        for block in self._blocks():
            data = carry + block
            usable = len(data) - len(data) % _BYTES_PER_SAMPLE
            carry = data[usable:]
            if not usable:
                continue
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
            if not self._pacer.wait_until(position + len(samples)):
                return
            yield AudioChunk(samples, position, time.monotonic())
            position += len(samples)
        if self._closed.is_set():
            return  # stopped, not ended: the pipeline's own flush closes the utterance
        # Stdin ends abruptly; trailing silence lets the VAD close the last utterance.
        for start in range(position, position + self._tail_samples, FRAME_SAMPLES):
            yield AudioChunk(np.zeros(FRAME_SAMPLES, np.float32), start, time.monotonic())

    def close(self) -> None:
        """End chunks() promptly, even while it waits for input (safe from any thread)."""
        self._closed.set()
        self._pacer.stop()
        with self._lock:
            if self._reader is not None:
                self._reader.interrupt()

    def _blocks(self) -> Iterator[bytes]:
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            # An in-memory stream never blocks: plain reads, close() checked between them.
            while not self._closed.is_set() and (block := self._stream.read(_BLOCK)):
                yield block
            return
        reader = InterruptibleReader(fd, "raw PCM input", owns_fd=False)
        with self._lock:
            self._reader = reader
        try:
            while not self._closed.is_set() and (block := reader.read(_BLOCK)):
                yield block
        finally:
            with self._lock:
                self._reader = None
            reader.close()
