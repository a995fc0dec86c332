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
from edged.audio import DeviceState, LiveSource
from edged.bus import EventBus, Session
from edged.config import Config, load_config
from edged.engines import Prepared, prepare
from edged.errors import ConfigError, EdgedError
from edged.events import Event, Status
from edged.generation import Generation
from edged.pipeline import Pipeline
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
    """Process life of the edged service: signals, sd_notify, watchdog, broker, metrics and
    the one event bus. The running configuration is a Generation, swapped on SIGHUP with
    rollback."""

    def __init__(self, config_path: Path | None, config: Config, prepared: Prepared) -> None:
        self.config_path = config_path
        self.config = config  # the process-level sections (mqtt, device_id) of the first
        self.prepared = prepared
        self.notifier = Notifier()
        self.latency = LatencyRecorder()
        self.session = Session()
        self.bus = EventBus(config.device_id, [self.latency], session=self.session)
        self.mqtt: Any = None
        self.commands: Any = None
        self.generation: Generation | None = None
        self.web: Any = None  # the live page (edged.publish.web.WebServer), if serving
        self.discovery: Any = None  # Home Assistant discovery (mqtt.discovery)
        self.buttons: Any = None  # push-to-talk GPIO buttons (edged.gpio.ButtonWatcher)
        self._status_lock = threading.Lock()  # the newest status is the one left retained
        # SimpleQueue, not Queue: a signal handler runs on the main thread, possibly while
        # that thread is inside get(); Queue.put would then wait for the lock get() holds
        # (a deadlock seen on the second SIGHUP), SimpleQueue.put is reentrant.
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._state = "starting"
        self._detail: dict[str, Any] = {}
        self._stopping = False
        self._started = time.monotonic()
        self._lock = threading.RLock()  # generation swaps (reload) vs. command handlers

    @property
    def pipeline(self) -> Pipeline | None:
        return self.generation.pipeline if self.generation else None

    # --- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda n, _f: self._signals.put(n))
        self._start_mqtt()
        self._start_web()
        self._set_state("starting", {"activity": "loading models"})
        generation = Generation.load(self.prepared)
        generation.start(self.bus, self._on_capture_state)
        self.generation = generation
        self._start_buttons()
        self._set_state(self._capture_state(), self._detail)
        self.notifier.ready(self._status_line())
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
            if pipeline is not None and self._input_ends() and pipeline.wait(0):
                log.info("audio input ended")
                return 0

    def _input_ends(self) -> bool:
        """A file or a pipe ends; a microphone does not."""
        return self.generation is not None and self.generation.config.audio.source != "alsa"

    def _shutdown(self) -> None:
        """SIGTERM order: stop capture, finish the utterance and the translations (bounded),
        wait for broker acks (bounded), publish offline, disconnect."""
        self._stopping = True
        self.notifier.stopping("draining")
        drain = self.config.service.drain_timeout
        if self.commands is not None:
            self.commands.close()  # no command may touch a pipeline being torn down
        if self.buttons is not None:
            self.buttons.close()
        with self._lock:
            if self.generation is not None:
                self.generation.stop(drain)
                self.generation.close()
                self.generation = None
        self.bus.drain(drain)  # every event handed to every publisher
        if self.web is not None:  # after the drain: the last finals reach the page
            self.web.set_state({"state": "offline"})
            self.bus.detach(self.web)  # closes it
        if self.mqtt is not None:
            if not self.mqtt.flush(drain):
                log.warning(
                    "%d finals not acknowledged by the broker; kept in the spool",
                    self.mqtt.pending(),
                )
            self.bus.detach(self.mqtt)  # closes it: the retained offline status, disconnect
        self.bus.close()
        self.notifier.close()

    def _reload(self) -> None:
        """SIGHUP: build the new generation while the old one serves; only when its models
        have loaded does the old one stop (at an utterance boundary). A failure anywhere
        leaves the old configuration serving, and says so on status, sd_notify and the log."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            prepared = prepare(config)
            process = (config.mqtt, config.web, config.device_id)
            if process != (self.config.mqtt, self.config.web, self.config.device_id):
                log.warning("mqtt, web and device_id changes take effect on restart, not reload")
            new = Generation.load(prepared)
        except EdgedError as exc:
            self._refuse_reload(exc)
            return
        except Exception as exc:  # a native library's own error: still never fatal here
            log.exception("reload failed while loading models")
            self._refuse_reload(exc)
            return
        with self._lock:
            old = self.generation
            drain = self.config.service.drain_timeout
            if old is not None:
                old.stop(drain, at_boundary=True)
                self.session.time_offset = old.audio_end  # the timeline goes on
            try:
                new.start(self.bus, self._on_capture_state)
            except EdgedError as exc:
                new.close()
                if old is not None:
                    old.start(self.bus, self._on_capture_state)
                self._refuse_reload(exc)
                return
            if old is not None:
                old.close()
            self.generation = new
            self.prepared = new.prepared
        log.info("config reloaded from %s", self.config_path)
        self._detail.pop("reload", None)
        self._set_state(self._capture_state(), self._detail)
        self.notifier.ready(self._status_line())

    def _refuse_reload(self, exc: BaseException) -> None:
        message = f"reload refused, keeping the running config: {exc}"
        log.error("%s", message)
        self._detail["reload"] = f"refused: {str(exc)[:200]}"
        self._set_state(self._state, self._detail)
        self.notifier.ready(self._status_line())

    # --- health, status, metrics ---------------------------------------------------------

    def _healthy(self) -> bool:
        pipeline = self.pipeline
        if pipeline is None:
            return True  # between generations during a reload
        problem = pipeline.health(
            self.config.service.stall_timeout,
            capture_expected=self._capture_state() == "online",
        )
        if problem:
            log.warning("unhealthy: %s", problem)
        return problem is None

    def _capture_state(self) -> str:
        source = self.generation.source if self.generation else None
        if isinstance(source, LiveSource) and source.state is DeviceState.DEGRADED:
            return "degraded"
        return "online"

    def _on_capture_state(self, state: DeviceState, detail: str) -> None:
        if state is DeviceState.STOPPED or self._stopping:
            return  # the daemon closed it (stop, reload): not a device problem
        if state is DeviceState.RUNNING:
            self._detail.pop("capture", None)
        else:
            self._detail["capture"] = detail
        if self.generation is not None and self.generation.source is not None:
            # While a generation starts, run() and _reload() publish its state themselves.
            self._set_state(self._capture_state(), self._detail)

    def _set_state(self, state: str, detail: dict[str, Any] | None = None) -> None:
        """Publish the state with the settings (retained on MQTT, the page, sd_notify).
        One at a time, so an older snapshot is never the last one published."""
        with self._status_lock:
            self._state = state
            self._detail = dict(detail or {})
            self.notifier.status(self._status_line())
            full = self._detail | self._settings_detail()
            if self.web is not None:
                self.web.set_state(self.status())
            pipeline = self.pipeline
            if self.discovery is not None and pipeline is not None:
                self.discovery.update(pipeline.settings.targets)
            status = Status(
                device=self.config.device_id, utt=0, seq=0, state=state, detail=full or None
            )
            self.bus.emit(status)

    def _status_line(self) -> str:
        """sd_notify STATUS=: one readable line, not a dict."""
        parts = [f"{key} {value}" for key, value in self._detail.items()]
        return self._state + (": " + "; ".join(parts) if parts else "")

    def _settings_detail(self) -> dict[str, Any]:
        pipeline = self.pipeline
        if pipeline is None:
            return {}
        s = pipeline.settings
        return {
            "languages": list(s.languages),
            "targets": list(s.targets),
            "speak": s.speak,
            "conversation": list(s.conversation) or None,
            "trigger": s.trigger.value,
            "listening": s.listening,
            "speech_muted": s.speech_muted,
            "unserved": [m.to_json() for m in self.generation.unserved] if self.generation else [],
        }

    def status(self) -> dict[str, Any]:
        out = {
            "state": self._state,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "session": self.session.id,
        }
        out |= self._detail | self._settings_detail()
        problem = self.mqtt.problem if self.mqtt is not None else None
        if problem:  # why the broker is not reachable, in words (the page, a status reply)
            out["mqtt"] = problem
        return out

    def metrics(self) -> dict[str, Any]:
        pipeline = self.pipeline
        out: dict[str, Any] = {
            "v": 1,
            "device": self.config.device_id,
            "session": self.session.id,
            "latency_ms": self.latency.summary(),
            "cpu_temp_c": cpu_temperature(),
            "publish_dropped": self.bus.dropped,
        }
        if pipeline is not None:
            st = pipeline.stats
            audio = max(st.audio_seconds, 1e-9)
            source = pipeline.source
            out |= {
                "audio_s": round(st.audio_seconds, 1),
                "rtf": {k: round(v / audio, 3) for k, v in st.stage_seconds.items()},
                "queues": pipeline.queue_depths(),
                "frames_in": st.frames_in,
                "frames_dropped": st.frames_dropped,
                "frames_unheld": st.frames_unheld,
                "interims_superseded": pipeline.interims_superseded,
                "speech_dropped": pipeline.speech_dropped,
                "frames_gated": st.frames_gated,
                "finals_rejected": st.finals_rejected,
                "overruns": source.overruns if isinstance(source, LiveSource) else 0,
                "utterances": st.utterances,
            }
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.stats()
        if self.web is not None:
            out["web"] = self.web.stats()
        return out

    def _publish_metrics(self) -> None:
        payload = self.metrics()
        if self.mqtt is not None:
            self.mqtt.publish_metrics(json.dumps(payload).encode())

    def _start_buttons(self) -> None:
        """Push-to-talk buttons on GPIO lines (gpio.line; conversation.buttons fix their
        turn's language). A board without them is degraded, not down: MQTT ptt_start and
        ptt_stop still work."""
        from edged.gpio import button_lines, watch_buttons

        c = self.config
        languages = c.conversation.buttons if c.conversation.enabled else {}
        buttons = button_lines(c.gpio.line, languages)
        if not buttons:
            return
        try:
            self.buttons = watch_buttons(
                c.gpio.chip,
                buttons,
                active_low=c.gpio.active_low,
                debounce=c.gpio.debounce,
                on_press=self._button_pressed,
                on_release=self._button_released,
            )
        except EdgedError as exc:
            log.warning("push-to-talk buttons unavailable: %s", exc)
            self._detail["buttons"] = str(exc)

    def _button_pressed(self, lang: str | None) -> None:
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.ptt_start(lang)

    def _button_released(self, lang: str | None) -> None:
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.ptt_stop()

    def _start_web(self) -> None:
        """Serve the live page; an address in use is one warning and the daemon runs
        without it. The page outlives generations, like the broker connection."""
        w = self.config.web
        if not w.enabled:
            return
        from edged.publish.web import WebServer

        web = WebServer(w.listen, device=self.config.device_id)
        try:
            web.start()
        except ConfigError as exc:
            log.warning("running without the live page: %s", exc)
            return
        self.web = web
        self.bus.attach(web)

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
        # What the broker hears first (also on every reconnect until it changes): not
        # "online" while the models are still loading.
        self.mqtt.publish(Status(device=self.config.device_id, utt=0, seq=0, state="starting"))
        self.bus.attach(self.mqtt)
        if m.discovery:
            from edged.publish.discovery import HomeAssistantDiscovery

            self.discovery = HomeAssistantDiscovery(
                self.mqtt,
                device_id=self.config.device_id,
                base=self.mqtt.topics.base,
                targets=self.config.mt.targets,
                prefix=m.discovery_prefix,
            )
            self.discovery.start()
        self.mqtt.start()  # connects in the background: an unreachable broker does not stop us
        self.commands = CommandServer(self.mqtt, self.handle)
        self.commands.start()

    def handle(self, command: control.AnyCommand) -> dict[str, Any] | None:
        """Apply one validated command through the pipeline's own methods; raise to answer
        an error. Never waits on a stage."""
        with self._lock:
            generation = self.generation
            pipeline = self.pipeline
            if generation is None or pipeline is None:
                raise EdgedError("the pipeline is restarting; try again")
            settings = pipeline.settings
            match command:
                case control.SetSource(languages=languages):
                    self._check_routes(generation, languages, settings.targets, "languages")
                    pipeline.update_settings(languages=languages)
                case control.SetTargets(targets=targets, speak=speak):
                    self._check_routes(generation, settings.languages, targets)
                    # Without `speak`, the first target is spoken, as with tts.speak = "".
                    new_speak = speak or targets[0]
                    if new_speak not in targets:
                        raise ConfigError(f"speak '{new_speak}' is not one of the targets")
                    pipeline.update_settings(targets=targets, speak=new_speak)
                case control.Pause():
                    pipeline.pause()
                case control.Resume():
                    pipeline.resume()
                case control.SetConversation(languages=languages):
                    self._set_conversation(generation, pipeline, languages)
                case control.PttStart(lang=lang):
                    if lang is not None and lang not in pipeline.settings.candidates:
                        raise ConfigError(
                            f"lang '{lang}' is not one of the languages "
                            f"{list(pipeline.settings.candidates)}"
                        )
                    pipeline.ptt_start(lang)
                case control.PttStop():
                    pipeline.ptt_stop()
                case control.Mute():
                    pipeline.mute()
                case control.Unmute():
                    pipeline.unmute()
                case control.Speak(text=text, lang=lang):
                    voices = generation.engines.voices
                    if voices is None or not voices.speaks(lang):
                        raise ConfigError(f"no voice for '{lang}'")
                    pipeline.speak(text, lang)
                case control.StopPlayback():
                    pipeline.stop_playback()
                case control.QueryStatus():
                    return self.status() | {"metrics": self.metrics()}
        self._set_state(self._state, self._detail)  # retained status shows the change
        return self.status()

    def _set_conversation(
        self, generation: Generation, pipeline: Pipeline, languages: tuple[str, ...]
    ) -> None:
        """Conversation on (every pair among `languages` routed; each needs a voice) or
        off (back to the configured candidates and targets)."""
        if languages:
            self._check_routes(generation, languages, languages, "languages")
            voices = generation.engines.voices
            if voices is not None:
                mute = [lang for lang in languages if not voices.speaks(lang)]
                if mute:
                    raise ConfigError(f"no voice for {', '.join(mute)}")
        else:
            s = pipeline.settings
            self._check_routes(generation, s.languages, s.targets)
        pipeline.update_settings(conversation=languages)

    def _check_routes(
        self,
        generation: Generation,
        languages: tuple[str, ...],
        targets: tuple[str, ...],
        key: str = "targets",
    ) -> None:
        """The rule of start-up: refused only if a target is reached by no candidate; the
        pairs that cannot be served are named in the log and the status."""
        prepared = generation.prepared
        for code in languages:
            if code not in prepared.languages and prepared.config.asr.engine == "sherpa":
                raise ConfigError(f"the sherpa model does not recognise '{code}'")
        coverage = generation.engines.retarget(languages, targets, key)
        warning = coverage.warning(key)
        if warning:
            log.warning("%s", warning)
        generation.unserved = coverage.unserved


def run_daemon(config_path: Path | None) -> int:
    """Validate the whole config (exit 78 / 3 in well under a second), then serve."""
    config = load_config(config_path)
    if logging.getLogger().level != logging.DEBUG:  # -v wins
        logging.getLogger().setLevel(config.log_level.upper())
    prepared = prepare(config)
    return Daemon(config_path, config, prepared).run()
