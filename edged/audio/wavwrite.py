"""Write mono float audio to a 16-bit PCM WAV file."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from edged.errors import AudioError


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples in [-1, 1] (clipped outside) as 16-bit mono PCM at sample_rate."""
    if sample_rate <= 0:
        raise AudioError(f"{path}: cannot write a WAV at sample rate {sample_rate}")
    mono = np.asarray(samples, dtype=np.float32).reshape(-1)
    pcm = np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2")
    try:
        # Opening the file first: wave.open(str) leaves a half-built object that complains
        # at garbage collection when the path cannot be created.
        with open(path, "wb") as fh, wave.open(fh, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(int(sample_rate))
            out.writeframes(pcm.tobytes())
    except OSError as exc:
        raise AudioError(f"{path}: cannot write WAV ({exc.strerror or exc})") from exc
