"""The event vocabulary every stage and every subscriber shares.

One frozen dataclass per event type; `to_json()` is the wire format (JSON, one
object per event, `None` fields left out) and `json_schema()` derives the JSON
Schema from the same classes, so the format is written down once.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

SCHEMA_VERSION = 1


def utc_now() -> str:
    """Wall-clock timestamp as ISO 8601 UTC with millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields common to every event. `session` is new with every process start, `utt`
    numbers utterances in a session (across config reloads), `seq` events in one
    utterance: `(device, session, utt, seq, type, tgt)` identifies an event."""

    type: ClassVar[str] = ""
    device: str
    utt: int
    seq: int
    session: str = ""
    ts: str = field(default_factory=utc_now)
    v: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": self.v, "type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "v" and value is not None:
                out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @property
    def is_final(self) -> bool:
        """Finals must reach subscribers (QoS 1, spooled); the rest may be dropped."""
        return self.type in FINAL_TYPES


@dataclass(frozen=True, kw_only=True)
class SpeechStart(Event):
    """The VAD (or recognizer) found the start of an utterance at audio time t0."""

    type: ClassVar[str] = "speech.start"
    t0: float


@dataclass(frozen=True, kw_only=True)
class AsrPartial(Event):
    """Interim recognition; `stable` is the prefix that will not be retracted."""

    type: ClassVar[str] = "asr.partial"
    src: str
    text: str
    stable: str
    t0: float
    t1: float
    lat_ms: int
    tokens: list[str] | None = None  # the model's tokens, where the engine gives them,
    token_t0: list[float] | None = None  # and when each starts on the audio timeline


@dataclass(frozen=True, kw_only=True)
class AsrFinal(Event):
    """The recognised text of a whole utterance. An utterance whose speech was rejected
    (noise, a hallucination, a repetition loop) ends with empty `text` and a `reason`."""

    type: ClassVar[str] = "asr.final"
    src: str
    text: str
    t0: float
    t1: float
    lat_ms: int
    tokens: list[str] | None = None
    token_t0: list[float] | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class MtInterim(Event):
    """Translation of the stable prefix while the utterance goes on."""

    type: ClassVar[str] = "mt.interim"
    src: str
    tgt: str
    text: str
    engine: str
    t0: float
    t1: float
    lat_ms: int


@dataclass(frozen=True, kw_only=True)
class MtFinal(Event):
    """Translation of a final transcript."""

    type: ClassVar[str] = "mt.final"
    src: str
    tgt: str
    text: str
    engine: str
    t0: float
    t1: float
    lat_ms: int


@dataclass(frozen=True, kw_only=True)
class TtsStart(Event):
    """Synthesized speech of a final translation is ready and starts playing."""

    type: ClassVar[str] = "tts.start"
    lang: str
    voice: str
    text: str
    lat_ms: int


@dataclass(frozen=True, kw_only=True)
class TtsEnd(Event):
    """Synthesized speech finished; `duration` is seconds of audio produced."""

    type: ClassVar[str] = "tts.end"
    lang: str
    duration: float


@dataclass(frozen=True, kw_only=True)
class Status(Event):
    """Device state (online/offline/degraded) with free-form detail."""

    type: ClassVar[str] = "status"
    state: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Error(Event):
    """Something failed; `code` is a stable identifier, `message` is for people."""

    type: ClassVar[str] = "error"
    code: str
    message: str


EVENT_TYPES: tuple[type[Event], ...] = (
    SpeechStart,
    AsrPartial,
    AsrFinal,
    MtInterim,
    MtFinal,
    TtsStart,
    TtsEnd,
    Status,
    Error,
)
FINAL_TYPES = frozenset({"asr.final", "mt.final", "error", "status"})
_BY_TYPE = {cls.type: cls for cls in EVENT_TYPES}


def _json_type(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_json_type(a) for a in typing.get_args(hint) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is list:
        (item,) = typing.get_args(hint)
        return {"type": "array", "items": _json_type(item)}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}
    return {"type": simple[origin or hint]}


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every event, derived from the dataclasses."""
    variants = []
    for cls in EVENT_TYPES:
        hints = typing.get_type_hints(cls)
        props: dict[str, Any] = {"type": {"const": cls.type}}
        required = ["type"]
        for f in dataclasses.fields(cls):
            props[f.name] = _json_type(hints[f.name])
            optional = typing.get_origin(hints[f.name]) in (typing.Union, types.UnionType)
            if not optional:
                required.append(f.name)
        variants.append(
            {
                "title": cls.type,
                "description": (cls.__doc__ or "").strip(),
                "type": "object",
                "properties": props,
                "required": sorted(required),
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"edged event v{SCHEMA_VERSION}",
        "oneOf": variants,
    }


def from_dict(payload: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON object (subscribers, spool, tests)."""
    cls = _BY_TYPE[payload["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in payload.items() if k in names})
