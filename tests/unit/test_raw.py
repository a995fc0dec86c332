"""RawPcmSource: s16le from a stream, and close() ending a read blocked on an idle pipe."""

from __future__ import annotations

import io
import os
import threading

import numpy as np

from edged.audio import SAMPLE_RATE
from edged.audio.raw import RawPcmSource


def pcm(samples: np.ndarray) -> bytes:
    return (samples * 32767).astype("<i2").tobytes()


def test_in_memory_stream_is_read_to_the_end_then_tail_silence() -> None:
    signal = np.full(1000, 0.25, np.float32)
    chunks = list(RawPcmSource(io.BytesIO(pcm(signal) + b"\x01"), tail_silence=0.1).chunks())
    audio = np.concatenate([c.samples for c in chunks])
    assert np.allclose(audio[:1000], 0.25, atol=1e-4)
    assert not audio[1000:].any() and len(audio) >= 1000 + 0.1 * SAMPLE_RATE


def test_close_wakes_a_read_blocked_on_an_idle_pipe() -> None:
    read_end, write_end = os.pipe()
    got_audio = threading.Event()
    chunks = []
    with os.fdopen(read_end, "rb") as stream:
        source = RawPcmSource(stream, tail_silence=1.0)

        def consume() -> None:
            for chunk in source.chunks():
                chunks.append(chunk)
                got_audio.set()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        os.write(write_end, pcm(np.full(512, 0.5, np.float32)))  # then the writer goes idle
        assert got_audio.wait(10)
        source.close()
        thread.join(10)
        alive = thread.is_alive()
        os.close(write_end)
    assert not alive, "close() did not wake the blocked read"
    # Stopped, not ended: no trailing silence is invented after a close().
    assert sum(len(c.samples) for c in chunks) == 512


def test_eof_on_a_pipe_ends_the_stream() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, pcm(np.zeros(600, np.float32)))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        chunks = list(RawPcmSource(stream, tail_silence=0).chunks())
    assert sum(len(c.samples) for c in chunks) == 600
