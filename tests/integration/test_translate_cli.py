"""`edged translate` end to end on real models, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BECKETT_TEXT, CLIPS, REPO, normalise, write_wav

from edged.audio.wav import read_wav

pytestmark = pytest.mark.slow


def assert_ordered_utterance_events(events: list[dict]) -> None:
    """Within each utterance: speech.start first, partials before the final, seq increasing."""
    by_utt: dict[int, list[dict]] = {}
    for event in events:
        by_utt.setdefault(event["utt"], []).append(event)
    for utt_events in by_utt.values():
        seqs = [e["seq"] for e in utt_events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        types = [e["type"] for e in utt_events]
        if "asr.final" in types:
            assert types[0] == "speech.start"
            final_at = types.index("asr.final")
            assert "asr.partial" not in types[final_at:]


@pytest.mark.parametrize("clip", [c for c, (lang, _) in CLIPS.items() if lang != "en"])
def test_non_english_clip_transcribed_and_translated_by_whisper(edged, speech_dir, clip) -> None:
    lang, transcript = CLIPS[clip]
    run = edged("translate", str(speech_dir / clip), "--to", "en", "--mt", "whisper")
    assert run.code == 0, run.stderr
    finals = run.of("asr.final")
    assert [normalise(f["text"]) for f in finals] == [normalise(transcript)]
    assert finals[0]["src"] == lang
    (mt,) = run.of("mt.final")
    assert mt["tgt"] == "en" and mt["engine"] == "whisper"
    # Whisper base's own translations, accepted in the wordings it alternates between.
    # Its es->en is poor ("in the light of the room"): Apertium is preferred for es.
    accepted = {
        "de": ("turn the living room light on", "turn on the living room light"),
        # fr: base writes "How do you call yourself?" or "How do you call Tuff?" as the
        # segment starts 24 ms earlier or later (the pre-roll follows the clip's sound).
        "fr": ("how do you call", "how are you called", "your name"),
        "es": ("light",),
    }[lang]
    assert any(phrase in normalise(mt["text"]) for phrase in accepted), mt["text"]
    assert_ordered_utterance_events(run.events)


def test_spanish_clip_translated_by_apertium(edged, speech_dir) -> None:
    run = edged("translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en")
    assert run.code == 0, run.stderr
    (mt,) = run.of("mt.final")
    assert mt["engine"] == "apertium" and mt["src"] == "es"
    words = normalise(mt["text"]).split()
    assert "light" in words and "living" in words and "room" in words


def test_beckett_gives_its_text_with_partials_before_finals(edged, beckett) -> None:
    run = edged("translate", str(beckett), "--to", "es")
    assert run.code == 0, run.stderr
    text = " ".join(f["text"] for f in run.of("asr.final"))
    got, want = normalise(text).split(), normalise(BECKETT_TEXT).split()
    # Whisper base hears the first word as "Never" about half the time: one word of slack.
    assert len(got) == len(want) and sum(a != b for a, b in zip(got, want, strict=True)) <= 1
    # Partials come before their utterance's final (a partial decode that loops, as base's
    # greedy "ever ever ever ..." on the first 0.4 s, is not shown: that utterance may have
    # none).
    partial_utts = {e["utt"] for e in run.of("asr.partial")}
    assert len(partial_utts) >= len(run.of("asr.final")) - 2, [e["type"] for e in run.events]
    for utt in partial_utts:
        types = [e["type"] for e in run.events if e.get("utt") == utt]
        assert types.index("asr.partial") < types.index("asr.final"), types
    assert run.of("mt.final") and all(m["tgt"] == "es" for m in run.of("mt.final"))
    assert_ordered_utterance_events(run.events)


def test_several_targets_and_identity(edged, speech_dir) -> None:
    run = edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en", "--to", "es"
    )
    assert run.code == 0, run.stderr
    finals = {m["tgt"]: m for m in run.of("mt.final")}
    assert set(finals) == {"en", "es"}
    assert normalise(finals["es"]["text"]) == normalise("Enciende la luz del salón.")


@pytest.mark.parametrize("noise_level", [0.0, 0.003])
def test_silence_and_low_noise_give_no_final(edged, tmp_path: Path, noise_level: float) -> None:
    rng = np.random.default_rng(7)
    quiet = rng.normal(0, noise_level, 30 * 16000).astype(np.float32)
    wav = write_wav(tmp_path / "quiet.wav", quiet)
    run = edged("translate", str(wav), "--to", "en")
    assert run.code == 0, run.stderr
    assert run.of("asr.final") == [] and run.of("mt.final") == []


def test_raw_pcm_on_stdin(edged, speech_dir) -> None:
    samples, _ = read_wav(speech_dir / "living_room_light_es.wav")
    pcm = (samples[:, 0] * 32767).astype("<i2").tobytes()
    run = edged("translate", "-", "--from", "es", "--to", "en", stdin=pcm)
    assert run.code == 0, run.stderr
    (final,) = run.of("asr.final")
    assert normalise(final["text"]) == normalise("Enciende la luz del salón.")


def test_tts_wav_is_transcribed_back_to_the_translation(edged, speech_dir, tmp_path) -> None:
    out = tmp_path / "spoken.wav"
    run = edged(
        "translate", str(speech_dir / "living_room_light_de.wav"), "--to", "en", "--tts", str(out)
    )
    assert run.code == 0, run.stderr
    (mt,) = run.of("mt.final")
    assert run.of("tts.start") and run.of("tts.end")
    back = edged("translate", str(out), "--from", "en", "--to", "en")
    heard = " ".join(f["text"] for f in back.of("asr.final"))
    assert normalise(heard) == normalise(mt["text"])


def test_fifo_without_a_writer_is_waited_for_then_streamed(
    models_dir: Path, speech_dir: Path, tmp_path: Path
) -> None:
    """`edged translate FIFO` says it waits for a writer, then reads a WAV whose header does
    not know its length (data size 0xFFFFFFFF, as a live recorder writes it) to the end."""
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    blob = (speech_dir / "living_room_light_es.wav").read_bytes()
    at = blob.index(b"data") + 4
    streaming = blob[:4] + b"\xff\xff\xff\xff" + blob[8:at] + b"\xff\xff\xff\xff" + blob[at + 4 :]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "translate", str(fifo), "--from", "es", "--to", "en"],
        cwd=REPO,
        env=dict(os.environ, EDGED_MODELS_DIR=str(models_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        waiting = proc.stderr.readline().decode()
        assert "live.wav" in waiting and "waiting" in waiting, waiting
        with open(fifo, "wb") as writer:
            writer.write(streaming)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    (final,) = [e for e in events if e["type"] == "asr.final"]
    assert normalise(final["text"]) == normalise("Enciende la luz del salón.")
    assert [e["tgt"] for e in events if e["type"] == "mt.final"] == ["en"]
