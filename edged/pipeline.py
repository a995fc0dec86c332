"""Wiring: source -> VAD/recognizer -> translator -> synthesizer, one thread per stage.

Queues between stages are bounded and each has a stated policy: capture drops (and counts)
when the recognizer is behind a live source, interim translation work is latest-wins,
finals are never dropped (their producers wait instead), and speech to be spoken keeps
the newest few translations (an older one dropped is announced) while `speak` commands
are refused when their queue is full. Nothing a command does waits on a stage.

Commands change a running pipeline only through its methods (set_targets, ptt_start,
mute, …); the settings they change are one immutable value replaced whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edged import heap
from edged.asr import Hypothesis, HypothesisKind, Recognizer, Resumable, SpeechTranslator
from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, AudioSink, AudioSource, Speaker
from edged.bus import EventBus
from edged.control import MAX_SPEAK_CHARS
from edged.errors import EdgedError
from edged.events import (
    AsrFinal,
    AsrPartial,
    Error,
    MtFinal,
    MtInterim,
    SpeechStart,
    TtsEnd,
    TtsStart,
)
from edged.tts import Voices
from edged.vad import Endpointing, Segmenter, SegmentEvent, SegmentKind

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker passed down the queues
_ENDPOINT = object()  # close the current utterance now
_RELEASE = object()  # push-to-talk released: close the utterance, stop listening

MAX_SPEAK_SECONDS = 30.0  # audio one `speak` command may play
SPEAK_QUEUE = 4  # `speak` commands waiting; more are refused
SPEECH_QUEUE = 6  # translations waiting to be spoken; the oldest is dropped (announced)


class Trigger(enum.Enum):
    """When the microphone listens: always (the VAD finds utterances), or only while a
    push-to-talk button is held (release ends the utterance at once)."""

    CONTINUOUS = "continuous"
    PUSH_TO_TALK = "push_to_talk"


@dataclass(frozen=True)
class Settings:
    """What commands may change while running. Immutable: replaced whole, read once per
    work item by each stage."""

    languages: tuple[str, ...]  # source candidates for language identification
    targets: tuple[str, ...]
    speak: str = ""  # the target spoken aloud; "" = none
    conversation: tuple[str, ...] = ()  # two or more languages: conversation mode
    trigger: Trigger = Trigger.CONTINUOUS
    listening: bool = True  # False while paused
    speech_muted: bool = False

    @property
    def candidates(self) -> tuple[str, ...]:
        """Languages the recognizer may identify."""
        return self.conversation or self.languages

    def targets_for(self, src: str) -> tuple[str, ...]:
        """Conversation: every other conversation language (never an identity
        translation); else the configured targets."""
        if self.conversation:
            return tuple(lang for lang in self.conversation if lang != src)
        return self.targets

    def spoken_for(self, src: str) -> tuple[str, ...]:
        """Targets spoken aloud for an utterance in `src`: in conversation the listener's
        language(s), never the speaker's own; else `speak`."""
        if self.speech_muted:
            return ()
        if self.conversation:
            return self.targets_for(src)
        return (self.speak,) if self.speak else ()


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


@dataclass(frozen=True)
class TranslationWork:
    """A transcript to translate: a final, or the stable prefix of a partial.

    `speech_follows`: the recognizer will send its own speech->English translation of
    this final later (a second work item with `hypothesis.translation_en` set and
    `speech_only`), so targets that need it wait for that one.
    """

    utt: int
    final: bool
    hypothesis: Hypothesis
    audio_end: float  # monotonic arrival of the last sample covered
    speech_follows: bool = False
    speech_only: bool = False


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
    command: bool = False  # a `speak` command, not a translation
    epoch: int = 0  # the hush epoch it was queued in


class SpeechQueue:
    """What the TTS stage will say. Translations: the newest SPEECH_QUEUE are kept (the
    oldest is dropped and returned so it can be announced); `speak` commands: at most
    SPEAK_QUEUE, refused beyond. clear() empties both and starts a new hush epoch, so a
    stop also silences everything queued before it, never what comes after."""

    def __init__(self) -> None:
        self._items: deque[SpeechWork] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self.epoch = 0
        self.dropped = 0

    def put(self, work: SpeechWork) -> SpeechWork | None:
        """Queue `work`; returns a translation dropped to make room, if any. Raises
        EdgedError for a command when the command queue is full."""
        with self._cond:
            work = dataclasses.replace(work, epoch=self.epoch)
            dropped = None
            same_kind = [w for w in self._items if w.command == work.command]
            if work.command and len(same_kind) >= SPEAK_QUEUE:
                raise EdgedError(f"speech queue full ({SPEAK_QUEUE} speak commands waiting)")
            if not work.command and len(same_kind) >= SPEECH_QUEUE:
                dropped = same_kind[0]
                self._items.remove(dropped)
                self.dropped += 1
            self._items.append(work)
            self._cond.notify_all()
            return dropped

    def get(self) -> SpeechWork | object:
        with self._cond:
            while not self._items and not self._ended:
                self._cond.wait()
            return self._items.popleft() if self._items else _END

    def clear(self) -> int:
        with self._cond:
            cleared = len(self._items)
            self._items.clear()
            self.epoch += 1
            return cleared

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Stats:
    """Counters the daemon reports; written by one stage each."""

    frames_in: int = 0
    frames_dropped: int = 0
    frames_gated: int = 0  # paused, or muted while the device speaks (capture thread)
    frames_unheld: int = 0  # push-to-talk button up (recognizer thread)
    utterances: int = 0
    finals_rejected: int = 0
    finals_resumed: int = 0  # finals decoded at a pause, dropped because speech went on
    stage_seconds: dict[str, float] = field(default_factory=dict)
    audio_seconds: float = 0.0

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


TranslateFn = Callable[[Hypothesis, str], "tuple[str, str] | None"]
"""(hypothesis, target) -> (translated text, engine name), or None when that pair cannot be
served for this hypothesis (Whisper's speech translation of an interim, or a final whose
speech->English text has not come yet)."""


@dataclass
class _Hold:
    """A final decoded at a pause, published at `commit_at` (audio time) unless the
    speaker goes on; `gap` is the audio since the pause."""

    hypotheses: list[Hypothesis]
    t_end: float
    commit_at: float
    gap: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class _Press:
    """Push-to-talk pressed: `lang` fixes the turn's language (a per-language button)."""

    lang: str | None


class Pipeline:
    """Runs the stages for one audio source until it ends or stop() is called."""

    def __init__(
        self,
        *,
        device: str,
        source: AudioSource,
        segmenter: Segmenter,
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
        endpointing: Endpointing | None = None,
        max_utterance: float = 20.0,
    ) -> None:
        self.source = source
        self.segmenter = segmenter
        self.recognizer = recognizer
        self.translate = translate
        self.voices = voices
        self.sink = sink
        self.bus = bus
        self.device = device
        self.interim = interim
        self.interim_interval = interim_interval
        self.realtime = realtime
        self.stats = Stats()
        self.clock = AudioClock()
        self.stop_event = threading.Event()
        self.mic_gate = MicGate()
        self.half_duplex = half_duplex  # a speaker the microphone can hear
        self.gate_tail = gate_tail
        # Speculative finals and the adaptive endpoint need a recognizer that can resume.
        self.endpointing = endpointing if isinstance(recognizer, Resumable) else None
        self.max_utterance = max_utterance  # a resumed utterance never grows past this
        self.heartbeat: dict[str, float] = {}
        self.errors: list[EdgedError] = []
        self._settings = settings
        self._settings_lock = threading.Lock()  # read-modify-write by commands
        self._frames: queue.Queue[AudioChunk | object] = queue.Queue(
            maxsize=max(4, int(queue_seconds * SAMPLE_RATE / FRAME_SAMPLES))
        )
        self._mt_inbox = TranslationInbox()
        self._speech = SpeechQueue()
        self._threads: list[threading.Thread] = []
        self._t_offset = bus.session.time_offset
        # Owned by the ASR thread.
        self._utt = 0
        self._languages: tuple[str, ...] = ()  # applied to the recognizer at the first utterance
        self._turn_lang: str | None = None  # fixed by a per-language push-to-talk button
        self._turns = False
        self._ptt_down = False  # push-to-talk button held
        self._utt_open = False  # speech.start published, final not yet
        self._hold: _Hold | None = None  # a final decoded at a pause, not yet published
        self._utt_t0 = 0.0
        self._last_src = settings.candidates[0]
        self._pending_speech: TranslationWork | None = None  # final awaiting its English
        self._drain_at_boundary = threading.Event()
        self._segment_open = False

    # --- settings and commands (any thread) -------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    def update_settings(self, **changes: Any) -> Settings:
        """Replace some settings; returns the new value. Callers check routes first."""
        with self._settings_lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            return self._settings

    def pause(self) -> None:
        self.update_settings(listening=False)

    def resume(self) -> None:
        self.update_settings(listening=True)

    def ptt_start(self, lang: str | None = None) -> None:
        """The button is pressed: listen (push-to-talk); `lang` fixes the turn's language.
        The press travels in order with the audio, so exactly the frames captured after
        it are heard."""
        self._put_marker(_Press(lang))

    def ptt_stop(self) -> None:
        """The button is released: the utterance in progress ends now. In continuous mode
        the microphone stays open."""
        self._put_marker(_RELEASE)

    def endpoint(self) -> None:
        """Close the utterance in progress now."""
        self._put_marker(_ENDPOINT)

    def _put_marker(self, marker: object) -> None:
        """Behind the audio captured so far; a command waits at most a second for room
        (only a recognizer many seconds behind leaves none), then is refused."""
        try:
            self._frames.put(marker, timeout=1.0)
        except queue.Full:
            raise EdgedError("the recognizer is behind the microphone; try again") from None

    def mute(self) -> None:
        """No more speech until unmute: what plays stops, what is queued is dropped."""
        self.update_settings(speech_muted=True)
        self.stop_playback()

    def unmute(self) -> None:
        self.update_settings(speech_muted=False)

    def stop_playback(self) -> int:
        """Stop the speech playing now and drop everything queued; returns how many queued
        items were dropped. Speech queued afterwards plays normally."""
        cleared = self._speech.clear()
        if isinstance(self.sink, Speaker):
            self.sink.stop()
        return cleared

    def speak(self, text: str, lang: str) -> None:
        """Say `text` (a command, not a translation). Never waits: raises EdgedError when
        muted, too long, or when SPEAK_QUEUE commands are already waiting."""
        if self._settings.speech_muted:
            raise EdgedError("speech is muted; send unmute first")
        if len(text) > MAX_SPEAK_CHARS:
            raise EdgedError(f"text is {len(text)} characters; at most {MAX_SPEAK_CHARS}")
        self._speech.put(SpeechWork(0, lang, text, time.monotonic(), command=True))

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
        """Start, then wait until the source has ended, everything has drained and every
        publisher has been handed every event."""
        self.start()
        self.wait()
        self.bus.drain(10.0)

    def stop(self) -> None:
        """Stop capture; the stages drain what they hold and end."""
        self.source.close()

    def stop_at_boundary(self) -> None:
        """Stop capture once no utterance is in progress (a reload must not split one);
        stop() bounds the wait."""
        self._drain_at_boundary.set()
        if not self._segment_open:
            self.source.close()

    def abort(self) -> None:
        """Stop at once, dropping queued work."""
        self.stop_event.set()
        self._speech.clear()
        self.source.close()

    @property
    def audio_end(self) -> float:
        """Audio seconds on the session's timeline up to the last frame seen."""
        return self._t_offset + self.stats.audio_seconds

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

    @property
    def speech_dropped(self) -> int:
        """Translations never spoken because newer ones filled the speech queue."""
        return self._speech.dropped

    def queue_depths(self) -> dict[str, int]:
        return {
            "frames": self._frames.qsize(),
            "translation_finals": self._mt_inbox.pending,
            "speech": len(self._speech),
        }

    def _guard(self, name: str, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except EdgedError as exc:
                log.error("%s stopped: %s", name, exc)
                self.errors.append(exc)
                self._emit_error(0, "stage-failed", f"{name}: {exc}")
                self.abort()
                self._unblock_downstream()
            except Exception:
                log.exception("%s crashed", name)
                self.abort()
                self._unblock_downstream()
                raise

        return run

    def _unblock_downstream(self) -> None:
        """A stage died: make sure the ones after it see the end instead of waiting."""
        self._put_or_stop(self._frames, _END, force=True)
        self._mt_inbox.put_final(_END, self.stop_event)
        self._speech.end()

    def _beat(self, stage: str) -> None:
        self.heartbeat[stage] = time.monotonic()

    # --- stages ----------------------------------------------------------------------

    def _listening(self) -> bool:
        if not self._settings.listening:
            return False
        return not (self.half_duplex and self.mic_gate.closed)

    def _capture_loop(self) -> None:
        try:
            for chunk in self.source.chunks():
                self._beat("capture")
                self.stats.frames_in += 1
                if not self._listening():
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
        while True:
            item = self._frames.get()
            self._beat("asr")
            if item is _END or self.stop_event.is_set():
                break
            if isinstance(item, _Press):
                self._turn_lang, self._ptt_down = item.lang, True
                continue
            if item is _RELEASE:
                self._ptt_down = False
            if item is _ENDPOINT or item is _RELEASE:
                self._flush()
                self.segmenter.reset()
                continue
            assert isinstance(item, AudioChunk)
            if self._settings.trigger is Trigger.PUSH_TO_TALK and not self._ptt_down:
                self.stats.frames_unheld += 1  # the microphone is "closed": not even the VAD
                continue
            self.clock.mark(item)
            self.stats.audio_seconds = item.t1
            started = time.monotonic()
            if self._hold is not None:
                self._hold.gap.append(item.samples)
            for seg in self.segmenter.accept(item):
                self._on_segment(seg)
            if self._hold is not None and item.t1 >= self._hold.commit_at:
                self._commit(self._hold.hypotheses, self._hold.t_end)
            self.stats.add_time("asr", time.monotonic() - started)
        self._flush()
        self._mt_inbox.put_final(_END, self.stop_event)

    def _on_segment(self, seg: SegmentEvent) -> None:
        if seg.kind is SegmentKind.START:
            if self._hold is not None:
                if seg.t - self._utt_t0 < self.max_utterance:
                    self._resume()
                    return
                self._commit(self._hold.hypotheses, self._hold.t_end)  # long enough: split
            self._segment_open = True
            self._apply_languages()
            self._open_utterance(seg.t)
            self.recognizer.begin(seg.t)
            first = self.recognizer.accept(seg.samples) if len(seg.samples) else []
            self._publish_hypotheses(first)
        elif seg.kind is SegmentKind.AUDIO:
            if self._segment_open and self._hold is None:
                self._publish_hypotheses(self.recognizer.accept(seg.samples))
        else:
            self._pause(seg.t)

    def _pause(self, t_end: float, hold: bool = True) -> None:
        """VAD END: decode the final now. With a resumable recognizer it is published only
        once the silence is long enough for its text (a sentence end needs less); speech
        that resumes before then continues the same utterance."""
        if not self._segment_open or self._hold is not None:
            return
        ends = [_clip(h, t_end) for h in self.recognizer.end()]
        if hold and ends and self.endpointing is not None:
            needed = self.endpointing.silence_for(ends[-1].text)
            if t_end + needed > self.stats.audio_seconds:
                self._hold = _Hold(ends, t_end, t_end + needed)
                return
        self._commit(ends, t_end)

    def _commit(self, ends: list[Hypothesis], t_end: float) -> None:
        """Publish the utterance's final; one that got none still ends visibly, with an
        empty final and a reason."""
        self._hold = None
        self._segment_open = False
        self._publish_hypotheses(ends)
        if self._utt_open:
            self._publish_rejected(t_end, "no-speech")
            self._utt_open = False
        self._speech_translation()
        heap.trim()  # after the utterance's work, before the next one's (see edged.heap)
        self._at_boundary()

    def _resume(self) -> None:
        """The speaker went on within the pause: the decoded final is dropped and the same
        utterance continues, with the pause's audio."""
        hold, self._hold = self._hold, None
        assert hold is not None and isinstance(self.recognizer, Resumable)
        self.recognizer.resume()
        self.stats.finals_resumed += 1
        gap = np.concatenate(hold.gap) if hold.gap else np.zeros(0, np.float32)
        self._publish_hypotheses(self.recognizer.accept(gap))

    def _flush(self) -> None:
        """End of input, push-to-talk release or endpoint: close everything now."""
        if self._hold is not None:
            self._commit(self._hold.hypotheses, self._hold.t_end)
        for seg in self.segmenter.flush():
            if seg.kind is SegmentKind.END:
                self._pause(seg.t, hold=False)
        self._at_boundary()

    def _at_boundary(self) -> None:
        if self._drain_at_boundary.is_set() and not self._segment_open:
            self.source.close()

    def _apply_languages(self) -> None:
        """Commands or a push-to-talk button may have changed the candidates; engines
        change between utterances, on the thread that owns them."""
        settings = self._settings
        languages = (self._turn_lang,) if self._turn_lang else settings.candidates
        turns = bool(settings.conversation)
        if (languages, turns) != (self._languages, self._turns):
            self.recognizer.set_languages(languages, turns=turns)
            self._languages, self._turns = languages, turns

    def _open_utterance(self, t0: float) -> None:
        self._utt_open = True
        self._utt_t0 = t0
        self._utt = self.bus.session.next_utt()
        self.stats.utterances += 1
        self.bus.emit(SpeechStart(device=self.device, utt=self._utt, seq=0, t0=self._t(t0)))
        self._last_src = self._languages[0]

    def _t(self, t: float) -> float:
        return round(self._t_offset + t, 3)

    def _publish_rejected(self, t1: float, reason: str, h: Hypothesis | None = None) -> None:
        self.stats.finals_rejected += 1
        arrived = self.clock.arrival(t1)
        self.bus.emit(
            AsrFinal(
                device=self.device,
                utt=self._utt,
                seq=0,
                src=h.lang if h else self._last_src,
                text="",
                t0=self._t(h.t0) if h else self._t(t1),
                t1=self._t(t1),
                lat_ms=int((time.monotonic() - arrived) * 1000),
                reason=reason,
            )
        )

    def _publish_hypotheses(self, hyps: list[Hypothesis]) -> None:
        for h in hyps:
            if not self._utt_open:  # an engine with its own endpointing began a new one
                self._open_utterance(h.t0)
            if h.kind is HypothesisKind.FINAL and not h.text:
                self._publish_rejected(h.t1, h.reason or "no-speech", h)
                self._utt_open = False
                continue
            arrived = self.clock.arrival(h.t1)
            lat_ms = int((time.monotonic() - arrived) * 1000)
            common: dict[str, Any] = _token_fields(h) | dict(
                device=self.device,
                utt=self._utt,
                seq=0,
                src=h.lang,
                text=h.text,
                t0=self._t(h.t0),
                t1=self._t(h.t1),
                lat_ms=lat_ms,
            )
            if h.kind is HypothesisKind.FINAL:
                self.bus.emit(AsrFinal(**common))
                follows = self._speech_translation_due(h)
                work = TranslationWork(self._utt, True, h, arrived, speech_follows=follows)
                self._mt_inbox.put_final(work, self.stop_event)
                self._pending_speech = work if follows else None
                self._utt_open = False
            else:
                self.bus.emit(AsrPartial(stable=h.stable, **common))
                if self.interim and h.stable:
                    self._mt_inbox.put_interim(TranslationWork(self._utt, False, h, arrived))

    def _speech_translation_due(self, h: Hypothesis) -> bool:
        """The recognizer translates this final's speech to English itself, after the
        transcript is out (asr.final never waits for any translation)."""
        r = self.recognizer
        if h.translation_en is not None or not isinstance(r, SpeechTranslator):
            return False
        return r.speech_translation_due(h)

    def _speech_translation(self) -> None:
        work, self._pending_speech = self._pending_speech, None
        if work is None or not isinstance(self.recognizer, SpeechTranslator):
            return
        english = self.recognizer.translate_speech()
        h = dataclasses.replace(work.hypothesis, translation_en=english or None)
        self._mt_inbox.put_final(
            dataclasses.replace(work, hypothesis=h, speech_follows=False, speech_only=True),
            self.stop_event,
        )

    def _mt_loop(self) -> None:
        last_interim: dict[tuple[int, str], str] = {}
        waiting_speech: dict[int, list[str]] = {}  # utt -> targets waiting for English
        next_interim = 0.0
        while True:
            work = self._mt_inbox.get(next_interim)
            self._beat("mt")
            if work is _END:
                break
            assert isinstance(work, TranslationWork)
            if self.stop_event.is_set() and not work.final:
                continue
            settings = self._settings
            started = time.monotonic()
            h = work.hypothesis
            if work.speech_only:
                targets = waiting_speech.pop(work.utt, [])
            else:
                targets = list(settings.targets_for(h.lang))
            for tgt in targets:
                source_text = h.text if work.final else h.stable
                key = (work.utt, tgt)
                if not work.final and last_interim.get(key) == source_text:
                    continue
                last_interim[key] = source_text
                served = self._translate_one(work, tgt, source_text, settings)
                if not served and work.final and work.speech_follows:
                    waiting_speech.setdefault(work.utt, []).append(tgt)
            self.stats.add_time("mt", time.monotonic() - started)
            if not work.final:
                next_interim = time.monotonic() + self.interim_interval
            if len(last_interim) > 256:
                last_interim.clear()
        self._speech.end()

    def _translate_one(
        self, work: TranslationWork, tgt: str, text: str, settings: Settings
    ) -> bool:
        """Translate and publish one pair; False when the pair cannot be served now."""
        h = work.hypothesis
        partial = dataclasses.replace(h, text=text)
        try:
            result = self.translate(partial, tgt)
        except EdgedError as exc:
            log.warning("translation %s->%s failed: %s", h.lang, tgt, exc)
            self._emit_error(work.utt, "translation-failed", f"{h.lang}->{tgt}: {exc}")
            return True
        if result is None:
            if work.speech_only:  # the English never came: end the pair visibly
                self._emit_error(
                    work.utt, "translation-failed", f"{h.lang}->{tgt}: no speech translation"
                )
                return True
            return False
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
                t0=self._t(h.t0),
                t1=self._t(h.t1),
                lat_ms=lat_ms,
            )
        )
        if work.final and translated and tgt in settings.spoken_for(h.lang):
            dropped = self._speech.put(SpeechWork(work.utt, tgt, translated, work.audio_end))
            if dropped is not None:
                self._emit_error(
                    dropped.utt,
                    "tts-dropped",
                    "speech fell behind: an older translation was not spoken",
                )
        return True

    def _tts_loop(self) -> None:
        while True:
            work = self._speech.get()
            self._beat("tts")
            if work is _END:
                break
            assert isinstance(work, SpeechWork)
            if self.stop_event.is_set() or self.voices is None or self.sink is None:
                continue
            if work.epoch != self._speech.epoch:
                continue  # stopped or muted after it was queued
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
        for i, audio in enumerate(synthesizer.synthesize(work.text, work.lang)):
            if work.epoch != self._speech.epoch or self.stop_event.is_set():
                break
            if work.command and duration >= MAX_SPEAK_SECONDS:
                log.warning("speak command cut after %.0f s of audio", duration)
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
