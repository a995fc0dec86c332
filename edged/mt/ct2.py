"""Neural translation with CTranslate2: OPUS-MT (Marian) pair models, NLLB-200 and M2M-100.

A bundle is a converted model directory (`model.bin`, `config.json`, vocabulary) plus its
SentencePiece models. Marian bundles serve one direction each and take plain source
tokens; the multilingual families serve every pair of their languages and need language
tokens: NLLB `[src_Latn] tokens </s>` with target prefix `[tgt_Latn]`, M2M-100 the same with
`__xx__` tokens. The forced target token comes back as the first output token and is
dropped before detokenizing.

Threads: a `ctranslate2.Translator` is a pool of `inter_threads` replicas (1 here) fed from a
queue, and its Python calls release the GIL, so calls from several threads are safe and
simply wait for each other. edged gives the translation stage its own Ct2Translator anyway.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.errors import EngineError, ModelError
from edged.langs import LANGUAGES, to_flores, to_m2m100

log = logging.getLogger(__name__)

MODEL_FILES = ("model.bin", "config.json")
# Split a transcript into sentences: NMT models are trained on sentences and a bounded
# decoding length per sentence stops a runaway hypothesis early.
_SENTENCE_END = re.compile(
    r"(?<=[.!?\u2026])\s+|(?<=[\u3002\uff01\uff1f])"
)  # CJK full stops need no blank


class Ct2Family(enum.Enum):
    """How a model family marks languages."""

    MARIAN = "marian"  # one direction per model, no language tokens
    NLLB = "nllb"  # FLORES-200 tokens: source `spa_Latn ... </s>`, target prefix `eng_Latn`
    M2M100 = "m2m100"  # `__es__ ... </s>`, target prefix `__en__`


@dataclass(frozen=True)
class Ct2Bundle:
    """An installed CTranslate2 translation bundle: where it is and what it serves."""

    path: Path
    family: Ct2Family
    languages: tuple[str, ...]  # multilingual: every language served; marian: (src, tgt)
    source_spm: str = "source.spm"
    target_spm: str = "target.spm"
    name: str = ""  # the catalogue name, for messages

    def __post_init__(self) -> None:
        if self.family is Ct2Family.MARIAN and len(self.languages) != 2:
            raise ModelError(
                f"ct2 bundle {self.label}: a marian bundle serves one pair, "
                f"got languages {list(self.languages)}"
            )
        unknown = [code for code in self.languages if code not in LANGUAGES]
        if unknown:
            raise ModelError(f"ct2 bundle {self.label}: unknown language code(s) {unknown}")

    @property
    def label(self) -> str:
        return self.name or str(self.path)

    @classmethod
    def from_meta(
        cls, path: Path, languages: Sequence[str], meta: Mapping[str, Any], name: str = ""
    ) -> Ct2Bundle:
        """From a catalogue entry: `meta.family`, for marian `meta.pair = "es-en"`, optional
        `meta.source_spm` / `meta.target_spm` / `meta.spm` (one model for both sides)."""
        label = name or str(path)
        try:
            family = Ct2Family(meta.get("family", "marian"))
        except ValueError:
            allowed = ", ".join(f.value for f in Ct2Family)
            raise ModelError(
                f"ct2 bundle {label}: meta.family {meta.get('family')!r} is not one of {allowed}"
            ) from None
        langs = tuple(languages)
        if family is Ct2Family.MARIAN:
            pair = str(meta.get("pair", "-".join(langs)))
            langs = tuple(pair.split("-"))
        spm_default = "sentencepiece.bpe.model" if family is not Ct2Family.MARIAN else None
        shared = meta.get("spm", spm_default)
        return cls(
            path=path,
            family=family,
            languages=langs,
            source_spm=str(meta.get("source_spm", shared or "source.spm")),
            target_spm=str(meta.get("target_spm", shared or "target.spm")),
            name=name,
        )

    def pairs(self) -> set[tuple[str, str]]:
        """The (src, tgt) pairs this bundle translates."""
        if self.family is Ct2Family.MARIAN:
            return {(self.languages[0], self.languages[1])}
        langs = self.languages
        if self.family is Ct2Family.NLLB:
            langs = tuple(code for code in langs if to_flores(code))
        return {(s, t) for s in langs for t in langs if s != t}

    def check(self) -> None:
        """Raise ModelError naming the first missing file."""
        for filename in (*MODEL_FILES, self.source_spm, self.target_spm):
            if not (self.path / filename).is_file():
                raise ModelError(
                    f"ct2 bundle {self.label}: missing {self.path / filename}; "
                    f"run `edged models install {self.name or '<bundle>'}`"
                )

    def language_token(self, code: str) -> str | None:
        """The token that names `code` for this family (None for marian)."""
        if self.family is Ct2Family.NLLB:
            return to_flores(code)
        if self.family is Ct2Family.M2M100:
            return to_m2m100(code)
        return None


class _LoadedBundle:
    """A bundle's CTranslate2 translator and SentencePiece processors."""

    def __init__(self, bundle: Ct2Bundle, intra_threads: int, compute_type: str) -> None:
        import ctranslate2
        import sentencepiece as spm

        started = time.monotonic()
        self.bundle = bundle
        try:
            self.translator = ctranslate2.Translator(
                str(bundle.path),
                device="cpu",
                compute_type=compute_type,
                intra_threads=intra_threads,
                inter_threads=1,
            )
            self.source_sp = spm.SentencePieceProcessor(
                model_file=str(bundle.path / bundle.source_spm)
            )
            self.target_sp = (
                self.source_sp
                if bundle.target_spm == bundle.source_spm
                else spm.SentencePieceProcessor(model_file=str(bundle.path / bundle.target_spm))
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(
                f"ct2 bundle {bundle.label} at {bundle.path} does not load: {exc}; "
                f"check it with `edged models verify`"
            ) from exc
        self._check_language_tokens()
        log.info(
            "ct2 bundle %s loaded in %.0f ms", bundle.label, (time.monotonic() - started) * 1000
        )

    def _check_language_tokens(self) -> None:
        needed = {self.bundle.language_token(code) for code in self.bundle.languages} - {None}
        vocabulary = _read_vocabulary(self.bundle.path)
        if needed and vocabulary is not None:
            missing = sorted(str(t) for t in needed - vocabulary)
            if missing:
                raise ModelError(
                    f"ct2 bundle {self.bundle.label}: the vocabulary lacks language token(s) "
                    f"{', '.join(missing)}; fix the bundle's languages in the catalogue"
                )


class Ct2Translator:
    """Translator over one or more CTranslate2 bundles (the first serving a pair wins).

    Construction only checks that the files exist; models load in load() or on first use.
    """

    def __init__(
        self,
        bundles: Sequence[Ct2Bundle],
        *,
        intra_threads: int = 1,
        beam_size: int = 2,
        max_decoding_length: int = 256,
        max_input_length: int = 256,
        compute_type: str = "int8",
    ) -> None:
        for bundle in bundles:
            bundle.check()
        self.bundles = tuple(bundles)
        self.intra_threads = intra_threads
        self.beam_size = beam_size
        self.max_decoding_length = max_decoding_length
        self.max_input_length = max_input_length
        self.compute_type = compute_type
        self._route: dict[tuple[str, str], Ct2Bundle] = {}
        for bundle in self.bundles:
            for pair in bundle.pairs():
                self._route.setdefault(pair, bundle)
        self._loaded: dict[Path, _LoadedBundle] = {}
        self._load_lock = threading.Lock()

    def pairs(self) -> set[tuple[str, str]]:
        """Every (src, tgt) some bundle serves; no model is loaded to answer."""
        return set(self._route)

    def bundle_for(self, src: str, tgt: str) -> Ct2Bundle:
        """The bundle that translates (src, tgt); EngineError if none does."""
        bundle = self._route.get((src, tgt))
        if bundle is None:
            raise EngineError(
                f"no ct2 bundle translates {src}->{tgt}; loaded bundles serve "
                f"{_describe_pairs(self._route)}"
            )
        return bundle

    def load(self, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        """Load the models serving `pairs` (default: all) now."""
        for pair in self._route if pairs is None else pairs:
            self._engine(*pair)

    def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one transcript, sentence by sentence in one batch."""
        return self.translate_batch([text], src, tgt)[0]

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate several transcripts in one CTranslate2 batch."""
        engine = self._engine(src, tgt)
        split = [_sentences(text) for text in texts]
        flat = [sentence for sentences in split for sentence in sentences]
        if not flat:
            return ["" for _ in texts]
        translated = iter(self._run(engine, flat, src, tgt))
        return [" ".join(next(translated) for _ in sentences) for sentences in split]

    def close(self) -> None:
        """Drop the loaded models (their memory is freed with them)."""
        with self._load_lock:
            for loaded in self._loaded.values():
                loaded.translator.unload_model()
            self._loaded.clear()

    def _engine(self, src: str, tgt: str) -> _LoadedBundle:
        bundle = self.bundle_for(src, tgt)
        with self._load_lock:
            loaded = self._loaded.get(bundle.path)
            if loaded is None:
                loaded = _LoadedBundle(bundle, self.intra_threads, self.compute_type)
                self._loaded[bundle.path] = loaded
            return loaded

    def _run(self, engine: _LoadedBundle, sentences: list[str], src: str, tgt: str) -> list[str]:
        bundle = engine.bundle
        src_token, tgt_token = bundle.language_token(src), bundle.language_token(tgt)
        batch = []
        for sentence in sentences:
            pieces = engine.source_sp.encode(sentence, out_type=str)
            pieces = pieces[: self.max_input_length - 2]
            batch.append(([src_token] if src_token else []) + pieces + ["</s>"])
        longest = max(len(tokens) for tokens in batch)
        try:
            results = engine.translator.translate_batch(
                batch,
                target_prefix=[[tgt_token]] * len(batch) if tgt_token else None,
                beam_size=self.beam_size,
                # output about as long as the input: a bound that stops a looping hypothesis
                max_decoding_length=min(self.max_decoding_length, 2 * longest + 10),
                max_input_length=self.max_input_length,
            )
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"ct2 bundle {bundle.label} failed on {src}->{tgt}: {exc}") from exc
        out = []
        for result in results:
            tokens = result.hypotheses[0]
            if tgt_token and tokens and tokens[0] == tgt_token:
                tokens = tokens[1:]
            out.append(engine.target_sp.decode(tokens).strip())
        return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _describe_pairs(route: Mapping[tuple[str, str], Ct2Bundle]) -> str:
    if not route:
        return "nothing (no ct2 bundle configured)"
    if len(route) > 12:
        return f"{len(route)} pairs"
    return ", ".join(f"{s}->{t}" for s, t in sorted(route))


def _read_vocabulary(model_dir: Path) -> set[str] | None:
    """The target vocabulary of a converted model (json or txt), None if not found."""
    for stem in ("shared_vocabulary", "target_vocabulary"):
        json_path, txt_path = model_dir / f"{stem}.json", model_dir / f"{stem}.txt"
        try:
            if json_path.is_file():
                return set(json.loads(json_path.read_text(encoding="utf-8")))
            if txt_path.is_file():
                return set(txt_path.read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read vocabulary {model_dir / stem}: {exc}") from exc
    return None
