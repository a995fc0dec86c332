"""Small fakes that satisfy the pipeline's protocols, for fast tests of its concurrency core.

Audio is a stream of 512-sample chunks whose value says what they are: 0.5 is speech,
0.0 silence. The fake segmenter calls a run of speech an utterance and ends it after
`silence_chunks` silent chunks; the fake recognizer makes one word per speech chunk.
Nothing sleeps: slowness is a threading.Event the test releases.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from edged.asr import Hypothesis, HypothesisKind
from edged.audio import FRAME_SAMPLES, AudioChunk
from edged.bus import EventBus, Session
from edged.events import Event
from edged.pipeline import Pipeline, Settings
from edged.tts import Voices
from edged.vad import Endpointing, SegmentEvent, SegmentKind

SPEECH = 0.5
_EMPTY = np.zeros(0, np.float32)


def chunk(index: int, speech: bool) -> AudioChunk:
    samples = np.full(FRAME_SAMPLES, SPEECH if speech else 0.0, np.float32)
    return AudioChunk(samples, index * FRAME_SAMPLES, arrival=0.0)


def script(pattern: str) -> list[AudioChunk]:
    """'S' a speech chunk, '.' a silent one: 'SSS....SS....' is two utterances."""
    return [chunk(i, c == "S") for i, c in enumerate(pattern)]


class ListSource:
    """A file-like source: the chunks, then the end."""

    def __init__(self, chunks: list[AudioChunk]) -> None:
        self._chunks = chunks
        self._closed = threading.Event()

    def chunks(self) -> Iterator[AudioChunk]:
        for c in self._chunks:
            if self._closed.is_set():
                return
            yield c

    def close(self) -> None:
        self._closed.set()


class LiveFakeSource:
    """A microphone the test feeds chunk by chunk; close() ends it. feed() returns once
    the capture stage has taken every chunk fed, as a real device's buffer is read
    within a period: a command sent afterwards comes after that audio."""

    def __init__(self) -> None:
        self._queue: queue.Queue[AudioChunk | None] = queue.Queue()
        self._next = 0

    def feed(self, pattern: str) -> None:
        for c in pattern:
            self._queue.put(chunk(self._next, c == "S"))
            self._next += 1
        self._queue.join()

    def chunks(self) -> Iterator[AudioChunk]:
        while (item := self._queue.get()) is not None:
            yield item  # resumes when the consumer has finished with it
            self._queue.task_done()
        self._queue.task_done()

    def close(self) -> None:
        self._queue.put(None)


class FakeSegmenter:
    def __init__(self, silence_chunks: int = 3) -> None:
        self.silence_chunks = silence_chunks
        self._in_speech = False
        self._silent = 0
        self._t = 0.0
        self._speech_end = 0.0

    def accept(self, c: AudioChunk) -> Iterator[SegmentEvent]:
        speech = bool(len(c.samples)) and float(c.samples[0]) >= SPEECH
        self._t = c.t1
        if speech and not self._in_speech:
            self._in_speech, self._silent, self._speech_end = True, 0, c.t1
            yield SegmentEvent(SegmentKind.START, c.t0, c.samples)
        elif self._in_speech:
            if speech:
                self._speech_end = c.t1
            self._silent = 0 if speech else self._silent + 1
            if self._silent >= self.silence_chunks:
                self._in_speech = False
                yield SegmentEvent(SegmentKind.END, self._speech_end, _EMPTY)
            else:
                yield SegmentEvent(SegmentKind.AUDIO, c.t1, c.samples)

    def flush(self) -> Iterator[SegmentEvent]:
        if self._in_speech:
            self._in_speech = False
            yield SegmentEvent(SegmentKind.END, self._t, _EMPTY)

    def reset(self) -> None:
        self._in_speech = False
        self._silent = 0


class FakeRecognizer:
    """One word per speech chunk ("w1 w2 …"); a partial per chunk whose stable part is all
    but the last word; the final is the words, or the next entry of `finals` if given
    ("" means rejected). `langs` gives each utterance's language (default the first
    candidate). `gate`, when set, must be released for each accept() to proceed."""

    def __init__(
        self,
        finals: list[str] | None = None,
        langs: list[str] | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.finals = list(finals or [])
        self.langs = list(langs or [])
        self.gate = gate
        self.languages: tuple[str, ...] = ("en",)
        self.language_calls: list[tuple[str, ...]] = []
        self.began = 0
        self._words = 0
        self._t0 = 0.0
        self._lang = "en"

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        self.languages = candidates
        self.language_calls.append(candidates)

    def begin(self, t0: float) -> None:
        self.began += 1
        self._words, self._t0 = 0, t0
        self._lang = self.langs.pop(0) if self.langs else self.languages[0]
        if self._lang not in self.languages:
            self._lang = self.languages[0]

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        if self.gate is not None:
            self.gate.wait()
        frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
        spoken = int((frames[:, 0] >= SPEECH).sum()) if len(frames) else 0
        if not spoken:
            return []
        self._words += spoken
        words = [f"w{i + 1}" for i in range(self._words)]
        t1 = self._t0 + self._words * FRAME_SAMPLES / 16000
        return [
            Hypothesis(
                HypothesisKind.PARTIAL,
                " ".join(words),
                " ".join(words[:-1]),
                self._lang,
                self._t0,
                t1,
            )
        ]

    def end(self) -> list[Hypothesis]:
        text = (
            self.finals.pop(0) if self.finals else " ".join(f"w{i + 1}" for i in range(self._words))
        )
        t1 = self._t0 + self._words * FRAME_SAMPLES / 16000
        reason = None if text else "repetition"
        return [
            Hypothesis(HypothesisKind.FINAL, text, text, self._lang, self._t0, t1, reason=reason)
        ]


class ResumableRecognizer(FakeRecognizer):
    """Can take a final back (like Whisper): resume() continues the utterance."""

    resumed = 0

    def resume(self) -> None:
        self.resumed += 1


class SpeechTranslatingRecognizer(FakeRecognizer):
    """Also translates speech to English itself (like Whisper); `translated` is set when
    translate_speech() runs, `release` must be set for it to finish."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.translated = threading.Event()
        self.release = threading.Event()

    def speech_translation_due(self, final: Hypothesis) -> bool:
        return final.lang != "en"

    def translate_speech(self) -> str | None:
        self.translated.set()
        self.release.wait(10)
        return "english words"


class Translator:
    """(hypothesis, tgt) -> ("tgt:text", "fake"); `gate` blocks every call until set;
    pairs in `speech_only` need the recognizer's English (like Whisper's plans)."""

    def __init__(
        self, gate: threading.Event | None = None, speech_only: set[tuple[str, str]] | None = None
    ) -> None:
        self.gate = gate
        self.speech_only = speech_only or set()
        self.calls: list[tuple[str, str, bool]] = []
        self.entered = threading.Event()

    def __call__(self, h: Hypothesis, tgt: str) -> tuple[str, str] | None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        final = h.kind is HypothesisKind.FINAL
        self.calls.append((h.text, tgt, final))
        if (h.lang, tgt) in self.speech_only:
            if not final or h.translation_en is None:
                return None
            return h.translation_en, "whisper"
        return f"{tgt}:{h.text}", "fake"


class FakeSynth:
    sample_rate = 1000

    def languages(self) -> set[str]:
        return {"en", "es", "de", "fr"}

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        for _sentence in text.split("."):
            yield np.zeros(100, np.float32)


class FakeSpeaker:
    """A speaker; with `blocking`, each play() lasts until stop() (playback cut) or
    unblock(). Records the length of what was played."""

    def __init__(self, blocking: bool = False) -> None:
        self.blocking = blocking
        self.played: list[int] = []
        self.playing = threading.Event()
        self.stops = 0
        self._release = threading.Event()

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        self.playing.set()
        if self.blocking:
            self._release.wait(10)
            if self.blocking:
                self._release.clear()
        self.played.append(len(samples))

    def stop(self) -> None:
        self.stops += 1
        self._release.set()

    def unblock(self) -> None:
        self.blocking = False
        self._release.set()

    def close(self) -> None:
        pass


class Recorder:
    """A publisher that keeps events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def publish(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def close(self) -> None:
        pass

    def of(self, kind: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.type == kind]

    def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)


def make_pipeline(
    source: object,
    *,
    recognizer: FakeRecognizer | None = None,
    translate: Translator | None = None,
    sink: FakeSpeaker | None = None,
    settings: Settings | None = None,
    realtime: bool = False,
    queue_seconds: float = 10.0,
    session: Session | None = None,
    interim_interval: float = 0.0,
    endpointing: Endpointing | None = None,
) -> tuple[Pipeline, Recorder]:
    recorder = Recorder()
    pipeline = Pipeline(
        device="test",
        source=source,  # type: ignore[arg-type]
        segmenter=FakeSegmenter(),
        recognizer=recognizer or FakeRecognizer(),
        translate=translate or Translator(),
        voices=Voices({}, FakeSynth()),
        sink=sink if sink is not None else FakeSpeaker(),
        bus=EventBus("test", [recorder], session=session),
        settings=settings or Settings(languages=("en",), targets=("es",), speak="es"),
        realtime=realtime,
        interim_interval=interim_interval,
        queue_seconds=queue_seconds,
        endpointing=endpointing,
    )
    return pipeline, recorder
