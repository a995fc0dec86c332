"""Router: which engine (or two, through English) translates each pair, decided up front."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from edged.errors import ConfigError, EngineError
from edged.mt.router import Router, Translation, TranslationPlan, WhisperSpeechTranslation


class TaggingTranslator:
    """A fake translator over fixed pairs: marks text with its name and direction."""

    def __init__(self, name: str, pairs: Iterable[tuple[str, str]]) -> None:
        self.name = name
        self._pairs = set(pairs)
        self.calls: list[tuple[str, str, str]] = []
        self.loaded: list[tuple[str, str]] = []
        self.closed = 0

    def pairs(self) -> set[tuple[str, str]]:
        return set(self._pairs)

    def translate(self, text: str, src: str, tgt: str) -> str:
        assert (src, tgt) in self._pairs
        self.calls.append((text, src, tgt))
        return f"{self.name}[{src}>{tgt}]({text})"

    def load(self, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        self.loaded.extend(pairs or ())

    def close(self) -> None:
        self.closed += 1


def engines() -> dict[str, TaggingTranslator]:
    return {
        "ct2": TaggingTranslator("ct2", [("es", "en"), ("en", "de"), ("de", "en")]),
        "apertium": TaggingTranslator(
            "apertium", [("es", "en"), ("en", "es"), ("es", "ca"), ("ca", "es")]
        ),
    }


def test_same_language_is_identity() -> None:
    plan = Router(engines(), ["ct2", "apertium"]).plan("es", "es")
    assert plan.hops == () and plan.engine == "identity"
    assert plan.translate("hola").text == "hola"


def test_direct_pair_follows_preference_order() -> None:
    tr = engines()
    assert Router(tr, ["ct2", "apertium"]).plan("es", "en").engine == "ct2"
    router = Router(tr, ["apertium", "ct2"])
    assert router.plan("es", "en").translate("hola") == Translation(
        "apertium[es>en](hola)", "apertium"
    )


def test_direct_pair_beats_pivot_even_from_a_later_engine() -> None:
    plan = Router(engines(), ["ct2", "apertium"]).plan("es", "ca")
    assert plan.engine == "apertium" and len(plan.hops) == 1


def test_pivot_through_english_mixes_engines() -> None:
    tr = engines()
    plan = Router(tr, ["ct2", "apertium"]).plan("de", "es")
    assert plan.engine == "ct2+apertium via en"
    assert [(h.engine, h.src, h.tgt) for h in plan.hops] == [
        ("ct2", "de", "en"),
        ("apertium", "en", "es"),
    ]
    assert plan.translate("hallo").text == "apertium[en>es](ct2[de>en](hallo))"


def test_pivot_with_one_engine_names_it_once() -> None:
    tr = {"apertium": TaggingTranslator("apertium", [("ca", "en"), ("en", "fr")])}
    assert Router(tr, ["apertium"]).plan("ca", "fr").engine == "apertium via en"


def test_no_path_is_a_config_error_naming_pair_and_installed() -> None:
    router = Router(engines(), ["ct2", "apertium", "whisper"])
    with pytest.raises(ConfigError) as info:
        router.plan("fr", "de", key="mt.targets")
    message = str(info.value)
    assert "fr->de" in message and "mt.targets" in message
    assert "ct2: de->en, en->de, es->en" in message
    assert "not available: whisper" in message


def test_check_reports_every_missing_pair_at_once() -> None:
    router = Router(engines(), ["ct2", "apertium"])
    with pytest.raises(ConfigError) as info:
        router.check(["es", "fr", "it"], ["en"])
    assert "fr->en, it->en" in str(info.value)
    plans = router.check(["es", "de", "en"], ["en", "es"])
    assert [p.engine for p in plans] == [
        "ct2",
        "identity",
        "ct2",
        "ct2+apertium via en",
        "identity",
        "apertium",
    ]


def test_engines_outside_the_order_are_not_used() -> None:
    router = Router(engines(), ["apertium"])
    assert router.find("de", "en") is None
    assert router.find("es", "en") is not None


def whisper_router(order: list[str], tr: dict[str, TaggingTranslator] | None = None) -> Router:
    translators: dict[str, object] = dict(tr or engines())
    translators["whisper"] = WhisperSpeechTranslation(["en", "es", "de", "fr"])
    return Router(translators, order)  # type: ignore[arg-type]


def test_whisper_serves_speech_to_english_with_callers_text() -> None:
    plan = whisper_router(["whisper", "ct2", "apertium"]).plan("fr", "en")
    assert plan.engine == "whisper" and plan.uses_whisper
    assert plan.translate("bonjour", english="hello").text == "hello"
    # a partial has no Whisper translation, and nothing else serves fr->en
    assert not plan.serves_text
    with pytest.raises(EngineError, match="fr->en"):
        plan.translate("bonjour")


def test_whisper_plan_falls_back_to_text_engines_without_english() -> None:
    router = whisper_router(["whisper", "ct2", "apertium"])
    plan = router.plan("es", "en")
    assert plan.engine == "whisper" and plan.serves_text
    assert plan.text_plan is not None and plan.text_plan.engine == "ct2"
    assert plan.translate("hola", english="hello") == Translation("hello", "whisper")
    fallback = plan.translate("hola")
    assert fallback.text == "ct2[es>en](hola)" and fallback.engine == "ct2"


def test_whisper_can_start_a_pivot_but_never_end_one() -> None:
    router = whisper_router(["whisper", "apertium"])
    plan = router.plan("fr", "es")
    assert plan.engine == "whisper+apertium via en"
    assert plan.translate("bonjour", english="hello").text == "apertium[en>es](hello)"
    assert router.find("en", "fr") is None  # whisper does not serve en->x


def test_text_only_plans_skip_whisper() -> None:
    router = whisper_router(["whisper", "ct2", "apertium"])
    assert router.plan("es", "en", whisper=False).engine == "ct2"
    assert router.find("fr", "en", whisper=False) is None


def test_blank_text_calls_no_engine() -> None:
    tr = engines()
    plan = Router(tr, ["ct2", "apertium"]).plan("de", "es")
    assert plan.translate("  ").text == ""
    assert tr["ct2"].calls == [] and tr["apertium"].calls == []


def test_whisper_pseudo_engine_refuses_text() -> None:
    whisper = WhisperSpeechTranslation(["es", "en"])
    assert whisper.pairs() == {("es", "en")}
    with pytest.raises(EngineError, match="translation_en"):
        whisper.translate("hola", "es", "en")


def test_load_asks_each_engine_once_for_the_pairs_it_serves() -> None:
    tr = engines()
    router = whisper_router(["whisper", "ct2", "apertium"], tr)
    plans = router.check(["es", "de"], ["en", "es"])
    router.load(plans)
    assert sorted(tr["ct2"].loaded) == [("de", "en"), ("es", "en")]
    assert sorted(tr["apertium"].loaded) == [("en", "es")]


def test_close_closes_each_translator_once() -> None:
    tr = engines()
    shared = {"ct2": tr["ct2"], "also": tr["ct2"], "apertium": tr["apertium"]}
    Router(shared, ["ct2"]).close()  # type: ignore[arg-type]
    assert tr["ct2"].closed == 1 and tr["apertium"].closed == 1


def test_plans_are_cached() -> None:
    router = Router(engines(), ["ct2", "apertium"])
    first: TranslationPlan = router.plan("de", "es")
    assert router.plan("de", "es") is first
