"""Command parsing and validation (edged.control): every op, every refusal, and properties
over thousands of generated payloads."""

from __future__ import annotations

import json

import pytest
from control_payloads import Malformed, encode, json_values, malformed, request_ids, valid_commands
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.control import (
    MAX_PAYLOAD_BYTES,
    Command,
    CommandError,
    Mute,
    Op,
    Pause,
    PttStart,
    PttStop,
    QueryStatus,
    Resume,
    SetSource,
    SetTargets,
    Speak,
    StopPlayback,
    Unmute,
    parse_command,
    reply_error,
    reply_ok,
)

MANY = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def refuse(payload: bytes) -> CommandError:
    with pytest.raises(CommandError) as caught:
        parse_command(payload)
    return caught.value


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"op": "pause", "id": "a"}, Pause(id="a")),
        ({"op": "resume", "id": 7}, Resume(id=7)),
        ({"op": "ptt_start"}, PttStart()),
        ({"op": "ptt_stop", "v": 1}, PttStop()),
        ({"op": "mute"}, Mute()),
        ({"op": "unmute"}, Unmute()),
        ({"op": "stop_playback"}, StopPlayback()),
        ({"op": "status", "id": "s"}, QueryStatus(id="s")),
        ({"op": "set_source", "languages": ["EN", " es"]}, SetSource(languages=("en", "es"))),
        (
            {"op": "set_targets", "targets": ["de", "nb"], "speak": "NO"},
            SetTargets(targets=("de", "no"), speak="no"),
        ),
        ({"op": "set_targets", "targets": ["fr"], "speak": None}, SetTargets(targets=("fr",))),
        ({"op": "speak", "text": "Hola", "lang": "es"}, Speak(text="Hola", lang="es")),
    ],
)
def test_every_op_parses_to_its_typed_command(payload: dict, expected: Command) -> None:
    command = parse_command(encode(payload))
    assert command == expected
    assert command.op is Op(payload["op"])


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "invalid JSON"),
        (b"{", "invalid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got a list"),
        (b'"pause"', "must be a JSON object, got a string"),
        (b"{}", "'op' is missing"),
        (b'{"op": 3}', "'op' must be a string, got a number"),
        (b'{"op": "dance"}', "unknown op 'dance'"),
        (b'{"op": "pause", "targets": ["es"]}', "unknown field 'targets' for op 'pause'"),
        (b'{"op": "set_targets"}', "'targets' is missing"),
        (b'{"op": "set_targets", "targets": "es"}', "'targets' must be a list"),
        (b'{"op": "set_targets", "targets": ["es", "xx"]}', "unknown language code 'xx'"),
        (b'{"op": "set_targets", "targets": ["es", "es"]}', "lists a language twice"),
        (b'{"op": "set_targets", "targets": ["es"], "speak": "de"}', "is not one of targets"),
        (b'{"op": "set_source", "languages": []}', "at least one"),
        (b'{"op": "speak", "text": 5, "lang": "en"}', "'text' must be a string, got a number"),
        (b'{"op": "speak", "text": "  ", "lang": "en"}', "'text' is empty"),
        (b'{"op": "speak", "text": "hi", "lang": "english"}', "unknown language code"),
        (b'{"op": "pause", "v": 2}', "'v' must be 1"),
        (b'{"op": "pause", "id": {"a": 1}}', "'id' must be a string or an integer"),
        (b'{"op": "pause", "id": true}', "'id' must be a string or an integer"),
        (b"[" * 3000, "nested too deeply"),
        (b"9" * 5000, "the limit is 4096"),
    ],
)
def test_refusals_name_the_problem(payload: bytes, words: str) -> None:
    assert words in str(refuse(payload))


def test_too_many_targets_and_too_long_text() -> None:
    nine = ["en", "es", "de", "fr", "it", "pt", "nl", "sv", "da"]
    err = refuse(encode({"op": "set_targets", "targets": nine, "id": 1}))
    assert "9 languages; at most 8" in str(err)
    err = refuse(encode({"op": "speak", "text": "a" * 401, "lang": "en", "id": 2}))
    assert "401 characters; at most 400" in str(err)
    assert err.request_id == 2
    assert err.op == "speak"


def test_oversize_is_refused_before_parsing() -> None:
    payload = encode({"op": "speak", "id": "big", "text": "a" * MAX_PAYLOAD_BYTES, "lang": "en"})
    err = refuse(payload)
    assert err.request_id is None  # the payload was not read, so neither was its id
    assert f"{len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}" in str(err)


def test_error_carries_the_request_id_and_op() -> None:
    err = refuse(b'{"op": "set_source", "languages": ["zz"], "id": "q1"}')
    assert (err.request_id, err.op) == ("q1", "set_source")
    err = refuse(b'{"op": "nope", "id": 5}')
    assert (err.request_id, err.op) == (5, None)


def test_reply_format() -> None:
    ok = json.loads(reply_ok(SetTargets(id="r", targets=("es",)), {"targets": ["es"]}))
    assert ok == {"v": 1, "id": "r", "op": "set_targets", "ok": True, "result": {"targets": ["es"]}}
    bad = json.loads(reply_error(None, None, "invalid JSON: x"))
    assert bad == {"v": 1, "id": None, "ok": False, "error": "invalid JSON: x"}


@MANY
@given(case=malformed)
def test_malformed_payloads_are_always_refused_with_their_id(case: Malformed) -> None:
    err = refuse(case.payload)
    assert err.request_id == case.request_id
    assert any(word in str(err) for word in case.words), (case.kind, str(err))


KEYS = ["op", "id", "v", "languages", "targets", "speak", "text", "lang", "x"]
command_like = st.dictionaries(
    st.sampled_from(KEYS), st.one_of(json_values, st.sampled_from([*Op, "en", "xx"])), max_size=5
)


@MANY
@given(
    payload=st.one_of(st.binary(max_size=600), json_values.map(encode), command_like.map(encode))
)
def test_arbitrary_payloads_raise_nothing_but_command_error(payload: bytes) -> None:
    try:
        parse_command(payload)
    except CommandError as err:
        assert str(err)


@settings(max_examples=500, deadline=None, database=None)
@given(obj=valid_commands(), rid=request_ids)
def test_valid_commands_parse_and_keep_their_id(obj: dict, rid: str | int | None) -> None:
    if rid is not None:
        obj["id"] = rid
    command = parse_command(encode(obj))
    assert command.op == obj["op"]
    assert command.id == rid


def test_set_conversation_and_a_push_to_talk_language() -> None:
    from edged.control import PttStart, SetConversation

    got = parse_command(encode({"op": "set_conversation", "languages": ["EN", "es"]}))
    assert got == SetConversation(languages=("en", "es"))
    assert parse_command(b'{"op": "set_conversation", "languages": []}') == SetConversation(
        languages=()
    )
    assert "two or more" in str(refuse(b'{"op": "set_conversation", "languages": ["en"]}'))
    assert parse_command(b'{"op": "ptt_start", "lang": "ES"}') == PttStart(lang="es")
    assert parse_command(b'{"op": "ptt_start"}') == PttStart(lang=None)
    assert "unknown language code" in str(refuse(b'{"op": "ptt_start", "lang": "zz"}'))
