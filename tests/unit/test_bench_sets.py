"""Benchmark manifests: parsing and checking, and the builder that places clips on a timeline."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from edged.audio.wav import read_wav
from edged.bench import sets
from edged.bench.conversation import MARGIN_S, Turn, Word, cut_turns, interleave, short_turn
from edged.bench.manifest import load_manifest, parse_manifest
from edged.bench.sets import (
    DEFAULT_SPEC,
    build_realspeech,
    build_set,
    energy_bounds,
    min_speech_s,
    read_clips,
)
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


# --- the real-speech set -------------------------------------------------------------------


def _tone_clip(path: Path, lead: float, tone: float, tail: float) -> None:
    """Silence, a loud tone, silence: silero hears no speech in it, energy finds the tone."""
    rate = 16000
    t = np.arange(int(tone * rate)) / rate
    burst = 0.3 * np.sin(2 * np.pi * 220 * t)
    samples = np.concatenate([np.zeros(int(lead * rate)), burst, np.zeros(int(tail * rate))])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())


def _realspeech_dir(tmp_path: Path, speech_dir: Path) -> Path:
    data = tmp_path / "realspeech"
    (data / "clips").mkdir(parents=True)
    (data / "clips" / "light.wav").write_bytes(
        (speech_dir / "living_room_light_en.wav").read_bytes()
    )
    _tone_clip(data / "clips" / "tone.wav", 0.5, 1.0, 0.7)
    _tone_clip(data / "clips" / "ton.wav", 0.2, 0.6, 0.2)
    rows = [
        "file\tlanguage\tduration_s\ttranscript\tenglish_translation\tsource\tlicence",
        "clips/light.wav\ten\t2.0\tTurn on the living room light.\t\ttest\tMIT",
        'clips/tone.wav\tde\t2.2\t"Ein ""Ton"" klingt."\t\ttest\tnone',
        "clips/ton.wav\tfr\t1.0\tUn son.\t\ttest\tnone",
        "clips/other.wav\txx\t1.0\tnot a language of the set\t\ttest\tnone",
    ]
    (data / "manifest.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def test_realspeech_set_from_a_manifest(tmp_path: Path, speech_dir: Path, models_dir: Path) -> None:
    data = _realspeech_dir(tmp_path, speech_dir)
    vad = models_dir / "silero-vad" / "silero_vad.onnx"
    built = build_realspeech(tmp_path / "out", data, vad)
    light, tone, ton = built.manifest.utterances  # "xx" is not a language of the set
    assert [u.language for u in (light, tone, ton)] == ["en", "de", "fr"]
    assert tone.text == 'Ein "Ton" klingt.'  # the TSV's CSV quoting undone
    # clip 1 starts after 1 s of lead silence; silero finds its speech inside the clip
    clip = read_wav(speech_dir / "living_room_light_en.wav")
    clip_s = len(clip[0]) / clip[1]
    assert 1.0 < light.t0 < light.t1 < 1.0 + clip_s
    # silero hears no speech in a tone: its bounds come from the energy, to 10 ms
    pause = tone.t0 - 0.5 - (1.0 + clip_s)
    assert sets.PAUSE_RANGE[0] - 0.02 <= pause <= sets.PAUSE_RANGE[1] + 0.02
    assert tone.t1 - tone.t0 == pytest.approx(1.0, abs=0.03)
    samples, rate = read_wav(built.audio)
    assert rate == 16000 and len(samples) / rate == pytest.approx(built.duration)
    assert built.duration > ton.t1 + 0.2 + 1.0  # the clip's own tail, then 1 s
    # the same seed: the same recording every time
    again = build_realspeech(tmp_path / "again", data, vad)
    assert [(u.t0, u.t1) for u in again.manifest.utterances] == [
        (u.t0, u.t1) for u in built.manifest.utterances
    ]
    only = build_realspeech(tmp_path / "fr", data, vad, languages=("fr", "en"), limit=1)
    assert only.manifest.ids() == ["light"]
    with pytest.raises(ConfigError, match="no clip in sv"):
        build_realspeech(tmp_path / "sv", data, vad, languages=("sv",))


def test_realspeech_names_a_missing_clip_or_manifest(tmp_path: Path, models_dir: Path) -> None:
    vad = models_dir / "silero-vad" / "silero_vad.onnx"
    with pytest.raises(ConfigError, match="cannot read"):
        build_realspeech(tmp_path / "out", tmp_path, vad)
    (tmp_path / "manifest.tsv").write_text(
        "file\tlanguage\tduration_s\ttranscript\nclips/none.wav\ten\t1\tHello.\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"none\.wav \(listed in manifest\.tsv\) not found"):
        build_realspeech(tmp_path / "out", tmp_path, vad)


def test_the_shared_realspeech_manifest_reads() -> None:
    clips = read_clips(sets.DEFAULT_REALSPEECH_DIR / "manifest.tsv")
    assert {c.language for c in clips} == set(sets.REALSPEECH_LANGUAGES)
    assert all(c.transcript and '""' not in c.transcript for c in clips)


def test_energy_bounds_and_the_least_speech_a_transcript_needs() -> None:
    rate = 16000
    audio = np.concatenate([np.zeros(rate), 0.2 * np.ones(rate // 2), np.zeros(rate)])
    audio += 0.0005 * np.random.default_rng(1).standard_normal(len(audio))
    assert energy_bounds(audio.astype(np.float32)) == pytest.approx((1.0, 1.5), abs=0.011)
    assert min_speech_s("i really don't know how people talk like this", "en") == pytest.approx(
        1.08
    )
    assert min_speech_s("真っ昼間", "ja") == pytest.approx(0.24)


# --- the conversation set --------------------------------------------------------------------


def _words(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in spans]


def test_a_long_clip_is_cut_at_pauses_between_words() -> None:
    audio = np.arange(20 * 16000, dtype=np.float32)  # sample i holds i: cuts are visible
    words = _words(
        ("uno", 0.5, 1.0), ("dos", 1.05, 3.0), ("tres", 3.5, 5.0),  # 0.5 s pause before tres
        ("cuatro", 5.05, 6.0), ("cinco", 6.02, 9.0),
    )  # fmt: skip
    turns = cut_turns("c", "es", "uno dos tres cuatro cinco", audio, words, max_turn=4.0)
    assert [t.text for t in turns] == ["uno dos", "tres cuatro cinco"]
    first, second = turns
    # margins of MARGIN_S, but never past halfway to the neighbour's word
    assert first.audio[0] == pytest.approx((0.5 - MARGIN_S) * 16000)
    assert len(first.audio) == pytest.approx((3.0 + MARGIN_S - 0.35) * 16000, abs=2)
    assert second.audio[0] == pytest.approx((3.5 - MARGIN_S) * 16000)
    assert first.speech == pytest.approx((MARGIN_S, 3.0 - 0.35))
    # a clip that fits one turn keeps its real transcript
    (whole,) = cut_turns("c", "es", "Uno, dos.", audio, words[:2], max_turn=4.0)
    assert whole.text == "Uno, dos." and not whole.short


def test_short_turns_are_the_first_words_of_a_clip() -> None:
    audio = np.zeros(5 * 16000, np.float32)
    words = _words(("Turn", 0.30, 0.50), ("on", 0.52, 0.70), ("the", 0.72, 0.80))
    one = short_turn("c", "en", audio, words, 1)
    assert one is not None and one.short and one.text == "Turn"
    # cut halfway between "Turn" and "on": no part of the next word
    assert len(one.audio) == pytest.approx((0.51 - 0.15) * 16000, abs=2)
    two = short_turn("c", "en", audio, words, 2)
    assert two is not None and two.text == "Turn on"
    assert short_turn("c", "en", audio, words, 3) is None  # the whole clip: not a short turn


def test_turns_alternate_languages_with_every_third_short() -> None:
    def turn(uid: str, lang: str, short: bool = False) -> Turn:
        return Turn(uid, lang, uid, np.zeros(1, np.float32), (0.0, 0.0), short)

    full = {
        "en": [turn(f"en{i}", "en") for i in range(5)],
        "es": [turn(f"es{i}", "es") for i in range(3)],
    }
    shorts = {"en": [turn("en-s", "en", True)], "es": [turn("es-s", "es", True)]}
    order = [t.id for t in interleave(full, shorts)]
    assert order == ["en0", "es0", "en1", "es1", "en-s", "es-s", "en2", "es2", "en3"]
