"""The sherpa recognizer as engines.py builds it from a config: which punctuation languages
and which joiner it gets. The bundles are the tiny models of tests/tiny_sherpa.py given by
path; the punctuation model is the fake CNN-BiLSTM that writes "Do, re, mi?"."""

from __future__ import annotations

from pathlib import Path

import tiny_sherpa as ts

from edged import engines, store
from edged.config import load_config


def sherpa_config(tmp_path: Path, bundle: Path, languages: list[str], extra: str = "") -> Path:
    config = tmp_path / "edged.toml"
    config.write_text(
        f'[asr]\nengine = "sherpa"\nlanguages = {languages!r}\n\n'
        f'[asr.sherpa]\nbundle = "{bundle}"\n{extra}\n'
        f"[mt]\ntargets = {languages[:1]!r}\n\n[tts]\nenabled = false\n",
        encoding="utf-8",
    )
    return config


def test_english_punctuation_model_leaves_french_finals_to_the_rule(
    models_dir: Path, tmp_path: Path
) -> None:
    """Defect 1: with a French recognizer the English punctuation model must not run on
    French finals (it did: engines passed the recognizer's languages as its own)."""
    bundle = ts.build_zipformer2_ctc(tmp_path / "fr-model")
    punct = ts.build_punctuation(tmp_path / "punct")
    config = sherpa_config(tmp_path, bundle, ["fr"], f'punctuation_bundle = "{punct}"\n')
    loaded = engines.prepare(load_config(config)).load()
    try:
        punctuator = loaded.recognizer.punctuator  # type: ignore[attr-defined]
        assert punctuator.final("DO RE MI", "fr") == "Do re mi."  # the sentence-case rule
        assert punctuator.final("DO RE MI", "en") == "Do, re, mi?"  # the model, for English
    finally:
        loaded.close()


def test_punctuation_languages_come_from_the_bundle() -> None:
    """The catalogue's punctuation bundle says which languages it punctuates; a bundle given
    by path counts as English, the only online punctuation model sherpa-onnx publishes."""
    from edged.asr.punct import PUNCTUATION_LANGUAGES

    assert store.load_catalogue().bundle("sherpa-punct-en").languages == ("en",)
    assert PUNCTUATION_LANGUAGES == ("en",)


def test_bundle_by_path_keeps_the_int8_joiner(models_dir: Path, tmp_path: Path) -> None:
    """A bundle directory given by path has no catalogue meta: the int8 joiner stays the
    default (as sherpa-onnx's apps pair it for the 20M and zh-en models)."""
    bundle = ts.build_lstm_transducer(tmp_path / "lstm")
    loaded = engines.prepare(load_config(sherpa_config(tmp_path, bundle, ["en"]))).load()
    try:
        files = loaded.recognizer.bundle.files  # type: ignore[attr-defined]
        assert files["joiner"].name == "joiner-epoch-99-avg-1.int8.onnx"
    finally:
        loaded.close()
