"""Ct2Translator on tiny CTranslate2 models built by the test (they copy their input), and the
router mixing it with the real Apertium."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_ct2 import build_tiny_bundle

from edged.errors import EngineError, ModelError
from edged.mt.apertium import DEFAULT_MODES_DIR, ApertiumTranslator
from edged.mt.ct2 import Ct2Bundle, Ct2Family, Ct2Translator
from edged.mt.router import Router, WhisperSpeechTranslation

TEXTS = (
    "hola mundo",
    "enciende la luz del salón",
    "hola, ¿cómo estás? ¡muy bien!",
    "the end. it is late; go home: now",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-ct2")
    return {
        family: build_tiny_bundle(root / family, family) for family in ("marian", "nllb", "m2m100")
    }


@pytest.fixture()
def marian(tiny: dict[str, Path]) -> Iterator[Ct2Translator]:
    translator = Ct2Translator([Ct2Bundle(tiny["marian"], Ct2Family.MARIAN, ("de", "en"))])
    yield translator
    translator.close()


def test_marian_bundle_round_trips_text(marian: Ct2Translator) -> None:
    assert marian.pairs() == {("de", "en")}
    for text in TEXTS:
        assert marian.translate(text, "de", "en") == text


def test_sentences_are_batched_and_rejoined(marian: Ct2Translator) -> None:
    assert marian.translate("the end.   it is late!\ngo home", "de", "en") == (
        "the end. it is late! go home"
    )
    assert marian.translate_batch(["hola mundo", "", "  ", "hola"], "de", "en") == [
        "hola mundo",
        "",
        "",
        "hola",
    ]


def test_unknown_pair_is_an_engine_error(marian: Ct2Translator) -> None:
    with pytest.raises(EngineError, match="no ct2 bundle translates en->de"):
        marian.translate("hello", "en", "de")


@pytest.mark.parametrize("family", ["nllb", "m2m100"])
def test_multilingual_bundle_uses_language_tokens(tiny: dict[str, Path], family: str) -> None:
    bundle = Ct2Bundle.from_meta(tiny[family], ["en", "es", "de", "fr"], {"family": family})
    translator = Ct2Translator([bundle])
    assert ("es", "fr") in translator.pairs() and len(translator.pairs()) == 12
    # the copy model echoes position i of the source: the text comes back whole only if
    # the source language token was put first and the forced target token was dropped
    for text in TEXTS:
        assert translator.translate(text, "es", "fr") == text
    translator.close()


def test_bundle_from_catalogue_meta(tiny: dict[str, Path]) -> None:
    marian = Ct2Bundle.from_meta(
        tiny["marian"], ["es", "en"], {"family": "marian", "pair": "es-en"}
    )
    assert marian.pairs() == {("es", "en")}
    assert (marian.source_spm, marian.target_spm) == ("source.spm", "target.spm")
    nllb = Ct2Bundle.from_meta(tiny["nllb"], ["en", "la"], {"family": "nllb"})
    assert nllb.source_spm == nllb.target_spm == "sentencepiece.bpe.model"
    assert nllb.pairs() == set()  # NLLB has no Latin
    with pytest.raises(ModelError, match=r"meta\.family"):
        Ct2Bundle.from_meta(tiny["nllb"], ["en"], {"family": "opennmt"})


def test_missing_file_is_a_model_error_naming_it(tiny: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "opus-mt-de-en"
    shutil.copytree(tiny["marian"], broken)
    (broken / "target.spm").unlink()
    with pytest.raises(ModelError, match=r"target\.spm.*edged models install opus-mt-de-en"):
        Ct2Translator([Ct2Bundle(broken, Ct2Family.MARIAN, ("de", "en"), name="opus-mt-de-en")])


def test_corrupt_model_is_a_model_error_at_load(tiny: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "corrupt"
    shutil.copytree(tiny["marian"], broken)
    (broken / "model.bin").write_bytes(b"not a model")
    translator = Ct2Translator([Ct2Bundle(broken, Ct2Family.MARIAN, ("de", "en"))])
    assert translator.pairs() == {("de", "en")}  # no model work before load
    with pytest.raises(ModelError, match="does not load"):
        translator.load()


def test_language_missing_from_vocabulary_is_a_model_error(tiny: dict[str, Path]) -> None:
    bundle = Ct2Bundle(
        tiny["nllb"],
        Ct2Family.NLLB,
        ("en", "es", "it"),
        "sentencepiece.bpe.model",
        "sentencepiece.bpe.model",
    )
    with pytest.raises(ModelError, match="ita_Latn"):
        Ct2Translator([bundle]).load()
    vocabulary = json.loads((tiny["nllb"] / "shared_vocabulary.json").read_text())
    assert "spa_Latn" in vocabulary and "ita_Latn" not in vocabulary


def test_first_bundle_serving_a_pair_wins(tiny: dict[str, Path]) -> None:
    marian = Ct2Bundle(tiny["marian"], Ct2Family.MARIAN, ("es", "en"), name="opus-mt-es-en")
    nllb = Ct2Bundle.from_meta(tiny["nllb"], ["en", "es"], {"family": "nllb"}, name="nllb")
    translator = Ct2Translator([marian, nllb])
    assert translator.bundle_for("es", "en").name == "opus-mt-es-en"
    assert translator.bundle_for("en", "es").name == "nllb"
    assert translator.translate("hola mundo", "es", "en") == "hola mundo"
    assert translator.translate("hola mundo", "en", "es") == "hola mundo"  # from nllb
    translator.close()


@pytest.fixture()
def apertium() -> Iterator[ApertiumTranslator]:
    if not (DEFAULT_MODES_DIR / "eng-spa.mode").is_file():
        pytest.fail("Apertium eng-spa is not installed: apt-get install apertium apertium-eng-spa")
    translator = ApertiumTranslator()
    yield translator
    translator.close()


def test_router_pivots_from_ct2_into_apertium(
    marian: Ct2Translator, apertium: ApertiumTranslator
) -> None:
    router = Router({"ct2": marian, "apertium": apertium}, ["ct2", "apertium"])
    plan = router.plan("de", "es")
    assert plan.engine == "ct2+apertium via en"
    router.load([plan])
    # the tiny de->en model copies; Apertium then really translates the English
    result = plan.translate("the end.")
    assert result.text == "El fin." and result.engine == "ct2+apertium via en"
    assert router.plan("es", "en").translate("Buenos días.").text == "Good morning."


def test_router_with_whisper_first(marian: Ct2Translator, apertium: ApertiumTranslator) -> None:
    translators = {
        "ct2": marian,
        "apertium": apertium,
        "whisper": WhisperSpeechTranslation(["es", "de", "en"]),
    }
    router = Router(translators, ["whisper", "ct2", "apertium"])
    final = router.plan("es", "en")
    assert (
        final.translate("Enciende la luz.", english="Turn on the light.").text
        == "Turn on the light."
    )
    interim = final.translate("Buenos días.")  # a partial: no Whisper text yet
    assert (interim.text, interim.engine) == ("Good morning.", "apertium")
