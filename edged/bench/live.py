"""One benchmark run of the real pipeline: the set's recording fed as a microphone would
deliver it (paced in real time, or as fast as the pipeline takes it with --fast), every
event recorded with the monotonic time it arrived, the synthesized speech captured, and
the process's CPU clock and resident memory sampled along the way.

`naive` runs the same pipeline with the SegmentRecognizer: the VAD cuts utterances and each
is recognised in one pass after it ends (no partials, no interim translation). Each run
loads its engines in a fresh process (run_isolated), so its memory and CPU are its own.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edged.asr import Hypothesis, HypothesisKind, Recognizer
from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, AudioSource
from edged.audio.pacing import Pacer
from edged.config import Config, replace
from edged.errors import ConfigError
from edged.events import Event, TtsStart

log = logging.getLogger(__name__)

MODES = ("streaming", "naive")
RSS_EVERY_S = 5.0  # resident memory sampling period (wall seconds)


# --- what a run records --------------------------------------------------------------------


class Recorder:
    """Keeps every event with the monotonic time it was emitted (a bus observer); it also
    tells the capture sink which utterance the synthesized audio belongs to."""

    def __init__(self) -> None:
        self.received: list[tuple[float, Event]] = []
        self.speaking = 0  # utterance of the last tts.start (the TTS stage plays it next)
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        rx = time.monotonic()
        with self._lock:
            if isinstance(event, TtsStart):
                self.speaking = event.utt
            self.received.append((rx, event))

    def close(self) -> None:
        pass


class CaptureSink:
    """An AudioSink keeping the synthesized speech of each utterance and when its first
    samples were handed over to be played (nothing is played). The speech goes to a
    temporary file, not the heap: the run's peak RSS is then the daemon's, not the
    harness's (a 12-minute run synthesizes ~45 MB of it). A soak keeps only the times
    (`keep_audio=False`)."""

    def __init__(self, recorder: Recorder, keep_audio: bool = True) -> None:
        self._recorder = recorder
        # The file lives as long as the sink (the report reads it after the pipeline has
        # closed its sink); the system deletes it when it is collected.
        spool = tempfile.TemporaryFile() if keep_audio else None  # noqa: SIM115
        self._spool: BinaryIO | None = spool
        self._pieces: list[tuple[int, int]] = []  # (utterance, samples), in spool order
        self.first_audio: dict[int, float] = {}  # utterance -> monotonic time of first play
        self.sample_rate = 0

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        utt = self._recorder.speaking
        self.first_audio.setdefault(utt, time.monotonic())
        self.sample_rate = sample_rate
        if self._spool is not None:
            data = np.asarray(samples, np.float32)
            self._spool.write(data.tobytes())
            self._pieces.append((utt, len(data)))

    @property
    def audio(self) -> dict[int, np.ndarray]:
        """Each utterance's speech, read back from the spool."""
        if self._spool is None:
            return {}
        self._spool.seek(0)
        everything = np.frombuffer(self._spool.read(), np.float32)
        self._spool.seek(0, io.SEEK_END)  # a later play() appends
        kept: dict[int, list[np.ndarray]] = {}
        at = 0
        for utt, count in self._pieces:
            kept.setdefault(utt, []).append(everything[at : at + count])
            at += count
        return {utt: np.concatenate(parts) for utt, parts in kept.items()}

    def close(self) -> None:
        pass


class LoopSource:
    """The set's recording as a live source: `repeats` times in a row on one continuous
    timeline (a soak), then `tail_silence` seconds so the VAD closes the last utterance;
    paced in real time unless `realtime` is False (the pipeline then takes frames as fast
    as it can, and never drops one). A recording already in the pipeline's format (the
    generated sets) is read frame by frame from the file, not held: the run's RSS is the
    daemon's, not 47 MB of the harness's (a 12-minute set); any other is converted once."""

    def __init__(
        self, path: Path, repeats: int = 1, realtime: bool = True, tail_silence: float = 1.0
    ) -> None:
        from edged.audio.convert import to_pipeline_format
        from edged.audio.wav import read_wav

        self._path = path
        self._audio: np.ndarray | None = None
        frames = _pipeline_format_frames(path)
        if frames is None:
            samples, rate = read_wav(path)  # fails here, before any model loads
            self._audio = to_pipeline_format(samples, rate)
            frames = len(self._audio)
        self._frames = frames
        self._repeats = max(1, repeats)
        self._tail = int(tail_silence * SAMPLE_RATE)
        self._pacer = Pacer(realtime)

    @property
    def duration(self) -> float:
        """Seconds of audio one pass of the recording holds."""
        return self._frames / SAMPLE_RATE

    def _pass(self) -> Iterator[np.ndarray]:
        """One pass of the recording, FRAME_SAMPLES at a time (the last frame shorter)."""
        if self._audio is not None:
            for start in range(0, len(self._audio), FRAME_SAMPLES):
                yield self._audio[start : start + FRAME_SAMPLES]
            return
        with wave.open(str(self._path), "rb") as wav:
            while data := wav.readframes(FRAME_SAMPLES):
                yield np.frombuffer(data, "<i2").astype(np.float32) / 32768.0

    def chunks(self) -> Iterator[AudioChunk]:
        silence = np.zeros(FRAME_SAMPLES, np.float32)
        self._pacer.start()
        position = 0
        for _ in range(self._repeats):
            for frame in self._pass():
                if not self._pacer.wait_until(position + len(frame)):
                    return
                yield AudioChunk(frame, position, time.monotonic())
                position += len(frame)
        for _ in range(0, self._tail, FRAME_SAMPLES):
            if not self._pacer.wait_until(position + FRAME_SAMPLES):
                return
            yield AudioChunk(silence, position, time.monotonic())
            position += FRAME_SAMPLES

    def close(self) -> None:
        self._pacer.stop()


def _pipeline_format_frames(path: Path) -> int | None:
    """The frame count of a 16 kHz mono 16-bit PCM WAV, None for any other file."""
    try:
        with wave.open(str(path), "rb") as wav:
            same = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (
                SAMPLE_RATE,
                1,
                2,
            )
            return wav.getnframes() if same else None
    except (wave.Error, EOFError, OSError):
        return None  # read_wav names the problem


class TimedSource:
    """Wraps an AudioSource and notes, per chunk, its end sample, its arrival (monotonic)
    and the process CPU time at that moment."""

    def __init__(self, inner: AudioSource) -> None:
        self.inner = inner
        self.ends: list[int] = []
        self.arrivals: list[float] = []
        self.cpu: list[float] = []

    def chunks(self) -> Iterator[AudioChunk]:
        for chunk in self.inner.chunks():
            self.ends.append(chunk.end)
            self.arrivals.append(chunk.arrival)
            self.cpu.append(time.process_time())
            yield chunk

    def close(self) -> None:
        self.inner.close()


class RssSampler:
    """Samples this process's resident memory every `every` seconds in a thread, as
    (seconds since start, MB) pairs: whether RSS plateaus over a soak."""

    def __init__(self, every: float = RSS_EVERY_S) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edged-bench-rss", daemon=True)
        self._origin = time.monotonic()

    def start(self) -> None:
        self._origin = time.monotonic()
        self._thread.start()

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.samples

    def _sample(self) -> None:
        kb = status_kb("VmRSS")
        if kb is not None:
            self.samples.append((round(time.monotonic() - self._origin, 1), round(kb / 1024, 1)))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.every):
            self._sample()


class SegmentRecognizer:
    """The naive recognizer: holds each VAD segment's audio and decodes it once, after the
    segment has ended; partials are never produced.

    For Whisper the naive run also sets asr.whisper.partials = false, so the single pass
    is not preceded by a wasted partial decode; the wrapper keeps any engine (sherpa too)
    from publishing partials.
    """

    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self._parts: list[np.ndarray] = []
        self._t0 = 0.0

    def begin(self, t0: float) -> None:
        self._t0 = t0
        self._parts = []

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        self._parts.append(np.array(samples, dtype=np.float32))
        return []

    def end(self) -> list[Hypothesis]:
        self.inner.begin(self._t0)
        hyps = self.inner.accept(np.concatenate(self._parts)) if self._parts else []
        hyps = hyps + self.inner.end()
        self._parts = []
        return [h for h in hyps if h.kind is HypothesisKind.FINAL]

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        self.inner.set_languages(candidates, turns=turns)


@dataclass
class RunRecord:
    """Everything one run measured, before analysis."""

    mode: str
    realtime: bool
    received: list[tuple[float, Event]]
    ends: list[int]
    arrivals: list[float]
    cpu: list[float]
    stats: dict[str, Any]
    counts: dict[str, int]
    errors: list[str]
    load_s: float
    wall_s: float
    cpu_s: float
    ended: float  # monotonic time the pipeline finished
    memory: dict[str, Any]
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB)
    tts_rate: int = 0
    tts_audio: dict[int, np.ndarray] = field(default_factory=dict)
    first_audio: dict[int, float] = field(default_factory=dict)  # utt -> monotonic
    heard: dict[int, str] = field(default_factory=dict)  # synthesized speech, transcribed


# --- memory ---------------------------------------------------------------------------------


def status_kb(key: str) -> int | None:
    """A kB figure of /proc/self/status (VmRSS, VmHWM), None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers the run only."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- one run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """How a run feeds the recording: paced or not, how many times in a row."""

    mode: str = "streaming"
    realtime: bool = True
    repeats: int = 1
    back_transcribe: bool = True
    tail_silence: float = 1.0


def run_mode(config: Config, audio: Path, plan: RunPlan) -> RunRecord:
    """Load fresh engines, feed `audio` through the pipeline as `plan` says, and transcribe
    the synthesized speech back."""
    from edged.engines import prepare
    from edged.generation import load_warm
    from edged.runner import build_pipeline

    config = replace(config, "audio", realtime=plan.realtime)
    if plan.mode == "naive":
        config = replace(config, "mt", interim=False)
        config = replace(
            config, "asr", whisper=dataclasses.replace(config.asr.whisper, partials=False)
        )
    prepared = prepare(config)  # fresh translators per run: a closed router is not reused
    started = time.monotonic()
    engines = load_warm(prepared)  # as the daemon loads them: warmed, its voices loaded
    load_s = time.monotonic() - started
    load_peak_kb = status_kb("VmHWM") or _maxrss_kb()
    if plan.mode == "naive":
        engines = dataclasses.replace(engines, recognizer=SegmentRecognizer(engines.recognizer))
    source = TimedSource(LoopSource(audio, plan.repeats, plan.realtime, plan.tail_silence))
    recorder = Recorder()
    soak = plan.repeats > 1
    sink = CaptureSink(recorder, keep_audio=not soak) if config.tts.enabled else None
    # --gate-tail reproduces the daemon's half-duplex muting as if the sink were a speaker.
    half_duplex = config.playback.gate_tail > 0
    pipeline = build_pipeline(prepared, engines, source, sink, [], half_duplex=half_duplex)
    # Observed as emitted, not through a dispatcher: the sink attributes audio to the
    # utterance of the last tts.start, which must be seen before that audio is played.
    pipeline.bus.observe(recorder.publish)
    rss_start_kb = status_kb("VmRSS")
    hwm_reset = _reset_peak_rss()
    sampler = RssSampler()
    sampler.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        pipeline.run()
    except BaseException:
        sampler.stop()
        pipeline.abort()
        engines.close()
        raise
    ended = time.monotonic()
    cpu_s, wall_s = time.process_time() - cpu0, ended - wall0
    rss = sampler.stop()
    peak_kb = status_kb("VmHWM") if hwm_reset else None
    memory = {
        "peak_rss_mb": round((peak_kb or _maxrss_kb()) / 1024, 1),
        "method": "VmHWM reset before the run" if peak_kb else "ru_maxrss (process lifetime)",
        "rss_start_mb": round((rss_start_kb or 0) / 1024, 1),
        "load_peak_rss_mb": round(load_peak_kb / 1024, 1),
    }
    stats = pipeline.stats
    record = RunRecord(
        mode=plan.mode,
        realtime=plan.realtime,
        received=list(recorder.received),
        ends=source.ends,
        arrivals=source.arrivals,
        cpu=source.cpu,
        stats={
            "frames_in": stats.frames_in,
            "frames_dropped": stats.frames_dropped,
            "frames_gated": stats.frames_gated,
            "utterances": stats.utterances,
            "stage_seconds": dict(stats.stage_seconds),
            "audio_seconds": stats.audio_seconds,
        },
        counts=dict(pipeline.bus.counts),
        errors=[str(e) for e in pipeline.errors],
        load_s=load_s,
        wall_s=wall_s,
        cpu_s=cpu_s,
        ended=ended,
        memory=memory,
        rss=rss,
    )
    try:
        if sink is not None:
            record.first_audio = dict(sink.first_audio)
        spoken = sink.audio if sink is not None else {}
        if sink is not None and spoken:
            record.tts_rate = sink.sample_rate
            record.tts_audio = spoken
            if plan.back_transcribe:
                speak = config.tts.speak or config.mt.targets[0]
                record.heard = transcribe_back(
                    engines.recognizer, record.tts_audio, sink.sample_rate, speak
                )
    finally:
        engines.close()
    return record


def run_isolated(config: Config, audio: Path, plan: RunPlan) -> RunRecord:
    """run_mode in a fresh process, so each run's memory and CPU figures are its own (a
    second run in the same process would start with the first one's heap)."""
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().level
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_child_run, config, audio, plan, level).result()


def _child_run(config: Config, audio: Path, plan: RunPlan, log_level: int) -> RunRecord:
    logging.basicConfig(
        level=log_level, format="edged: %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return run_mode(config, audio, plan)


def transcribe_back(
    recognizer: Recognizer, audio: dict[int, np.ndarray], rate: int, lang: str
) -> dict[int, str]:
    """Recognize each utterance's synthesized speech with the run's own recognizer."""
    from edged.audio.convert import to_pipeline_format

    try:
        recognizer.set_languages((lang,))
    except ConfigError as exc:
        log.warning("synthesized speech not transcribed back: %s", exc)
        return {}
    heard = {}
    for utt, samples in sorted(audio.items()):
        pcm = to_pipeline_format(samples, rate)
        recognizer.begin(0.0)
        hyps = recognizer.accept(pcm) + recognizer.end()
        heard[utt] = " ".join(h.text for h in hyps if h.kind is HypothesisKind.FINAL).strip()
    return heard
