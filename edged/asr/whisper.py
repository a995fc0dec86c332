"""Whisper (CTranslate2 format) as a streaming recognizer: VAD-segmented, partials by
re-decoding the growing segment, words committed by local agreement.

One encoder pass serves language identification, transcription and the translate task.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import numpy as np
import tokenizers

from edged.asr import Hypothesis, HypothesisKind
from edged.asr.agreement import LocalAgreement
from edged.asr.mel import CHUNK_FRAMES, HOP, log_mel
from edged.audio import SAMPLE_RATE
from edged.errors import ConfigError, EngineError, ModelError

log = logging.getLogger(__name__)

MAX_SEGMENT_S = 30.0  # Whisper's context; the VAD splits longer speech before this
_MAX_TOKENS_PER_S = 12  # generous for speech; a decode longer than this is a repetition loop
_COMPRESSION_LIMIT = 2.4  # openai-whisper's threshold for repetitive output
_NO_SPEECH_LIMIT = 0.6
_PREVIOUS_TOKENS = 64  # of the last final, as prompt for the next utterance
_LOGPROB_LIMIT = -1.0
# What Whisper says over noise or silence when it must say something; dropped from finals
# only when the decoder itself doubted there was speech.
_HALLUCINATIONS = frozenset(
    {"thank you.", "thanks for watching!", "thank you for watching.", "you", "bye.", "."}
)


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding choices; defaults favour latency on a 4-core board."""

    threads: int = 2
    compute_type: str = "int8"
    partials: bool = True  # re-decode while the person speaks; False: only the final
    beam_size: int = 2  # finals; partials are greedy
    partial_interval_s: float = 1.0  # minimum new audio between partial re-decodes
    first_partial_s: float = 0.6  # speech before the first partial
    partial_window_s: float = 10.0  # encoder window for partials (shorter is faster)
    final_window_s: float = 10.0  # encoder window for finals (grows with longer speech)
    translate_window_s: float = 30.0  # encoder window for the speech->English task
    agreement: int = 2
    lid_margin: float = 0.2  # best minus second candidate probability to switch language


@dataclass(frozen=True)
class _Decoded:
    text: str
    token_ids: list[int]
    avg_logprob: float
    no_speech_prob: float


class WhisperRecognizer:
    """Whisper recognizer following the Recognizer protocol."""

    def __init__(
        self, bundle: Path, languages: tuple[str, ...], options: WhisperOptions | None = None
    ) -> None:
        self.options = options or WhisperOptions()
        started = time.monotonic()
        try:
            self._model = ctranslate2.models.Whisper(
                str(bundle),
                device="cpu",
                compute_type=self.options.compute_type,
                intra_threads=self.options.threads,
            )
            self._tokenizer = tokenizers.Tokenizer.from_file(str(bundle / "tokenizer.json"))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"Whisper model in {bundle} will not load: {exc}") from exc
        self._n_mels = self._model.n_mels
        self._eot = self._token("<|endoftext|>")
        self._special = {
            name: self._token(f"<|{name}|>")
            for name in (
                "startoftranscript",
                "transcribe",
                "translate",
                "notimestamps",
                "startofprev",
            )
        }
        self.set_languages(languages)
        # Languages whose finals also get Whisper's speech->English task: only those a
        # translation plan needs it for (it costs a second encoder pass). Replaced whole,
        # never mutated, so another thread may set it (see Engines.retarget).
        self.speech_translation: frozenset[str] = frozenset()
        self._buffer = np.zeros(int(MAX_SEGMENT_S * SAMPLE_RATE), dtype=np.float32)
        self._filled = 0
        self._t0 = 0.0
        self._decoded_at = 0
        self._last_decode_s = 0.0
        self._segment_lang: str | None = None
        # Language and tokens of the last final: they condition the next utterance.
        self._previous: tuple[str, list[int]] = ("", [])
        self._agreement = LocalAgreement(self.options.agreement)
        self.dropped_samples = 0
        log.info(
            "Whisper model loaded from %s in %d ms", bundle, (time.monotonic() - started) * 1e3
        )

    def _token(self, text: str) -> int:
        token_id = self._tokenizer.token_to_id(text)
        if token_id is None:
            raise ModelError(f"Whisper tokenizer has no token {text}")
        return token_id

    def set_languages(self, candidates: tuple[str, ...]) -> None:
        """Restrict language identification to these ISO 639-1 codes (first is the default)."""
        if not candidates:
            raise ConfigError("asr.languages: at least one language is needed")
        unknown = [c for c in candidates if self._tokenizer.token_to_id(f"<|{c}|>") is None]
        if unknown:
            raise ConfigError(f"asr.languages: Whisper does not know {', '.join(unknown)}")
        self._languages = tuple(candidates)

    # --- Recognizer protocol -------------------------------------------------------

    def begin(self, t0: float) -> None:
        self._filled = 0
        self._t0 = t0
        self._decoded_at = 0
        self._segment_lang = None
        self._agreement.reset()

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        room = len(self._buffer) - self._filled
        take = min(room, len(samples))
        self._buffer[self._filled : self._filled + take] = samples[:take]
        self._filled += take
        self.dropped_samples += len(samples) - take
        if not self._partial_due():
            return []
        return [self._partial()]

    def end(self) -> list[Hypothesis]:
        if self._filled < int(0.1 * SAMPLE_RATE):
            return []
        final = self._final()
        return [final] if final else []

    # --- decoding ------------------------------------------------------------------

    def _partial_due(self) -> bool:
        o = self.options
        if not o.partials or self._filled < o.first_partial_s * SAMPLE_RATE:
            return False
        # Never spend more than ~80% of real time re-decoding, or the queue grows.
        interval = max(o.partial_interval_s, self._last_decode_s * 1.25)
        return self._filled - self._decoded_at >= interval * SAMPLE_RATE or self._decoded_at == 0

    def _partial(self) -> Hypothesis:
        started = time.monotonic()
        audio = self._buffer[: self._filled]
        encoded = self._encode(audio, self.options.partial_window_s)
        committed = self._agreement.committed
        # Identification on a second of audio is unreliable: re-identify on every partial
        # until a word is committed, which locks the utterance's language.
        lang = self._segment_lang if committed and self._segment_lang else self._identify(encoded)
        if lang != self._segment_lang:
            self._agreement.reset()
        self._segment_lang = lang
        decoded = self._decode(encoded, lang, "transcribe", committed, beam_size=1)
        words = decoded.text.split()
        stable = self._agreement.update(words)
        self._decoded_at = self._filled
        self._last_decode_s = time.monotonic() - started
        return Hypothesis(
            HypothesisKind.PARTIAL,
            decoded.text,
            " ".join(stable),
            lang,
            self._t0,
            self._t0 + self._filled / SAMPLE_RATE,
        )

    def _final(self) -> Hypothesis | None:
        audio = self._buffer[: self._filled]
        encoded = self._encode(audio, self.options.final_window_s)
        lang = self._identify(encoded)
        # Decoded afresh, not forced to start with the committed words: a forced prefix that
        # already covers the utterance makes Whisper invent a continuation ("... better. You").
        # The final supersedes the partials, as in the cloud APIs.
        decoded = self._decode(encoded, lang, "transcribe", [], self.options.beam_size)
        if _rejected(decoded):
            log.debug("final dropped as non-speech: %r", decoded.text)
            return None
        self._previous = (lang, decoded.token_ids[-_PREVIOUS_TOKENS:])
        english = None
        if lang in self.speech_translation and lang != "en":
            # Base's translate task degrades on a short window ("How do you call Tuf?" for
            # "Comment t'appelles-tu ?" at 10 s, right at 30 s): it gets its own pass.
            window = self.options.translate_window_s
            if window != self.options.final_window_s:
                encoded = self._encode(audio, window)
            english = self._decode(encoded, lang, "translate", [], self.options.beam_size).text
        t1 = self._t0 + self._filled / SAMPLE_RATE
        return Hypothesis(
            HypothesisKind.FINAL, decoded.text, decoded.text, lang, self._t0, t1, english
        )

    def _encode(self, audio: np.ndarray, window_s: float) -> ctranslate2.StorageView:
        features = log_mel(audio, self._n_mels)
        # The encoder accepts fewer than 3000 frames; a window just long enough for the
        # audio costs a fraction of the full 30 s pass.
        needed = len(audio) // HOP + 100
        frames = min(CHUNK_FRAMES, max(needed, int(window_s * SAMPLE_RATE / HOP)))
        frames += frames % 2
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames]))
        try:
            return self._model.encode(view)
        except RuntimeError as exc:
            raise EngineError(f"Whisper encoder failed: {exc}") from exc

    def _identify(self, encoded: ctranslate2.StorageView) -> str:
        if len(self._languages) == 1:
            return self._languages[0]
        scores = dict(self._model.detect_language(encoded)[0])
        ranked = sorted(self._languages, key=lambda c: scores.get(f"<|{c}|>", 0.0), reverse=True)
        best, second = ranked[0], ranked[1]
        margin = scores.get(f"<|{best}|>", 0.0) - scores.get(f"<|{second}|>", 0.0)
        if margin < self.options.lid_margin and self._segment_lang in self._languages:
            return self._segment_lang  # too close to call: stay with the utterance's language
        return best

    def _decode(
        self,
        encoded: ctranslate2.StorageView,
        lang: str,
        task: str,
        prefix_words: list[str],
        beam_size: int,
    ) -> _Decoded:
        s = self._special
        prompt = [s["startoftranscript"], self._token(f"<|{lang}|>"), s[task], s["notimestamps"]]
        previous_lang, previous = self._previous
        if task == "transcribe" and previous and previous_lang == lang:
            # Whisper's own conditioning on the previous text: short VAD segments are
            # transcribed far more consistently with it ("Ever failed." not "Everfailed.").
            prompt = [s["startofprev"], *previous, *prompt]
        prefix_ids: list[int] = []
        if prefix_words:
            prefix_ids = self._tokenizer.encode(
                " " + " ".join(prefix_words), add_special_tokens=False
            ).ids
        audio_s = encoded.shape[1] * 2 * HOP / SAMPLE_RATE
        max_length = min(448, len(prompt) + len(prefix_ids) + int(audio_s * _MAX_TOKENS_PER_S) + 8)
        try:
            result = self._model.generate(
                encoded,
                [prompt + prefix_ids],
                beam_size=beam_size,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
            )[0]
        except RuntimeError as exc:
            raise EngineError(f"Whisper decoder failed: {exc}") from exc
        # CTranslate2 returns the forced prefix as part of the sequence.
        ids = [t for t in result.sequences_ids[0] if t < self._eot]
        text = self._tokenizer.decode(ids).strip()
        return _Decoded(text, ids, result.scores[0], result.no_speech_prob)


def _rejected(decoded: _Decoded) -> bool:
    """Whisper's own failure modes: speech invented over noise, and repetition loops."""
    text = decoded.text.strip()
    if not text.strip(" .,!?-♪"):
        return True
    doubted = decoded.no_speech_prob > _NO_SPEECH_LIMIT and decoded.avg_logprob < _LOGPROB_LIMIT
    if doubted:
        return True
    if decoded.no_speech_prob > 0.3 and text.casefold() in _HALLUCINATIONS:
        return True
    encoded = text.encode()
    return len(encoded) > 40 and len(encoded) / len(zlib.compress(encoded)) > _COMPRESSION_LIMIT
