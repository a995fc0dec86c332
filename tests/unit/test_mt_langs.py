"""Language codes: validation of what users type, and each engine's spelling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.errors import ConfigError
from edged.langs import (
    ALIASES,
    LANGUAGES,
    WHISPER_LANGUAGES,
    from_apertium,
    lang_name,
    normalize_lang,
    to_apertium,
    to_flores,
    to_m2m100,
    validate_lang,
)

# The language tokens of Whisper's multilingual tokenizer (base, 99 languages).
WHISPER_TOKENS = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su"
)
WHISPER_99 = WHISPER_TOKENS.split()


def test_every_whisper_language_is_accepted() -> None:
    assert len(WHISPER_99) == 99
    assert set(WHISPER_99) <= WHISPER_LANGUAGES <= set(LANGUAGES)
    for code in WHISPER_99:
        assert validate_lang(code, "asr.languages") == code


def test_case_blanks_and_aliases_are_normalised() -> None:
    assert validate_lang(" ES ", "mt.targets") == "es"
    assert validate_lang("jv", "mt.targets") == "jw"
    assert validate_lang("nb", "mt.targets") == "no"


def test_unknown_code_names_the_key_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        validate_lang("ess", "mt.targets")
    message = str(info.value)
    assert "'ess'" in message and "mt.targets" in message
    assert "expected one of en, es" in message
    assert "did you mean" in message and "'es'" in message


@pytest.mark.parametrize("bad", [None, 3, ["en"], "", "english", "en-US", "e"])
def test_non_codes_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"asr\.languages"):
        validate_lang(bad, "asr.languages")


@given(st.text(max_size=8))
def test_validate_returns_a_known_code_or_raises(text: str) -> None:
    try:
        code = validate_lang(text, "mt.targets")
    except ConfigError as exc:
        assert "mt.targets" in str(exc)
        assert normalize_lang(text) is None
    else:
        assert code in LANGUAGES
        assert code == (ALIASES.get(text.strip().lower()) or text.strip().lower())


@given(st.sampled_from(sorted(LANGUAGES) + sorted(ALIASES)), st.sampled_from(["", " ", "\t"]))
def test_known_codes_in_any_case_round_trip(code: str, pad: str) -> None:
    spelled = pad + code.upper() + pad
    assert validate_lang(spelled, "k") == ALIASES.get(code, code)


def test_engine_codes() -> None:
    assert to_apertium("es") == "spa" and to_apertium("en") == "eng"
    assert from_apertium("spa") == ("es",) and from_apertium("es") == ("es",)
    assert from_apertium("nob") == ("no",) and from_apertium("zlm") == ("ms",)
    assert set(from_apertium("hbs")) == {"hr", "sr", "bs"}
    assert from_apertium("hbs", target=True) == ()
    assert from_apertium("xyz") == ()
    assert to_flores("es") == "spa_Latn" and to_flores("zh") == "zho_Hans"
    assert to_flores("la") is None
    assert to_m2m100("es") == "__es__" and to_m2m100("jw") == "__jv__"
    assert lang_name("de") == "German" and lang_name("??") == "??"


def test_table_is_consistent() -> None:
    iso3 = [lang.iso639_3 for lang in LANGUAGES.values()]
    assert len(iso3) == len(set(iso3)), "two languages share an ISO 639-3 code"
    for code, lang in LANGUAGES.items():
        assert lang.code == code and lang.name
        assert len(lang.iso639_3) == 3
        assert lang.flores is None or lang.flores.count("_") == 1
    assert all(target in LANGUAGES and alias not in LANGUAGES for alias, target in ALIASES.items())
