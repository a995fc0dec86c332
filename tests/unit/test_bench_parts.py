"""The pieces the benchmark puts around the pipeline: the naive recognizer, the recording
publisher with its capture sink, and the timed source."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edged.asr import Hypothesis, HypothesisKind
from edged.audio import AudioChunk
from edged.bench.command import add_arguments, bench_config, comparisons
from edged.bench.live import (
    CaptureSink,
    LoopSource,
    Recorder,
    RssSampler,
    SegmentRecognizer,
    TimedSource,
)
from edged.config import Config
from edged.errors import ConfigError
from edged.events import AsrFinal, TtsStart


@dataclass(frozen=True)
class Options:
    first_partial_s: float = 0.6


class EchoRecognizer:
    """Partial on every accept, final on end: text is the number of samples it saw."""

    def __init__(self) -> None:
        self.options = Options()
        self.calls: list[str] = []
        self.samples = 0
        self.t0 = -1.0

    def begin(self, t0: float) -> None:
        self.calls.append("begin")
        self.t0, self.samples = t0, 0

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        self.calls.append("accept")
        self.samples += len(samples)
        return [Hypothesis(HypothesisKind.PARTIAL, "p", "", "en", self.t0, 0.0)]

    def end(self) -> list[Hypothesis]:
        self.calls.append("end")
        return [
            Hypothesis(
                HypothesisKind.FINAL, str(self.samples), str(self.samples), "en", self.t0, 1.0
            )
        ]

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        self.calls.append(f"languages {candidates}")


def test_naive_recognizer_decodes_once_after_the_segment_ends() -> None:
    inner = EchoRecognizer()
    naive = SegmentRecognizer(inner)
    naive.begin(2.5)
    assert naive.accept(np.zeros(100, np.float32)) == []
    assert naive.accept(np.zeros(60, np.float32)) == []
    assert inner.calls == []  # nothing decoded while the person speaks
    (final,) = naive.end()
    assert final.kind is HypothesisKind.FINAL and final.text == "160" and final.t0 == 2.5
    assert inner.calls == ["begin", "accept", "end"]
    naive.begin(5.0)
    assert naive.end()[0].text == "0"  # an empty segment: no audio left over
    naive.set_languages(("en",))
    assert inner.calls[-1] == "languages ('en',)"


def test_recorder_keeps_arrival_times_and_routes_speech_to_its_utterance() -> None:
    recorder = Recorder()
    sink = CaptureSink(recorder)
    recorder.publish(AsrFinal(device="d", utt=3, seq=1, src="en", text="x", t0=0, t1=1, lat_ms=1))
    recorder.publish(TtsStart(device="d", utt=3, seq=2, lang="en", voice="v", text="x", lat_ms=1))
    sink.play(np.ones(10, np.float32), 22050)
    sink.play(np.ones(5, np.float32), 22050)
    recorder.publish(TtsStart(device="d", utt=4, seq=1, lang="en", voice="v", text="y", lat_ms=1))
    sink.play(np.ones(7, np.float32), 22050)
    assert [e.type for _, e in recorder.received] == ["asr.final", "tts.start", "tts.start"]
    rx = [t for t, _ in recorder.received]
    assert rx == sorted(rx)
    assert {u: len(audio) for u, audio in sink.audio.items()} == {3: 15, 4: 7}
    assert sink.sample_rate == 22050


class ListSource:
    def __init__(self, chunks: list[AudioChunk]) -> None:
        self._chunks = chunks
        self.closed = False

    def chunks(self):  # type: ignore[no-untyped-def]
        yield from self._chunks

    def close(self) -> None:
        self.closed = True


def test_timed_source_notes_each_chunk() -> None:
    chunks = [AudioChunk(np.zeros(512, np.float32), i * 512, 10.0 + i) for i in range(3)]
    source = TimedSource(ListSource(chunks))
    assert list(source.chunks()) == chunks
    assert source.ends == [512, 1024, 1536] and source.arrivals == [10.0, 11.0, 12.0]
    assert source.cpu == sorted(source.cpu)
    source.close()
    assert source.inner.closed


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_config_applies_threads_targets_and_engine() -> None:
    c = bench_config(
        Config(), _args("--threads", "4", "--asr", "sherpa", "--to", "de"), Path("x.wav")
    )
    assert (c.asr.threads, c.mt.threads, c.tts.threads) == (2, 2, 4)
    assert c.asr.engine == "sherpa" and c.mt.targets == ("de",)
    assert c.audio.realtime and c.audio.path == "x.wav" and c.tts.output == ""
    assert c.playback.gate_tail == 0.0
    default = bench_config(Config(), _args(), Path("x.wav"))
    assert default.mt.targets == ("en", "es") and default.asr.threads == 1
    assert not bench_config(Config(), _args("--no-tts"), Path("x.wav")).tts.enabled
    with pytest.raises(ConfigError, match="--threads"):
        bench_config(Config(), _args("--threads", "0"), Path("x.wav"))


def test_capture_sink_notes_when_each_utterance_first_sounded() -> None:
    recorder = Recorder()
    sink = CaptureSink(recorder)
    recorder.publish(TtsStart(device="d", utt=5, seq=1, lang="en", voice="v", text="x", lat_ms=1))
    sink.play(np.ones(4, np.float32), 16000)
    first = sink.first_audio[5]
    sink.play(np.ones(4, np.float32), 16000)
    assert sink.first_audio == {5: first}  # the first samples, not the last


def test_loop_source_plays_the_recording_n_times_on_one_timeline(tmp_path: Path) -> None:
    from edged.audio.wavwrite import write_wav

    wav = tmp_path / "x.wav"
    write_wav(wav, np.linspace(-0.5, 0.5, 1000).astype(np.float32), 16000)
    source = LoopSource(wav, repeats=3, realtime=False, tail_silence=0.064)
    chunks = list(source.chunks())
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(b.start == a.end for a, b in itertools.pairwise(chunks))  # no gap, no overlap
    audio = np.concatenate([c.samples for c in chunks])
    assert len(audio) == 3 * 1000 + 1024  # three passes, then two frames of silence
    assert np.array_equal(audio[1000:2000], audio[:1000]) and not audio[-1024:].any()
    assert source.duration == pytest.approx(1000 / 16000)


@pytest.mark.parametrize("rate", [16000, 22050])
def test_loop_source_streams_the_generated_sets_format_as_read_wav_reads_it(
    tmp_path: Path, rate: int
) -> None:
    """16 kHz mono 16-bit (the generated sets) is read frame by frame from the file; any
    other format is converted once: the same samples either way."""
    from edged.audio.convert import to_pipeline_format
    from edged.audio.wav import read_wav
    from edged.audio.wavwrite import write_wav

    wav = tmp_path / "x.wav"
    write_wav(wav, np.sin(np.arange(5000) / 7.0).astype(np.float32) * 0.5, rate)
    source = LoopSource(wav, realtime=False, tail_silence=0.0)
    streamed = np.concatenate([c.samples for c in source.chunks()])
    samples, got_rate = read_wav(wav)
    assert np.array_equal(streamed, to_pipeline_format(samples, got_rate))
    assert (source._audio is None) == (rate == 16000)  # not held when streamed
    assert source.duration == pytest.approx(len(streamed) / 16000)


def test_rss_sampler_samples_until_stopped() -> None:
    sampler = RssSampler(every=0.01)
    sampler.start()
    samples = sampler.stop()
    assert len(samples) >= 2 and all(mb > 10 for _, mb in samples)
    assert [s for s, _ in samples] == sorted(s for s, _ in samples)


def test_compare_takes_a_list_and_a_bare_flag_means_naive() -> None:
    assert _args("--compare").compare == "naive"
    assert comparisons(_args("--compare", "naive,offline").compare) == ("naive", "offline")
    assert comparisons(_args().compare) == ()
    with pytest.raises(ConfigError, match="unknown fast"):
        comparisons("offline,fast")


def test_fast_and_conversation_options() -> None:
    fast = bench_config(Config(), _args("--fast"), Path("x.wav"))
    assert not fast.audio.realtime
    pair = bench_config(Config(), _args("--conversation", "es", "en"), Path("x.wav"))
    assert pair.asr.languages == ("es", "en") and pair.mt.targets == ("es", "en")
    with pytest.raises(ConfigError, match="two or more"):
        bench_config(Config(), _args("--conversation", "es"), Path("x.wav"))


def test_a_soak_keeps_when_speech_sounded_but_not_the_speech() -> None:
    recorder = Recorder()
    sink = CaptureSink(recorder, keep_audio=False)
    recorder.publish(TtsStart(device="d", utt=2, seq=1, lang="en", voice="v", text="x", lat_ms=1))
    sink.play(np.ones(4, np.float32), 16000)
    assert sink.audio == {} and set(sink.first_audio) == {2}
