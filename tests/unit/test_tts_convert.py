"""Piper voice conversion for sherpa-onnx, on a tiny ONNX model built here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edged.errors import ModelError
from edged.tts.piper_convert import (
    MODEL_FILE,
    TOKENS_FILE,
    convert_piper_voice,
    read_metadata,
    sherpa_metadata,
    tokens_text,
)

VOICE_CONFIG = {
    "audio": {"sample_rate": 22050, "quality": "medium"},
    "espeak": {"voice": "en-us"},
    "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
    "num_speakers": 1,
    "language": {"code": "en_US", "family": "en", "name_english": "English"},
    "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], ".": [10], "ə": [59], "a": [14]},
}


def tiny_model(path: Path, metadata: dict[str, str] | None = None) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, producer_name="test")
    for key, value in (metadata or {}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture
def voice(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "src"
    source.mkdir()
    config = source / "voice.onnx.json"
    config.write_text(json.dumps(VOICE_CONFIG), encoding="utf-8")
    return tiny_model(source / "voice.onnx", {"stale": "x"}), config


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tokens_one_line_per_symbol_by_id_with_the_space_kept() -> None:
    lines = tokens_text(VOICE_CONFIG, Path("v.json")).splitlines()
    assert lines[:4] == ["_ 0", "^ 1", "$ 2", "  3"]
    assert lines[-1] == "ə 59"
    assert len(lines) == len(VOICE_CONFIG["phoneme_id_map"])


def test_tokens_skip_newline_and_reject_multi_codepoint_symbols() -> None:
    config = {"phoneme_id_map": {"_": [0], "\n": [5]}}
    assert tokens_text(config, Path("v.json")) == "_ 0\n"
    with pytest.raises(ModelError, match=r"v.json.*'ab'"):
        tokens_text({"phoneme_id_map": {"ab": [1]}}, Path("v.json"))
    with pytest.raises(ModelError, match="phoneme_id_map"):
        tokens_text({}, Path("v.json"))


def test_metadata_is_what_sherpa_reads_for_piper() -> None:
    metadata = sherpa_metadata(VOICE_CONFIG, Path("v.json"))
    assert metadata == {
        "model_type": "vits",
        "comment": "piper",
        "language": "English",
        "voice": "en-us",
        "has_espeak": "1",
        "n_speakers": "1",
        "sample_rate": "22050",
        "add_blank": "0",
    }


def test_metadata_fixes_pipers_miswritten_rate_and_names_missing_keys() -> None:
    config = dict(VOICE_CONFIG, audio={"sample_rate": 22500})
    assert sherpa_metadata(config, Path("v.json"))["sample_rate"] == "22050"
    with pytest.raises(ModelError, match=r"v.json"):
        sherpa_metadata({"audio": {"sample_rate": 16000}}, Path("v.json"))


def test_conversion_writes_model_and_tokens_replacing_old_metadata(
    voice: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    convert_piper_voice(*voice, out)
    assert sorted(p.name for p in out.iterdir()) == [MODEL_FILE, TOKENS_FILE]
    metadata = read_metadata(out / MODEL_FILE)
    assert metadata == sherpa_metadata(VOICE_CONFIG, voice[1])
    assert {p.key: p.value for p in onnx.load(str(out / MODEL_FILE)).metadata_props} == metadata
    assert (out / TOKENS_FILE).read_text(encoding="utf-8").startswith("_ 0\n^ 1\n$ 2\n  3\n")


def test_conversion_is_deterministic_and_idempotent(
    voice: tuple[Path, Path], tmp_path: Path
) -> None:
    convert_piper_voice(*voice, tmp_path / "a")
    convert_piper_voice(*voice, tmp_path / "b")
    for name in (MODEL_FILE, TOKENS_FILE):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    convert_piper_voice(tmp_path / "a" / MODEL_FILE, voice[1], tmp_path / "c")
    assert digest(tmp_path / "c" / MODEL_FILE) == digest(tmp_path / "a" / MODEL_FILE)


def test_corrupt_inputs_are_model_errors_naming_the_file(
    voice: tuple[Path, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    with pytest.raises(ModelError, match=r"broken.onnx"):
        convert_piper_voice(broken, voice[1], tmp_path / "out")
    assert not (tmp_path / "out" / MODEL_FILE).exists()
    bad_json = tmp_path / "bad.onnx.json"
    bad_json.write_text("{", encoding="utf-8")
    with pytest.raises(ModelError, match=r"bad.onnx.json"):
        convert_piper_voice(voice[0], bad_json, tmp_path / "out")


def test_read_metadata_rejects_what_is_not_onnx(tmp_path: Path) -> None:
    text = tmp_path / "card.onnx"
    text.write_text("Model card: joe\n", encoding="utf-8")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path in (text, empty):
        with pytest.raises(ModelError, match=path.name):
            read_metadata(path)
    assert read_metadata(tiny_model(tmp_path / "plain.onnx")) == {}


# --- phoneme_type and speakers, read from the voice's .onnx.json -------------------------


@pytest.mark.parametrize("phoneme_type", ["text", "pinyin"])
def test_a_voice_not_phonemized_by_espeak_is_refused(
    voice: tuple[Path, Path], tmp_path: Path, phoneme_type: str
) -> None:
    """Piper's PhonemeType is espeak or text (piper/config.py); edged drives voices with
    espeak-ng phonemes only, so a text voice is refused at install and at load."""
    from edged.tts.piper import read_voice

    onnx_path, config = voice
    config.write_text(json.dumps({**VOICE_CONFIG, "phoneme_type": phoneme_type}), "utf-8")
    with pytest.raises(ModelError, match=rf"voice\.onnx\.json: phoneme_type '{phoneme_type}'"):
        convert_piper_voice(onnx_path, config, tmp_path / "out")
    assert not (tmp_path / "out" / MODEL_FILE).exists()
    with pytest.raises(ModelError, match="is not espeak: edged phonemizes with espeak-ng only"):
        read_voice(config)


@pytest.mark.parametrize("phoneme_type", ["espeak", "PhonemeType.ESPEAK", None])
def test_espeak_voices_pass_in_every_spelling_piper_wrote(
    voice: tuple[Path, Path], tmp_path: Path, phoneme_type: str | None
) -> None:
    """ "espeak", the enum's str() (es_MX-ald-medium), or no key (Piper's default, older
    voices such as de_DE-thorsten-low)."""
    from edged.tts.piper import read_voice

    onnx_path, config = voice
    settings = {**VOICE_CONFIG, "phoneme_type": phoneme_type}
    if phoneme_type is None:
        del settings["phoneme_type"]
    config.write_text(json.dumps(settings), "utf-8")
    convert_piper_voice(onnx_path, config, tmp_path / "out")
    assert read_voice(config).espeak_voice == "en-us"


MULTI_SPEAKER = {**VOICE_CONFIG, "num_speakers": 3, "speaker_id_map": {"p225": 0, "p226": 2}}


def test_speaker_by_name_or_number(tmp_path: Path) -> None:
    from edged.errors import ConfigError
    from edged.tts.piper import read_voice

    config = tmp_path / "vctk.onnx.json"
    config.write_text(json.dumps(MULTI_SPEAKER), "utf-8")
    voice = read_voice(config)
    assert (voice.num_speakers, voice.speaker_ids) == (3, {"p225": 0, "p226": 2})
    assert [voice.speaker_id(s) for s in ("", "p226", "1", "2")] == [0, 2, 1, 2]
    with pytest.raises(ConfigError, match=r"'p999' is not a speaker.*0 to 2.*p225, p226"):
        voice.speaker_id("p999")
    with pytest.raises(ConfigError, match="'3' is not a speaker"):
        voice.speaker_id("3")
    assert sherpa_metadata(MULTI_SPEAKER, config)["n_speakers"] == "3"


def test_single_speaker_voice_refuses_another_speaker(tmp_path: Path) -> None:
    from edged.errors import ConfigError
    from edged.tts.piper import read_voice

    config = tmp_path / "joe.onnx.json"
    config.write_text(json.dumps(VOICE_CONFIG), "utf-8")
    voice = read_voice(config)
    assert voice.speaker_id("0") == 0
    with pytest.raises(ConfigError, match="'1', but this Piper voice has a single speaker"):
        voice.speaker_id("1")


def test_speaker_config_key_needs_a_voice_of_that_language(tmp_path: Path) -> None:
    from edged.config import Config, load_config
    from edged.errors import ConfigError

    path = tmp_path / "edged.toml"
    path.write_text('[tts]\nspeakers = { en = "p225" }\n', "utf-8")
    assert load_config(path).tts.speakers == {"en": "p225"}
    assert Config().tts.speakers == {}
    path.write_text('[tts]\nspeakers = { fr = "2" }\n', "utf-8")
    with pytest.raises(ConfigError, match=r"'tts.speakers.fr': no voice for 'fr'"):
        load_config(path)
