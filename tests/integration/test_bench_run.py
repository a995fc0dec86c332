"""`edged bench --compare` end to end on a two-clip set: real models, real pacing, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edged.bench.sets import BuiltSet, build_set

pytestmark = pytest.mark.slow


def run_bench(
    models_dir: Path, built: BuiltSet, out: Path, *args: str
) -> subprocess.CompletedProcess:
    """`edged bench` on a built set, writing to `out`, as a real process."""
    audio = ("--audio", str(built.audio), "--manifest", str(built.manifest_path))
    return run_edged_bench(models_dir, out, *audio, *args)


def test_bench_compare_on_two_clips(models_dir: Path, speech_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "set.json"
    spec.write_text(
        json.dumps(
            {
                "lead_silence": 1.0,
                "tail_silence": 1.5,
                "clips": [
                    {
                        "file": "living_room_light_es.wav",
                        "gap_after": 1.5,
                        "utterances": [
                            {
                                "id": "es",
                                "language": "es",
                                "text": "Enciende la luz del salón.",
                                "start": 0.18,
                                "end": 1.71,
                                "translations": {"en": ["Turn on the living room light."]},
                            }
                        ],
                    },
                    {
                        "file": "living_room_light_en.wav",
                        "gap_after": 0,
                        "utterances": [
                            {
                                "id": "en",
                                "language": "en",
                                "text": "Turn on the living room light.",
                                "start": 0.19,
                                "end": 1.50,
                                "translations": {"es": ["Enciende la luz del salón."]},
                            }
                        ],
                    },
                ],
            }
        )
    )
    built = build_set(tmp_path / "set", speech_dir, models_dir, spec)
    out = tmp_path / "out"
    proc = run_bench(models_dir, built, out, "--compare", "--from", "en", "--from", "es")
    assert proc.returncode == 0, proc.stderr
    assert "| figure | streaming | naive |" in proc.stdout
    for name in (
        "bench.json",
        "bench.md",
        "timeline.png",
        "latency.png",
        "events-streaming.jsonl",
        "events-naive.jsonl",
        "tts-streaming.wav",
    ):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["settings"]["threads"] == 2 and report["settings"]["targets"] == ["en", "es"]
    assert report["machine"]["cores"] >= 1 and report["models"]["whisper-base"]["size_mb"] > 0
    streaming, naive = report["runs"]["streaming"], report["runs"]["naive"]
    for run in (streaming, naive):
        assert run["latency_ms"]["final"]["n"] == 2
        # identity "translations" (en->en) are events too
        assert run["latency_ms"]["mt.en"]["n"] == 2 and run["latency_ms"]["mt.es"]["n"] == 2
        assert run["latency_ms"]["tts"]["n"] == 2
        # a final comes after the end of speech, never before it
        assert run["latency_ms"]["final"]["min"] > 0
        assert run["quality"]["asr"]["all"]["wer"] <= 0.25
        assert run["quality"]["mt"]["en"]["engines"] == ["apertium"]
        assert run["quality"]["tts_back"]["n"] == 2
        assert run["throughput"]["rtf"]["asr"] > 0 and run["memory"]["peak_rss_mb"] > 50
        assert run["frames"]["frames_in"] > 0 and run["silence"]["windows"] >= 1
        assert run["errors"] == []
    # what streaming buys: text while the person speaks; naive has no partials at all
    assert streaming["latency_ms"]["first_partial"]["n"] == 2
    assert naive["latency_ms"]["first_partial"]["n"] == 0 and naive["flicker"]["partials"] == 0
    assert naive["events"].get("asr.partial", 0) == 0 and naive["events"].get("mt.interim", 0) == 0


def test_bench_runs_the_sherpa_recognizer(
    models_dir: Path, speech_dir: Path, tmp_path: Path
) -> None:
    """The same benchmark with asr.engine = sherpa, on the tiny test-built streaming model
    (tests/tiny_sherpa.py): it cannot transcribe, so only the plumbing is checked."""
    import tiny_sherpa

    bundle = tiny_sherpa.build_zipformer2_ctc(tmp_path / "tiny-sherpa")
    config = tmp_path / "sherpa.toml"
    config.write_text(f'[asr]\nengine = "sherpa"\n[asr.sherpa]\nbundle = "{bundle}"\n')
    spec = tmp_path / "set.json"
    utterance = {
        "id": "en",
        "language": "en",
        "text": "Turn on the living room light.",
        "start": 0.19,
        "end": 1.50,
        "translations": {"es": ["Enciende la luz."]},
    }
    spec.write_text(
        json.dumps(
            {
                "lead_silence": 1.0,
                "tail_silence": 1.5,
                "clips": [
                    {"file": "living_room_light_en.wav", "gap_after": 0, "utterances": [utterance]}
                ],
            }
        )
    )
    built = build_set(tmp_path / "set", speech_dir, models_dir, spec)
    out = tmp_path / "out"
    proc = run_bench(
        models_dir, built, out, "-c", str(config), "--asr", "sherpa", "--from", "en",
        "--to", "es", "--no-tts",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    run = report["runs"]["streaming"]
    assert run["errors"] == []
    assert run["latency_ms"]["final"]["n"] >= 1 and run["latency_ms"]["first_partial"]["n"] >= 1
    assert run["throughput"]["rtf"]["asr"] > 0


def run_edged_bench(models_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """`edged bench ARGS --out OUT` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "edged", "bench", "--out", str(out), *args],
        capture_output=True, text=True, timeout=280, cwd=REPO,
        env=dict(os.environ, EDGED_MODELS_DIR=str(models_dir)),
    )  # fmt: skip


def test_bench_realspeech_fast_beside_the_offline_baseline(
    models_dir: Path, tmp_path: Path
) -> None:
    """The first two clips of the real-speech set (en, es), not paced, with the offline
    decode of the same utterances in the same run."""
    out = tmp_path / "out"
    proc = run_edged_bench(
        models_dir, out, "--set", "realspeech", "--fast", "--limit", "2",
        "--compare", "offline", "--no-tts",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "## Accuracy per language (WER; ja: CER)" in proc.stdout
    assert "| offline (beam 5, 30 s) | streaming - offline (points) |" in proc.stdout
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["set"]["name"] == "realspeech" and report["set"]["utterances"] == 2
    assert report["set"]["languages"] == ["en", "es"] and not report["settings"]["realtime"]
    run = report["runs"]["streaming"]
    assert not run["paced"] and run["latency_ms"] == {}  # not paced: no latency figures
    assert run["frames"]["frames_dropped"] == 0 and run["errors"] == []
    assert run["no_final"] == [] and run["quality"]["language_id"]["all"]["accuracy"] == 1.0
    offline = report["offline"]
    assert offline["settings"]["beam_size"] == 5 and offline["settings"]["window_s"] == 30
    assert set(offline["texts"]) == {"picovoice_cheetah_test_en", "picovoice_cheetah_test_es"}
    comparison = offline["comparison"]
    for lang in ("en", "es"):
        assert comparison[lang]["n"] == 1 and comparison[lang]["metric"] == "wer"
        assert comparison[lang]["difference_points"] == pytest.approx(
            100 * (comparison[lang]["streaming"] - comparison[lang]["offline"]), abs=0.06
        )
    # "Today only platforms one and three are used." comes back with digits: spelled out
    assert comparison["en"]["offline"] == 0.0 and run["quality"]["asr"]["en"]["wer"] == 0.0


def test_bench_conversation_reports_language_id(models_dir: Path, tmp_path: Path) -> None:
    """Two turns of the conversation set (an English, then a Spanish clip, their word
    boundaries found by faster-whisper), recognised with en and es as the candidates."""
    out = tmp_path / "out"
    proc = run_edged_bench(
        models_dir, out, "--set", "conversation", "--limit", "2", "--fast", "--no-tts",
        "--from", "en", "--from", "es",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "## Language identification (streaming)" in proc.stdout
    assert (out / "set" / "words.json").stat().st_size > 0  # cached for the next run
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["settings"]["languages"] == ["en", "es"]
    manifest = json.loads((out / "set" / "manifest.json").read_text(encoding="utf-8"))
    assert [u["language"] for u in manifest["utterances"]] == ["en", "es"]
    lid = report["runs"]["streaming"]["quality"]["language_id"]
    assert lid["en"]["turns"] == 1 and lid["es"]["turns"] == 1
    assert lid["all"]["accuracy"] == 1.0


def test_bench_soak_loops_the_set_and_reports_rss(models_dir: Path, tmp_path: Path) -> None:
    """--soak: the first real-speech clip played over and over for 12 s of audio."""
    out = tmp_path / "out"
    proc = run_edged_bench(
        models_dir, out, "--set", "realspeech", "--limit", "1", "--fast", "--no-tts",
        "--soak", "0.2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["set"]["repeats"] == 2  # one pass is about 7.7 s: two make 12 s
    run = report["runs"]["streaming"]
    ids = [u["id"] for u in run["utterances"]]
    assert ids == ["picovoice_cheetah_test_en", "picovoice_cheetah_test_en@2"]
    assert all(u["final"] for u in run["utterances"]) and run["no_final"] == []
    assert run["rss_mb"] and all(row["rss_mb"] > 100 for row in run["rss_mb"])
