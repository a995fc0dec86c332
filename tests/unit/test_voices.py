"""Voices load on first use (issue 12, point 3): fakes that satisfy Synthesizer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from edged.errors import ModelError
from edged.tts import Synthesizer, Voices


class FakeVoice:
    sample_rate = 16000

    def __init__(self, langs: set[str]) -> None:
        self._langs = langs

    def languages(self) -> set[str]:
        return self._langs

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        yield np.zeros(10, np.float32)


class Loader:
    """Counts its calls; fails with a ModelError when told to."""

    def __init__(self, voice: FakeVoice, fails: bool = False) -> None:
        self.voice, self.fails, self.calls = voice, fails, 0

    def __call__(self) -> Synthesizer:
        self.calls += 1
        if self.fails:
            raise ModelError("model bundle 'piper-en' does not load (junk)")
        return self.voice


def test_only_the_voice_asked_for_is_loaded() -> None:
    en, de, espeak = Loader(FakeVoice({"en"})), Loader(FakeVoice({"de"})), Loader(FakeVoice({"es"}))
    voices = Voices({"en": ("piper-en", en), "de": ("piper-de", de)}, espeak)
    assert (en.calls, de.calls, espeak.calls) == (0, 0, 0)
    name, synthesizer = voices.for_language("en") or ("", None)
    assert name == "piper-en" and synthesizer is en.voice
    voices.for_language("en")
    assert (en.calls, de.calls, espeak.calls) == (1, 0, 0)
    assert voices.loaded() == ["piper-en"]


def test_the_fallback_serves_its_languages_and_nothing_else() -> None:
    en, espeak = Loader(FakeVoice({"en"}), fails=True), Loader(FakeVoice({"es"}))
    voices = Voices({"en": ("piper-en", en)}, espeak)
    assert voices.for_language("es") == ("espeak-ng:es", espeak.voice)
    assert voices.for_language("ja") is None
    assert en.calls == 0  # a broken voice nobody speaks costs nothing


def test_a_voice_that_fails_raises_every_time_but_loads_once() -> None:
    en = Loader(FakeVoice({"en"}), fails=True)
    voices = Voices({"en": ("piper-en", en)}, None)
    for _ in range(3):
        with pytest.raises(ModelError, match="piper-en"):
            voices.for_language("en")
    assert en.calls == 1


def test_preload_loads_the_spoken_languages_now() -> None:
    en, de = Loader(FakeVoice({"en"})), Loader(FakeVoice({"de"}))
    voices = Voices({"en": ("piper-en", en), "de": ("piper-de", de)}, None)
    voices.preload(["de"])
    assert (en.calls, de.calls) == (0, 1)


def test_already_built_synthesizers_are_accepted() -> None:
    voice = FakeVoice({"en"})
    assert Voices({"en": ("v", voice)}, None).for_language("en") == ("v", voice)


def test_speaks_answers_without_loading_a_neural_voice() -> None:
    en, espeak = Loader(FakeVoice({"en"})), Loader(FakeVoice({"es"}))
    voices = Voices({"en": ("piper-en", en)}, espeak)
    assert voices.speaks("en") and voices.speaks("es") and not voices.speaks("ja")
    assert en.calls == 0
