"""Speech synthesizers: text in a language to mono float32 audio."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class Synthesizer(Protocol):
    """Speaks text in the languages it reports, sentence by sentence."""

    sample_rate: int

    def languages(self) -> set[str]: ...

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at `sample_rate`, one sentence at a time."""
        ...


class Voices:
    """The synthesizer for each language: a neural voice where one is installed, else the
    fallback (espeak-ng) where it speaks the language."""

    def __init__(
        self, voices: dict[str, tuple[str, Synthesizer]], fallback: Synthesizer | None
    ) -> None:
        self._voices = voices
        self._fallback = fallback

    def for_language(self, lang: str) -> tuple[str, Synthesizer] | None:
        """(voice name, synthesizer) for `lang`, or None when nothing can speak it."""
        if lang in self._voices:
            return self._voices[lang]
        if self._fallback is not None and lang in self._fallback.languages():
            return f"espeak-ng:{lang}", self._fallback
        return None
