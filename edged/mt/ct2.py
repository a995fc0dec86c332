"""Neural translation with CTranslate2: OPUS-MT (Marian) pair and multi-target models,
NLLB-200, M2M-100, and OpenNMT-py models packaged by Argos Translate.

A bundle is a converted model directory (`model.bin`, `config.json`, vocabulary) plus its
SentencePiece models. How a family marks languages:
- marian: one direction per model, plain source tokens;
- marian-multi (opus-mt-en-ROMANCE, en-mul, tc-big multi-target): a `>>fra<<`-style token
  naming the target goes before the source tokens (Helsinki-NLP's model cards);
- nllb / m2m100: `[src_Latn] tokens` with target prefix `[tgt_Latn]` (M2M-100: `__xx__`); the
  forced target token comes back as the first output token and is dropped;
- opennmt (Argos Translate `.argosmodel`: `model/` plus one `sentencepiece.model`): plain
  tokens, as argos-translate feeds them.

The end token: CTranslate2 appends `</s>` itself when the model's `config.json` says
`add_source_eos: true` (its Marian/OPUS-MT and fairseq converters set it), so edged appends
one only when the config does not and the family was trained with one (models converted from
Transformers, whose tokenizers append it). OpenNMT-py models never saw one on the source.

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
from dataclasses import dataclass, field
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
    MARIAN_MULTI = "marian-multi"  # `>>fra<< ...`: the target's token before the source
    NLLB = "nllb"  # FLORES-200 tokens: source `spa_Latn ... </s>`, target prefix `eng_Latn`
    M2M100 = "m2m100"  # `__es__ ... </s>`, target prefix `__en__`
    OPENNMT = "opennmt"  # Argos Translate packages: plain tokens and no `</s>`


_PAIR_FAMILIES = (Ct2Family.MARIAN, Ct2Family.OPENNMT)  # one (src, tgt) per bundle
_FAMILY_DEFAULTS: dict[Ct2Family, tuple[str, str, str]] = {  # (model dir, source, target spm)
    Ct2Family.MARIAN: ("", "source.spm", "target.spm"),
    Ct2Family.MARIAN_MULTI: ("", "source.spm", "target.spm"),
    Ct2Family.NLLB: ("", "sentencepiece.bpe.model", "sentencepiece.bpe.model"),
    Ct2Family.M2M100: ("", "sentencepiece.bpe.model", "sentencepiece.bpe.model"),
    Ct2Family.OPENNMT: ("model", "sentencepiece.model", "sentencepiece.model"),
}


@dataclass(frozen=True)
class Ct2Bundle:
    """An installed CTranslate2 translation bundle: where it is and what it serves.

    SentencePiece paths are relative to `path`; the CTranslate2 model is in `path/model_dir`.
    """

    path: Path
    family: Ct2Family
    # marian, opennmt: (src, tgt); marian-multi: its sources, then target_tokens' languages;
    # nllb, m2m100: every language served
    languages: tuple[str, ...]
    source_spm: str = "source.spm"
    target_spm: str = "target.spm"
    name: str = ""  # the catalogue name, for messages
    model_dir: str = ""  # "" = the bundle directory itself (Argos: "model")
    target_tokens: Mapping[str, str] = field(default_factory=dict)  # marian-multi: fr -> >>fra<<
    sources: tuple[str, ...] = ()  # marian-multi: the source languages

    def __post_init__(self) -> None:
        if self.family in _PAIR_FAMILIES and len(self.languages) != 2:
            raise ModelError(
                f"ct2 bundle {self.label}: a {self.family.value} bundle serves one pair, "
                f"got languages {list(self.languages)}"
            )
        if self.family is Ct2Family.MARIAN_MULTI and not (self.sources and self.target_tokens):
            raise ModelError(
                f"ct2 bundle {self.label}: a marian-multi bundle needs meta.sources and "
                'meta.target_tokens (target language -> token such as ">>fra<<")'
            )
        codes = {*self.languages, *self.sources, *self.target_tokens}
        unknown = sorted(code for code in codes if code not in LANGUAGES)
        if unknown:
            raise ModelError(f"ct2 bundle {self.label}: unknown language code(s) {unknown}")

    @property
    def label(self) -> str:
        """The bundle as messages name it."""
        return self.name or str(self.path)

    @property
    def model_path(self) -> Path:
        """The directory CTranslate2 loads (`model.bin`, `config.json`, vocabularies)."""
        return self.path / self.model_dir if self.model_dir else self.path

    @classmethod
    def from_meta(
        cls, path: Path, languages: Sequence[str], meta: Mapping[str, Any], name: str = ""
    ) -> Ct2Bundle:
        """From a catalogue entry's `meta`: `family`; marian/opennmt `pair = "es-en"`;
        marian-multi `sources = ["en"]` and `target_tokens = { fr = ">>fr<<" }`; optional
        `model` (subdirectory of the CTranslate2 model), `source_spm` / `target_spm` / `spm`
        (one SentencePiece model for both sides). Defaults follow the family's layout."""
        label = name or str(path)
        try:
            family = Ct2Family(meta.get("family", "marian"))
        except ValueError:
            allowed = ", ".join(f.value for f in Ct2Family)
            raise ModelError(
                f"ct2 bundle {label}: meta.family {meta.get('family')!r} is not one of {allowed}"
            ) from None
        langs = tuple(languages)
        if family in _PAIR_FAMILIES:
            langs = tuple(str(meta.get("pair", "-".join(langs))).split("-"))
        sources = tuple(str(code) for code in meta.get("sources", ()))
        tokens = meta.get("target_tokens", {})
        if not isinstance(tokens, Mapping) or not all(isinstance(t, str) for t in tokens.values()):
            raise ModelError(
                f"ct2 bundle {label}: meta.target_tokens must map languages to tokens, "
                f"got {tokens!r}"
            )
        if family is Ct2Family.MARIAN_MULTI:
            langs = tuple(dict.fromkeys((*sources, *tokens)))
        model_dir, source_spm, target_spm = _FAMILY_DEFAULTS[family]
        shared = meta.get("spm")
        return cls(
            path=path,
            family=family,
            languages=langs,
            source_spm=str(meta.get("source_spm", shared or source_spm)),
            target_spm=str(meta.get("target_spm", shared or target_spm)),
            name=name,
            model_dir=str(meta.get("model", model_dir)),
            target_tokens=dict(tokens),
            sources=sources,
        )

    def pairs(self) -> set[tuple[str, str]]:
        """The (src, tgt) pairs this bundle translates."""
        if self.family in _PAIR_FAMILIES:
            return {(self.languages[0], self.languages[1])}
        if self.family is Ct2Family.MARIAN_MULTI:
            return {(s, t) for s in self.sources for t in self.target_tokens if s != t}
        langs = self.languages
        if self.family is Ct2Family.NLLB:
            langs = tuple(code for code in langs if to_flores(code))
        return {(s, t) for s in langs for t in langs if s != t}

    def check(self) -> None:
        """Raise ModelError naming the first missing file."""
        needed = [self.model_path / f for f in MODEL_FILES]
        needed += [self.path / self.source_spm, self.path / self.target_spm]
        for path in needed:
            if not path.is_file():
                raise ModelError(
                    f"ct2 bundle {self.label}: missing {path}; "
                    f"run `edged models install {self.name or '<bundle>'}`"
                )

    def language_token(self, code: str) -> str | None:
        """The token that names source or target language `code` (nllb, m2m100), or the
        target token (marian-multi); None for the pair families."""
        if self.family is Ct2Family.NLLB:
            return to_flores(code)
        if self.family is Ct2Family.M2M100:
            return to_m2m100(code)
        if self.family is Ct2Family.MARIAN_MULTI:
            return self.target_tokens.get(code)
        return None

    def source_end_token(self, model_config: Mapping[str, Any]) -> str | None:
        """The end token edged appends to a source, or None: CTranslate2 appends it itself
        when `config.json` has `add_source_eos`, and OpenNMT-py (Argos) models have none."""
        if model_config.get("add_source_eos") or self.family is Ct2Family.OPENNMT:
            return None
        return str(model_config.get("eos_token") or "</s>")


class _LoadedBundle:
    """A bundle's CTranslate2 translator and SentencePiece processors."""

    def __init__(self, bundle: Ct2Bundle, intra_threads: int, compute_type: str) -> None:
        import ctranslate2
        import sentencepiece as spm

        started = time.monotonic()
        self.bundle = bundle
        self.end_token = bundle.source_end_token(_read_model_config(bundle.model_path))
        try:
            self.translator = ctranslate2.Translator(
                str(bundle.model_path),
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
                f"ct2 bundle {bundle.label} at {bundle.model_path} does not load: {exc}; "
                f"check it with `edged models verify`"
            ) from exc
        self._check_language_tokens()
        log.info(
            "ct2 bundle %s loaded in %.0f ms", bundle.label, (time.monotonic() - started) * 1000
        )

    def _check_language_tokens(self) -> None:
        needed = {self.bundle.language_token(code) for code in self.bundle.languages} - {None}
        # marian-multi's tokens are source tokens; nllb/m2m100 use theirs on both sides
        side = "source" if self.bundle.family is Ct2Family.MARIAN_MULTI else "target"
        vocabulary = _read_vocabulary(self.bundle.model_path, side)
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

    def source_tokens(self, text: str, src: str, tgt: str) -> list[list[str]]:
        """The token sequences (one per sentence) given to CTranslate2 for `text`."""
        engine = self._engine(src, tgt)
        return [self._tokens(engine, sentence, src, tgt) for sentence in _sentences(text)]

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

    def _tokens(self, engine: _LoadedBundle, sentence: str, src: str, tgt: str) -> list[str]:
        bundle = engine.bundle
        pieces = engine.source_sp.encode(sentence, out_type=str)[: self.max_input_length - 2]
        if bundle.family is Ct2Family.MARIAN_MULTI:
            lead = bundle.language_token(tgt)  # the target is named on the source side
        else:
            lead = bundle.language_token(src)
        end = [engine.end_token] if engine.end_token else []
        return ([lead] if lead else []) + pieces + end

    def _run(self, engine: _LoadedBundle, sentences: list[str], src: str, tgt: str) -> list[str]:
        bundle = engine.bundle
        batch = [self._tokens(engine, sentence, src, tgt) for sentence in sentences]
        tgt_token = None if bundle.family is Ct2Family.MARIAN_MULTI else bundle.language_token(tgt)
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


def _read_model_config(model_dir: Path) -> dict[str, Any]:
    """A converted model's `config.json` (CTranslate2 writes one with every model)."""
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}; check it with `edged models verify`") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object; check it with `edged models verify`")
    return config


def _read_vocabulary(model_dir: Path, side: str) -> set[str] | None:
    """The `side` ("source" or "target") vocabulary of a converted model (json or txt),
    None if not found."""
    for stem in ("shared_vocabulary", f"{side}_vocabulary"):
        json_path, txt_path = model_dir / f"{stem}.json", model_dir / f"{stem}.txt"
        try:
            if json_path.is_file():
                return set(json.loads(json_path.read_text(encoding="utf-8")))
            if txt_path.is_file():
                return set(txt_path.read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read vocabulary {model_dir / stem}: {exc}") from exc
    return None
