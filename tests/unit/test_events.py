"""The event vocabulary: wire format, schema derived from the dataclasses, round trips."""

import json

import jsonschema
import pytest

from edged import events
from edged.events import AsrPartial, Event, MtFinal, Status, from_dict, json_schema


def sample_events() -> list[Event]:
    common = {"device": "pi-1", "utt": 3, "seq": 1}
    return [
        events.SpeechStart(t0=1.0, **common),
        AsrPartial(src="es", text="Enciende la", stable="Enciende", t0=1, t1=2, lat_ms=5, **common),
        events.AsrFinal(src="es", text="Enciende la luz.", t0=1, t1=2.5, lat_ms=9, **common),
        events.AsrFinal(
            src="en",
            text="Do re.",
            t0=1,
            t1=2,
            lat_ms=9,
            tokens=["DO", "RE"],
            token_t0=[1.04, 1.6],
            **common,
        ),
        events.MtInterim(
            src="es", tgt="en", text="Turn on", engine="apertium", t0=1, t1=2, lat_ms=3, **common
        ),
        MtFinal(
            src="es",
            tgt="en",
            text="Turn on the light.",
            engine="apertium",
            t0=1,
            t1=2.5,
            lat_ms=40,
            **common,
        ),
        events.TtsStart(lang="en", voice="joe", text="Turn on the light.", lat_ms=90, **common),
        events.TtsEnd(lang="en", duration=1.5, **common),
        Status(state="online", **common),
        Status(state="degraded", detail={"capture": "device lost"}, **common),
        events.Error(code="no-voice", message="no voice for 'xx'", **common),
    ]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_every_event_validates_against_the_derived_schema(event: Event) -> None:
    payload = json.loads(event.to_json())
    jsonschema.validate(payload, json_schema())
    assert payload["v"] == events.SCHEMA_VERSION
    assert payload["type"] == event.type


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_json_round_trip(event: Event) -> None:
    assert from_dict(json.loads(event.to_json())) == event


def test_schema_rejects_a_missing_field_and_an_unknown_one() -> None:
    payload = json.loads(sample_events()[4].to_json())
    del payload["tgt"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, json_schema())
    payload = json.loads(sample_events()[4].to_json()) | {"extra": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, json_schema())


def test_optional_fields_are_left_out_not_null() -> None:
    assert "detail" not in Status(device="d", utt=0, seq=1, state="online").to_dict()


def test_timestamps_are_utc_iso8601() -> None:
    ts = sample_events()[0].ts
    assert ts.endswith("Z") and "T" in ts


def test_finals_are_marked_final() -> None:
    finals = {e.type for e in sample_events() if e.is_final}
    assert {"asr.final", "mt.final"} <= finals
    assert not {"asr.partial", "mt.interim"} & finals
