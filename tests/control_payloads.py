"""Hypothesis strategies for command payloads: valid ones, and malformed ones that must be
refused, each with the request id the error reply must carry and words its message must use.

Every malformed payload is built from a valid command with exactly one thing broken (or is
not a JSON object at all), so "malformed" holds by construction, not by asking the parser.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from edged.control import MAX_PAYLOAD_BYTES, MAX_SPEAK_CHARS, Op
from edged.langs import LANGUAGES, normalize_lang

NO_FIELD_OPS = [
    Op.PAUSE,
    Op.RESUME,
    Op.PTT_STOP,
    Op.MUTE,
    Op.UNMUTE,
    Op.STOP_PLAYBACK,
    Op.STATUS,
]
FIELDS = {
    Op.SET_SOURCE: {"languages"},
    Op.SET_TARGETS: {"targets", "speak"},
    Op.SPEAK: {"text", "lang"},
    Op.SET_CONVERSATION: {"languages"},
    Op.PTT_START: {"lang"},
}


@dataclass(frozen=True)
class Malformed:
    """A payload the parser must refuse: the id its reply carries, words its error uses."""

    payload: bytes
    request_id: str | int | None
    words: tuple[str, ...]  # the error message contains at least one of these
    kind: str


def encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def is_json_object(payload: bytes) -> bool:
    try:
        return isinstance(json.loads(payload.decode("utf-8")), dict)
    except (ValueError, RecursionError):
        return False


good_lang = st.sampled_from(sorted(LANGUAGES))
bad_lang = st.text(max_size=8).filter(lambda code: normalize_lang(code) is None)
request_ids = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(min_value=-(2**62), max_value=2**62),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
not_a_list = json_values.filter(lambda v: not isinstance(v, list))
not_a_string = json_values.filter(lambda v: not isinstance(v, str))
speak_text = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() != "")


@st.composite
def valid_commands(draw: st.DrawFn) -> dict[str, Any]:
    """A valid command object (without id)."""
    op = draw(st.sampled_from(list(Op)))
    obj: dict[str, Any] = {"op": op.value}
    if draw(st.booleans()):
        obj["v"] = 1
    if op is Op.SET_SOURCE:
        obj["languages"] = draw(st.lists(good_lang, min_size=1, max_size=8, unique=True))
    elif op is Op.SET_TARGETS:
        obj["targets"] = draw(st.lists(good_lang, min_size=1, max_size=8, unique=True))
        if draw(st.booleans()):
            obj["speak"] = draw(st.sampled_from(obj["targets"]))
    elif op is Op.SPEAK:
        obj["text"] = draw(speak_text)
        obj["lang"] = draw(good_lang)
    elif op is Op.SET_CONVERSATION:
        pair = draw(st.lists(good_lang, min_size=2, max_size=4, unique=True))
        obj["languages"] = draw(st.sampled_from([pair, []]))
    elif op is Op.PTT_START and draw(st.booleans()):
        obj["lang"] = draw(good_lang)
    return obj


@st.composite
def broken_objects(draw: st.DrawFn) -> Malformed:
    """A valid command with one thing broken; its id (if any) is valid and must be echoed."""
    obj = draw(valid_commands())
    rid = draw(request_ids)
    op = Op(obj["op"])
    fields = FIELDS.get(op, set())
    kinds = ["missing_op", "op_type", "unknown_op", "unknown_field", "bad_v"]
    if op in (Op.SET_SOURCE, Op.SET_TARGETS, Op.SPEAK):  # the others' fields may be absent
        kinds += ["wrong_type", "bad_lang"]
    if op in (Op.SET_SOURCE, Op.SET_TARGETS):
        kinds += ["too_many", "duplicate", "empty_list"]
    if op is Op.SET_TARGETS:
        kinds += ["speak_not_target"]
    if op is Op.SPEAK:
        kinds += ["long_text", "empty_text"]
    kind = draw(st.sampled_from(kinds))
    list_key = "languages" if op is Op.SET_SOURCE else "targets"
    words: tuple[str, ...]
    if kind == "missing_op":
        del obj["op"]
        words = ("'op' is missing",)
    elif kind == "op_type":
        obj["op"] = draw(not_a_string.filter(lambda v: v is not None))
        words = ("'op' must be a string",)
    elif kind == "unknown_op":
        obj["op"] = draw(st.text(max_size=20).filter(lambda s: s not in set(Op)))
        words = ("unknown op",)
    elif kind == "unknown_field":
        allowed = {"op", "id", "v"} | fields
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in allowed))
        obj[key] = draw(json_values)
        words = ("unknown field",)
    elif kind == "bad_v":
        obj["v"] = draw(st.sampled_from([0, 2, -1, "1", True, None, [1], {"v": 1}]))
        words = ("'v' must be",)
    elif kind == "wrong_type":
        key = draw(st.sampled_from(sorted(fields)))
        if key in ("languages", "targets"):
            obj[key] = draw(not_a_list)
        elif key == "speak":
            obj[key] = draw(not_a_string.filter(lambda v: v is not None))
        else:
            obj[key] = draw(not_a_string)
        words = ("must be", "unknown language code")
    elif kind == "bad_lang":
        if op is Op.SPEAK:
            obj["lang"] = draw(bad_lang)
        else:
            langs = obj[list_key]
            langs[draw(st.integers(0, len(langs) - 1))] = draw(bad_lang)
            obj.pop("speak", None)
        words = ("unknown language code",)
    elif kind == "too_many":
        obj[list_key] = draw(st.lists(good_lang, min_size=9, max_size=15, unique=True))
        obj.pop("speak", None)
        words = ("at most 8",)
    elif kind == "duplicate":
        langs = obj[list_key]
        del langs[7:]  # stay within the limit, so the duplicate is the only problem
        if obj.get("speak", langs[0]) not in langs:
            del obj["speak"]
        langs.append(draw(st.sampled_from(langs)))
        words = ("twice",)
    elif kind == "empty_list":
        obj[list_key] = []
        obj.pop("speak", None)
        words = ("at least one",)
    elif kind == "speak_not_target":
        obj["speak"] = draw(good_lang.filter(lambda code: code not in obj["targets"]))
        words = ("is not one of targets",)
    elif kind == "long_text":
        obj["text"] = draw(
            st.text(
                alphabet=string.ascii_letters + " ",
                min_size=MAX_SPEAK_CHARS + 1,
                max_size=MAX_SPEAK_CHARS + 500,
            )
        )
        words = (f"at most {MAX_SPEAK_CHARS}",)
    else:  # empty_text
        obj["text"] = draw(st.sampled_from(["", " ", "\n\t", "   "]))
        words = ("is empty",)
    if rid is not None:
        obj["id"] = rid
    return Malformed(encode(obj), rid, words, kind)


@st.composite
def unreadable(draw: st.DrawFn) -> Malformed:
    """Payloads whose id cannot be read: not JSON, not an object, too big, bad id, ..."""
    kind = draw(
        st.sampled_from(["bytes", "text", "not_object", "deep", "not_utf8", "oversize", "bad_id"])
    )
    words: tuple[str, ...] = ("invalid JSON", "not UTF-8", "must be a JSON object")
    if kind == "bytes":
        payload = draw(st.binary(max_size=300).filter(lambda b: not is_json_object(b)))
    elif kind == "text":
        payload = draw(st.text(max_size=200)).encode()
        if is_json_object(payload):
            payload = b"{" + payload  # "{" + an object's text never parses
    elif kind == "not_object":
        payload = encode(draw(json_values.filter(lambda v: not isinstance(v, dict))))
        words = ("must be a JSON object",)
    elif kind == "deep":
        opener = draw(st.sampled_from(["[", '{"a":']))
        depth = draw(st.integers(700, MAX_PAYLOAD_BYTES // len(opener)))
        payload = (opener * depth).encode()
        words = ("nested too deeply", "invalid JSON")
    elif kind == "not_utf8":
        good = encode(draw(valid_commands()))
        cut = draw(st.integers(0, len(good)))
        payload = (
            good[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + good[cut:]
        )
        words = ("not UTF-8",)
    elif kind == "oversize":
        obj = draw(valid_commands())
        obj["id"] = draw(st.text(max_size=10))
        obj["pad"] = "x" * draw(st.integers(MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 2000))
        payload = encode(obj)
        words = (f"the limit is {MAX_PAYLOAD_BYTES}",)
    else:  # bad_id
        obj = draw(valid_commands())
        obj["id"] = draw(
            st.one_of(
                st.booleans(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.lists(st.integers(), max_size=3),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                st.text(min_size=129, max_size=200),
                st.integers(min_value=2**63, max_value=2**80),
            )
        )
        payload = encode(obj)
        words = ("'id'",)
    return Malformed(payload, None, words, kind)


malformed = st.one_of(broken_objects(), unreadable())
