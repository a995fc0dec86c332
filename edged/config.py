"""Configuration: TOML read with tomllib into frozen dataclasses, validated once at start.

Every key has its default here and its documentation in config/edged.toml. An error names
the key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.errors import ConfigError

ASR_ENGINES = ("whisper", "sherpa")  # loaded by edged.engines.RECOGNIZERS
MT_ENGINES = ("ct2", "apertium", "whisper")  # built by edged.engines._translators


def _choices(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _range(low: float, high: float) -> dict[str, Any]:
    return {"range": (low, high)}


def topic_prefix(value: str, key: str = "mqtt.prefix") -> str:
    """An MQTT topic prefix: levels that are not empty and hold no wildcard, no leading `$`.

    A `$` topic (`$SYS/...`) is the broker's own: it acknowledges a publish there under MQTT
    3.1.1 and drops it, so every final would be lost without a word.
    """
    if value.startswith("$"):
        raise ConfigError(
            f"config key '{key}' is {value!r}: topics starting with '$' belong to the broker "
            "(it drops what clients publish there); choose a prefix like 'edged' or 'home/edged'"
        )
    for level in value.split("/"):
        if not level or any(c in level for c in "+#\0"):
            raise ConfigError(
                f"config key '{key}' is {value!r}: levels separated by '/' must be non-empty "
                "and hold no '+', '#' or NUL (e.g. 'edged' or 'home/edged')"
            )
    return value


def check_tls_keys(
    tls: bool, ca_file: object, cert_file: object, key_file: object, tls_insecure: bool
) -> None:
    """TLS settings without `mqtt.tls = true` are a mistake, not a hint to turn TLS on."""
    if tls:
        return
    named = (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file))
    given = [f"mqtt.{key}" for key, value in (*named, ("tls_insecure", tls_insecure)) if value]
    if given:
        raise ConfigError(
            f"{', '.join(given)} set but mqtt.tls = false: set mqtt.tls = true to use TLS, "
            "or remove them"
        )


@dataclass(frozen=True)
class AudioConfig:
    source: str = field(default="alsa", metadata=_choices("alsa", "wav", "stdin"))
    device: str = "default"  # ALSA PCM name for capture
    rate: int = field(default=16000, metadata=_range(8000, 192000))  # capture rate; resampled
    channels: int = field(default=1, metadata=_range(1, 8))
    period_frames: int = field(default=512, metadata=_range(64, 16384))
    path: str = ""  # WAV file for source = "wav"
    realtime: bool = True
    queue_seconds: float = field(default=10.0, metadata=_range(1, 120))
    trigger: str = field(default="continuous", metadata=_choices("continuous", "push_to_talk"))


@dataclass(frozen=True)
class VadConfig:
    bundle: str = "silero-vad"
    threshold: float = field(default=0.5, metadata=_range(0.05, 0.95))
    min_silence: float = field(default=0.6, metadata=_range(0.1, 5))
    sentence_silence: float = field(default=0.2, metadata=_range(0.1, 5))
    pause: float = field(default=0.15, metadata=_range(0.05, 5))
    min_speech: float = field(default=0.1, metadata=_range(0.05, 2))
    max_speech: float = field(default=20.0, metadata=_range(2, 28))
    preroll: float = field(default=1.0, metadata=_range(0, 2))


@dataclass(frozen=True)
class WhisperConfig:
    bundle: str = "whisper-base"
    partials: bool = True  # false: decode each utterance once, after it ends (no partials)
    compute_type: str = field(default="int8", metadata=_choices("int8", "int8_float32", "float32"))
    beam_size: int = field(default=2, metadata=_range(1, 8))
    partial_interval: float = field(default=1.0, metadata=_range(0.2, 10))
    first_partial: float = field(default=0.3, metadata=_range(0.2, 5))
    partial_window: float = field(default=5.0, metadata=_range(2, 30))
    final_window: float = field(default=10.0, metadata=_range(2, 30))
    translate_window: float = field(default=10.0, metadata=_range(2, 30))
    translate_beam: int = field(default=5, metadata=_range(1, 8))
    agreement: int = field(default=2, metadata=_range(2, 5))
    lid_margin: float = field(default=0.2, metadata=_range(0, 1))


@dataclass(frozen=True)
class SherpaConfig:
    bundle: str = "sherpa-zipformer-en-20m"
    rule1_silence: float = field(default=1.2, metadata=_range(0.1, 10))
    rule2_silence: float = field(default=0.6, metadata=_range(0.1, 10))
    rule3_max_utterance: float = field(default=20.0, metadata=_range(1, 60))
    decoding: str = field(
        default="greedy_search", metadata=_choices("greedy_search", "modified_beam_search")
    )
    hotwords: tuple[str, ...] = ()
    hotwords_score: float = field(default=1.5, metadata=_range(0, 10))
    punctuation_bundle: str = ""


@dataclass(frozen=True)
class AsrConfig:
    engine: str = field(default="whisper", metadata=_choices(*ASR_ENGINES))
    languages: tuple[str, ...] = ("en", "es", "de", "fr")
    # 1: CTranslate2 decodes Whisper base 4x slower on 2 threads than on 1 (beam 2, 3 s of
    # speech: 184 ms against 46 ms on 2 x86 cores) and encodes windows up to 10 s no faster.
    threads: int = field(default=1, metadata=_range(1, 16))
    whisper: WhisperConfig = WhisperConfig()
    sherpa: SherpaConfig = SherpaConfig()


@dataclass(frozen=True)
class MtConfig:
    targets: tuple[str, ...] = ("en",)
    engines: tuple[str, ...] = field(  # preference order
        default=MT_ENGINES, metadata={"items": MT_ENGINES}
    )
    ct2_bundles: tuple[str, ...] = ()  # installed CTranslate2 bundles to load
    threads: int = field(default=1, metadata=_range(1, 16))
    beam_size: int = field(default=2, metadata=_range(1, 8))
    interim: bool = True
    interim_interval: float = field(default=0.5, metadata=_range(0, 10))


@dataclass(frozen=True)
class TtsConfig:
    enabled: bool = True
    speak: str = ""  # target language spoken; "" = the first target
    voices: dict[str, str] = field(default_factory=lambda: {"en": "piper-en_US-joe-medium"})
    # speaker of a multi-speaker voice, per language of `voices`: a name of the voice's
    # speaker_id_map or a speaker number; a language not listed speaks with speaker 0
    speakers: dict[str, str] = field(default_factory=dict)
    espeak_fallback: bool = True
    espeak_bundle: str = "espeak-ng-data"
    speed: float = field(default=1.0, metadata=_range(0.5, 2))
    # 2: speech is synthesized after the final, while the recognizer waits for more words;
    # on the development set two threads brought the first audio from 474 to 429 ms (p50)
    # on 2 x86 cores, with the recognizer's latency and CPU per audio second unchanged.
    threads: int = field(default=2, metadata=_range(1, 16))
    output: str = ""  # WAV file for `edged translate --tts`; the daemon plays on ALSA

    def __post_init__(self) -> None:
        for lang in self.speakers:
            if lang not in self.voices:
                raise ConfigError(
                    f"config key 'tts.speakers.{lang}': no voice for '{lang}' in tts.voices "
                    f"(allowed: {', '.join(self.voices) or 'none'})"
                )


@dataclass(frozen=True)
class ConversationConfig:
    enabled: bool = False
    languages: tuple[str, ...] = ("en", "es")  # two or more; each final goes to the others
    buttons: dict[str, str] = field(default_factory=dict)  # GPIO line -> language it fixes


@dataclass(frozen=True)
class PublishConfig:
    jsonl: str = ""  # the daemon's JSON Lines copy: "-" = stdout, a path, or "" for none
    interim: bool = True  # publish partials and interim translations


@dataclass(frozen=True)
class PlaybackConfig:
    enabled: bool = True
    device: str = "default"  # ALSA playback PCM
    rate: int = field(default=0, metadata=_range(0, 192000))  # 0 = the voice's own rate
    gate_tail: float = field(default=0.3, metadata=_range(0, 5))  # mic stays muted after speech


@dataclass(frozen=True)
class MqttConfig:
    def __post_init__(self) -> None:  # the one rule across keys; the keys follow
        check_tls_keys(self.tls, self.ca_file, self.cert_file, self.key_file, self.tls_insecure)

    enabled: bool = True
    host: str = "localhost"
    port: int = field(default=1883, metadata=_range(1, 65535))
    prefix: str = field(default="edged", metadata={"check": topic_prefix})
    client_id: str = ""  # "" = edged-<device_id>
    keepalive: int = field(default=30, metadata=_range(5, 3600))
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""  # client certificate (mutual TLS)
    key_file: str = ""
    tls_insecure: bool = False
    username: str = ""
    password_file: str = ""  # a file holding the password; never the password itself
    password_credential: str = "mqtt-password"  # systemd credential name, if present
    spool_dir: str = ""  # "" = $STATE_DIRECTORY/spool or ~/.local/state/edged/spool
    spool_limit: int = field(default=10_000, metadata=_range(10, 10_000_000))
    reconnect_min: int = field(default=1, metadata=_range(1, 60))
    reconnect_max: int = field(default=60, metadata=_range(1, 3600))
    # Off by default: discovery writes retained configs into a broker that may be shared, and
    # creates entities in every Home Assistant listening there; that is the user's choice.
    discovery: bool = False  # Home Assistant MQTT discovery (edged.publish.discovery)
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class GpioConfig:
    chip: str = "/dev/gpiochip0"  # GPIO character device of the push-to-talk button(s)
    line: int = field(default=-1, metadata=_range(-1, 4095))  # line offset; -1 = no button
    active_low: bool = True  # pressed = line pulled to ground (pull-up bias on)
    debounce: float = field(default=0.03, metadata=_range(0, 1))  # seconds


@dataclass(frozen=True)
class ServiceConfig:
    metrics_interval: float = field(default=30.0, metadata=_range(0, 3600))  # 0 = off
    drain_timeout: float = field(default=10.0, metadata=_range(0, 120))
    stall_timeout: float = field(
        default=10.0, metadata=_range(1, 600)
    )  # stage silent -> no watchdog


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    # HOST:PORT of the live page; another address than loopback lets anyone on that network
    # read the conversation.
    listen: str = field(
        default="127.0.0.1:8080",
        metadata={
            "pattern": (
                r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}",
                "HOST:PORT, e.g. 127.0.0.1:8080",
            )
        },
    )


@dataclass(frozen=True)
class Config:
    device_id: str = "edged"
    models_dir: str = ""  # "" = $EDGED_MODELS_DIR or ~/.local/share/edged/models
    log_level: str = field(default="info", metadata=_choices("debug", "info", "warning", "error"))
    audio: AudioConfig = AudioConfig()
    vad: VadConfig = VadConfig()
    asr: AsrConfig = AsrConfig()
    mt: MtConfig = MtConfig()
    tts: TtsConfig = TtsConfig()
    conversation: ConversationConfig = ConversationConfig()
    publish: PublishConfig = PublishConfig()
    playback: PlaybackConfig = PlaybackConfig()
    mqtt: MqttConfig = MqttConfig()
    gpio: GpioConfig = GpioConfig()
    service: ServiceConfig = ServiceConfig()
    web: WebConfig = WebConfig()


def load_config(path: Path | None) -> Config:
    """Read and validate a TOML config file; None gives the defaults."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from exc
    return build(Config, raw, "")


def build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from a TOML table, checking every key and value."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            suggestion = f"; did you mean '{prefix}{hint[0]}'?" if hint else ""
            allowed = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{name}'{suggestion} (allowed here: {allowed})")
        values[key] = _convert(hints[key], value, name, fields[key].metadata)
    return cls(**values)


def _convert(hint: Any, value: Any, name: str, meta: typing.Mapping[str, Any]) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{name}' must be a table, got {value!r}")
        return build(hint, value, f"{name}.")  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config key '{name}' must be a list of strings, got {value!r}")
        for item in value:
            if "items" in meta and item not in meta["items"]:
                allowed = ", ".join(meta["items"])
                raise ConfigError(f"config key '{name}': unknown '{item}'; allowed: {allowed}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"config key '{name}' must be a table of strings, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not hint:
        raise ConfigError(
            f"config key '{name}' must be {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    _check_allowed(value, name, meta)
    return value


def _check_allowed(value: Any, name: str, meta: typing.Mapping[str, Any]) -> None:
    if "check" in meta:
        meta["check"](value, name)
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"config key '{name}' is {value!r}; allowed: {allowed}")
    if "range" in meta:
        low, high = meta["range"]
        if not low <= value <= high:
            raise ConfigError(f"config key '{name}' is {value!r}; allowed: {low} to {high}")
    if "pattern" in meta:
        pattern, form = meta["pattern"]
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"config key '{name}' is {value!r}; allowed: {form}")


def replace(config: Config, section: str, **changes: Any) -> Config:
    """A copy of `config` with keys of one section (or the top level, section "") changed,
    validated like the file."""
    if not section:
        target: Any = config
    else:
        target = getattr(config, section)
    for key, value in changes.items():
        name = f"{section}.{key}" if section else key
        f = next((f for f in dataclasses.fields(target) if f.name == key), None)
        if f is None:
            raise ConfigError(f"unknown config key '{name}'")
        hint = typing.get_type_hints(type(target))[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, hint):
            continue  # a whole section, already built and validated
        _convert(hint, list(value) if isinstance(value, tuple) else value, name, f.metadata)
    updated = dataclasses.replace(target, **changes)
    return updated if not section else dataclasses.replace(config, **{section: updated})
