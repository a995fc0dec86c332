"""Whisper (CTranslate2 format) as a streaming recognizer: VAD-segmented, partials by
re-decoding the growing segment, words committed by local agreement.

One encoder pass serves language identification, transcription and the translate task.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2
import numpy as np
import tokenizers

from edged.asr import Hypothesis, HypothesisKind
from edged.asr.agreement import LocalAgreement, word_key
from edged.asr.mel import CHUNK_FRAMES, HOP, log_mel
from edged.audio import SAMPLE_RATE
from edged.config import WhisperConfig
from edged.errors import ConfigError, EngineError, ModelError

log = logging.getLogger(__name__)

MAX_SEGMENT_S = 30.0  # Whisper's context; the VAD splits longer speech before this
# The window a doubtful final is decoded again on (longer speech gets a longer one). Not
# Whisper's full 30 s: its encoder pass cost 1.2 s and +124 MB of activations on one x86
# thread against 0.55 s and +69 MB for 20 s, and it was the daemon's peak of memory.
_FALLBACK_S = 20.0
_MAX_TOKENS_PER_S = 12  # generous for speech; a decode longer than this is a repetition loop
_COMPRESSION_LIMIT = 2.4  # openai-whisper's threshold for repetitive output
_NO_SPEECH_LIMIT = 0.6
_PREVIOUS_TOKENS = 64  # of the last final, as prompt for the next utterance
_LOGPROB_LIMIT = -1.0
_PREVIOUS_WITHIN_S = 20.0  # a final older than this (audio time) does not condition the next
_RETRY_S = 0.3  # seconds of new audio before a partial decode that looped is tried again
_STAY_S = 5.0  # a final this recent (audio time) makes its language the likely next one
_STAY_ODDS = 4.0  # how much likelier (see _identify)
_STAY_MAX_AUDIO = 2.0  # seconds: segments up to this long get those odds
_QUIET_TAIL = int(0.16 * SAMPLE_RATE)  # samples: the end of the audio that may be a pause
_QUIET_RATIO = 0.1  # of the loudest chunk's RMS: below this the end is taken for a pause
_TAIL_PAD_S = 0.45  # silence appended to a final's audio (see _final_audio)
_LONGER = 1.5  # a translation with this many times the transcript's words is suspect
_MAX_CHARS_PER_S = 25  # fast speech is ~15 characters a second; a repetition loop is more
# What Whisper says over noise or silence when it must say something; dropped from finals
# only when the decoder itself doubted there was speech.
_HALLUCINATIONS = frozenset(
    {"thank you.", "thanks for watching!", "thank you for watching.", "you", "bye.", "."}
)


@dataclass(frozen=True)
class _Decoded:
    text: str
    token_ids: list[int]
    avg_logprob: float
    no_speech_prob: float
    cut: bool = False  # stopped by max_length, not by the end token: a loop


class WhisperRecognizer:
    """Whisper recognizer following the Recognizer protocol."""

    def __init__(
        self,
        bundle: Path,
        languages: tuple[str, ...],
        options: WhisperConfig | None = None,
        threads: int = 2,
    ) -> None:
        """`options`: the [asr.whisper] config section (its defaults favour latency on a
        4-core board); `threads`: asr.threads."""
        self.options = options or WhisperConfig()
        started = time.monotonic()
        try:
            self._model = ctranslate2.models.Whisper(
                str(bundle),
                device="cpu",
                compute_type=self.options.compute_type,
                intra_threads=threads,
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
        self._tail = np.zeros(int(_TAIL_PAD_S * SAMPLE_RATE), dtype=np.float32)
        self._filled = 0
        self._t0 = 0.0
        self._decoded_at = 0
        self._last_decode_s = 0.0
        self._segment_lang: str | None = None
        # The last published final (language, tokens, text, audio end): it conditions the
        # next utterance when it is recent. A final becomes "previous" only when the next
        # utterance begins, not when a pause was merely decoded speculatively (resume()).
        self._previous = _Previous()
        self._candidate: _Previous | None = None
        self._last_final: tuple[str, ctranslate2.StorageView, str] | None = None
        self._agreement = LocalAgreement(self.options.agreement)
        self.dropped_samples = 0
        self.fallbacks = 0  # finals decoded again on the fallback window (they looked wrong)
        self._loudest = 0.0  # RMS of the utterance's loudest chunk so far
        self._partial_dropped = False  # the last partial decode looped and was not shown
        log.info(
            "Whisper model loaded from %s in %d ms", bundle, (time.monotonic() - started) * 1e3
        )

    def _token(self, text: str) -> int:
        token_id = self._tokenizer.token_to_id(text)
        if token_id is None:
            raise ModelError(f"Whisper tokenizer has no token {text}")
        return token_id

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        """Restrict language identification to these ISO 639-1 codes (first is the default).
        `turns`: a conversation, where people take turns: a call too close to make goes
        to the language the last utterance was not in."""
        self._turns = turns
        if not candidates:
            raise ConfigError("asr.languages: at least one language is needed")
        unknown = [c for c in candidates if self._tokenizer.token_to_id(f"<|{c}|>") is None]
        if unknown:
            raise ConfigError(f"asr.languages: Whisper does not know {', '.join(unknown)}")
        self._languages = tuple(candidates)

    # --- Recognizer protocol -------------------------------------------------------

    def begin(self, t0: float) -> None:
        if self._candidate is not None:
            self._previous, self._candidate = self._candidate, None
        self._filled = 0
        self._t0 = t0
        self._decoded_at = 0
        self._segment_lang = None
        self._agreement.reset()
        self._loudest = 0.0
        self._partial_dropped = False

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        room = len(self._buffer) - self._filled
        take = min(room, len(samples))
        self._buffer[self._filled : self._filled + take] = samples[:take]
        self._filled += take
        self.dropped_samples += len(samples) - take
        if take:
            self._loudest = max(self._loudest, float(np.sqrt(np.mean(samples[:take] ** 2))))
        if not self._partial_due():
            return []
        partial = self._partial()
        return [partial] if partial else []

    def end(self) -> list[Hypothesis]:
        if self._filled < int(0.1 * SAMPLE_RATE):
            return []
        final = self._final()
        return [final] if final else []

    def resume(self) -> None:
        """The speaker went on after the pause end() decoded: continue the same utterance
        (the next accept() appends; that final is forgotten)."""
        self._candidate = None
        self._last_final = None

    # --- decoding ------------------------------------------------------------------

    def _partial_due(self) -> bool:
        o = self.options
        if not o.partials or self._filled < o.first_partial * SAMPLE_RATE:
            return False
        # Never spend more than ~80% of real time re-decoding, or the queue grows. After a
        # decode that looped (not shown), try again sooner: a short utterance would
        # otherwise end before its first partial.
        base = _RETRY_S if self._partial_dropped else o.partial_interval
        interval = max(base, self._last_decode_s * 1.25)
        due = self._filled - self._decoded_at >= interval * SAMPLE_RATE or self._decoded_at == 0
        # Not while the speaker seems to have stopped: the final is about to be decoded,
        # and a partial begun now would hold it up by a whole decode (seen: +250 ms).
        return due and not self._tail_quiet()

    def _tail_quiet(self) -> bool:
        """The last 160 ms are far below the utterance's loudest chunk: likely a pause."""
        tail = self._buffer[max(0, self._filled - _QUIET_TAIL) : self._filled]
        level = float(np.sqrt(np.mean(tail**2))) if len(tail) else 0.0
        return level < _QUIET_RATIO * self._loudest

    def _partial(self) -> Hypothesis | None:
        """The growing segment decoded greedily; None when that decode loops (a screen
        showing "Today only platforms will be available." five times over is worse than
        the previous partial staying a moment longer)."""
        started = time.monotonic()
        audio = self._buffer[: self._filled]
        encoded = self._encode(audio, self.options.partial_window)
        committed = self._agreement.committed
        # Identification on a second of audio is unreliable: re-identify on every partial
        # until a word is committed, which locks the utterance's language.
        lang = self._segment_lang if committed and self._segment_lang else self._identify(encoded)
        if lang != self._segment_lang:
            self._agreement.reset()
        self._segment_lang = lang
        # No conditioning on the previous final: it made the first partials of an utterance
        # repeat the previous text ("Turn on the living room light." again and again).
        decoded = self._decode(encoded, lang, "transcribe", committed, 1, condition=False)
        self._decoded_at = self._filled
        self._last_decode_s = time.monotonic() - started
        self._partial_dropped = _looping(decoded, self._filled / SAMPLE_RATE)
        if self._partial_dropped:
            log.debug("partial not shown (it loops): %r", decoded.text[:80])
            return None
        words = decoded.text.split()
        stable = self._agreement.update(words)
        return Hypothesis(
            HypothesisKind.PARTIAL,
            decoded.text,
            " ".join(stable),
            lang,
            self._t0,
            self._t0 + self._filled / SAMPLE_RATE,
        )

    def _final_audio(self) -> np.ndarray:
        """The utterance plus a short silent tail: the final is decoded 0.15 s into the
        pause now, and Whisper base transcribes and translates speech that stops right at
        the audio's end less reliably ("How do you call TuF ?")."""
        return np.concatenate([self._buffer[: self._filled], self._tail])

    def _final(self) -> Hypothesis | None:
        audio = self._final_audio()
        encoded = self._encode(audio, self.options.final_window)
        lang = self._identify(encoded, final=True)
        # Decoded afresh, not forced to start with the committed words: a forced prefix that
        # already covers the utterance makes Whisper invent a continuation ("... better. You").
        # The final supersedes the partials, as in the cloud APIs.
        condition = self._conditioned(lang)
        decoded = self._decode(encoded, lang, "transcribe", [], self.options.beam_size, condition)
        if condition and _same_text(decoded.text, self._previous.text):
            # The prompt can pull a new utterance into the previous one's words (a
            # hallucinated "1,2,1,2,1." repeated itself for minutes): decide without it.
            decoded = self._decode(encoded, lang, "transcribe", [], self.options.beam_size, False)
        audio_s = self._filled / SAMPLE_RATE
        if _suspicious(decoded, audio_s) and self.options.final_window < _FALLBACK_S:
            # A short window's known failure ("Comment t'appelles-tu ? Comment
            # t'appelles-tu ?" on 1.6 s): fall back to a window nearer Whisper's native
            # 30 s, as openai-whisper falls back to other temperatures, and keep the better.
            self.fallbacks += 1
            log.debug("final decoded again on the %.0f s window: %r", _FALLBACK_S, decoded.text)
            encoded = self._encode(audio, _FALLBACK_S)
            retry = self._decode(encoded, lang, "transcribe", [], self.options.beam_size, False)
            decoded = min(decoded, retry, key=lambda d: (_looping(d, audio_s), -d.avg_logprob))
        t1 = self._t0 + self._filled / SAMPLE_RATE
        reason = _rejected(decoded, audio_s)
        if reason:
            log.debug("final rejected (%s): %r", reason, decoded.text)
            self._candidate = None
            return Hypothesis(HypothesisKind.FINAL, "", "", lang, self._t0, t1, reason=reason)
        self._candidate = _Previous(lang, decoded.token_ids[-_PREVIOUS_TOKENS:], decoded.text, t1)
        self._last_final = (lang, encoded, decoded.text)
        return Hypothesis(HypothesisKind.FINAL, decoded.text, decoded.text, lang, self._t0, t1)

    # --- speech->English, after the transcript is out (SpeechTranslator) --------------

    def speech_translation_due(self, final: Hypothesis) -> bool:
        return final.lang in self.speech_translation and final.lang != "en"

    def translate_speech(self) -> str | None:
        """Whisper's translate task on the last final's audio (its buffer is intact until
        the next begin())."""
        if self._last_final is None:
            return None
        lang, encoded, transcript = self._last_final
        self._last_final = None
        # With translate_window = final_window the final's encoder pass serves (the
        # default). Base's translate task needs a wider beam than transcription: with 2-4 it
        # said "How do you call Tuf?" for "Comment t'appelles-tu ?" on every window.
        window = self.options.translate_window
        if window != self.options.final_window:
            encoded = self._encode(self._final_audio(), window)
        try:
            decoded = self._decode(encoded, lang, "translate", [], self.options.translate_beam)
        except EngineError as exc:
            log.warning("speech translation failed: %s", exc)
            return None
        # On a 10 s window base's translate task may say its sentence twice, or loop on a
        # phrase ("it has been reported that it has been reported that ..."): a translation
        # far longer than what was said is trimmed (a phrase really said twice is not).
        if len(decoded.text.split()) > _LONGER * len(transcript.split()) + 3:
            return trim_repeats(decoded.text)
        return decoded.text

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

    def _identify(self, encoded: ctranslate2.StorageView, final: bool = False) -> str:
        """The utterance's language among the candidates; `final`: for the final (only
        finals take the previous one's language as a prior: partials of a new speaker's
        first second would lock the utterance to the wrong one)."""
        if len(self._languages) == 1:
            return self._languages[0]
        scores = dict(self._model.detect_language(encoded)[0])
        stay = self._stay_language() if final else None
        if stay:
            # One person goes on in the language they were speaking: Whisper's ID on a
            # short segment of a long reading wanders ("Mi muy querido Manuel." came out
            # as Japanese, "gelernet" as English), so the previous final's language gets
            # prior odds; a clear call for another language still wins.
            key = f"<|{stay}|>"
            scores[key] = scores.get(key, 0.0) * _STAY_ODDS
        ranked = sorted(self._languages, key=lambda c: scores.get(f"<|{c}|>", 0.0), reverse=True)
        best, second = ranked[0], ranked[1]
        margin = scores.get(f"<|{best}|>", 0.0) - scores.get(f"<|{second}|>", 0.0)
        if log.isEnabledFor(logging.DEBUG):  # not formatted on every partial otherwise
            top = " ".join(f"{c}={scores.get(f'<|{c}|>', 0.0):.2f}" for c in ranked[:3])
            log.debug("language ID on %.1f s: %s", self._filled / SAMPLE_RATE, top)
        if margin >= self.options.lid_margin:
            return best
        if stay:
            # Still too close: the language being spoken, not the one a partial took from
            # the segment's first 0.4 s ("Mi muy querido Manuel." went to Japanese so).
            return stay
        if self._segment_lang in self._languages:
            return self._segment_lang  # too close to call: stay with the utterance's language
        last = self._previous.lang  # the last published final's
        if self._turns and len(self._languages) == 2 and last in self._languages:
            # "Sí." after an English turn: a second of audio is too little for Whisper's
            # language ID, and in a conversation the other person speaks next.
            return next(c for c in self._languages if c != last)
        return best

    def _stay_language(self) -> str | None:
        """The language a short segment outside a conversation is presumed to go on in:
        that of a final less than _STAY_S old. A longer segment (someone else, in another
        language) decides on its own; in a conversation the other person speaks next."""
        short = self._filled <= _STAY_MAX_AUDIO * SAMPLE_RATE
        lang = self._previous.lang
        if short and not self._turns and lang in self._languages and self._recent(_STAY_S):
            return lang
        return None

    def _conditioned(self, lang: str) -> bool:
        """Whisper's own conditioning on the previous text: short VAD segments are
        transcribed far more consistently with it ("Ever failed." not "Everfailed.") — but
        only on a recent final in the same language, which passed the quality checks."""
        p = self._previous
        return bool(p.tokens) and p.lang == lang and self._recent(_PREVIOUS_WITHIN_S)

    def _recent(self, within_s: float) -> bool:
        """The last published final ended at most `within_s` before this utterance."""
        return self._t0 - self._previous.t1 <= within_s

    def _decode(
        self,
        encoded: ctranslate2.StorageView,
        lang: str,
        task: str,
        prefix_words: list[str],
        beam_size: int,
        condition: bool = False,
    ) -> _Decoded:
        s = self._special
        prompt = [s["startoftranscript"], self._token(f"<|{lang}|>"), s[task], s["notimestamps"]]
        if condition:
            prompt = [s["startofprev"], *self._previous.tokens, *prompt]
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
        cut = len(result.sequences_ids[0]) >= max_length - len(prompt) - 1
        return _Decoded(text, ids, result.scores[0], result.no_speech_prob, cut)


@dataclass(frozen=True)
class _Previous:
    lang: str = ""
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    t1: float = 0.0


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def trim_repeats(text: str) -> str:
    """`text` with what a looping decoder added dropped: a sentence that repeats an
    earlier one, or its beginning, ends the text, and a run of words said again straight
    after itself (three words or more) is kept once."""
    keys: list[str] = []  # of the sentences kept
    sentences: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        key = _norm(sentence)
        if key and any(k.startswith(key) for k in keys):  # again, or its start (cut)
            break
        keys.append(key)
        sentences.append(sentence)
    words: list[str] = []
    word_keys: list[str] = []
    for word in " ".join(sentences).split():
        words.append(word)
        word_keys.append(word_key(word))
        for n in range(3, len(words) // 2 + 1):
            if word_keys[-n:] == word_keys[-2 * n : -n]:
                del words[-n:], word_keys[-n:]
                break
    return " ".join(words)


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.casefold() if c.isalnum() or c.isspace()).split())


def _same_text(a: str, b: str) -> bool:
    return bool(b) and _norm(a) == _norm(b)


def _looping(decoded: _Decoded, audio_s: float) -> bool:
    """A decoder stuck in a loop: stopped only by the length bound, or more text than the
    audio could hold. (A phrase genuinely said four times is repetitive, not looping.)"""
    return decoded.cut or len(decoded.text.strip()) > _MAX_CHARS_PER_S * max(audio_s, 1.0)


def _suspicious(decoded: _Decoded, audio_s: float) -> bool:
    """Looping, repetitive, or a decoder in doubt: worth a second decode."""
    text = decoded.text.strip()
    if not text:
        return False
    encoded = text.encode()
    ratio = len(encoded) / len(zlib.compress(encoded))
    repetitive = ratio > _COMPRESSION_LIMIT
    return _looping(decoded, audio_s) or repetitive or decoded.avg_logprob < _LOGPROB_LIMIT


def _rejected(decoded: _Decoded, audio_s: float) -> str | None:
    """Whisper's own failure modes: speech invented over noise, and repetition loops.
    Returns why the final is rejected, or None. A phrase genuinely said four times
    compresses as well as a loop; what gives a loop away is more text than the audio
    could hold."""
    text = decoded.text.strip()
    if not text.strip(" .,!?-♪"):
        return "no-speech"
    doubted = decoded.no_speech_prob > _NO_SPEECH_LIMIT and decoded.avg_logprob < _LOGPROB_LIMIT
    if doubted:
        return "no-speech"
    if decoded.no_speech_prob > 0.3 and text.casefold() in _HALLUCINATIONS:
        return "hallucination"
    encoded = text.encode()
    repetitive = len(encoded) / len(zlib.compress(encoded)) > _COMPRESSION_LIMIT
    if len(encoded) > 40 and repetitive and _looping(decoded, audio_s):
        return "repetition"
    return None
