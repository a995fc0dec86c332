"""Commands from the outside (MQTT `cmd`): parsing, validation and the reply format;
`edged.control.server` runs them (CommandServer).

Pure functions and frozen dataclasses, no I/O: `parse_command()` turns a payload into one
typed `Command` or raises `CommandError` naming the problem; whoever owns the pipeline
applies the command (for example with a `match` on the class) and answers with
`reply_ok()` / `reply_error()`.

Wire format, one JSON object per message (UTF-8, at most 4 KiB):
    {"op": "set_targets", "id": "42", "targets": ["es", "de"], "speak": "es"}
`id` (string or integer, optional) is echoed in the reply; `v` (optional) must be 1.
Replies: {"v": 1, "id": "42", "op": "set_targets", "ok": true, "result": {...}}
      or {"v": 1, "id": "42", "op": "set_targets", "ok": false, "error": "..."}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from edged.errors import ConfigError, EdgedError
from edged.langs import validate_lang

REPLY_VERSION = 1
MAX_PAYLOAD_BYTES = 4096
MAX_ID_CHARS = 128
MAX_SOURCE_LANGUAGES = 8
MAX_TARGETS = 8
MAX_SPEAK_CHARS = 400  # a `speak` command's text; the pipeline refuses longer too

RequestId = str | int | None


class CommandError(EdgedError):
    """A command payload is malformed or asks for something invalid; the reply carries it."""

    def __init__(self, message: str, request_id: RequestId = None, op: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.op = op


class Op(StrEnum):
    """Every command edged understands, as spelled on the wire."""

    SET_SOURCE = "set_source"
    SET_TARGETS = "set_targets"
    SET_CONVERSATION = "set_conversation"
    PAUSE = "pause"
    RESUME = "resume"
    PTT_START = "ptt_start"
    PTT_STOP = "ptt_stop"
    MUTE = "mute"
    UNMUTE = "unmute"
    SPEAK = "speak"
    STOP_PLAYBACK = "stop_playback"
    STATUS = "status"


@dataclass(frozen=True, kw_only=True)
class Command:
    """Fields every command has: the request `id` echoed in the reply."""

    op: ClassVar[Op]
    id: RequestId = None


@dataclass(frozen=True, kw_only=True)
class SetSource(Command):
    """Set the source-language candidates (the first is the default)."""

    op: ClassVar[Op] = Op.SET_SOURCE
    languages: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SetConversation(Command):
    """Conversation mode on with these languages (two or more), or off (none)."""

    op: ClassVar[Op] = Op.SET_CONVERSATION
    languages: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SetTargets(Command):
    """Set the target languages; `speak` names the one spoken aloud (None: leave as is)."""

    op: ClassVar[Op] = Op.SET_TARGETS
    targets: tuple[str, ...]
    speak: str | None = None


@dataclass(frozen=True, kw_only=True)
class Pause(Command):
    """Stop listening (the microphone's frames are dropped) until `resume`."""

    op: ClassVar[Op] = Op.PAUSE


@dataclass(frozen=True, kw_only=True)
class Resume(Command):
    """Listen again after `pause`."""

    op: ClassVar[Op] = Op.RESUME


@dataclass(frozen=True, kw_only=True)
class PttStart(Command):
    """Push-to-talk pressed: listen until `ptt_stop`; `lang` fixes the turn's language."""

    op: ClassVar[Op] = Op.PTT_START
    lang: str | None = None


@dataclass(frozen=True, kw_only=True)
class PttStop(Command):
    """Push-to-talk released: end the utterance now."""

    op: ClassVar[Op] = Op.PTT_STOP


@dataclass(frozen=True, kw_only=True)
class Mute(Command):
    """Stop speaking translations aloud (events are still published)."""

    op: ClassVar[Op] = Op.MUTE


@dataclass(frozen=True, kw_only=True)
class Unmute(Command):
    """Speak translations aloud again."""

    op: ClassVar[Op] = Op.UNMUTE


@dataclass(frozen=True, kw_only=True)
class Speak(Command):
    """Synthesize `text` in language `lang` and play it."""

    op: ClassVar[Op] = Op.SPEAK
    text: str
    lang: str


@dataclass(frozen=True, kw_only=True)
class StopPlayback(Command):
    """Stop the speech being played now."""

    op: ClassVar[Op] = Op.STOP_PLAYBACK


@dataclass(frozen=True, kw_only=True)
class QueryStatus(Command):
    """Report the device's state in the reply's `result`."""

    op: ClassVar[Op] = Op.STATUS


AnyCommand = (
    SetSource
    | SetTargets
    | SetConversation
    | Pause
    | Resume
    | PttStart
    | PttStop
    | Mute
    | Unmute
    | Speak
    | StopPlayback
    | QueryStatus
)


def _lang(value: object, key: str) -> str:
    try:
        return validate_lang(value, key)
    except ConfigError as err:
        raise CommandError(str(err)) from None


def _lang_list(value: object, key: str, most: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise CommandError(f"field '{key}' must be a list of language codes, got {_kind(value)}")
    if not value:
        raise CommandError(f"field '{key}' must name at least one language")
    if len(value) > most:
        raise CommandError(f"field '{key}' has {len(value)} languages; at most {most} allowed")
    codes = tuple(_lang(item, f"{key}[{i}]") for i, item in enumerate(value))
    if len(set(codes)) != len(codes):
        raise CommandError(f"field '{key}' lists a language twice: {list(codes)}")
    return codes


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise CommandError(f"field '{key}' must be a string, got {_kind(value)}")
    if not value.strip():
        raise CommandError(f"field '{key}' is empty")
    if len(value) > MAX_SPEAK_CHARS:
        raise CommandError(
            f"field '{key}' is {len(value)} characters; at most {MAX_SPEAK_CHARS} allowed"
        )
    return value


def _set_source(fields: dict[str, Any]) -> dict[str, Any]:
    return {"languages": _lang_list(fields["languages"], "languages", MAX_SOURCE_LANGUAGES)}


def _set_targets(fields: dict[str, Any]) -> dict[str, Any]:
    targets = _lang_list(fields["targets"], "targets", MAX_TARGETS)
    speak = fields.get("speak")
    if speak is not None:
        speak = _lang(speak, "speak")
        if speak not in targets:
            raise CommandError(f"field 'speak' = {speak!r} is not one of targets {list(targets)}")
    return {"targets": targets, "speak": speak}


def _set_conversation(fields: dict[str, Any]) -> dict[str, Any]:
    value = fields["languages"]
    if value == []:
        return {"languages": ()}  # off
    languages = _lang_list(value, "languages", MAX_SOURCE_LANGUAGES)
    if len(languages) < 2:
        raise CommandError("field 'languages' needs two or more languages, or none to end it")
    return {"languages": languages}


def _ptt_start(fields: dict[str, Any]) -> dict[str, Any]:
    lang = fields.get("lang")
    return {"lang": None if lang is None else _lang(lang, "lang")}


def _speak(fields: dict[str, Any]) -> dict[str, Any]:
    return {"text": _text(fields["text"], "text"), "lang": _lang(fields["lang"], "lang")}


def _no_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {}


# op -> (class, required fields, optional fields, validator building the class's fields)
_SPEC: dict[Op, tuple[type[Command], frozenset[str], frozenset[str], Callable[..., Any]]] = {
    Op.SET_SOURCE: (SetSource, frozenset({"languages"}), frozenset(), _set_source),
    Op.SET_TARGETS: (SetTargets, frozenset({"targets"}), frozenset({"speak"}), _set_targets),
    Op.SPEAK: (Speak, frozenset({"text", "lang"}), frozenset(), _speak),
    Op.PAUSE: (Pause, frozenset(), frozenset(), _no_fields),
    Op.RESUME: (Resume, frozenset(), frozenset(), _no_fields),
    Op.SET_CONVERSATION: (
        SetConversation,
        frozenset({"languages"}),
        frozenset(),
        _set_conversation,
    ),
    Op.PTT_START: (PttStart, frozenset(), frozenset({"lang"}), _ptt_start),
    Op.PTT_STOP: (PttStop, frozenset(), frozenset(), _no_fields),
    Op.MUTE: (Mute, frozenset(), frozenset(), _no_fields),
    Op.UNMUTE: (Unmute, frozenset(), frozenset(), _no_fields),
    Op.STOP_PLAYBACK: (StopPlayback, frozenset(), frozenset(), _no_fields),
    Op.STATUS: (QueryStatus, frozenset(), frozenset(), _no_fields),
}
_COMMON = frozenset({"op", "id", "v"})
_OP_NAMES = frozenset(op.value for op in Op)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool | dict | list | str):
        return names[type(value)]
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _request_id(obj: dict[str, Any]) -> RequestId:
    rid = obj.get("id")
    if rid is None:
        return None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise CommandError(f"field 'id' must be a string or an integer, got {_kind(rid)}")
    if isinstance(rid, str) and len(rid) > MAX_ID_CHARS:
        raise CommandError(f"field 'id' is {len(rid)} characters; at most {MAX_ID_CHARS} allowed")
    if isinstance(rid, int) and abs(rid) >= 2**63:
        raise CommandError("field 'id' is out of range (a 64-bit integer or a string)")
    return rid


def _decode(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandError(f"payload is not UTF-8 text (byte {err.start})") from None
    try:
        obj = json.loads(text)
    except ValueError as err:  # JSONDecodeError, and int() refusing a 5000-digit number
        raise CommandError(f"invalid JSON: {err}") from None
    except RecursionError:
        raise CommandError("invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise CommandError(f"a command must be a JSON object, got {_kind(obj)}")
    return obj


def parse_command(payload: bytes) -> AnyCommand:
    """Validate one command payload; raise CommandError (with the request id if any)."""
    obj = _decode(payload)
    rid = _request_id(obj)
    op_name = obj.get("op")
    try:
        return _build(obj, rid, op_name)
    except CommandError as err:
        err.request_id = rid
        err.op = op_name if isinstance(op_name, str) and op_name in _OP_NAMES else None
        raise


def _build(obj: dict[str, Any], rid: RequestId, op_name: object) -> AnyCommand:
    if op_name is None:
        raise CommandError("field 'op' is missing; expected one of " + ", ".join(Op))
    if not isinstance(op_name, str):
        raise CommandError(f"field 'op' must be a string, got {_kind(op_name)}")
    try:
        op = Op(op_name)
    except ValueError:
        shown = op_name if len(op_name) <= 40 else op_name[:40] + "..."
        raise CommandError(f"unknown op {shown!r}; expected one of " + ", ".join(Op)) from None
    if "v" in obj and (obj["v"] != REPLY_VERSION or isinstance(obj["v"], bool)):
        raise CommandError(f"field 'v' must be {REPLY_VERSION} (this device speaks version 1)")
    cls, required, optional, build = _SPEC[op]
    unknown = sorted(set(obj) - required - optional - _COMMON)
    if unknown:
        allowed = ", ".join(sorted(required | optional | _COMMON))
        raise CommandError(f"unknown field {unknown[0]!r} for op '{op}' (allowed: {allowed})")
    missing = sorted(required - set(obj))
    if missing:
        raise CommandError(f"field {missing[0]!r} is missing for op '{op}'")
    command: AnyCommand = cls(id=rid, **build(obj))  # type: ignore[assignment]
    return command


def _reply(request_id: RequestId, op: str | None, body: dict[str, Any]) -> bytes:
    reply: dict[str, Any] = {"v": REPLY_VERSION, "id": request_id}
    if op is not None:
        reply["op"] = op
    reply.update(body)
    return json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()


def reply_ok(command: Command, result: dict[str, Any] | None = None) -> bytes:
    """The reply to a command that was applied; `result` must be JSON-serializable."""
    return _reply(command.id, str(command.op), {"ok": True, "result": result or {}})


def reply_error(request_id: RequestId, op: str | None, message: str) -> bytes:
    """The reply to a command that was refused or failed; state is unchanged."""
    return _reply(request_id, op, {"ok": False, "error": message})
