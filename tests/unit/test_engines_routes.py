"""Engines.translate and Engines.retarget over a router that leaves pairs unserved."""

from __future__ import annotations

import pytest
from test_mt_router import TaggingTranslator

from edged.asr import Hypothesis, HypothesisKind
from edged.engines import Engines
from edged.errors import ConfigError
from edged.mt.router import Router, WhisperSpeechTranslation


class FakeRecognizer:
    """Only what retarget touches: the languages that need Whisper's speech->English."""

    speech_translation: frozenset[str] = frozenset()


def engines() -> Engines:
    apertium = TaggingTranslator(
        "apertium", [("fr", "es"), ("es", "fr"), ("es", "en"), ("en", "es")]
    )
    translators = {"apertium": apertium, "whisper": WhisperSpeechTranslation(["fr", "de"])}
    router = Router(translators, ["ct2", "apertium", "whisper"])  # type: ignore[arg-type]
    return Engines(None, FakeRecognizer(), router, None)  # type: ignore[arg-type]


def hypothesis(lang: str, text: str, english: str | None = None, final: bool = True) -> Hypothesis:
    kind = HypothesisKind.FINAL if final else HypothesisKind.PARTIAL
    return Hypothesis(kind, text, text, lang, 0.0, 1.0, english)


def test_an_unserved_pair_is_skipped_not_an_error() -> None:
    e = engines()
    assert e.translate(hypothesis("ko", "annyeong"), "fr") is None  # ko->fr: no route
    assert e.translate(hypothesis("fr", "salut"), "es") == ("apertium[fr>es](salut)", "apertium")
    assert e.translate(hypothesis("de", "hallo", "hello"), "fr") == (
        "apertium[es>fr](apertium[en>es](hello))",
        "whisper+apertium via en,es",
    )
    assert e.translate(hypothesis("de", "hallo", final=False), "fr") is None  # speech only


def test_retarget_serves_what_it_can_and_names_what_it_cannot() -> None:
    e = engines()
    coverage = e.retarget(("fr", "de", "ko"), ("en", "fr"))
    assert [(m.src, m.tgt) for m in coverage.unserved] == [("ko", "en"), ("ko", "fr")]
    assert coverage.warning("targets") is not None
    recognizer = e.recognizer
    assert isinstance(recognizer, FakeRecognizer)
    assert recognizer.speech_translation == frozenset({"fr", "de"})
    with pytest.raises(ConfigError, match="targets: no translation path for de->ca, ko->ca"):
        e.retarget(("de", "ko"), ("ca",))
    assert recognizer.speech_translation == frozenset({"fr", "de"})  # a refusal changes nothing
