"""Punctuation and casing for recognizers whose output has neither.

Streaming zipformers spell words in capitals without punctuation ("HOW ARE YOU"), which
reads badly and translates worse. Finals go through sherpa-onnx's online punctuation model
(a CNN-BiLSTM for English that restores case and adds , . ?) when its bundle is installed;
otherwise, and for the languages that model does not know, a plain rule: lower-case
all-capital text, capitalise the first letter (and English "I"), end with a full stop.
Partials only get the casing rule, so that they read like the final they grow into.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Protocol

from edged.errors import ModelError

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_END_MARKS = ".!?\u2026\u3002\uff01\uff1f"  # and the CJK full stop, ! and ?
_ENGLISH_I = re.compile(r"\bi\b")
# The languages of a punctuation bundle given by path (no catalogue entry to say): the only
# online (CNN-BiLSTM) punctuation model sherpa-onnx publishes is English.
PUNCTUATION_LANGUAGES = ("en",)


class Punctuator(Protocol):
    """Turns raw recognizer text into readable text."""

    def partial(self, text: str, lang: str) -> str: ...

    def final(self, text: str, lang: str) -> str: ...


def _case(text: str, lang: str) -> str:
    text = " ".join(text.split())
    if text.upper() == text and any(ch.isalpha() for ch in text) and not _CJK.search(text):
        text = text.lower()
    elif _CJK.search(text):
        # bilingual models spell the Latin words in capitals between Chinese characters
        text = re.sub(r"[A-Z][A-Z']+", lambda m: m.group().lower(), text)
    if lang == "en":
        text = _ENGLISH_I.sub("I", text)
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


class SentenceCase:
    """The fallback: sentence case and a closing full stop; no model."""

    def partial(self, text: str, lang: str) -> str:
        return _case(text, lang)

    def final(self, text: str, lang: str) -> str:
        text = _case(text, lang)
        if not text or text[-1] in _END_MARKS:
            return text
        return text + ("。" if _CJK.search(text[-1]) else ".")


class SherpaPunctuator:
    """sherpa-onnx OnlinePunctuation (CNN-BiLSTM) on finals of its languages; SentenceCase
    for partials and for every other language.

    `languages` are the punctuation model's own (its bundle's), never the recognizer's: the
    model would split a French final with its English vocabulary and punctuate it in English.
    """

    def __init__(
        self, bundle: Path, languages: tuple[str, ...] = PUNCTUATION_LANGUAGES, threads: int = 1
    ):
        import sherpa_onnx

        model = _first(bundle, ("model.int8.onnx", "model.onnx"))
        vocab = bundle / "bpe.vocab"
        if not vocab.is_file():
            raise ModelError(f"{vocab}: file missing from the punctuation bundle; reinstall it")
        _check_model(model)
        started = time.monotonic()
        try:
            config = sherpa_onnx.OnlinePunctuationConfig(
                model_config=sherpa_onnx.OnlinePunctuationModelConfig(
                    cnn_bilstm=str(model), bpe_vocab=str(vocab), num_threads=threads
                )
            )
            self._model = sherpa_onnx.OnlinePunctuation(config)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{model}: sherpa-onnx cannot load it ({exc})") from exc
        self.languages = languages
        self._fallback = SentenceCase()
        log.info(
            "punctuation model loaded from %s in %d ms", model, (time.monotonic() - started) * 1e3
        )

    def partial(self, text: str, lang: str) -> str:
        return self._fallback.partial(text, lang)

    def final(self, text: str, lang: str) -> str:
        if lang not in self.languages or not text.strip():
            return self._fallback.final(text, lang)
        # The model expects lower-case words; it restores the case itself.
        punctuated = self._model.add_punctuation_with_case(" ".join(text.lower().split()))
        if lang == "en":
            punctuated = _ENGLISH_I.sub("I", punctuated)
        if punctuated and punctuated[0].isalpha():
            punctuated = punctuated[0].upper() + punctuated[1:]
        if punctuated and punctuated[-1] not in _END_MARKS:
            punctuated += "."
        return punctuated


def load_punctuator(
    bundle: Path | None, languages: tuple[str, ...] = PUNCTUATION_LANGUAGES, threads: int = 1
) -> Punctuator:
    """The punctuation model of `bundle` if given, else the sentence-case rule; `languages`
    are the languages of the punctuation bundle (its catalogue entry), not the recognizer's."""
    if bundle is None:
        return SentenceCase()
    if not bundle.is_dir():
        raise ModelError(f"punctuation bundle {bundle} is not installed")
    return SherpaPunctuator(bundle, languages, threads)


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        f"{folder / names[-1]}: file missing from the punctuation bundle; reinstall it"
    )


def _check_model(model: Path) -> None:
    """sherpa-onnx exit()s on a model without these keys; refuse it here instead."""
    from edged.onnxinfo import read_onnx_info

    keys = ("COMMA", "PERIOD", "QUESTION", "UPPER", "CAP", "MIX_CASE")
    missing = [k for k in keys if k not in read_onnx_info(model).metadata]
    if missing:
        raise ModelError(
            f"{model}: metadata lacks {', '.join(missing)}: not a sherpa-onnx online "
            f"punctuation (CNN-BiLSTM) model"
        )
