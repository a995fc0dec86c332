"""Conversation mode on an interleaved English/Spanish recording of real speech, through the
real CLI and models: each turn translated into the other language and spoken in it, never
an identity translation, never spoken back to its speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, normalise, speech_of, write_wav

pytestmark = pytest.mark.slow

REALSPEECH = REPO.parent / "shared" / "data" / "realspeech" / "clips"
TURNS = [  # (file, language, words the transcript must have)
    ("living_room_light_en.wav", "en", "living room light"),
    ("living_room_light_es.wav", "es", "luz del salón"),
    ("turn_on_the_living_room_lamp.wav", "en", "living room lamp"),
    (REALSPEECH / "picovoice_cheetah_test_es.wav", "es", ""),  # base garbles its words
]


def interleaved(speech_dir: Path, tmp_path: Path) -> Path:
    pause = np.zeros(int(1.2 * 16000), np.float32)
    parts = []
    for name, _, _ in TURNS:
        parts += [speech_of(speech_dir / name), pause]
    return write_wav(tmp_path / "talk.wav", np.concatenate([pause, *parts]))


def test_each_turn_is_translated_and_spoken_in_the_other_language(
    edged, speech_dir: Path, tmp_path: Path
) -> None:
    talk = interleaved(speech_dir, tmp_path)
    out = tmp_path / "spoken.wav"
    run = edged("translate", str(talk), "--conversation", "en", "es", "--tts", str(out))
    assert run.code == 0, run.stderr
    finals = run.of("asr.final")
    assert [f["src"] for f in finals] == [lang for _, lang, _ in TURNS]  # language ID
    for final, (_, _, words) in zip(finals, TURNS, strict=True):
        assert words in normalise(final["text"]), final["text"]
    other = {"en": "es", "es": "en"}
    for final in finals:
        mt = [m for m in run.of("mt.final") if m["utt"] == final["utt"]]
        assert [(m["src"], m["tgt"]) for m in mt] == [(final["src"], other[final["src"]])]
        spoken = [t for t in run.of("tts.start") if t["utt"] == final["utt"]]
        assert [t["lang"] for t in spoken] == [other[final["src"]]]
        assert spoken[0]["text"] == mt[0]["text"]
    assert not [m for m in run.of("mt.final") if m["src"] == m["tgt"]]
    assert out.stat().st_size > 44
