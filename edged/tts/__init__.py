"""Speech synthesizers: text in a language to mono float32 audio."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol, cast

import numpy as np

from edged.errors import EdgedError


class Synthesizer(Protocol):
    """Speaks text in the languages it reports, sentence by sentence."""

    sample_rate: int

    def languages(self) -> set[str]: ...

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at `sample_rate`, one sentence at a time."""
        ...


VoiceLoader = Callable[[], Synthesizer]
"""Builds a synthesizer (loads its model); called once, on first use."""


class Voices:
    """The synthesizer for each language: a neural voice where one is installed, else the
    fallback (espeak-ng) where it speaks the language. Each loads on first use.

    A voice is given as a VoiceLoader (or an already built Synthesizer). Loading a Piper
    voice costs about a second and 60 MB, so a run that never speaks a language never pays
    for its voice; the daemon preload()s the languages it will speak. A voice that fails
    to load raises the same error at every later use without trying again.
    """

    def __init__(
        self,
        voices: Mapping[str, tuple[str, VoiceLoader | Synthesizer]],
        fallback: VoiceLoader | Synthesizer | None,
    ) -> None:
        self._voices = {lang: _Lazy(name, entry) for lang, (name, entry) in voices.items()}
        self._fallback = _Lazy("espeak-ng", fallback) if fallback is not None else None
        self._lock = threading.Lock()  # the TTS stage and a command may ask at once

    def for_language(self, lang: str) -> tuple[str, Synthesizer] | None:
        """(voice name, synthesizer) for `lang`, or None when nothing can speak it; loads
        that voice (or the fallback) if it is not loaded yet."""
        with self._lock:
            if lang in self._voices:
                voice = self._voices[lang]
                return voice.name, voice.get()
            if self._fallback is not None:
                fallback = self._fallback.get()
                if lang in fallback.languages():
                    return f"espeak-ng:{lang}", fallback
        return None

    def speaks(self, lang: str) -> bool:
        """Whether some voice can speak `lang`, without loading a neural voice (a command
        handler asks this; it must not wait a second for a Piper model)."""
        with self._lock:
            if lang in self._voices:
                return True
            return self._fallback is not None and lang in self._fallback.get().languages()

    def preload(self, langs: Iterable[str]) -> None:
        """Load now the voices that will speak `langs`, so the first utterance is not slower.
        A voice that fails raises its ModelError here."""
        for lang in langs:
            self.for_language(lang)

    def loaded(self) -> list[str]:
        """Names of the voices loaded so far (the fallback as "espeak-ng")."""
        lazies = [*self._voices.values(), *([self._fallback] if self._fallback else [])]
        return [lazy.name for lazy in lazies if lazy.is_loaded]


class _Lazy:
    """One voice: its loader until first use, then the synthesizer (or the load error)."""

    def __init__(self, name: str, entry: VoiceLoader | Synthesizer) -> None:
        self.name = name
        self._synthesizer: Synthesizer | None = None
        self._loader: VoiceLoader | None = None
        if hasattr(entry, "synthesize"):
            self._synthesizer = cast(Synthesizer, entry)
        else:
            self._loader = cast(VoiceLoader, entry)
        self._error: EdgedError | None = None

    @property
    def is_loaded(self) -> bool:
        return self._synthesizer is not None

    def get(self) -> Synthesizer:
        if self._synthesizer is not None:
            return self._synthesizer
        if self._error is not None:
            raise self._error
        assert self._loader is not None
        try:
            self._synthesizer = self._loader()
        except EdgedError as exc:
            self._error = exc
            raise
        return self._synthesizer
