"""`edged run`: the daemon. Microphone in, speaker out, events to MQTT, commands from MQTT,
under systemd (readiness, watchdog, status, reload, orderly stop).

It reuses everything `edged translate` uses (engines.prepare/load, runner.build_pipeline);
what it adds is device I/O, the broker, commands and the service life cycle.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edged import control
from edged.audio import SAMPLE_RATE, AudioSink, AudioSource
from edged.audio.sinks import NullSink
from edged.config import Config, load_config
from edged.engines import Engines, Prepared, prepare
from edged.errors import ConfigError, EdgedError
from edged.events import Event, Status
from edged.pipeline import Pipeline
from edged.publish import Publisher
from edged.runner import build_pipeline, jsonl_publishers, open_source
from edged.sdnotify import Notifier, Watchdog

log = logging.getLogger(__name__)

_LATENCY_TYPES = ("asr.partial", "asr.final", "mt.final", "tts.start")


class LatencyRecorder:
    """A publisher that keeps the last lat_ms of each kind, for the periodic metrics."""

    def __init__(self, keep: int = 500) -> None:
        self._lat: dict[str, deque[int]] = {t: deque(maxlen=keep) for t in _LATENCY_TYPES}
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        lat = getattr(event, "lat_ms", None)
        if event.type in self._lat and lat is not None:
            with self._lock:
                self._lat[event.type].append(lat)

    def summary(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out = {}
            for kind, values in self._lat.items():
                if values:
                    p50, p95 = np.percentile(np.fromiter(values, float), [50, 95])
                    out[kind] = {
                        "p50": round(float(p50)),
                        "p95": round(float(p95)),
                        "n": len(values),
                    }
            return out

    def close(self) -> None:
        pass


def cpu_temperature() -> float | None:
    """SoC temperature in °C where the kernel exposes one (a Pi does), else None."""
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return int(zone.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def spool_dir(config: Config) -> Path:
    if config.mqtt.spool_dir:
        return Path(config.mqtt.spool_dir)
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edged" / "spool"


def _credential(name: str) -> str | None:
    """The systemd credential `name` if the unit provides it (LoadCredential=), else None."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    path = Path(directory) / name if name and directory else None
    # The unit's tmpfiles entry creates an empty credential file so systemd can start the
    # service; empty means no password.
    return name if path and path.is_file() and path.stat().st_size else None


class Daemon:
    """One running edged service: a pipeline per config generation, one broker connection."""

    def __init__(self, config_path: Path | None, config: Config, prepared: Prepared) -> None:
        self.config_path = config_path
        self.config = config
        self.prepared = prepared
        self.notifier = Notifier()
        self.latency = LatencyRecorder()
        self.mqtt: Any = None
        self.commands: Any = None
        self.engines: Engines | None = None
        self.pipeline: Pipeline | None = None
        self.sink: AudioSink | None = None
        self._jsonl: list[Publisher] = []  # this generation's JSON Lines outputs
        self.source: AudioSource | None = None
        # SimpleQueue, not Queue: a signal handler runs on the main thread, possibly while
        # that thread is inside get(); Queue.put would then wait for the lock get() holds
        # (a deadlock seen on the second SIGHUP), SimpleQueue.put is reentrant.
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._state = "starting"
        self._started = time.monotonic()
        self._lock = threading.RLock()  # pipeline swaps (reload) vs. command handlers

    # --- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda n, _f: self._signals.put(n))
        self._start_mqtt()
        self.notifier.status("loading models")
        self._start_pipeline(self.prepared)
        self._set_state("online")
        self.notifier.ready("listening")
        watchdog = Watchdog.from_env(self.notifier, self._healthy)
        if watchdog:
            watchdog.start()
        log.info("edged ready in %d ms", (time.monotonic() - self._started) * 1e3)
        try:
            return self._main_loop()
        finally:
            if watchdog:
                watchdog.stop()
            self._shutdown()

    def _main_loop(self) -> int:
        interval = self.config.service.metrics_interval
        next_metrics = time.monotonic() + interval if interval else float("inf")
        while True:
            timeout = max(0.1, min(1.0, next_metrics - time.monotonic()))
            try:
                signum = self._signals.get(timeout=timeout)
            except queue.Empty:
                signum = None
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping on %s", signal.Signals(signum).name)
                return 0
            if signum == signal.SIGHUP:
                self._reload()
            if time.monotonic() >= next_metrics:
                self._publish_metrics()
                next_metrics = time.monotonic() + interval
            pipeline = self.pipeline
            if pipeline is not None and pipeline.errors:
                log.error("pipeline failed: %s", pipeline.errors[0])
                return pipeline.errors[0].exit_code
            if pipeline is not None and self.config.audio.source != "alsa" and pipeline.wait(0):
                log.info("audio input ended")
                return 0

    def _shutdown(self) -> None:
        """SIGTERM order: stop capture, finish the utterance and the translations (bounded),
        wait for broker acks (bounded), publish offline, disconnect."""
        self.notifier.stopping("draining")
        drain = self.config.service.drain_timeout
        if self.commands is not None:
            self.commands.close()  # no command may touch a pipeline being torn down
        if self.pipeline is not None:
            self._stop_pipeline(drain)
        if self.mqtt is not None:
            if not self.mqtt.flush(drain):
                log.warning(
                    "%d finals not acknowledged by the broker; kept in the spool",
                    self.mqtt.pending(),
                )
            self.mqtt.close()  # publishes the retained offline status, then disconnects
        self.notifier.close()

    # --- pipeline ----------------------------------------------------------------------

    def _open_sink(self, config: Config) -> AudioSink:
        p = config.playback
        if not (config.tts.enabled and p.enabled):
            return NullSink()
        from edged.audio.alsa import AlsaSink

        return AlsaSink(device=p.device, rate=p.rate or None)

    def _start_pipeline(self, prepared: Prepared) -> None:
        config = prepared.config
        source = open_source(config)
        if hasattr(source, "on_state"):  # a microphone that can be lost and found again
            source.on_state(self._on_capture_state)
        sink = self._open_sink(config)
        engines = prepared.load()
        self._warm_up(engines)
        publishers: list[Publisher] = [self.latency]
        if self.mqtt is not None:
            publishers.append(self.mqtt)
        jsonl = jsonl_publishers(config, stdout=False)
        publishers += jsonl
        speaker = not isinstance(sink, NullSink)
        microphone = config.audio.source == "alsa"
        pipeline = build_pipeline(
            prepared, engines, source, sink, publishers, half_duplex=speaker and microphone
        )
        pipeline.start()
        with self._lock:
            self.prepared, self.config = prepared, config
            self.engines, self.pipeline, self.source, self.sink = engines, pipeline, source, sink
            self._jsonl = jsonl

    def _warm_up(self, engines: Engines) -> None:
        """Run each engine once so the first utterance does not pay for lazy initialisation."""
        started = time.monotonic()
        noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
        engines.recognizer.begin(0.0)
        engines.recognizer.accept(noise)
        engines.recognizer.end()
        log.info("engines warmed up in %d ms", (time.monotonic() - started) * 1e3)

    def _stop_pipeline(self, timeout: float) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        if self.sink is not None and hasattr(self.sink, "stop"):
            self.sink.stop()
        pipeline.stop()
        if not pipeline.wait(timeout):
            log.warning("pipeline did not drain in %.1f s; dropping the rest", timeout)
            pipeline.abort()
            pipeline.wait(2.0)
        for closeable in (self.sink, self.engines, *self._jsonl):
            if closeable is not None:
                closeable.close()
        self.pipeline = None
        self._jsonl = []

    def _reload(self) -> None:
        """SIGHUP: re-read the config; a bad one is logged and the running one kept."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            prepared = prepare(config)
        except EdgedError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.ready("reload refused: " + str(exc)[:200])
            return
        if config.mqtt != self.config.mqtt or config.device_id != self.config.device_id:
            log.warning("mqtt and device_id changes take effect on restart, not reload")
        with self._lock:
            self._stop_pipeline(self.config.service.drain_timeout)
            self._start_pipeline(prepared)
        log.info("config reloaded from %s", self.config_path)
        self.notifier.ready("listening (reloaded)")

    # --- health, status, metrics ---------------------------------------------------------

    def _healthy(self) -> bool:
        pipeline = self.pipeline
        if pipeline is None:
            return True  # between generations during a reload
        from edged.audio.alsa import DeviceState

        capture_ok = getattr(self.source, "state", DeviceState.RUNNING) is DeviceState.RUNNING
        problem = pipeline.health(self.config.service.stall_timeout, capture_expected=capture_ok)
        if problem:
            log.warning("unhealthy: %s", problem)
        return problem is None

    def _on_capture_state(self, state: Any, detail: str) -> None:
        self._set_state("online" if state.name == "RUNNING" else "degraded", {"capture": detail})

    def _set_state(self, state: str, detail: dict[str, Any] | None = None) -> None:
        self._state = state
        self.notifier.status(f"{state}" + (f": {detail}" if detail else ""))
        if self.mqtt is not None:
            self.mqtt.publish(
                Status(device=self.config.device_id, utt=0, seq=0, state=state, detail=detail)
            )

    def status(self) -> dict[str, Any]:
        pipeline = self.pipeline
        settings = pipeline.settings.snapshot() if pipeline else None
        out: dict[str, Any] = {
            "state": self._state,
            "uptime_s": round(time.monotonic() - self._started, 1),
        }
        if settings is not None:
            out |= {
                "languages": list(settings.languages),
                "targets": list(settings.targets),
                "speak": settings.speak,
                "listening": settings.listening,
                "speech_muted": settings.speech_muted,
            }
        return out

    def metrics(self) -> dict[str, Any]:
        pipeline = self.pipeline
        out: dict[str, Any] = {
            "v": 1,
            "device": self.config.device_id,
            "latency_ms": self.latency.summary(),
            "cpu_temp_c": cpu_temperature(),
        }
        if pipeline is not None:
            st = pipeline.stats
            audio = max(st.audio_seconds, 1e-9)
            out |= {
                "audio_s": round(st.audio_seconds, 1),
                "rtf": {k: round(v / audio, 3) for k, v in st.stage_seconds.items()},
                "queues": pipeline.queue_depths(),
                "frames_dropped": st.frames_dropped,
                "interims_superseded": pipeline.interims_superseded,
                "frames_gated": st.frames_gated,
                "overruns": getattr(self.source, "overruns", 0),
                "utterances": st.utterances,
            }
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.stats()
        return out

    def _publish_metrics(self) -> None:
        payload = self.metrics()
        if self.mqtt is not None:
            self.mqtt.publish_metrics(json.dumps(payload).encode())

    # --- MQTT and commands -----------------------------------------------------------------

    def _start_mqtt(self) -> None:
        m = self.config.mqtt
        if not m.enabled:
            return
        from edged.control.server import CommandServer
        from edged.publish.mqtt import MqttPublisher

        self.mqtt = MqttPublisher(
            host=m.host,
            port=m.port,
            device_id=self.config.device_id,
            prefix=m.prefix,
            client_id=m.client_id or None,
            keepalive=m.keepalive,
            tls=m.tls,
            ca_file=m.ca_file or None,
            cert_file=m.cert_file or None,
            key_file=m.key_file or None,
            tls_insecure=m.tls_insecure,
            username=m.username or None,
            password_file=m.password_file or None,
            password_credential=_credential(m.password_credential),
            spool_dir=spool_dir(self.config),
            spool_limit=m.spool_limit,
            reconnect_min=m.reconnect_min,
            reconnect_max=m.reconnect_max,
        )
        self.mqtt.start()  # connects in the background: an unreachable broker does not stop us
        self.commands = CommandServer(self.mqtt, self.handle)
        self.commands.start()

    def handle(self, command: control.AnyCommand) -> dict[str, Any] | None:
        """Apply one validated command to the running pipeline; raise to answer an error."""
        with self._lock:
            pipeline = self.pipeline
            if pipeline is None:
                raise EdgedError("the pipeline is restarting; try again")
            settings = pipeline.settings
            match command:
                case control.SetSource(languages=languages):
                    self._check_routes(languages, settings.targets)
                    with settings.lock:
                        settings.languages = languages
                case control.SetTargets(targets=targets, speak=speak):
                    self._check_routes(settings.languages, targets)
                    new_speak = speak or (
                        settings.speak if settings.speak in targets else targets[0]
                    )
                    if new_speak not in targets:
                        raise ConfigError(f"speak '{new_speak}' is not one of the targets")
                    with settings.lock:
                        settings.targets, settings.speak = targets, new_speak
                case control.Pause() | control.PttStop():
                    with settings.lock:
                        settings.listening = False
                    if isinstance(command, control.PttStop):
                        pipeline.endpoint()
                case control.Resume() | control.PttStart():
                    with settings.lock:
                        settings.listening = True
                case control.Mute():
                    with settings.lock:
                        settings.speech_muted = True
                    self._stop_playback()
                case control.Unmute():
                    with settings.lock:
                        settings.speech_muted = False
                case control.Speak(text=text, lang=lang):
                    voices = self.engines.voices if self.engines else None
                    if voices is None or voices.for_language(lang) is None:
                        raise ConfigError(f"no voice for '{lang}'")
                    pipeline.speak(text, lang)
                case control.StopPlayback():
                    self._stop_playback()
                case control.QueryStatus():
                    return self.status() | {"metrics": self.metrics()}
        return self.status()

    def _check_routes(self, languages: tuple[str, ...], targets: tuple[str, ...]) -> None:
        for code in languages:
            if code not in self.prepared.languages and self.config.asr.engine == "sherpa":
                raise ConfigError(f"the sherpa model does not recognise '{code}'")
        if self.engines is not None:
            self.engines.retarget(languages, targets)

    def _stop_playback(self) -> None:
        if self.pipeline is not None:
            self.pipeline.hush()
        if self.sink is not None and hasattr(self.sink, "stop"):
            self.sink.stop()


def run_daemon(config_path: Path | None) -> int:
    """Validate the whole config (exit 78 / 3 in well under a second), then serve."""
    config = load_config(config_path)
    if logging.getLogger().level != logging.DEBUG:  # -v wins
        logging.getLogger().setLevel(config.log_level.upper())
    prepared = prepare(config)
    return Daemon(config_path, config, prepared).run()
