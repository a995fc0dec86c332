"""One running configuration — engines, audio source and sink, pipeline, JSON Lines
outputs — built and closed as a unit, so the daemon can swap them with rollback.

Loading (the slow part that can fail on a bad model) happens before anything is
opened: `Generation.load()` leaves the running generation untouched if it raises.
`start()` opens the devices and starts the stages; `stop()` lets go of the devices but
keeps the engines, so a generation that was stopped for a reload can be started again
if the new one cannot open its devices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from edged.audio import SAMPLE_RATE, AudioSink, AudioSource, DeviceState, LiveSource, Speaker
from edged.audio.sinks import NullSink
from edged.bus import EventBus
from edged.config import Config
from edged.engines import Engines, Prepared
from edged.errors import EdgedError
from edged.pipeline import Pipeline, Settings
from edged.publish import Publisher
from edged.runner import build_pipeline, jsonl_publishers, open_source

log = logging.getLogger(__name__)

CaptureCallback = Callable[[DeviceState, str], None]


def open_sink(config: Config) -> AudioSink:
    """The daemon's speaker: ALSA playback, or nothing when speech is off."""
    p = config.playback
    if not (config.tts.enabled and p.enabled):
        return NullSink()
    from edged.audio.alsa import AlsaSink

    return AlsaSink(device=p.device, rate=p.rate or None)


class Generation:
    """A loaded configuration and, while started, its devices and pipeline."""

    def __init__(self, prepared: Prepared, engines: Engines) -> None:
        self.prepared = prepared
        self.engines = engines
        self.source: AudioSource | None = None
        self.sink: AudioSink | None = None
        self.pipeline: Pipeline | None = None
        self._jsonl: list[Publisher] = []
        self._bus: EventBus | None = None
        self._settings: Settings | None = None  # kept over stop/start (commands' changes)
        self.audio_end = 0.0  # session timeline position when the pipeline last stopped
        self.unserved = prepared.unserved  # pairs without a route (status), as retargeted

    @property
    def config(self) -> Config:
        return self.prepared.config

    @classmethod
    def load(cls, prepared: Prepared) -> Generation:
        """Load and warm every engine; raises EdgedError, opening nothing."""
        return cls(prepared, load_warm(prepared))

    def start(self, bus: EventBus, on_capture: CaptureCallback | None = None) -> None:
        """Open source and sink, attach this generation's JSON Lines outputs, start."""
        config = self.config
        source = open_source(config)
        try:
            sink = open_sink(config)
        except EdgedError:
            source.close()
            raise
        if on_capture is not None and isinstance(source, LiveSource):
            source.on_state(on_capture)
        self._jsonl = jsonl_publishers(config, stdout=False)
        for publisher in self._jsonl:
            bus.attach(publisher)
        speaker = isinstance(sink, Speaker)
        microphone = isinstance(source, LiveSource)
        pipeline = build_pipeline(
            self.prepared,
            self.engines,
            source,
            sink,
            bus=bus,
            half_duplex=speaker and microphone,
            settings=self._settings,
        )
        pipeline.start()
        self.source, self.sink, self.pipeline, self._bus = source, sink, pipeline, bus

    def stop(self, timeout: float, at_boundary: bool = False) -> None:
        """Stop capture (at an utterance boundary if asked, bounded by `timeout`), let the
        stages drain, close the devices and this generation's outputs; engines stay."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        self._settings = pipeline.settings
        deadline = time.monotonic() + timeout
        if at_boundary:
            pipeline.stop_at_boundary()
            if not pipeline.wait(timeout / 2):
                log.info("utterance still in progress; ending it for the reload")
        if isinstance(self.sink, Speaker):
            self.sink.stop()
        pipeline.stop()
        if not pipeline.wait(max(0.0, deadline - time.monotonic())):
            log.warning("pipeline did not drain in %.1f s; dropping the rest", timeout)
            pipeline.abort()
            pipeline.wait(2.0)
        self.audio_end = pipeline.audio_end
        if self.sink is not None:
            self.sink.close()
        if self._bus is not None:
            for publisher in self._jsonl:
                self._bus.detach(publisher)
        self._jsonl = []
        self.pipeline = None
        self.source = self.sink = None

    def close(self) -> None:
        """Release the engines (after stop())."""
        self.engines.close()


def load_warm(prepared: Prepared) -> Engines:
    """Every engine loaded and warmed, and the voices that will speak loaded, as the
    daemon runs them (the benchmark loads through here too); raises EdgedError, leaving
    nothing open."""
    engines = prepared.load()
    try:
        _warm_up(engines)
        if engines.voices is not None:  # the first translation spoken is not slower
            engines.voices.preload(prepared.conversation or (prepared.speak,))
    except EdgedError:
        engines.close()
        raise
    return engines


def _warm_up(engines: Engines) -> None:
    """Run the recognizer once so the first utterance does not pay for lazy initialisation."""
    started = time.monotonic()
    noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
    engines.recognizer.begin(0.0)
    engines.recognizer.accept(noise)
    engines.recognizer.end()
    log.info("engines warmed up in %d ms", (time.monotonic() - started) * 1e3)
