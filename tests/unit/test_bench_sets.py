"""Benchmark manifests: parsing and checking, and the builder that places clips on a timeline."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from edged.audio.wav import read_wav
from edged.bench.manifest import load_manifest, parse_manifest
from edged.bench.sets import DEFAULT_SPEC, build_set
from edged.errors import ConfigError


def entry(uid: str = "a", t0: float = 1.0, t1: float = 2.0, **extra: object) -> dict:
    return {"id": uid, "language": "en", "text": "Hello.", "t0": t0, "t1": t1, **extra}


def test_manifest_object_with_audio_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "audio": "x.wav",
                "utterances": [
                    entry("b", 3, 4),
                    entry("a", translations={"es": "Hola.", "de": ["Hallo.", "Hallo!"]}),
                ],
            }
        )
    )
    m = load_manifest(path)
    assert m.audio == tmp_path / "x.wav"
    assert m.ids() == ["a", "b"]  # in time order
    a = m.utterances[0]
    assert a.references("es") == ("Hola.",) and a.references("de") == ("Hallo.", "Hallo!")
    assert a.references("en") == ("Hello.",)  # its own language: the transcript
    assert a.references("fr") == ()


def test_bare_list_manifest() -> None:
    m = parse_manifest([entry()])
    assert m.audio is None and len(m.utterances) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"audio": "x.wav"}, "no 'utterances'"),
        ([], "non-empty list"),
        ([{"id": "a", "language": "en", "text": "x", "t0": 1}], "missing t1"),
        ([entry(t0=2, t1=1)], "t0 < t1"),
        ([entry(t0="soon")], "numbers"),
        ([entry(text="  ")], "empty reference"),
        ([entry("a", 1, 3), entry("b", 2, 4)], "overlap"),
        ([entry("a", 1, 2), entry("a", 3, 4)], "twice"),
        ([entry(translations={"es": []})], "translations.es"),
    ],
)
def test_bad_manifests_name_the_problem(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_manifest(raw, "m.json")


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_manifest(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_manifest(bad)


def _clip(path: Path, seconds: float, rate: int) -> None:
    samples = (0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def test_builder_places_clips_after_silences(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(clips / "one.wav", 1.0, 16000)
    _clip(clips / "two.wav", 2.0, 44100)  # resampled to 16 kHz
    spec = tmp_path / "set.json"
    spec.write_text(
        json.dumps(
            {
                "lead_silence": 0.5,
                "tail_silence": 0.25,
                "clips": [
                    {
                        "file": "one.wav",
                        "gap_after": 1.5,
                        "utterances": [
                            {"id": "u1", "language": "en", "text": "One.", "start": 0.1, "end": 0.9}
                        ],
                    },
                    {
                        "file": "two.wav",
                        "gap_after": 9.0,
                        "utterances": [
                            {
                                "id": "u2",
                                "language": "es",
                                "text": "Dos.",
                                "start": 0.2,
                                "end": 0.8,
                                "translations": {"en": ["Two."]},
                            },
                            {
                                "id": "u3",
                                "language": "es",
                                "text": "Tres.",
                                "start": 1.0,
                                "end": 1.9,
                            },
                        ],
                    },
                ],
            }
        )
    )
    built = build_set(tmp_path / "out", clips, tmp_path / "models", spec)
    assert built.duration == pytest.approx(0.5 + 1.0 + 1.5 + 2.0 + 0.25)
    samples, rate = read_wav(built.audio)
    assert rate == 16000 and len(samples) == round(built.duration * 16000)
    times = [(u.id, u.t0, u.t1) for u in built.manifest.utterances]
    assert times == [("u1", 0.6, 1.4), ("u2", 3.2, 3.8), ("u3", 4.0, 4.9)]
    assert built.manifest.audio == built.audio
    assert built.manifest.utterances[1].references("en") == ("Two.",)
    english_only = build_set(tmp_path / "en", clips, tmp_path / "models", spec, languages=("en",))
    assert english_only.manifest.ids() == ["u1"]
    with pytest.raises(ConfigError, match="no clip is in the languages"):
        build_set(tmp_path / "fr", clips, tmp_path / "models", spec, languages=("fr",))


def test_builder_names_a_missing_clip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"living_room_light_de\.wav not found"):
        build_set(tmp_path / "out", tmp_path, tmp_path, DEFAULT_SPEC)


def test_bundled_description_is_consistent() -> None:
    spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    ids = [u["id"] for c in spec["clips"] for u in c["utterances"]]
    assert len(ids) == len(set(ids)) == 11
    for clip in spec["clips"]:
        for u in clip["utterances"]:
            assert 0 <= u["start"] < u["end"]
            # every utterance has a reference in each default target it is not spoken in
            for target in ("en", "es"):
                assert target == u["language"] or u["translations"].get(target), u["id"]
