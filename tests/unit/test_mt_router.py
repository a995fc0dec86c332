"""Router: which engines, through which pivots, translate each pair, decided up front."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from edged.errors import ConfigError, EngineError
from edged.mt.router import (
    MAX_HOPS,
    Coverage,
    MissingPair,
    Provider,
    Router,
    Translation,
    TranslationPlan,
    WhisperSpeechTranslation,
)


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


# --- routes through any pivot ---------------------------------------------------------------


def chain(name: str, *langs: str) -> TaggingTranslator:
    """A translator over the consecutive pairs of `langs`, both directions."""
    steps = list(itertools.pairwise(langs))
    return TaggingTranslator(name, steps + [(b, a) for a, b in steps])


def hops(plan: TranslationPlan | None) -> list[tuple[str, str, str]]:
    assert plan is not None
    return [(h.engine, h.src, h.tgt) for h in plan.hops]


def test_pivots_through_any_language_not_only_english() -> None:
    router = Router({"apertium": chain("apertium", "fr", "es", "en")}, ["apertium"])
    plan = router.plan("fr", "en")
    assert hops(plan) == [("apertium", "fr", "es"), ("apertium", "es", "en")]
    assert plan.engine == "apertium via es"
    assert plan.path == "fr -apertium-> es -apertium-> en"
    assert plan.translate("salut").text == "apertium[es>en](apertium[fr>es](salut))"


def test_two_pivots_are_named_in_order() -> None:
    tr = {"ct2": chain("ct2", "de", "en"), "apertium": chain("apertium", "en", "es", "pt")}
    plan = Router(tr, ["ct2", "apertium"]).plan("de", "pt")
    assert plan.engine == "ct2+apertium via en,es"
    assert hops(plan) == [("ct2", "de", "en"), ("apertium", "en", "es"), ("apertium", "es", "pt")]


def test_fewest_hops_win_over_preferred_engines() -> None:
    tr = {
        "ct2": chain("ct2", "pt", "en", "de", "ca"),  # pt>en>de>ca: three neural hops
        "apertium": chain("apertium", "pt", "es", "ca"),  # pt>es>ca: two rule-based hops
    }
    assert hops(Router(tr, ["ct2", "apertium"]).find("pt", "ca")) == [
        ("apertium", "pt", "es"),
        ("apertium", "es", "ca"),
    ]


def test_on_equal_hops_the_least_preferred_engine_decides() -> None:
    tr = {
        "ct2": TaggingTranslator("ct2", [("de", "en"), ("de", "fr"), ("fr", "it")]),
        "apertium": TaggingTranslator("apertium", [("en", "it")]),
    }
    # via en needs apertium; via fr is neural all the way, though en is the usual pivot
    plan = Router(tr, ["ct2", "apertium"]).find("de", "it")
    assert hops(plan) == [("ct2", "de", "fr"), ("ct2", "fr", "it")]
    # with apertium preferred, a route that uses it is no worse than one that does not
    plan = Router(tr, ["apertium", "ct2"]).find("de", "it")
    assert hops(plan) == [("ct2", "de", "en"), ("apertium", "en", "it")]


def test_english_is_the_pivot_of_choice_on_a_tie_then_the_code() -> None:
    legs = [("gl", "pt"), ("pt", "ca"), ("gl", "es"), ("es", "ca")]
    with_english = {"apertium": TaggingTranslator("apertium", [*legs, ("gl", "en"), ("en", "ca")])}
    assert Router(with_english, ["apertium"]).plan("gl", "ca").engine == "apertium via en"
    without = {"apertium": TaggingTranslator("apertium", legs)}
    assert Router(without, ["apertium"]).plan("gl", "ca").engine == "apertium via es"


def test_routes_longer_than_max_hops_are_not_taken() -> None:
    langs = ["a0", "a1", "a2", "a3", "a4", "a5"][: MAX_HOPS + 2]
    router = Router({"apertium": chain("apertium", *langs)}, ["apertium"])
    assert len(router.plan(langs[0], langs[MAX_HOPS]).hops) == MAX_HOPS
    assert router.find(langs[0], langs[MAX_HOPS + 1]) is None


def test_each_hop_takes_the_preferred_engine_serving_it() -> None:
    tr = {
        "ct2": TaggingTranslator("ct2", [("es", "en")]),
        "apertium": TaggingTranslator("apertium", [("fr", "es"), ("es", "en")]),
    }
    assert Router(tr, ["ct2", "apertium"]).plan("fr", "en").engine == "apertium+ct2 via es"
    assert Router(tr, ["apertium", "ct2"]).plan("fr", "en").engine == "apertium via es"


def test_whisper_beats_a_text_route_with_more_hops_whatever_the_order() -> None:
    tr = {"apertium": chain("apertium", "fr", "es", "en")}
    plan = whisper_router(["ct2", "apertium", "whisper"], tr).plan("fr", "en")
    assert plan.engine == "whisper" and plan.uses_whisper
    assert plan.text_plan is not None and plan.text_plan.engine == "apertium via es"
    assert plan.translate("salut").text == "apertium[es>en](apertium[fr>es](salut))"


def test_whisper_on_equal_hops_goes_by_the_order() -> None:
    tr = {"apertium": chain("apertium", "es", "en")}
    assert whisper_router(["apertium", "whisper"], tr).plan("es", "en").engine == "apertium"
    assert whisper_router(["whisper", "apertium"], tr).plan("es", "en").engine == "whisper"


def test_whisper_does_not_detour_through_english() -> None:
    tr = {"apertium": chain("apertium", "fr", "es", "en")}
    router = whisper_router(["whisper", "apertium"], tr)
    assert router.plan("fr", "es").engine == "apertium"  # not whisper+apertium via en
    plan = router.plan("de", "es")  # de is heard, and only Whisper reaches English from it
    assert plan.engine == "whisper+apertium via en" and not plan.serves_text


def test_whisper_is_limited_to_max_hops_too() -> None:
    tr = {"apertium": chain("apertium", "en", "es", "pt", "gl")}
    router = whisper_router(["whisper", "apertium"], tr)
    assert len(router.plan("de", "pt").hops) == MAX_HOPS
    assert router.find("de", "gl") is None


# --- pairs without a route: named, with what would provide them --------------------------


def providers() -> list[Provider]:
    return [
        Provider("ct2", frozenset({("fr", "en"), ("en", "fr")}), "install opus-fr"),
        Provider("ct2", frozenset({("fr", "de")}), "install opus-fr-de"),
        Provider("apertium", frozenset({("fr", "es"), ("es", "fr")}), "apt apertium-fr-es"),
        Provider("apertium", frozenset({("it", "es")}), "apt apertium-it-es"),
    ]


def test_missing_pair_names_providers_fewest_hops_first() -> None:
    router = Router(engines(), ["ct2", "apertium"], providers())
    assert router.find("fr", "de") is None
    # opus-fr-de is direct; opus-fr gives fr>en>de; apertium-fr-es gives fr>es>en>de
    assert router.missing_pair("fr", "de") == MissingPair(
        "fr", "de", ("install opus-fr-de", "install opus-fr", "apt apertium-fr-es")
    )
    assert router.missing_pair("ja", "de") == MissingPair("ja", "de", ())
    assert "no catalogue bundle or Debian Apertium package" in str(router.missing_pair("ja", "de"))


def test_a_provider_for_an_engine_outside_the_order_still_gives_a_hint() -> None:
    router = Router(engines(), ["ct2"], providers())
    assert router.missing_pair("it", "en").provides == ("apt apertium-it-es",)


def test_cover_serves_what_it_can_and_names_the_rest() -> None:
    router = Router(engines(), ["ct2", "apertium"], providers())
    coverage = router.cover(["es", "fr", "de"], ["ca", "de"])
    assert isinstance(coverage, Coverage)
    assert [(p.src, p.tgt, p.engine) for p in coverage.plans] == [
        ("es", "ca", "apertium"),
        ("es", "de", "ct2 via en"),
        ("de", "ca", "ct2+apertium via en,es"),
        ("de", "de", "identity"),
    ]
    assert [(m.src, m.tgt) for m in coverage.unserved] == [("fr", "ca"), ("fr", "de")]
    warning = coverage.warning("mt.targets")
    assert warning is not None and "\n" not in warning
    assert warning.startswith("mt.targets: not translated, no route for fr->ca (")
    assert "fr->de (provided by install opus-fr-de or install opus-fr" in warning
    assert coverage.unserved[0].to_json() == {
        "src": "fr",
        "tgt": "ca",
        "provides": ["apt apertium-fr-es", "install opus-fr"],
    }


def test_cover_refuses_a_target_no_candidate_reaches() -> None:
    router = Router(engines(), ["ct2", "apertium"], providers())
    with pytest.raises(ConfigError) as info:
        router.cover(["fr", "it", "es"], ["ja", "en"], key="targets")
    message = str(info.value)
    assert message.startswith("targets: no translation path for fr->ja, it->ja, es->ja (")
    assert "fr->en" not in message  # served targets are not the problem
    # the target's own speakers do not count as reaching it: nothing would be translated
    with pytest.raises(ConfigError, match="fr->de"):
        router.cover(["de", "fr"], ["de"])
    assert router.cover(["de"], ["de"]).unserved == ()  # no other candidate: nothing to refuse


def test_pairs_sharing_hints_are_named_together() -> None:
    router = Router(engines(), ["ct2", "apertium"], providers())
    warning = router.cover(["ja", "zh", "es"], ["en"]).warning()
    assert warning is not None
    assert "ja->en, zh->en (no catalogue bundle" in warning


def test_routes_lists_every_pair_with_a_route() -> None:
    router = whisper_router(["ct2", "apertium", "whisper"])
    listed = {(p.src, p.tgt): p.engine for p in router.routes()}
    assert listed[("de", "es")] == "ct2+apertium via en"
    assert listed[("ca", "de")] == "apertium+ct2 via es,en"
    assert listed[("fr", "en")] == "whisper"
    assert all(src != tgt for src, tgt in listed)
    only = router.routes(["fr"], ["en", "de", "ca"])
    assert [(p.src, p.tgt, p.engine) for p in only] == [
        ("fr", "ca", "whisper+apertium via en,es"),
        ("fr", "de", "whisper+ct2 via en"),
        ("fr", "en", "whisper"),
    ]
