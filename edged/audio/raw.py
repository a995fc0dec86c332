"""Raw PCM (SAMPLE_RATE mono s16le) from a byte stream such as stdin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk
from edged.audio.pacing import Pacer

_BYTES_PER_SAMPLE = 2


class RawPcmSource:
    """Reads s16le mono at SAMPLE_RATE from a binary stream until EOF."""

    def __init__(self, stream: BinaryIO, realtime: bool = False, tail_silence: float = 1.0) -> None:
        self._stream = stream
        self._pacer = Pacer(realtime)
        self._tail_samples = int(tail_silence * SAMPLE_RATE)

    def chunks(self) -> Iterator[AudioChunk]:
        self._pacer.start()
        position = 0
        carry = b""  # an odd trailing byte: a sample is never split across reads
        while block := self._stream.read(FRAME_SAMPLES * _BYTES_PER_SAMPLE):
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
        # Stdin ends abruptly; trailing silence lets the VAD close the last utterance.
        for start in range(position, position + self._tail_samples, FRAME_SAMPLES):
            yield AudioChunk(np.zeros(FRAME_SAMPLES, np.float32), start, time.monotonic())

    def close(self) -> None:
        self._pacer.stop()
