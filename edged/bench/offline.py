"""The offline baseline: each manifest utterance decoded on its own, after the fact, by the
same Whisper model with beam 5 and a 30 s window, the language given; what the streaming
finals are measured against (`--compare offline`).

The decoder is faster-whisper (PyPI `faster-whisper`, the `bench` extra) on the installed
CTranslate2 model directory, with its defaults otherwise (temperature fallback,
conditioning on the previous window inside one utterance); it is what the issue's offline
figures were measured with. It loads from the local directory only, never a hub.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.audio import SAMPLE_RATE
from edged.bench.manifest import Manifest
from edged.errors import ConfigError

log = logging.getLogger(__name__)

BEAM_SIZE = 5
PAD_S = 0.3  # audio kept around the manifest's speech boundaries


@dataclass
class OfflineRecord:
    """Per manifest utterance id the offline transcript, and what decoding cost."""

    texts: dict[str, str] = field(default_factory=dict)
    load_s: float = 0.0
    decode_s: float = 0.0
    cpu_s: float = 0.0
    audio_s: float = 0.0
    settings: dict[str, object] = field(default_factory=dict)


def load_faster_whisper(
    model_dir: Path, threads: int, needed_by: str, compute_type: str = "int8"
) -> Any:
    """faster-whisper on the installed model directory, never a download; a missing
    package is one line naming `needed_by` and the extra that brings it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ConfigError(
            f"{needed_by} needs faster-whisper: pip install 'edged[bench]' "
            "(or pip install faster-whisper)"
        ) from exc
    return WhisperModel(
        str(model_dir),
        device="cpu",
        compute_type=compute_type,
        cpu_threads=threads,
        local_files_only=True,
    )


def decode(
    manifest: Manifest, audio: Path, model_dir: Path, threads: int, compute_type: str = "int8"
) -> OfflineRecord:
    """Decode every utterance of `manifest` cut from `audio` (its t0-t1, PAD_S either side)."""
    from edged.audio.convert import to_pipeline_format
    from edged.audio.wav import read_wav

    samples, rate = read_wav(audio)
    pcm = to_pipeline_format(samples, rate)
    started = time.monotonic()
    model = load_faster_whisper(model_dir, threads, "--compare offline", compute_type)
    record = OfflineRecord(load_s=round(time.monotonic() - started, 3))
    record.settings = {
        "decoder": "faster-whisper",
        "beam_size": BEAM_SIZE,
        "window_s": 30,
        "compute_type": compute_type,
        "threads": threads,
        "language": "given",
        "pad_s": PAD_S,
    }
    cpu0, wall0 = time.process_time(), time.monotonic()
    for u in manifest.utterances:
        a = max(0, round((u.t0 - PAD_S) * SAMPLE_RATE))
        b = min(len(pcm), round((u.t1 + PAD_S) * SAMPLE_RATE))
        segments, _ = model.transcribe(pcm[a:b], language=u.language, beam_size=BEAM_SIZE)
        record.texts[u.id] = " ".join(s.text.strip() for s in segments).strip()
        record.audio_s += (b - a) / SAMPLE_RATE
    record.decode_s = round(time.monotonic() - wall0, 3)
    record.cpu_s = round(time.process_time() - cpu0, 3)
    record.audio_s = round(record.audio_s, 3)
    return record


def decode_isolated(
    manifest: Manifest, audio: Path, model_dir: Path, threads: int, compute_type: str = "int8"
) -> OfflineRecord:
    """decode() in a fresh process: its memory never counts against a pipeline run."""
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().level
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        job = pool.submit(_child, manifest, audio, model_dir, threads, compute_type, level)
        return job.result()


def _child(
    manifest: Manifest, audio: Path, model_dir: Path, threads: int, compute_type: str, level: int
) -> OfflineRecord:
    logging.basicConfig(
        level=level, format="edged: %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return decode(manifest, audio, model_dir, threads, compute_type)
