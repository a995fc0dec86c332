"""libespeak-ng for real: Piper-style phonemes and the formant fallback voice.

Uses the system library (Debian espeak-ng) unless a test is about the installed bundle.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.errors import ConfigError, ModelError
from edged.store import default_models_dir
from edged.tts.espeak import DATA_DIR, LIBRARY_FILE, EspeakLibrary, EspeakSynthesizer
from edged.tts.phonemes import FIRST_SYMBOLS, MAX_SYMBOLS, Phonemizer, codepoints

ESPEAK_BUNDLE = "espeak-ng-data"


@pytest.fixture(scope="module")
def espeak() -> EspeakLibrary:
    return EspeakLibrary()


@pytest.fixture(scope="module")
def phonemizer(espeak: EspeakLibrary) -> Phonemizer:
    return Phonemizer(espeak)


@pytest.fixture(scope="module")
def fallback(espeak: EspeakLibrary) -> EspeakSynthesizer:
    return EspeakSynthesizer(espeak)


def test_phonemes_keep_punctuation_and_are_ipa(phonemizer: Phonemizer) -> None:
    assert phonemizer.phonemize("Hello, world.", "en-us") == ["həlˈoʊ, wˈɜːld."]  # noqa: RUF001


def test_one_phoneme_sentence_per_sentence(phonemizer: Phonemizer) -> None:
    sentences = phonemizer.phonemize("Ever tried. Ever failed! No matter? Try again", "en-us")
    assert len(sentences) == 4
    assert [s[-1] for s in sentences[:3]] == [".", "!", "?"]
    assert sentences[0].startswith("ˈɛvɚ")  # noqa: RUF001


def test_phonemes_are_nfd_and_clauses_keep_commas(phonemizer: Phonemizer) -> None:
    (sentence,) = phonemizer.phonemize("Très bien, merci.", "fr")
    assert sentence == unicodedata.normalize("NFD", sentence)
    assert "\u0303" in sentence  # the nasal tilde of "bien", decomposed
    assert ", " in sentence
    assert codepoints("ɛ̃") == [0x25B, 0x303]


def test_a_long_sentence_is_cut_at_its_clauses(phonemizer: Phonemizer) -> None:
    # One call per piece: synthesis memory grows with the audio of a call (MAX_SYMBOLS).
    clause = "where spend to return to the neighbouring court"
    text = ", ".join([clause] * 6) + "."
    pieces = phonemizer.phonemize(text, "en-us")
    (whole,) = phonemizer.phonemize(clause + ".", "en-us")
    assert len(pieces) > 1 and all(p.endswith(",") for p in pieces[:-1]), pieces
    assert pieces[-1].endswith(".")
    assert all(len(p) <= MAX_SYMBOLS for p in pieces)
    assert " ".join(pieces).count(whole[:-1]) == 6  # every clause, none lost or split


def test_a_long_clause_is_cut_between_words(phonemizer: Phonemizer) -> None:
    text = "The train to the airport leaves at half past nine from platform number four."
    pieces = phonemizer.phonemize(text, "en-us")
    whole = " ".join(pieces)
    assert len(pieces) > 1 and all(len(p) <= MAX_SYMBOLS for p in pieces), pieces
    assert whole.endswith(".") and whole.count(" ") == text.count(" ")  # no word lost
    assert min(map(len, pieces)) > MAX_SYMBOLS // 3  # near-equal, no stub at the end


def test_the_first_clause_is_its_own_piece_when_long_enough(phonemizer: Phonemizer) -> None:
    # The listener hears the first clause while the rest is synthesized (FIRST_SYMBOLS).
    text = "In the morning we went to the market, and then we had lunch, with friends."
    first, rest = phonemizer.phonemize(text, "en-us")
    assert first.endswith(",") and len(first) >= FIRST_SYMBOLS
    assert rest.endswith(".") and ", " in rest  # only the first piece is cut early
    # a short first clause stays with its sentence
    assert len(phonemizer.phonemize("Yes, I think so.", "en-us")) == 1


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...", "?!", "\0"])
def test_blank_text_has_no_phonemes(phonemizer: Phonemizer, text: str) -> None:
    assert phonemizer.phonemize(text, "en-us") == []


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_phonemizes_and_clauses_cover_it(espeak: EspeakLibrary, text: str) -> None:
    clauses = espeak.clauses(text, "en-us")
    if text.replace("\0", " ").strip():
        assert "".join(c.text for c in clauses) == text.replace("\0", " ")
    for sentence in Phonemizer(espeak).phonemize(text, "en-us"):
        assert sentence and sentence == sentence.strip(" ")


def test_phonemizer_is_safe_from_several_threads(phonemizer: Phonemizer) -> None:
    texts = {
        "en-us": "The weather is nice today, isn't it?",
        "es": "Hoy hace buen tiempo, ¿verdad?",
        "de": "Heute ist schönes Wetter, nicht wahr?",
    }
    expected = {voice: phonemizer.phonemize(text, voice) for voice, text in texts.items()}
    mismatches: list[str] = []

    def work(voice: str) -> None:
        for _ in range(50):
            if phonemizer.phonemize(texts[voice], voice) != expected[voice]:
                mismatches.append(voice)

    threads = [threading.Thread(target=work, args=(v,)) for v in texts for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not mismatches


def test_unknown_espeak_voice_is_a_config_error(phonemizer: Phonemizer) -> None:
    with pytest.raises(ConfigError, match="xx-nowhere"):
        phonemizer.phonemize("hello", "xx-nowhere")


@pytest.mark.parametrize(
    ("lang", "text"),
    [("es", "Hola, ¿cómo estás? Estoy muy bien."), ("de", "Guten Morgen. Wie geht es dir?")],
)
def test_fallback_speaks_spanish_and_german(
    fallback: EspeakSynthesizer, lang: str, text: str
) -> None:
    chunks = list(fallback.synthesize(text, lang))
    assert len(chunks) == 2  # one per sentence
    for chunk in chunks:
        assert chunk.dtype == np.float32
        seconds = len(chunk) / fallback.sample_rate
        assert 0.5 < seconds < 4.0
        assert float(np.sqrt(np.mean(chunk**2))) > 0.02
        assert float(np.abs(chunk).max()) <= 1.0


def test_fallback_languages_and_speed(espeak: EspeakLibrary, fallback: EspeakSynthesizer) -> None:
    assert {"en", "es", "de", "fr", "it", "pt", "zh"} <= fallback.languages()
    assert len(fallback.languages()) > 90
    assert fallback.voice("en") == "en-us"
    normal = np.concatenate(list(fallback.synthesize("One two three four five.", "en")))
    fast = EspeakSynthesizer(espeak, speed=2.0)
    quick = np.concatenate(list(fast.synthesize("One two three four five.", "en")))
    assert len(quick) < 0.75 * len(normal)


def test_fallback_rejects_unknown_language_and_says_nothing_for_blanks(
    espeak: EspeakLibrary, fallback: EspeakSynthesizer
) -> None:
    with pytest.raises(ConfigError, match="'xx'"):
        list(fallback.synthesize("hello", "xx"))
    assert list(fallback.synthesize("  \n ", "en")) == []
    with pytest.raises(ConfigError, match="speed"):
        EspeakSynthesizer(espeak, speed=0)


def test_bad_library_or_data_paths_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="edged models install"):
        EspeakLibrary(data_dir=tmp_path)
    with pytest.raises(ModelError, match=re.escape(LIBRARY_FILE)):
        EspeakLibrary.from_bundle(tmp_path)
    with pytest.raises(ModelError, match=r"nolib.so"):
        EspeakLibrary(tmp_path / "nolib.so")


def test_installed_bundle_phonemizes_like_the_system_library(phonemizer: Phonemizer) -> None:
    bundle = default_models_dir() / ESPEAK_BUNDLE
    if not (bundle / LIBRARY_FILE).is_file() or not (bundle / DATA_DIR).is_dir():
        pytest.fail(
            f"espeak-ng bundle not installed in {bundle}: run `edged models install default`"
        )
    bundled = Phonemizer(EspeakLibrary.from_bundle(bundle))
    text = "Hello, world. Ever tried? Ever failed!"
    assert bundled.phonemize(text, "en-us") == phonemizer.phonemize(text, "en-us")
    # Alternating between two libraries (two global states) must not mix them up.
    assert bundled.phonemize("Hola.", "es") == phonemizer.phonemize("Hola.", "es")
