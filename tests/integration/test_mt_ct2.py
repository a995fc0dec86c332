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
        Ct2Bundle.from_meta(tiny["nllb"], ["en"], {"family": "bergamot"})


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


# --- the end token, multi-target Marian, Argos (OpenNMT-py) ---------------------------------
# The `spell_end` copy models decode every source `</s>` as " ⁇ " and stop at the end of the
# source, so their output shows how many end tokens reached the model (module tiny_ct2).


@pytest.fixture(scope="module")
def spelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-ct2-spelled")
    return {
        "marian": build_tiny_bundle(root / "marian", "marian", spell_end=True),
        # ct2-opus-mt-converter / ct2-marian-converter write add_source_eos: true
        "marian-eos": build_tiny_bundle(
            root / "marian-eos", "marian", add_source_eos=True, spell_end=True
        ),
        "opennmt": build_tiny_bundle(root / "opennmt", "opennmt"),
    }


@pytest.mark.parametrize("bundle", ["marian", "marian-eos"])
def test_the_source_gets_exactly_one_end_token(spelled: dict[str, Path], bundle: str) -> None:
    meta = {"family": "marian", "pair": "es-en"}
    translator = Ct2Translator([Ct2Bundle.from_meta(spelled[bundle], [], meta)], beam_size=1)
    # one `</s>`: edged's when config.json lacks add_source_eos, CTranslate2's when it has it
    assert translator.translate("hola mundo", "es", "en") == "hola mundo ⁇"
    assert translator.translate("the end. it is late", "es", "en") == "the end. ⁇ it is late ⁇"
    tokens = translator.source_tokens("hola mundo", "es", "en")
    assert len(tokens) == 1 and (tokens[0][-1] == "</s>") is (bundle == "marian")
    translator.close()


def test_argos_opennmt_model_gets_no_end_token(spelled: dict[str, Path]) -> None:
    assert (spelled["opennmt"] / "model" / "model.bin").is_file()  # Argos' layout
    assert (spelled["opennmt"] / "sentencepiece.model").is_file()
    bundle = Ct2Bundle.from_meta(spelled["opennmt"], ["en", "de"], {"family": "opennmt"})
    assert (bundle.model_dir, bundle.source_spm, bundle.target_spm) == (
        "model",
        "sentencepiece.model",
        "sentencepiece.model",
    )
    translator = Ct2Translator([bundle], beam_size=1)
    assert translator.pairs() == {("en", "de")}
    for text in TEXTS:  # argos-translate feeds plain SentencePiece pieces, no `</s>`
        assert translator.translate(text, "en", "de") == text
    assert "</s>" not in translator.source_tokens("hola mundo", "en", "de")[0]
    translator.close()


ROMANCE = {
    "family": "marian-multi",
    "sources": ["en"],
    "target_tokens": {"fr": ">>fr<<", "es": ">>es<<", "it": ">>it<<"},
}


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-ct2-multi") / "m", "marian-multi")


def test_marian_multi_target_puts_the_target_token_first(multi: Path) -> None:
    bundle = Ct2Bundle.from_meta(multi, [], ROMANCE, name="opus-mt-en-ROMANCE")
    assert bundle.languages == ("en", "fr", "es", "it")
    translator = Ct2Translator([bundle])
    assert translator.pairs() == {("en", "fr"), ("en", "es"), ("en", "it")}
    # this copy model skips the first source token: the text comes back whole only if the
    # target token was put before it (and nothing is forced on the target side)
    for text in TEXTS:
        assert translator.translate(text, "en", "fr") == text
    assert translator.source_tokens("hola", "en", "es")[0][0] == ">>es<<"
    assert translator.source_tokens("hola", "en", "it")[0][0] == ">>it<<"
    with pytest.raises(EngineError, match="no ct2 bundle translates fr->en"):
        translator.translate("bonjour", "fr", "en")
    translator.close()


def test_marian_multi_token_missing_from_the_vocabulary(multi: Path) -> None:
    meta = {**ROMANCE, "target_tokens": {"fr": ">>fr<<", "pt": ">>por<<"}}
    with pytest.raises(ModelError, match=r">>por<<.*fix the bundle's languages"):
        Ct2Translator([Ct2Bundle.from_meta(multi, [], meta)]).load()
    with pytest.raises(ModelError, match=r"needs meta\.sources and meta\.target_tokens"):
        Ct2Bundle.from_meta(multi, ["en", "fr"], {"family": "marian-multi"})
    with pytest.raises(ModelError, match=r"meta\.target_tokens must map"):
        Ct2Bundle.from_meta(multi, [], {**ROMANCE, "target_tokens": [">>fr<<"]})


def test_shipped_ct2_bundles_describe_valid_models() -> None:
    from edged import store

    catalogue = store.load_catalogue()
    ct2 = [b for b in catalogue.bundles.values() if b.kind == "mt.ct2"]
    families = set()
    for entry in ct2:
        bundle = Ct2Bundle.from_meta(Path("/models") / entry.name, entry.languages, entry.meta)
        assert bundle.pairs(), entry.name
        families.add(bundle.family)
    assert {Ct2Family.MARIAN, Ct2Family.MARIAN_MULTI, Ct2Family.OPENNMT} <= families
    romance = Ct2Bundle.from_meta(
        Path("/m"), [], catalogue.bundle("opus-mt-en-ROMANCE").meta, "opus-mt-en-ROMANCE"
    )
    assert {("en", "fr"), ("en", "es"), ("en", "pt"), ("en", "it")} <= romance.pairs()


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
