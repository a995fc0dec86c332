"""The sentence-case fallback that readies sherpa output for translation when no
punctuation model is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.asr.punct import SentenceCase, load_punctuator
from edged.errors import ModelError


@pytest.mark.parametrize(
    ("raw", "lang", "final", "partial"),
    [
        ("HOW ARE YOU", "en", "How are you.", "How are you"),
        ("I THINK I'M LATE", "en", "I think I'm late.", "I think I'm late"),
        ("JE SUIS ICI", "fr", "Je suis ici.", "Je suis ici"),
        ("il y a", "fr", "Il y a.", "Il y a"),  # French "y"/"a" stay as they are
        ("McDonald's is open", "en", "McDonald's is open.", "McDonald's is open"),
        ("  DO   RE  ", "en", "Do re.", "Do re"),
        ("is it?", "en", "Is it?", "Is it?"),
        ("你好世界", "zh", "你好世界。", "你好世界"),
        ("你好 HELLO 世界", "zh", "你好 hello 世界。", "你好 hello 世界"),
        ("", "en", "", ""),
    ],
)
def test_sentence_case(raw: str, lang: str, final: str, partial: str) -> None:
    rule = SentenceCase()
    assert rule.final(raw, lang) == final
    assert rule.partial(raw, lang) == partial


@given(st.text(alphabet=st.sampled_from("ABCDEFGHIJ '"), min_size=1, max_size=40))
def test_final_keeps_the_words_and_ends_a_sentence(raw: str) -> None:
    final = SentenceCase().final(raw, "en")
    assert final.casefold().rstrip(".").split() == raw.casefold().split()
    if raw.strip():
        assert final.endswith(".")


def test_no_bundle_means_the_fallback() -> None:
    assert isinstance(load_punctuator(None), SentenceCase)


def test_absent_bundle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not installed"):
        load_punctuator(tmp_path / "sherpa-punct-en")


def test_bundle_without_model(tmp_path: Path) -> None:
    (tmp_path / "bpe.vocab").write_text("<unk>\t0\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"model\.onnx: file missing"):
        load_punctuator(tmp_path)
