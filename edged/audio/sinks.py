"""Where synthesized speech goes when there is no speaker: a WAV file, or nowhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from edged.audio.wavwrite import write_wav
from edged.errors import AudioError


class WavFileSink:
    """Collects every utterance's speech into one 16-bit WAV at the first voice's rate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parts: list[np.ndarray] = []
        self._rate: int | None = None
        try:  # fail now, before any model loads, if the file cannot be written
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:
            raise AudioError(f"{path}: cannot write: {exc.strerror}") from exc

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        if self._rate is None:
            self._rate = sample_rate
        if sample_rate != self._rate:
            samples = soxr.resample(samples, sample_rate, self._rate)
        self._parts.append(np.asarray(samples, dtype=np.float32))

    def close(self) -> None:
        audio = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        write_wav(self.path, audio, self._rate or 22050)


class NullSink:
    """Discards speech (TTS measured but not heard)."""

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        pass

    def close(self) -> None:
        pass
