"""Conversion of any input audio to the pipeline format (SAMPLE_RATE, mono, float32)."""

from __future__ import annotations

import numpy as np
import soxr

from edged.audio import SAMPLE_RATE


def to_pipeline_format(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mix (frames, channels) or (frames,) audio to mono float32 and resample to SAMPLE_RATE."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if rate != SAMPLE_RATE and len(mono):
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return mono


class StreamResampler:
    """Chunk-by-chunk resampling for live sources (keeps filter state across chunks)."""

    def __init__(self, rate: int, channels: int) -> None:
        self._channels = channels
        self._stream = (
            soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            if rate != SAMPLE_RATE
            else None
        )

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Interleaved float32 frames in, pipeline-format samples out."""
        mono = samples.reshape(-1, self._channels).mean(axis=1) if self._channels > 1 else samples
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono, last=last)
