"""Wiring: source -> VAD/recognizer -> translator -> synthesizer, one thread per stage.

Queues between stages are bounded and each has a stated policy: capture drops (and counts)
when the recognizer is behind a live source, interim translation work is latest-wins, and
finals are never dropped (their producers wait instead).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edged.asr import Hypothesis, HypothesisKind, Recognizer
from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, AudioSink, AudioSource
from edged.errors import EdgedError
from edged.events import (
    AsrFinal,
    AsrPartial,
    Error,
    Event,
    MtFinal,
    MtInterim,
    SpeechStart,
    TtsEnd,
    TtsStart,
)
from edged.publish import Publisher
from edged.tts import Voices
from edged.vad import SegmentKind, VadSegmenter

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker passed down the queues
_ENDPOINT = object()  # close the current utterance now (push-to-talk released)


class MicGate:
    """Half duplex: the microphone is muted while the device speaks and for a tail after,
    so edged never translates itself."""

    def __init__(self) -> None:
        self._speaking = False
        self._until = 0.0

    def speaking(self) -> None:
        self._speaking = True

    def done(self, tail: float) -> None:
        self._until = time.monotonic() + tail
        self._speaking = False

    @property
    def closed(self) -> bool:
        return self._speaking or time.monotonic() < self._until


class EventBus:
    """Numbers events (`seq` within an utterance) and hands each to every publisher in order."""

    def __init__(self, device: str, publishers: Iterable[Publisher]) -> None:
        self.device = device
        self._publishers = list(publishers)
        self._lock = threading.Lock()
        self._seq: dict[int, int] = {}
        self.counts: dict[str, int] = {}

    def emit(self, event: Event) -> Event:
        with self._lock:
            seq = self._seq.get(event.utt, 0) + 1
            self._seq[event.utt] = seq
            if len(self._seq) > 64:  # utterances long finished
                del self._seq[min(self._seq)]
            event = dataclasses.replace(event, seq=seq)
            self.counts[event.type] = self.counts.get(event.type, 0) + 1
            for publisher in self._publishers:
                try:
                    publisher.publish(event)
                except Exception:
                    log.exception("publisher %s failed on %s", type(publisher).__name__, event.type)
        return event


class AudioClock:
    """When (monotonic) each stretch of the audio timeline arrived: latency is wall time
    now minus the arrival of the last sample an event covers."""

    def __init__(self, horizon_s: float = 120.0) -> None:
        self._marks: deque[tuple[int, float]] = deque(
            maxlen=int(horizon_s * SAMPLE_RATE) // FRAME_SAMPLES
        )
        self._lock = threading.Lock()

    def mark(self, chunk: AudioChunk) -> None:
        with self._lock:
            self._marks.append((chunk.end, chunk.arrival))

    def arrival(self, t: float) -> float:
        sample = round(t * SAMPLE_RATE)
        with self._lock:
            for end, arrived in self._marks:
                if end >= sample:
                    return arrived
            return self._marks[-1][1] if self._marks else time.monotonic()


@dataclass
class Settings:
    """What commands may change while running; read by the stages under its lock."""

    languages: tuple[str, ...]
    targets: tuple[str, ...]
    speak: str
    listening: bool = True
    speech_muted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> Settings:
        with self.lock:
            return dataclasses.replace(self, lock=threading.Lock())


@dataclass(frozen=True)
class TranslationWork:
    """A transcript to translate: a final, or the stable prefix of a partial."""

    utt: int
    final: bool
    hypothesis: Hypothesis
    audio_end: float  # monotonic arrival of the last sample covered


class TranslationInbox:
    """Finals in order, never dropped; of interims only the newest is kept (latest-wins)."""

    def __init__(self, max_finals: int = 32) -> None:
        self._finals: deque[TranslationWork | object] = deque()
        self._interim: TranslationWork | None = None
        self._cond = threading.Condition()
        self._max = max_finals
        self.interims_replaced = 0

    @property
    def pending(self) -> int:
        return len(self._finals)

    def put_final(self, work: TranslationWork | object, stop: threading.Event) -> None:
        with self._cond:
            while len(self._finals) >= self._max and not stop.is_set():
                self._cond.wait(0.5)
            self._finals.append(work)
            if (
                isinstance(work, TranslationWork)
                and self._interim
                and self._interim.utt <= work.utt
            ):
                self._interim = None  # the final supersedes it
            self._cond.notify_all()

    def put_interim(self, work: TranslationWork) -> None:
        with self._cond:
            if self._interim is not None:
                self.interims_replaced += 1
            self._interim = work
            self._cond.notify_all()

    def get(self, not_before: float = 0.0) -> TranslationWork | object:
        """Next work: finals first; an interim only once `not_before` (monotonic) has passed."""
        with self._cond:
            while True:
                if self._finals:
                    work = self._finals.popleft()
                    self._cond.notify_all()
                    return work
                wait = not_before - time.monotonic()
                if self._interim is not None and wait <= 0:
                    work, self._interim = self._interim, None
                    return work
                self._cond.wait(wait if self._interim is not None else None)


@dataclass(frozen=True)
class SpeechWork:
    utt: int
    lang: str
    text: str
    audio_end: float


@dataclass
class Stats:
    """Counters the daemon reports; written by one stage each."""

    frames_in: int = 0
    frames_dropped: int = 0
    frames_gated: int = 0
    utterances: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    audio_seconds: float = 0.0

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


TranslateFn = Callable[[Hypothesis, str], "tuple[str, str] | None"]
"""(hypothesis, target) -> (translated text, engine name), or None when the engine for
that pair cannot translate interim text (Whisper's speech translation)."""


class Pipeline:
    """Runs the stages for one audio source until it ends or stop() is called."""

    def __init__(
        self,
        *,
        device: str,
        source: AudioSource,
        segmenter: VadSegmenter,
        recognizer: Recognizer,
        translate: TranslateFn,
        voices: Voices | None,
        sink: AudioSink | None,
        bus: EventBus,
        settings: Settings,
        realtime: bool,
        interim: bool = True,
        interim_interval: float = 0.5,
        queue_seconds: float = 10.0,
        half_duplex: bool = False,
        gate_tail: float = 0.3,
    ) -> None:
        self.source = source
        self.segmenter = segmenter
        self.recognizer = recognizer
        self.translate = translate
        self.voices = voices
        self.sink = sink
        self.bus = bus
        self.settings = settings
        self.device = device
        self.interim = interim
        self.interim_interval = interim_interval
        self.realtime = realtime
        self.stats = Stats()
        self.clock = AudioClock()
        self.stop_event = threading.Event()
        self.mic_gate = MicGate()
        self._hushed = threading.Event()
        self.half_duplex = half_duplex  # a speaker the microphone can hear
        self.gate_tail = gate_tail
        self.heartbeat: dict[str, float] = {}
        self._frames: queue.Queue[AudioChunk | object] = queue.Queue(
            maxsize=max(4, int(queue_seconds * SAMPLE_RATE / FRAME_SAMPLES))
        )
        self._mt_inbox = TranslationInbox()
        self._speech: queue.Queue[SpeechWork | object] = queue.Queue(maxsize=16)
        self._threads: list[threading.Thread] = []
        self._utt = 0
        self._languages = settings.languages
        self.errors: list[EdgedError] = []

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (
            ("edged-capture", self._capture_loop),
            ("edged-asr", self._asr_loop),
            ("edged-mt", self._mt_loop),
            ("edged-tts", self._tts_loop),
        ):
            thread = threading.Thread(target=self._guard(name, target), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the stages to finish; True if all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not any(t.is_alive() for t in self._threads)

    def run(self) -> None:
        """Start, then wait until the source has ended and everything has drained."""
        self.start()
        self.wait()

    def stop(self) -> None:
        """Stop capture; the stages drain what they hold and end."""
        self.source.close()

    def endpoint(self) -> None:
        """Close the utterance in progress now (push-to-talk released)."""
        self._put_or_stop(self._frames, _ENDPOINT)

    def hush(self) -> None:
        """Stop the speech in progress and drop the rest of that utterance's sentences; the
        sink's own stop() cuts the sentence playing now."""
        self._hushed.set()

    def speak(self, text: str, lang: str) -> None:
        """Say `text` (a command, not a translation); queued behind translations."""
        self._put_or_stop(self._speech, SpeechWork(0, lang, text, time.monotonic()))

    def health(self, stall_timeout: float, capture_expected: bool = True) -> str | None:
        """None when every stage keeps up; else which stage is stalled (stops the watchdog).

        `capture_expected` is False while the source itself reports a lost device: that
        is degraded, not stalled, and the source is already reopening it.
        """
        now = time.monotonic()
        if not any(t.is_alive() for t in self._threads):
            return "pipeline stopped"
        for stage, alive in zip(("capture", "asr", "mt", "tts"), self._threads, strict=True):
            if not alive.is_alive():
                return f"{stage} thread ended"
        if capture_expected and now - self.heartbeat.get("capture", now) > stall_timeout:
            return "capture delivers no audio"
        if self._frames.qsize() and now - self.heartbeat.get("asr", now) > stall_timeout:
            return "recognizer stalled"
        return None

    @property
    def interims_superseded(self) -> int:
        """Interim translations dropped because a newer one replaced them (latest-wins)."""
        return self._mt_inbox.interims_replaced

    def queue_depths(self) -> dict[str, int]:
        return {
            "frames": self._frames.qsize(),
            "translation_finals": self._mt_inbox.pending,
            "speech": self._speech.qsize(),
        }

    def abort(self) -> None:
        """Stop at once, dropping queued work."""
        self.stop_event.set()
        self.source.close()

    def _guard(self, name: str, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except EdgedError as exc:
                log.error("%s stopped: %s", name, exc)
                self.errors.append(exc)
                self._emit_error(0, "stage-failed", f"{name}: {exc}")
                self.abort()
            except Exception:
                log.exception("%s crashed", name)
                self.abort()
                raise

        return run

    def _beat(self, stage: str) -> None:
        self.heartbeat[stage] = time.monotonic()

    # --- stages ----------------------------------------------------------------------

    def _capture_loop(self) -> None:
        try:
            for chunk in self.source.chunks():
                self._beat("capture")
                self.stats.frames_in += 1
                if (self.half_duplex and self.mic_gate.closed) or not self.settings.listening:
                    self.stats.frames_gated += 1
                    continue
                if self.realtime:
                    try:  # a live source must never block: drop and count instead
                        self._frames.put_nowait(chunk)
                    except queue.Full:
                        self.stats.frames_dropped += 1
                else:
                    self._put_or_stop(self._frames, chunk)
                if self.stop_event.is_set():
                    break
        finally:
            self._put_or_stop(self._frames, _END, force=True)

    def _put_or_stop(self, q: queue.Queue, item: object, force: bool = False) -> None:
        while True:
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.stop_event.is_set():
                    if not force:
                        return
                    with contextlib.suppress(queue.Empty):  # make room for the end marker
                        q.get_nowait()

    def _asr_loop(self) -> None:
        segment_open = False
        utt_open = False
        while True:
            item = self._frames.get()
            self._beat("asr")
            if item is _END or self.stop_event.is_set():
                break
            if item is _ENDPOINT:
                for seg in self.segmenter.flush():
                    if seg.kind is SegmentKind.END and segment_open:
                        ends = [_clip(h, seg.t) for h in self.recognizer.end()]
                        self._publish_hypotheses(ends, utt_open)
                segment_open = utt_open = False
                self.segmenter.reset()
                continue
            assert isinstance(item, AudioChunk)
            self.clock.mark(item)
            self.stats.audio_seconds = item.t1
            started = time.monotonic()
            for seg in self.segmenter.accept(item):
                if seg.kind is SegmentKind.START:
                    segment_open = True
                    self._apply_languages()
                    utt_open = self._open_utterance(seg.t)
                    self.recognizer.begin(seg.t)
                    hyps = self.recognizer.accept(seg.samples) if len(seg.samples) else []
                elif seg.kind is SegmentKind.AUDIO:
                    hyps = self.recognizer.accept(seg.samples) if segment_open else []
                else:
                    segment_open = False
                    hyps = [_clip(h, seg.t) for h in self.recognizer.end()]
                utt_open = self._publish_hypotheses(hyps, utt_open)
                if seg.kind is SegmentKind.END:
                    utt_open = False
            self.stats.add_time("asr", time.monotonic() - started)
        for seg in self.segmenter.flush():
            if seg.kind is SegmentKind.END and segment_open:
                self._publish_hypotheses([_clip(h, seg.t) for h in self.recognizer.end()], utt_open)
        self._mt_inbox.put_final(_END, self.stop_event)

    def _apply_languages(self) -> None:
        """A command may have changed the source candidates; engines change between
        utterances, on the thread that owns them."""
        languages = self.settings.languages
        if languages != self._languages:
            self.recognizer.set_languages(languages)
            self._languages = languages

    def _open_utterance(self, t0: float) -> bool:
        self._utt += 1
        self.stats.utterances += 1
        self.bus.emit(SpeechStart(device=self.device, utt=self._utt, seq=0, t0=round(t0, 3)))
        return True

    def _publish_hypotheses(self, hyps: list[Hypothesis], utt_open: bool) -> bool:
        for h in hyps:
            if not utt_open:  # an engine with its own endpointing began a new utterance
                utt_open = self._open_utterance(h.t0)
            arrived = self.clock.arrival(h.t1)
            lat_ms = int((time.monotonic() - arrived) * 1000)
            common: dict[str, Any] = _token_fields(h) | dict(
                device=self.device,
                utt=self._utt,
                seq=0,
                src=h.lang,
                text=h.text,
                t0=round(h.t0, 3),
                t1=round(h.t1, 3),
                lat_ms=lat_ms,
            )
            work = TranslationWork(self._utt, h.kind is HypothesisKind.FINAL, h, arrived)
            if h.kind is HypothesisKind.FINAL:
                self.bus.emit(AsrFinal(**common))
                self._mt_inbox.put_final(work, self.stop_event)
                utt_open = False
            else:
                self.bus.emit(AsrPartial(stable=h.stable, **common))
                if self.interim and h.stable:
                    self._mt_inbox.put_interim(work)
        return utt_open

    def _mt_loop(self) -> None:
        last_interim: dict[tuple[int, str], str] = {}
        next_interim = 0.0
        while True:
            work = self._mt_inbox.get(next_interim)
            self._beat("mt")
            if work is _END:
                break
            assert isinstance(work, TranslationWork)
            if self.stop_event.is_set() and not work.final:
                continue
            settings = self.settings.snapshot()
            started = time.monotonic()
            for tgt in settings.targets:
                source_text = work.hypothesis.text if work.final else work.hypothesis.stable
                key = (work.utt, tgt)
                if not work.final and last_interim.get(key) == source_text:
                    continue
                last_interim[key] = source_text
                self._translate_one(work, tgt, source_text, settings)
            self.stats.add_time("mt", time.monotonic() - started)
            if not work.final:
                next_interim = time.monotonic() + self.interim_interval
            if len(last_interim) > 256:
                last_interim.clear()
        self._put_or_stop(self._speech, _END, force=True)

    def _translate_one(
        self, work: TranslationWork, tgt: str, text: str, settings: Settings
    ) -> None:
        h = work.hypothesis
        partial = dataclasses.replace(h, text=text)
        try:
            result = self.translate(partial, tgt)
        except EdgedError as exc:
            log.warning("translation %s->%s failed: %s", h.lang, tgt, exc)
            self._emit_error(work.utt, "translation-failed", str(exc))
            return
        if result is None:
            return
        translated, engine = result
        lat_ms = int((time.monotonic() - work.audio_end) * 1000)
        cls = MtFinal if work.final else MtInterim
        self.bus.emit(
            cls(
                device=self.device,
                utt=work.utt,
                seq=0,
                src=h.lang,
                tgt=tgt,
                text=translated,
                engine=engine,
                t0=round(h.t0, 3),
                t1=round(h.t1, 3),
                lat_ms=lat_ms,
            )
        )
        if work.final and tgt == settings.speak and not settings.speech_muted and translated:
            self._put_or_stop(self._speech, SpeechWork(work.utt, tgt, translated, work.audio_end))

    def _tts_loop(self) -> None:
        while True:
            work = self._speech.get()
            self._beat("tts")
            if work is _END:
                break
            assert isinstance(work, SpeechWork)
            if self.stop_event.is_set() or self.voices is None or self.sink is None:
                continue
            try:
                self._speak(work)
            except EdgedError as exc:
                log.warning("speech synthesis failed: %s", exc)
                self._emit_error(work.utt, "tts-failed", str(exc))
            finally:
                self.mic_gate.done(self.gate_tail)

    def _speak(self, work: SpeechWork) -> None:
        assert self.voices is not None and self.sink is not None
        voice = self.voices.for_language(work.lang)
        if voice is None:
            self._emit_error(work.utt, "no-voice", f"no voice for language '{work.lang}'")
            return
        voice_name, synthesizer = voice
        started = time.monotonic()
        duration = 0.0
        self._hushed.clear()
        for i, audio in enumerate(synthesizer.synthesize(work.text, work.lang)):
            if self._hushed.is_set():
                break
            if i == 0:
                lat_ms = int((time.monotonic() - work.audio_end) * 1000)
                self.bus.emit(
                    TtsStart(
                        device=self.device,
                        utt=work.utt,
                        seq=0,
                        lang=work.lang,
                        voice=voice_name,
                        text=work.text,
                        lat_ms=lat_ms,
                    )
                )
                self.mic_gate.speaking()
            self.sink.play(audio, synthesizer.sample_rate)
            duration += len(audio) / synthesizer.sample_rate
            if self.stop_event.is_set():
                break
        self.stats.add_time("tts", time.monotonic() - started)
        if duration:
            self.bus.emit(
                TtsEnd(
                    device=self.device,
                    utt=work.utt,
                    seq=0,
                    lang=work.lang,
                    duration=round(duration, 3),
                )
            )

    def _emit_error(self, utt: int, code: str, message: str) -> None:
        self.bus.emit(Error(device=self.device, utt=utt, seq=0, code=code, message=message))


def _token_fields(h: Hypothesis) -> dict[str, Any]:
    """The model's tokens and their start times, for engines that give them."""
    if not h.tokens:
        return {}
    return {"tokens": [t for t, _ in h.tokens], "token_t0": [s for _, s in h.tokens]}


def _clip(h: Hypothesis, t1: float) -> Hypothesis:
    """A final closed by the VAD ends where the speech ended, not after the trailing silence."""
    return dataclasses.replace(h, t1=min(h.t1, t1)) if t1 > h.t0 else h
