"""Running the pipeline over one input (a file or stdin) to completion: `edged translate`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import BinaryIO

from edged.audio import AudioSink, AudioSource
from edged.audio.raw import RawPcmSource
from edged.audio.sinks import WavFileSink
from edged.audio.wav import WavSource
from edged.engines import Engines, Prepared
from edged.pipeline import EventBus, Pipeline, Settings
from edged.publish import Publisher
from edged.publish.jsonl import JsonlPublisher

log = logging.getLogger(__name__)


def make_settings(prepared: Prepared) -> Settings:
    c = prepared.config
    return Settings(
        languages=prepared.languages, targets=c.mt.targets, speak=c.tts.speak or c.mt.targets[0]
    )


def build_pipeline(
    prepared: Prepared,
    engines: Engines,
    source: AudioSource,
    sink: AudioSink | None,
    publishers: list[Publisher],
    half_duplex: bool = False,
) -> Pipeline:
    """The one place a Pipeline is assembled from a config (translate, daemon, benchmark).

    `half_duplex`: the sink is a speaker the source's microphone hears, so capture is muted
    while it speaks (plus playback.gate_tail).
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
        bus=EventBus(c.device_id, publishers),
        settings=make_settings(prepared),
        realtime=c.audio.realtime,
        interim=c.mt.interim,
        interim_interval=c.mt.interim_interval,
        queue_seconds=c.audio.queue_seconds,
        half_duplex=half_duplex,
        gate_tail=c.playback.gate_tail,
    )


def run_file(prepared: Prepared, stdin: BinaryIO | None) -> int:
    """Translate a WAV file (config audio.path) or raw PCM from `stdin`; 0 on success."""
    c = prepared.config
    # Open input and output first: a bad file fails before any model loads.
    source: AudioSource = (
        RawPcmSource(stdin, realtime=c.audio.realtime)
        if stdin is not None
        else WavSource(Path(c.audio.path), realtime=c.audio.realtime)
    )
    sink = WavFileSink(Path(c.tts.output)) if c.tts.enabled and c.tts.output else None
    publishers: list[Publisher] = [JsonlPublisher(sys.stdout, interim=c.publish.interim)]
    if c.publish.jsonl not in ("", "-"):
        stream = open(c.publish.jsonl, "a", encoding="utf-8")  # noqa: SIM115
        publishers.append(JsonlPublisher(stream, interim=c.publish.interim, owns_stream=True))
    engines = prepared.load()
    pipeline = build_pipeline(prepared, engines, source, sink, publishers)
    try:
        pipeline.run()
    finally:
        engines.close()
        if sink is not None:
            sink.close()
        for publisher in publishers:
            publisher.close()
    if pipeline.errors:
        raise pipeline.errors[0]
    return 0
