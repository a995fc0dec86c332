"""The benchmark's outputs from a synthetic run: JSON, Markdown and PNG files that parse, and
the run-level figures analyse() derives from what a run recorded."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from edged.bench.analysis import analyse
from edged.bench.live import RunRecord
from edged.bench.machine import machine_info, settings_info
from edged.bench.manifest import parse_manifest
from edged.bench.report import machine_line, markdown, write_report
from edged.config import Config
from edged.events import AsrFinal, AsrPartial, MtFinal, SpeechStart, TtsEnd, TtsStart

ORIGIN = 50.0
D = "dev"
MANIFEST = parse_manifest(
    [
        {
            "id": "a",
            "language": "es",
            "text": "Enciende la luz.",
            "t0": 1.0,
            "t1": 2.0,
            "translations": {"en": ["Turn on the light."]},
        },
        {
            "id": "b",
            "language": "en",
            "text": "Fail better.",
            "t0": 4.0,
            "t1": 4.8,
            "translations": {"es": ["Fracasa mejor."]},
        },
    ]
)


def record(mode: str, partials: bool) -> RunRecord:
    frame = 160  # 10 ms chunks: the reference times fall on chunk ends
    ends = list(range(frame, 8 * 16000, frame))
    arrivals = [ORIGIN + e / 16000 for e in ends]
    events = [
        (1.4, SpeechStart(device=D, utt=1, seq=1, t0=0.9)),
        (
            3.2,
            AsrFinal(
                device=D,
                utt=1,
                seq=3,
                src="es",
                text="Enciende la luz.",
                t0=0.9,
                t1=2.0,
                lat_ms=1200,
            ),
        ),
        (
            3.25,
            MtFinal(
                device=D,
                utt=1,
                seq=4,
                src="es",
                tgt="en",
                text="Turn on the light.",
                engine="apertium",
                t0=0.9,
                t1=2.0,
                lat_ms=1250,
            ),
        ),
        (
            3.4,
            TtsStart(
                device=D, utt=1, seq=5, lang="en", voice="v", text="Turn on the light.", lat_ms=1400
            ),
        ),
        (3.4, TtsEnd(device=D, utt=1, seq=6, lang="en", duration=0.5)),
        (4.4, SpeechStart(device=D, utt=2, seq=1, t0=3.9)),
        (
            6.0,
            AsrFinal(
                device=D, utt=2, seq=3, src="en", text="Fail better.", t0=3.9, t1=4.8, lat_ms=1200
            ),
        ),
        (
            6.05,
            MtFinal(
                device=D,
                utt=2,
                seq=4,
                src="en",
                tgt="es",
                text="Fracasa mejor.",
                engine="apertium",
                t0=3.9,
                t1=4.8,
                lat_ms=1250,
            ),
        ),
    ]
    if partials:
        events.append(
            (
                1.7,
                AsrPartial(
                    device=D,
                    utt=1,
                    seq=2,
                    src="es",
                    text="Enciende",
                    stable="",
                    t0=0.9,
                    t1=1.6,
                    lat_ms=100,
                ),
            )
        )
        events.append(
            (
                4.7,
                AsrPartial(
                    device=D,
                    utt=2,
                    seq=2,
                    src="en",
                    text="Fail",
                    stable="",
                    t0=3.9,
                    t1=4.6,
                    lat_ms=100,
                ),
            )
        )
    events.sort(key=lambda e: e[0])
    return RunRecord(
        mode=mode,
        realtime=True,
        received=[(ORIGIN + s, e) for s, e in events],
        ends=ends,
        arrivals=arrivals,
        cpu=[(a - ORIGIN) * 0.1 for a in arrivals],
        stats={
            "frames_in": len(ends),
            "frames_dropped": 0,
            "frames_gated": 0,
            "utterances": 2,
            "stage_seconds": {"asr": 1.6, "mt": 0.08, "tts": 0.16},
            "audio_seconds": 8.0,
        },
        counts={"asr.final": 2},
        errors=[],
        load_s=1.5,
        wall_s=8.0,
        cpu_s=0.8,
        ended=ORIGIN + 8.0,
        memory={
            "peak_rss_mb": 400.0,
            "method": "test",
            "rss_start_mb": 300.0,
            "load_peak_rss_mb": 350.0,
        },
        tts_rate=22050,
        tts_audio={1: np.zeros(11025, np.float32)},
        heard={1: "Turn on the light"},
    )


@pytest.fixture
def report() -> tuple[dict, dict]:
    records = {"streaming": record("streaming", True), "naive": record("naive", False)}
    settings = settings_info(Config(), 2)
    settings["targets"] = ["en", "es"]
    rep = {
        "edged_bench": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "command": "edged bench --compare",
        "machine": machine_info(),
        "settings": settings,
        "models": {},
        "set": {"name": "test", "duration_s": 8.0, "utterances": 2, "speech_s": 1.8},
        "runs": {m: analyse(r, MANIFEST, ("en", "es")) for m, r in records.items()},
    }
    return rep, records


def test_run_level_figures(report: tuple[dict, dict]) -> None:
    run = report[0]["runs"]["streaming"]
    t = run["throughput"]
    assert t["rtf"] == {"asr": 0.2, "mt": 0.01, "tts": 0.02, "pipeline": 0.23}
    assert t["cpu_per_audio_s"] == pytest.approx(0.1)
    assert run["latency_ms"]["final"]["median"] == pytest.approx(1200.0)
    assert run["latency_ms"]["first_partial"]["n"] == 2
    assert run["latency_ms"]["tts"] == {
        "n": 1,
        "missing": 1,
        "min": 1400.0,
        "median": 1400.0,
        "p90": 1400.0,
        "max": 1400.0,
        "mean": 1400.0,
    }
    assert run["silence"]["cpu_percent"] == pytest.approx(10.0, abs=0.5)
    assert run["quality"]["asr"]["all"]["wer"] == 0.0
    assert run["quality"]["mt"]["en"]["chrf"] == pytest.approx(100.0)
    assert run["quality"]["tts_back"]["wer"] == 0.0
    assert run["segmentation"]["missed"] == []
    naive = report[0]["runs"]["naive"]
    assert naive["flicker"]["partials"] == 0 and naive["latency_ms"]["first_partial"]["n"] == 0


def test_report_files_exist_and_parse(report: tuple[dict, dict], tmp_path: Path) -> None:
    import matplotlib.image

    rep, records = report
    audio = tmp_path / "set.wav"
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(8 * 16000, "<i2").tobytes())
    paths = write_report(rep, records, MANIFEST, audio, tmp_path / "out")
    names = {p.name for p in paths}
    assert {
        "bench.json",
        "bench.md",
        "timeline.png",
        "latency.png",
        "events-streaming.jsonl",
        "events-naive.jsonl",
        "tts-streaming.wav",
    } <= names
    data = json.loads((tmp_path / "out" / "bench.json").read_text(encoding="utf-8"))
    assert set(data["runs"]) == {"streaming", "naive"}
    assert data["machine"]["python"] and data["settings"]["threads"] == 2
    events = [
        json.loads(line)
        for line in (tmp_path / "out" / "events-streaming.jsonl").read_text().splitlines()
    ]
    assert events[0]["type"] == "speech.start" and events[0]["rx_s"] == pytest.approx(1.4)
    for png in ("timeline.png", "latency.png"):
        image = matplotlib.image.imread(tmp_path / "out" / png)
        assert image.shape[0] > 200 and image.shape[1] > 500


def test_markdown_table_side_by_side(report: tuple[dict, dict]) -> None:
    rep, _ = report
    md = markdown(rep)
    assert "| figure | streaming | naive |" in md
    assert f"Machine: {machine_line(rep)}." in md
    assert "| end of speech → asr.final (ms) | 1200 / 1200 | 1200 / 1200 |" in md
    assert "| onset → first asr.partial, p50 / p90 (ms) | 700 / 700 | - |" in md
    assert "## Per utterance (naive)" in md
    rows = [line for line in md.splitlines() if line.startswith("| a |")]
    assert len(rows) == 2 and "Turn on the light." in rows[0]
    assert "threads 2 (asr 1, mt 1, tts 2)" in machine_line(rep)
