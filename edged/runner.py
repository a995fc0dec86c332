"""Running the pipeline over one input (a file or stdin) to completion: `edged translate`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edged.audio import AudioSink, AudioSource
from edged.audio.raw import RawPcmSource
from edged.audio.sinks import WavFileSink
from edged.audio.wav import WavSource
from edged.bus import Borrowed, EventBus
from edged.config import Config
from edged.engines import Engines, Prepared
from edged.errors import ConfigError
from edged.pipeline import Pipeline, Settings, Trigger
from edged.publish import Publisher
from edged.publish.jsonl import JsonlPublisher
from edged.vad import Endpointing

log = logging.getLogger(__name__)


def make_settings(prepared: Prepared) -> Settings:
    """The one place config becomes the pipeline's live settings."""
    c = prepared.config
    conversation = prepared.conversation
    return Settings(
        languages=prepared.languages,
        targets=c.mt.targets,
        speak=prepared.speak,
        conversation=conversation,
        trigger=Trigger(c.audio.trigger),
    )


def build_pipeline(
    prepared: Prepared,
    engines: Engines,
    source: AudioSource,
    sink: AudioSink | None,
    publishers: list[Publisher] | None = None,
    half_duplex: bool = False,
    *,
    bus: EventBus | None = None,
    settings: Settings | None = None,
) -> Pipeline:
    """The one place a Pipeline is assembled from a config (translate, daemon, benchmark).

    `publishers` get a bus of their own (translate, bench); the daemon passes its
    process-wide `bus` instead. `half_duplex`: the sink is a speaker the source's
    microphone hears, so capture is muted while it speaks (plus playback.gate_tail).
    """
    c = prepared.config
    return Pipeline(
        device=c.device_id,
        source=source,
        segmenter=engines.segmenter,
        recognizer=engines.recognizer,
        translate=engines.translate,
        voices=engines.voices,
        sink=sink,
        bus=bus or EventBus(c.device_id, publishers or []),
        settings=settings or make_settings(prepared),
        realtime=c.audio.realtime,
        interim=c.mt.interim,
        interim_interval=c.mt.interim_interval,
        queue_seconds=c.audio.queue_seconds,
        half_duplex=half_duplex,
        gate_tail=c.playback.gate_tail,
        endpointing=Endpointing(sentence=c.vad.sentence_silence, upper=c.vad.min_silence),
        max_utterance=c.vad.max_speech,
    )


def open_source(config: Config) -> AudioSource:
    """The audio source config.audio names: a WAV file, raw PCM on stdin, or ALSA capture."""
    a = config.audio
    if a.source == "wav":
        if not a.path:
            raise ConfigError("audio.path: a WAV file is needed when audio.source = 'wav'")
        return WavSource(Path(a.path), realtime=a.realtime)
    if a.source == "stdin":
        return RawPcmSource(sys.stdin.buffer, realtime=a.realtime)
    from edged.audio.alsa import AlsaSource

    return AlsaSource(
        device=a.device, rate=a.rate, channels=a.channels, period_frames=a.period_frames
    )


def jsonl_publishers(config: Config, stdout: bool) -> list[Publisher]:
    """JSON Lines publishers: stdout if asked (or publish.jsonl = "-"), and the file
    publish.jsonl names."""
    p = config.publish
    publishers: list[Publisher] = []
    if stdout or p.jsonl == "-":
        publishers.append(JsonlPublisher(sys.stdout, interim=p.interim))
    if p.jsonl not in ("", "-"):
        stream = open(p.jsonl, "a", encoding="utf-8")  # noqa: SIM115 (closed by the publisher)
        publishers.append(JsonlPublisher(stream, interim=p.interim, owns_stream=True))
    return publishers


def run_file(prepared: Prepared, extra_publishers: Sequence[Publisher] = ()) -> int:
    """Translate the WAV file or stdin config.audio names to completion; 0 on success.
    `extra_publishers` (the live page) get every event too; their owner closes them."""
    c = prepared.config
    # Open input and output first: a bad file fails before any model loads.
    source = open_source(c)
    sink = WavFileSink(Path(c.tts.output)) if c.tts.enabled and c.tts.output else None
    publishers = jsonl_publishers(c, stdout=True)
    engines = prepared.load()
    borrowed = [Borrowed(p) for p in extra_publishers]
    pipeline = build_pipeline(prepared, engines, source, sink, [*publishers, *borrowed])
    ready = since_process_start()
    if ready is not None:
        log.info("ready in %d ms (models loaded, reading the input)", ready * 1000)
    try:
        pipeline.run()
    finally:
        pipeline.bus.close()  # delivers every event, closes the publishers
        engines.close()
        if sink is not None:
            sink.close()
    if pipeline.errors:
        raise pipeline.errors[0]
    return 0


def since_process_start() -> float | None:
    """Seconds since this process began (Linux /proc; None elsewhere): start-up as a user
    waits for it, interpreter and imports included."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
        return max(0.0, now - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
