"""Sentence and voice logic of the synthesizers, and the WAV writer, without engines."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edged.audio.wavwrite import write_wav
from edged.errors import AudioError
from edged.tts.espeak import Clause, EspeakVoice, clause_terminator, sentences_of, voice_table


@pytest.mark.parametrize(
    ("clause", "terminator"),
    [
        ("Hello, ", ","),
        ("world. ", "."),
        ('He said "hi." ', "."),
        ("yes!  ", "!"),
        ("¿Qué? ", "?"),
        ("Wait... ", "…"),
        ("Wait… ", "…"),
        ("what\n\n", "t"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_clause_terminator(clause: str, terminator: str) -> None:
    assert clause_terminator(clause) == terminator


def test_sentences_join_clauses_until_a_sentence_end() -> None:
    clauses = [
        Clause("Hello, ", "x"),
        Clause("world. ", "x"),
        Clause("How are you? ", "x"),
        Clause("Wait... ", "x"),
        Clause("what", "x"),
    ]
    assert list(sentences_of(clauses)) == ["Hello, world.", "How are you?", "Wait... what"]
    assert list(sentences_of([])) == []
    assert list(sentences_of([Clause("  ", "")])) == []


def test_voice_table_prefers_low_priority_and_applies_overrides() -> None:
    voices = [
        EspeakVoice("en", "gmw/en", ((2, "en-gb"), (2, "en"))),
        EspeakVoice("en-US", "gmw/en-US", ((2, "en-us"), (3, "en"))),
        EspeakVoice("pt", "roa/pt", ((5, "pt"), (5, "pt-pt"))),
        EspeakVoice("pt-BR", "roa/pt-BR", ((5, "pt-br"), (6, "pt"))),
        EspeakVoice("cmn", "sit/cmn", ((5, "cmn"), (5, "zh"))),
    ]
    assert voice_table(voices, {}) == {"en": "en", "pt": "pt", "cmn": "cmn", "zh": "cmn"}
    table = voice_table(voices, {"en": "en-us", "xx": "no-such-voice"})
    assert table["en"] == "en-us"
    assert "xx" not in table


def test_write_wav_round_trips_as_16_bit_mono(tmp_path: Path) -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0], dtype=np.float32)
    path = tmp_path / "out.wav"
    write_wav(path, samples, 22050)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32767]


def test_write_wav_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nowhere"):
        write_wav(tmp_path / "nowhere" / "out.wav", np.zeros(4, np.float32), 16000)
    with pytest.raises(AudioError, match="sample rate"):
        write_wav(tmp_path / "out.wav", np.zeros(4, np.float32), 0)
