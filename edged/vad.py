"""Voice activity detection (silero through sherpa-onnx) turned into speech segments.

sherpa's VoiceActivityDetector hands out a segment only after it has ended; a streaming
recognizer needs the audio while the person speaks. So the segmenter follows the
detector's live `is_speech_detected()` flag, passes audio through while it is set (with a
pre-roll, since silero confirms speech only after `min_speech` seconds), and takes each
segment's exact end from the finished segment the detector reports.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import sherpa_onnx

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, frame_rms
from edged.config import VadConfig
from edged.errors import ModelError

log = logging.getLogger(__name__)


class SegmentKind(enum.Enum):
    START = "start"
    AUDIO = "audio"
    END = "end"


@dataclass(frozen=True)
class SegmentEvent:
    """START (t = onset, samples = pre-roll), AUDIO (samples), END (t = speech end)."""

    kind: SegmentKind
    t: float
    samples: np.ndarray


_SENTENCE_END = (".", "?", "!", "…", "。", "\uff1f", "\uff01", "\u061f")  # fullwidth, Arabic


@dataclass(frozen=True)
class Endpointing:
    """How much silence ends an utterance, by what was said: less after a sentence end,
    `upper` (vad.min_silence) otherwise. The VAD itself reports pauses sooner
    (vad.pause): the final is decoded there, while the silence is being waited for."""

    sentence: float
    upper: float

    def silence_for(self, text: str) -> float:
        tail = text.rstrip(" \"'»”)")
        complete = tail.endswith(_SENTENCE_END) and not tail.endswith("..")
        return min(self.sentence, self.upper) if complete else self.upper


class Segmenter(Protocol):
    """Turns AudioChunks into START / AUDIO / END segment events (VadSegmenter; fakes in
    tests)."""

    def accept(self, chunk: AudioChunk) -> Iterator[SegmentEvent]: ...

    def flush(self) -> Iterator[SegmentEvent]: ...

    def reset(self) -> None: ...


class VadSegmenter:
    """Turns a stream of AudioChunks into START / AUDIO / END segment events."""

    def __init__(self, model: Path, options: VadConfig, silence: float | None = None) -> None:
        """`silence`: the pause that ends a segment, if not options.min_silence (the
        pipeline's adaptive endpoint asks for an earlier one, options.pause)."""
        self.options = o = options
        if not model.is_file():
            raise ModelError(f"VAD model {model} is missing; run `edged models install default`")
        config = sherpa_onnx.VadModelConfig()
        config.silero_vad.model = str(model)
        config.silero_vad.threshold = o.threshold
        config.silero_vad.min_silence_duration = o.min_silence if silence is None else silence
        config.silero_vad.min_speech_duration = o.min_speech
        config.silero_vad.max_speech_duration = o.max_speech
        config.silero_vad.window_size = FRAME_SAMPLES
        config.sample_rate = SAMPLE_RATE
        config.num_threads = 1  # silero is tiny: one thread is plenty
        self._config = config
        self._vad = sherpa_onnx.VoiceActivityDetector(
            config, buffer_size_in_seconds=o.max_speech + 5
        )
        self._history: deque[AudioChunk] = deque(
            maxlen=max(1, int(o.preroll * SAMPLE_RATE) // FRAME_SAMPLES + 2)
        )
        self._in_speech = False
        self._position = 0  # timeline position after the last chunk
        self._offset = 0  # timeline samples minus samples the detector has seen
        self._last_end = 0  # timeline sample where the last segment ended
        self.segments = 0

    def accept(self, chunk: AudioChunk) -> Iterator[SegmentEvent]:
        """Feed one chunk; yields the segment events it causes."""
        if chunk.start != self._position:
            # A gap in the timeline (dropped frames, a muted or reopened microphone): sherpa
            # counts only the samples it was given, so keep the difference.
            self._offset += chunk.start - self._position
        self._vad.accept_waveform(chunk.samples)
        self._position = chunk.end
        speaking = self._vad.is_speech_detected()
        if speaking and not self._in_speech:
            self._in_speech = True
            self.segments += 1
            yield self._start(chunk)
        elif self._in_speech:
            yield SegmentEvent(SegmentKind.AUDIO, chunk.t1, chunk.samples)
        if not speaking or not self._vad.empty():
            yield from self._finished()
        self._history.append(chunk)

    def flush(self) -> Iterator[SegmentEvent]:
        """End of input: close an open segment."""
        self._vad.flush()
        yield from self._finished()
        if self._in_speech:
            self._in_speech = False
            self._last_end = self._position
            yield SegmentEvent(SegmentKind.END, self._position / SAMPLE_RATE, _EMPTY)

    def reset(self) -> None:
        """Forget all state (after a pause or a gap in the audio)."""
        self._vad.reset()
        self._history.clear()
        self._in_speech = False
        self._offset = self._position  # the detector counts from zero again

    def _start(self, chunk: AudioChunk) -> SegmentEvent:
        # Never reach back into the previous segment: its words are in its own final.
        reach = max(0, min(int(self.options.preroll * SAMPLE_RATE), chunk.start - self._last_end))
        history = np.concatenate([c.samples for c in self._history] + [chunk.samples])
        before = history[: len(history) - len(chunk.samples)]
        preroll = _sounding_preroll(before, reach)
        audio = history[len(before) - preroll :]
        return SegmentEvent(SegmentKind.START, (chunk.end - len(audio)) / SAMPLE_RATE, audio)

    def _finished(self) -> Iterator[SegmentEvent]:
        while not self._vad.empty():
            segment = self._vad.front
            end_sample = segment.start + len(segment.samples) + self._offset
            end = end_sample / SAMPLE_RATE
            self._vad.pop()
            self._last_end = max(self._last_end, end_sample)
            if self._in_speech:
                self._in_speech = False
                yield SegmentEvent(SegmentKind.END, end, _EMPTY)
                # max_speech split: the detector may still be in speech; reopen at once.
                if self._vad.is_speech_detected():
                    self._in_speech = True
                    self.segments += 1
                    yield SegmentEvent(SegmentKind.START, end, _EMPTY)


_EMPTY = np.zeros(0, dtype=np.float32)

# The pre-roll always reaches back _LEAST (what silero's late confirmation needs), and
# further, up to vad.preroll, only as far as there is sound: a quiet first word the
# detector heard late ("Um grupo" at -40 dBFS) is kept, but the silence before it is not.
# Whisper base wrote "Ever tried. Ever tried." for a second of digital silence and "Ever
# tried.", and every second of pre-roll is decoded again by each partial and the final.
_LEAST = int(0.4 * SAMPLE_RATE)
_PAD = int(0.2 * SAMPLE_RATE)  # kept before the first sounding frame: a soft consonant
_ABOVE_FLOOR = 3.0  # a frame sounds at ~10 dB above the quietest frame of the history...
_SOUNDING = 1e-4  # ... and above -80 dBFS (digital silence has a floor of zero)


def _sounding_preroll(before: np.ndarray, reach: int) -> int:
    """How many samples of `before` (the audio ahead of the onset chunk) go with the
    onset: at least min(_LEAST, reach), at most `reach`, from _PAD before the earliest
    sounding frame within `reach`."""
    least = min(_LEAST, reach)
    frames = len(before) // FRAME_SAMPLES
    if reach <= least or frames == 0:
        return least
    rms = frame_rms(before[len(before) - frames * FRAME_SAMPLES :], FRAME_SAMPLES)
    threshold = max(_ABOVE_FLOOR * float(rms.min()), _SOUNDING)
    window = min(frames, -(-reach // FRAME_SAMPLES))  # the frames the reach covers
    sounding = np.flatnonzero(rms[frames - window :] > threshold)
    if len(sounding) == 0:
        return least
    earliest = (window - int(sounding[0])) * FRAME_SAMPLES + _PAD  # samples before onset
    return max(least, min(reach, earliest))
