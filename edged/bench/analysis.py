"""A run's figures: what metrics.py computes from a RunRecord, gathered into the JSON
report (latencies, flicker, throughput, memory, silence, quality, per utterance)."""

from __future__ import annotations

from typing import Any

from edged.bench.live import RunRecord
from edged.bench.manifest import Manifest
from edged.bench.metrics import (
    Received,
    Timeline,
    busy_intervals,
    flicker_by_utt,
    language_id,
    mt_latency_by_engine,
    per_utterance,
    quality,
    rejected_finals,
    repeated_previous,
    sentence_chrf,
    silence_cpu,
    spell_numbers,
    summarise,
    utterance_starts,
    utterance_texts,
    word_errors,
)
from edged.events import TtsStart


def analyse(record: RunRecord, manifest: Manifest, targets: tuple[str, ...]) -> dict[str, Any]:
    """Every figure of one run, JSON-ready. A run not paced in real time (--fast) has no
    latencies and no CPU in silence: only its quality and throughput mean anything."""
    received = [Received(rx, e) for rx, e in record.received]
    timeline = Timeline(record.ends, record.arrivals, record.cpu)
    results = per_utterance(received, manifest, timeline, targets, record.first_audio)
    texts = utterance_texts(received)
    keys = ["first_partial", "first_text", "final", *[f"mt.{t}" for t in targets], "tts"]
    keys.append("audio")
    paced = record.realtime
    latency = {k: summarise(r.latency_ms.get(k) for r in results) for k in keys} if paced else {}
    event_lat = {k: summarise(r.event_lat_ms.get(k) for r in results) for k in keys[2:-1]}
    by_engine = mt_latency_by_engine(results, targets) if paced else {}
    flickers = list(flicker_by_utt(received).values())
    audio_s = record.stats["audio_seconds"] or timeline.duration
    stage_s = record.stats["stage_seconds"]
    rtf = {k: round(v / audio_s, 4) for k, v in sorted(stage_s.items())}
    rtf["pipeline"] = round(sum(stage_s.values()) / audio_s, 4)
    by_id = {u.id: u for u in manifest.utterances}
    spoken_utts = {e.utt: e.text for _, e in record.received if isinstance(e, TtsStart)}
    tts_pairs = [
        (spoken_utts[u], record.heard.get(u, ""))
        for u in sorted(record.tts_audio)
        if u in spoken_utts
    ]
    utterances = []
    for r in results:
        row = r.to_dict()
        group = [x for x in results if x.id in r.group]
        reference = " ".join(x.reference for x in group)
        spelled = spell_numbers(r.final, reference, r.language)
        row["wer"] = word_errors([(reference, spelled)]).get("wer")
        row["chrf"] = {
            t: sentence_chrf(r.translations.get(t, ""), by_id[r.id].references(t))
            for t in targets
            if r.language != t
        }
        row["heard"] = " ".join(record.heard.get(u, "") for u in r.utts if u in record.heard)
        utterances.append(row)
    pipeline_utts = sorted({n for r in results for n in r.utts})
    return {
        "mode": record.mode,
        "paced": paced,
        "latency_ms": latency,
        "mt_latency_by_engine_ms": by_engine,
        "event_lat_ms": event_lat,
        "repeated_previous_final": repeated_previous(received, utterance_starts(results)),
        "rejected_finals": rejected_finals(received),
        "no_final": [r.id for r in results if not r.final],
        "flicker": {
            "pipeline_utterances_with_partials": len(flickers),
            "partials": sum(f.partials for f in flickers),
            "chars_retracted": sum(f.chars for f in flickers),
            "chars_per_utterance": round(sum(f.chars for f in flickers) / len(flickers), 2)
            if flickers
            else None,
            "rewrites": sum(f.retractions for f in flickers),
            "stable_chars_retracted": sum(f.stable_chars for f in flickers),
            "final_chars_retracted": sum(f.final_chars for f in flickers),
        },
        "throughput": {
            "audio_s": round(audio_s, 3),
            "wall_s": round(record.wall_s, 3),
            "drain_s": round(record.ended - record.arrivals[-1], 3),
            "stage_s": {k: round(v, 3) for k, v in sorted(stage_s.items())},
            "rtf": rtf,
            "cpu_s": round(record.cpu_s, 3),
            "cpu_per_audio_s": round(record.cpu_s / audio_s, 4),
        },
        "load_s": round(record.load_s, 3),
        "memory": record.memory,
        "silence": silence_cpu(manifest, timeline, busy_intervals(received, results, timeline))
        if paced
        else {"windows": 0, "wall_s": 0.0, "cpu_percent": None, "detail": []},
        "rss_mb": rss_by_minute(record.rss),
        "frames": {k: record.stats[k] for k in ("frames_in", "frames_dropped", "frames_gated")},
        "segmentation": {
            "pipeline_utterances": len(pipeline_utts),
            "manifest_utterances": len(results),
            "missed": [r.id for r in results if not r.final and not r.rejected],
            "split": [r.id for r in results if len(r.utts) > 1],
            "merged": [list(r.group) for r in results if len(r.group) > 1 and r.id == r.group[0]],
        },
        "quality": {
            **quality(results, manifest, targets, texts),
            "language_id": language_id(results),
            "tts_back": word_errors(tts_pairs),
        },
        "events": record.counts,
        "errors": record.errors,
        "utterances": utterances,
    }


def rss_by_minute(samples: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Resident memory at each minute of a run: the highest sample within it (MB), so a
    soak shows whether RSS plateaus."""
    minutes: dict[int, float] = {}
    for seconds, mb in samples:
        minute = int(seconds // 60)
        minutes[minute] = max(minutes.get(minute, 0.0), mb)
    return [{"minute": m, "rss_mb": v} for m, v in sorted(minutes.items())]
