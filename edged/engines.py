"""From config to engines, in one place: which recognizer, translators and voices run.

prepare() validates everything that can be checked without loading a model (languages,
bundles on disk, a translation route to every target) so a bad config fails in well under
a second; Prepared.load() then loads the models. Pairs without a route are named in one
warning (and kept in `Prepared.unserved`), not refused, unless no source candidate reaches
a target.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edged import store
from edged.asr import Hypothesis, HypothesisKind, Recognizer, Resumable
from edged.config import Config
from edged.errors import ConfigError, EdgedError, ModelError
from edged.gpio import button_lines
from edged.langs import WHISPER_LANGUAGES, validate_lang
from edged.mt import Translator
from edged.mt.router import (
    Coverage,
    MissingPair,
    Provider,
    Router,
    TranslationPlan,
    WhisperSpeechTranslation,
)
from edged.tts import Synthesizer, VoiceLoader, Voices
from edged.vad import VadSegmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engines:
    """Loaded engines, each owned by one pipeline stage."""

    segmenter: VadSegmenter
    recognizer: Recognizer
    router: Router
    voices: Voices | None

    def translate(self, hypothesis: Hypothesis, tgt: str) -> tuple[str, str] | None:
        """Translate a hypothesis to `tgt`: (text, engine), or None if the pair has no route
        (named when the targets were set) or its plan needs speech and this is a partial."""
        plan = self.router.find(hypothesis.lang, tgt)
        if plan is None:
            return None
        final = hypothesis.kind is HypothesisKind.FINAL
        english = hypothesis.translation_en if final else None
        if not plan.serves_text and english is None:
            return None  # needs the recognizer's speech->English, which follows the final
        result = plan.translate(hypothesis.text, english)
        return result.text, result.engine

    def retarget(
        self, languages: tuple[str, ...], targets: tuple[str, ...], key: str = "targets"
    ) -> Coverage:
        """Plan the new sources x targets by prepare()'s rule: ConfigError (nothing changed)
        only if a target is reached by no candidate; else tell the recognizer which sources
        need its speech->English task and return the coverage (`unserved` for the status,
        `warning()` for the log)."""
        coverage = self.router.cover(languages, targets, key=key)
        if hasattr(self.recognizer, "speech_translation"):
            self.recognizer.speech_translation = speech_translated(coverage.plans)
        return coverage

    def close(self) -> None:
        self.router.close()


def speech_translated(plans: Iterable[TranslationPlan]) -> frozenset[str]:
    """Source languages whose plans start with Whisper's speech->English task."""
    return frozenset(p.src for p in plans if p.uses_whisper)


@dataclass(frozen=True)
class Prepared:
    """A validated config with the bundle paths and translation plans it needs."""

    config: Config
    models_dir: Path
    bundles: dict[str, Path]
    languages: tuple[str, ...]  # source candidates the recognizer can do
    router: Router
    plans: tuple[TranslationPlan, ...]
    unserved: tuple[MissingPair, ...] = ()  # pairs without a route, for the status

    @property
    def conversation(self) -> tuple[str, ...]:
        """The conversation's languages, or () when conversation mode is off."""
        c = self.config.conversation
        return c.languages if c.enabled else ()

    @property
    def speak(self) -> str:
        """The target spoken aloud outside conversation mode ("" when speech is off)."""
        if not self.config.tts.enabled:
            return ""
        return self.config.tts.speak or self.config.mt.targets[0]

    def load(self) -> Engines:
        """Load every model but the voices (those load on first use; see Voices); logs how
        long each took. Any failure is a ModelError naming the bundle."""
        c = self.config
        # The translators load beside the recognizer: Apertium's start-up is mostly waiting
        # for its processes and CTranslate2 loads without the GIL, so start-up costs the
        # longer of the two, not their sum (edged translate on a short clip, issue 12).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edged-load") as pool:
            translators = pool.submit(self._load_translators)
            try:
                recognizer, segmenter = self._load_recognizer()
            except BaseException:
                futures.wait([translators])  # then close what it started
                self.router.close()
                raise
            translators.result()  # its ModelError, if any, is the user's one line
        return Engines(
            segmenter, recognizer, self.router, _load_voices(self) if c.tts.enabled else None
        )

    def _load_recognizer(self) -> tuple[Recognizer, VadSegmenter]:
        c = self.config
        with loading(_asr_bundle(c)):
            recognizer = RECOGNIZERS[c.asr.engine](self)
        # A recognizer that can take a final back gets the VAD's early pause (its final is
        # decoded there); others end segments at vad.min_silence, as before.
        early = c.vad.pause if isinstance(recognizer, Resumable) else None
        with loading(c.vad.bundle):
            segmenter = VadSegmenter(self.bundles[c.vad.bundle] / "silero_vad.onnx", c.vad, early)
        return recognizer, segmenter

    def _load_translators(self) -> None:
        started = time.monotonic()
        with loading(None):
            self.router.load(self.plans)
        if self.plans:
            log.info("translators loaded in %d ms", (time.monotonic() - started) * 1e3)


@contextlib.contextmanager
def loading(bundle: str | None) -> Iterator[None]:
    """Turn whatever a native library raises while loading `bundle` (None: the translators,
    which name their own bundles) into one ModelError line: RuntimeError from onnxruntime
    or CTranslate2 on a damaged file, ValueError, OSError, ..."""
    try:
        yield
    except ModelError as exc:
        if bundle is None or "/" in bundle or "edged models" in str(exc):
            raise
        # A loader's own check (a file that is not ONNX): add which bundle and the fix.
        raise ModelError(f"{exc}; check it with: edged models verify {bundle}") from exc
    except EdgedError:
        raise
    except Exception as exc:
        log.debug("loading %s failed", bundle, exc_info=True)
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        if bundle is None:
            what, fix = "translators do not load", "check them with: edged models verify"
        elif "/" in bundle:  # a hand-made bundle given by path: not in the catalogue
            what, fix = f"bundle directory {bundle} does not load", "check its files"
        else:
            what = f"model bundle '{bundle}' does not load"
            fix = f"check it with: edged models verify {bundle}"
        raise ModelError(f"{what} ({detail}); {fix}") from exc


def prepare(config: Config) -> Prepared:
    """Check the config against the installed models; raise ConfigError / ModelError."""
    languages = tuple(validate_lang(code, "asr.languages") for code in config.asr.languages)
    targets = tuple(validate_lang(code, "mt.targets") for code in config.mt.targets)
    if config.conversation.enabled:
        languages = targets = _conversation_languages(config)
    if not languages:
        raise ConfigError("asr.languages: at least one source language is needed")
    if not targets:
        raise ConfigError("mt.targets: at least one target language is needed")
    if config.tts.speak and not config.conversation.enabled:
        validate_lang(config.tts.speak, "tts.speak")
        if config.tts.speak not in targets:
            raise ConfigError(
                f"tts.speak '{config.tts.speak}' is not one of mt.targets {list(targets)}"
            )
    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    catalogue = store.load_catalogue()
    needed = [config.vad.bundle, _asr_bundle(config), *config.mt.ct2_bundles]
    if config.tts.enabled:
        for lang, bundle in config.tts.voices.items():
            validate_lang(lang, f"tts.voices.{lang}")
            needed.append(bundle)
        needed.append(config.tts.espeak_bundle)
    if config.asr.engine == "sherpa" and config.asr.sherpa.punctuation_bundle:
        needed.append(config.asr.sherpa.punctuation_bundle)
    bundles = {name: _bundle_dir(catalogue, models_dir, name) for name in dict.fromkeys(needed)}
    languages = _recognizer_languages(config, catalogue, languages)
    router = make_router(config, languages, catalogue, bundles, models_dir)
    coverage = router.cover(languages, targets)
    warning = coverage.warning()
    if warning:
        log.warning("%s", warning)
    if config.tts.enabled:
        spoken = targets if config.conversation.enabled else (config.tts.speak or targets[0],)
        for speak in spoken:
            if speak not in config.tts.voices and not config.tts.espeak_fallback:
                raise ConfigError(
                    f"tts: no voice for '{speak}' in tts.voices and espeak_fallback is off"
                )
    return Prepared(
        config, models_dir, bundles, languages, router, coverage.plans, coverage.unserved
    )


def _conversation_languages(config: Config) -> tuple[str, ...]:
    c = config.conversation
    languages = tuple(validate_lang(code, "conversation.languages") for code in c.languages)
    if len(set(languages)) < 2:
        raise ConfigError(
            f"conversation.languages {list(c.languages)}: two or more different languages "
            "are needed"
        )
    button_lines(config.gpio.line, c.buttons)  # line numbers, none twice
    for line, lang in c.buttons.items():
        if lang not in languages:
            raise ConfigError(
                f"conversation.buttons.{line} = '{lang}' is not one of conversation.languages"
            )
    return languages


def _bundle_dir(catalogue: store.Catalogue, models_dir: Path, name: str) -> Path:
    """A catalogue bundle (verified), or a directory given by path (a hand-made bundle)."""
    if "/" not in name:
        return store.bundle_path(catalogue, models_dir, name)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(f"bundle directory {path} does not exist")
    return path


def _recognizer_languages(
    config: Config, catalogue: store.Catalogue, candidates: tuple[str, ...]
) -> tuple[str, ...]:
    """Whisper knows every candidate; a sherpa model knows its bundle's languages only, so
    the candidates are narrowed to those (switching engines needs no other config change)."""
    bundle = config.asr.sherpa.bundle
    if config.asr.engine != "sherpa" or "/" in bundle:
        return candidates
    spoken = catalogue.bundle(bundle).languages
    usable = tuple(code for code in candidates if code in spoken)
    if not usable:
        raise ConfigError(
            f"asr.languages {list(candidates)}: sherpa bundle '{bundle}' recognises only "
            f"{', '.join(spoken)}"
        )
    if usable != candidates:
        log.warning("sherpa bundle %s recognises %s only", bundle, ", ".join(usable))
    return usable


def _asr_bundle(config: Config) -> str:
    return config.asr.whisper.bundle if config.asr.engine == "whisper" else config.asr.sherpa.bundle


def make_router(
    config: Config,
    languages: tuple[str, ...],
    catalogue: store.Catalogue,
    bundles: dict[str, Path],
    models_dir: Path,
) -> Router:
    """The router over the configured translators (`bundles` holds mt.ct2_bundles' paths),
    knowing what else could be installed for the hints of pairs without a route."""
    translators = _translators(config, languages, catalogue, bundles)
    providers = _providers(config, catalogue, models_dir, translators)
    return Router(translators, config.mt.engines, providers)


def _providers(
    config: Config,
    catalogue: store.Catalogue,
    models_dir: Path,
    translators: dict[str, Translator],
) -> list[Provider]:
    """Catalogue ct2 bundles not in use and Debian Apertium packages not installed, with
    the pairs each would add (and, for an engine not in mt.engines, that it must be)."""
    from edged.mt.apertium import package_pairs
    from edged.mt.ct2 import Ct2Bundle

    def enabled(engine: str) -> str:
        return "" if engine in config.mt.engines else f" with {engine} in mt.engines"

    providers: list[Provider] = []
    for bundle in catalogue.bundles.values():
        if bundle.kind != "mt.ct2" or bundle.name in config.mt.ct2_bundles:
            continue
        try:
            described = Ct2Bundle.from_meta(
                models_dir / bundle.name, bundle.languages, bundle.meta, bundle.name
            )
        except ModelError as exc:  # a family this version cannot read: no hint from it
            log.debug("no route hints from bundle %s: %s", bundle.name, exc)
            continue
        # a ct2 bundle is used once listed in mt.ct2_bundles, installed or not
        if (models_dir / bundle.name).is_dir():
            hint = f"{bundle.name} in mt.ct2_bundles"
        else:
            hint = f"`edged models install {bundle.name}` (+ mt.ct2_bundles)"
        hint += enabled("ct2")
        providers.append(Provider("ct2", frozenset(described.pairs()), hint))
    have = translators["apertium"].pairs() if "apertium" in translators else set()
    for package, pairs in package_pairs().items():
        if not pairs <= have:
            hint = f"`apt-get install {package}`{enabled('apertium')}"
            providers.append(Provider("apertium", pairs, hint))
    return providers


def _translators(
    config: Config, languages: tuple[str, ...], catalogue: store.Catalogue, bundles: dict[str, Path]
) -> dict[str, Translator]:
    translators: dict[str, Translator] = {}
    if "ct2" in config.mt.engines and config.mt.ct2_bundles:
        from edged.mt.ct2 import Ct2Bundle, Ct2Translator

        described = [
            Ct2Bundle.from_meta(
                bundles[name], catalogue.bundle(name).languages, catalogue.bundle(name).meta, name
            )
            for name in config.mt.ct2_bundles
        ]
        translators["ct2"] = Ct2Translator(
            described, intra_threads=config.mt.threads, beam_size=config.mt.beam_size
        )
    if "apertium" in config.mt.engines and shutil.which("apertium-wblank-mode"):
        from edged.mt.apertium import DEFAULT_MODES_DIR, ApertiumTranslator

        if DEFAULT_MODES_DIR.is_dir():
            translators["apertium"] = ApertiumTranslator()
    if "whisper" in config.mt.engines and config.asr.engine == "whisper":
        # Every language Whisper knows, not just today's candidates: set_source may add
        # one whose only route is Whisper's speech->English.
        translators["whisper"] = WhisperSpeechTranslation(WHISPER_LANGUAGES)
    return translators


def _load_whisper(prepared: Prepared) -> Recognizer:
    from edged.asr.whisper import WhisperRecognizer

    c = prepared.config.asr
    recognizer = WhisperRecognizer(
        prepared.bundles[c.whisper.bundle], prepared.languages, c.whisper, threads=c.threads
    )
    recognizer.speech_translation = speech_translated(prepared.plans)
    return recognizer


def _load_sherpa(prepared: Prepared) -> Recognizer:
    from edged.asr.punct import PUNCTUATION_LANGUAGES, load_punctuator
    from edged.asr.sherpa import EndpointRules, SherpaRecognizer

    c = prepared.config.asr
    s = c.sherpa
    catalogue = store.load_catalogue()
    punctuation = prepared.bundles[s.punctuation_bundle] if s.punctuation_bundle else None
    # The punctuation model knows its own bundle's languages, not the recognizer's: an
    # English CNN-BiLSTM must leave French or Chinese finals to the sentence-case rule.
    punct_languages = (
        catalogue.bundle(s.punctuation_bundle).languages
        if s.punctuation_bundle and "/" not in s.punctuation_bundle
        else PUNCTUATION_LANGUAGES
    )
    # meta.joiner = "float": sherpa-onnx's own apps pair this model's int8 encoder with
    # its float joiner (their APK generator deletes the int8 joiner).
    meta = catalogue.bundle(s.bundle).meta if "/" not in s.bundle else {}
    return SherpaRecognizer(
        prepared.bundles[s.bundle],
        prepared.languages,
        languages=prepared.languages,
        threads=c.threads,
        endpoint=EndpointRules(s.rule1_silence, s.rule2_silence, s.rule3_max_utterance),
        decoding=s.decoding,
        hotwords=s.hotwords,
        hotwords_score=s.hotwords_score,
        punctuator=load_punctuator(punctuation, punct_languages, 1),
        float_joiner=meta.get("joiner") == "float",
    )


RECOGNIZERS: dict[str, Callable[[Prepared], Recognizer]] = {
    "whisper": _load_whisper,
    "sherpa": _load_sherpa,
}


def _load_voices(prepared: Prepared) -> Voices:
    """Voices that load on first use: loaders, not loaded voices (see Voices)."""
    from edged.tts.espeak import EspeakLibrary, EspeakSynthesizer
    from edged.tts.piper import PiperSynthesizer

    c = prepared.config.tts
    espeak_dir = prepared.bundles[c.espeak_bundle]

    @functools.cache
    def espeak() -> EspeakLibrary:  # shared by every Piper voice (phonemes) and the fallback
        with loading(c.espeak_bundle):
            return EspeakLibrary.from_bundle(espeak_dir)

    def piper(lang: str, bundle: str) -> VoiceLoader:
        def load() -> Synthesizer:
            library = espeak()
            started = time.monotonic()
            with loading(bundle):
                voice = PiperSynthesizer(
                    prepared.bundles[bundle],
                    threads=c.threads,
                    speed=c.speed,
                    speaker=c.speakers.get(lang, ""),
                    espeak=library,
                )
            log.info("voice %s loaded in %d ms", bundle, (time.monotonic() - started) * 1e3)
            return voice

        return load

    def fallback() -> Synthesizer:
        library = espeak()
        with loading(c.espeak_bundle):
            return EspeakSynthesizer(library, speed=c.speed)

    voices = {lang: (bundle, piper(lang, bundle)) for lang, bundle in c.voices.items()}
    return Voices(voices, fallback if c.espeak_fallback else None)
