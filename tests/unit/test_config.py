"""Config: the documented file is the defaults, and every bad key or value is named."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

from edged.config import Config, load_config, replace
from edged.errors import ConfigError

DOCUMENTED = REPO / "config" / "edged.toml"


def keys_of(cls: type, prefix: str = "") -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type) or (
            isinstance(f.default, object) and dataclasses.is_dataclass(f.default)
        ):
            out |= keys_of(type(f.default), f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


def flatten(table: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a TOML table; a table-valued key (tts.voices, conversation.buttons)
    is one key, not a section."""
    leaves = keys_of(Config)
    out = set()
    for key, value in table.items():
        if isinstance(value, dict) and prefix + key not in leaves:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_documented_config_is_exactly_the_defaults() -> None:
    assert load_config(DOCUMENTED) == Config()


def test_every_key_is_documented() -> None:
    documented = flatten(tomllib.loads(DOCUMENTED.read_text()))
    assert documented == keys_of(Config)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edged.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[mt]\ntargtes = ['en']\n", ["mt.targtes", "did you mean 'mt.targets'"]),
        ("[asr.whisper]\nbeam_size = 99\n", ["asr.whisper.beam_size", "99", "1 to 8"]),
        ("[asr]\nengine = 'vosk'\n", ["asr.engine", "'vosk'", "'whisper'", "'sherpa'"]),
        ("[mt]\ntargets = 'en'\n", ["mt.targets", "list of strings"]),
        ("[vad]\nthreshold = 'high'\n", ["vad.threshold", "float"]),
        ("[audio]\nrealtime = 1\n", ["audio.realtime", "bool"]),
        ("asr = 3\n", ["asr", "table"]),
        ("[mt\n", ["not valid TOML"]),
        ("[web]\nlisten = '8080'\n", ["web.listen", "'8080'", "HOST:PORT"]),
    ],
)
def test_bad_config_names_key_value_and_allowed(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    for needle in needles:
        assert needle in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_integers_are_accepted_for_floats(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[vad]\nmin_silence = 1\n")).vad.min_silence == 1.0


def test_replace_validates_like_the_file() -> None:
    assert replace(Config(), "mt", targets=("de",)).mt.targets == ("de",)
    with pytest.raises(ConfigError, match=r"asr\.engine"):
        replace(Config(), "asr", engine="nope")


toml_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=3),
)
sections = st.sampled_from(
    [
        "",
        "audio",
        "vad",
        "asr",
        "asr.whisper",
        "mt",
        "tts",
        "mqtt",
        "playback",
        "service",
        "web",
        "nope",
    ]
)
names = st.sampled_from(
    [
        "engine",
        "targets",
        "threshold",
        "port",
        "rate",
        "x",
        "beam_size",
        "languages",
        "enabled",
        "host",
        "device_id",
        "min_silence",
        "listen",
    ]
)


@given(st.dictionaries(st.tuples(sections, names), toml_scalars, max_size=5))
def test_any_table_builds_a_config_or_raises_config_error(entries: dict) -> None:
    raw: dict = {}
    for (section, name), value in entries.items():
        table = raw
        for part in filter(None, section.split(".")):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                return
        table[name] = value
    from edged.config import build

    try:
        config = build(Config, raw, "")
    except ConfigError as exc:
        assert "config key" in str(exc)
        return
    assert isinstance(config, Config)


def test_one_engine_table_feeds_validation_cli_and_loading(tmp_path: Path) -> None:
    from edged.cli import build_parser
    from edged.config import ASR_ENGINES, MT_ENGINES
    from edged.engines import RECOGNIZERS

    assert tuple(RECOGNIZERS) == ASR_ENGINES
    with pytest.raises(ConfigError, match="unknown 'bogus'; allowed: ct2, apertium, whisper"):
        load_config(write(tmp_path, "[mt]\nengines = ['apertium', 'bogus']\n"))
    translate = build_parser()._subparsers._group_actions[0].choices["translate"]  # type: ignore[union-attr]
    choices = {a.dest: a.choices for a in translate._actions if a.choices}
    assert tuple(choices["asr"]) == ASR_ENGINES and tuple(choices["mt"]) == MT_ENGINES
