"""Speech recognizers: engines that turn speech segments into partial and final text."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class HypothesisKind(enum.Enum):
    PARTIAL = "partial"
    FINAL = "final"


@dataclass(frozen=True)
class Hypothesis:
    """What a recognizer believes was said in the current utterance so far.

    `stable` is the prefix of `text` the recognizer will not retract (what interim
    translation may use); for a final it equals `text`. `t0`/`t1` are seconds on the
    audio timeline. `translation_en` is set by engines that translate speech to
    English themselves (Whisper's translate task) on finals. `tokens` are the model's
    tokens with their start times on the audio timeline, where the engine gives them.
    A final with empty text and a `reason` says the segment was rejected (no speech,
    hallucination, repetition), so the utterance still ends visibly.
    """

    kind: HypothesisKind
    text: str
    stable: str
    lang: str
    t0: float
    t1: float
    translation_en: str | None = None
    tokens: tuple[tuple[str, float], ...] = ()
    reason: str | None = None  # a final with no text: why the speech was rejected


class Recognizer(Protocol):
    """A streaming recognizer driven by the VAD segmenter.

    begin() opens a speech segment at audio time t0, accept() feeds its samples
    (pipeline format) and may return partials or finals (an engine with its own
    endpointing may close an utterance inside a segment), end() closes the segment
    and returns its final, if any. Engines filter their own failure modes (no final
    from noise).
    """

    def begin(self, t0: float) -> None: ...

    def accept(self, samples: np.ndarray) -> list[Hypothesis]: ...

    def end(self) -> list[Hypothesis]: ...

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        """Restrict language identification; `turns`: a conversation (people alternate)."""
        ...


@runtime_checkable
class SpeechTranslator(Protocol):
    """A recognizer that also translates speech to English itself (Whisper's translate
    task). The pipeline publishes the transcript first, then asks for the English of the
    same audio, so `asr.final` never waits for a translation."""

    def speech_translation_due(self, final: Hypothesis) -> bool:
        """Whether translate_speech() should run for this final (a plan needs it)."""
        ...

    def translate_speech(self) -> str | None:
        """English translation of the last final's audio, or None if it failed."""
        ...


@runtime_checkable
class Resumable(Protocol):
    """A recognizer whose end() may be taken back: the pipeline decodes the final at the
    first pause (speculatively) and, if the speaker goes on, calls resume() and keeps
    feeding the same utterance."""

    def resume(self) -> None: ...
