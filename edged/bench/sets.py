"""The benchmark's recordings, generated at run time (audio is never committed):

- `bundled`: tools/benchset/set.json (clips of ../shared/data/speech and beckett.wav, where
  the speech lies in each, transcripts, references), concatenated with silences;
- `realspeech`: every clip of ../shared/data/realspeech/manifest.tsv in a language Whisper
  base handles, one after another with pauses of 0.8-1.6 s; where the speech lies in each
  clip is found with the silero VAD, or by energy where silero finds too little speech
  for the transcript (it misses whispered and falsetto speech);
- `conversation` (conversation.py): alternating en/es turns for language identification.

Each builder writes the WAV and its manifest.json (manifest.py) into the output folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edged.audio import FRAME_SAMPLES, SAMPLE_RATE, frame_rms
from edged.bench.manifest import Manifest, load_manifest
from edged.errors import ConfigError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO / "tools" / "benchset" / "set.json"
DEFAULT_SPEECH_DIR = REPO.parent / "shared" / "data" / "speech"
DEFAULT_REALSPEECH_DIR = REPO.parent / "shared" / "data" / "realspeech"
# The languages of the real-speech set that Whisper base recognises (all of them today).
REALSPEECH_LANGUAGES = ("en", "de", "es", "fr", "it", "pt", "sv", "ja")
PAUSE_RANGE = (0.8, 1.6)  # seconds of silence added after each real-speech clip
SEED = 8  # fixed: every run gets the same recording


# --- the bundled set ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltSet:
    """A generated recording and its manifest."""

    audio: Path
    manifest_path: Path
    manifest: Manifest
    duration: float


def build_set(
    out_dir: Path,
    speech_dir: Path,
    models_dir: Path,
    spec_path: Path = DEFAULT_SPEC,
    languages: tuple[str, ...] | None = None,
) -> BuiltSet:
    """Generate the bundled set into `out_dir` (benchset.wav + manifest.json).

    Clips come from `speech_dir` ("speech") or an installed bundle ("bundle:NAME").
    With `languages`, only clips whose utterances are all in those languages are used
    (a recognizer that knows only English gets an English set).
    """
    from edged import store
    from edged.audio.convert import to_pipeline_format
    from edged.audio.wav import read_wav

    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"benchmark set description {spec_path}: {exc}") from exc
    parts: list[np.ndarray] = [_silence(spec["lead_silence"])]
    position = len(parts[0])
    utterances: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    clips = [
        c
        for c in spec["clips"]
        if languages is None or all(u["language"] in languages for u in c["utterances"])
    ]
    if not clips:
        raise ConfigError(
            f"{spec_path}: no clip is in the languages {', '.join(languages or ())}; "
            "pass --from with languages the set has, or your own --manifest"
        )
    for i, clip in enumerate(clips):
        path = _clip_path(clip, speech_dir, models_dir, store)
        samples, rate = read_wav(path)
        audio = to_pipeline_format(samples, rate)
        sources[clip["file"]] = hashlib.sha256(path.read_bytes()).hexdigest()
        duration = len(audio) / SAMPLE_RATE
        for u in clip["utterances"]:
            if not 0 <= u["start"] < u["end"] <= duration + 1e-3:
                raise ConfigError(
                    f"{spec_path}: {u['id']}: speech {u['start']}-{u['end']} s lies "
                    f"outside {clip['file']} ({duration:.2f} s)"
                )
            offset = position / SAMPLE_RATE
            utterances.append(
                {
                    "id": u["id"],
                    "language": u["language"],
                    "text": u["text"],
                    "translations": u.get("translations", {}),
                    "t0": round(offset + u["start"], 3),
                    "t1": round(offset + u["end"], 3),
                    "clip": clip["file"],
                }
            )
        parts.append(audio)
        position += len(audio)
        gap = _silence(spec["tail_silence"] if i == len(clips) - 1 else clip["gap_after"])
        parts.append(gap)
        position += len(gap)
    described = {"description": spec.get("description", ""), "spec": str(spec_path)}
    return write_set(out_dir, parts, utterances, {**described, "clips_sha256": sources})


def write_set(
    out_dir: Path,
    parts: Sequence[np.ndarray],
    utterances: list[dict[str, Any]],
    generated_from: dict[str, Any],
) -> BuiltSet:
    """Write the concatenated audio (benchset.wav) and its manifest.json into `out_dir`."""
    from edged.audio.wavwrite import write_wav

    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / "benchset.wav"
    audio = np.concatenate(parts)
    write_wav(wav, audio, SAMPLE_RATE)
    manifest_path = out_dir / "manifest.json"
    document = {"audio": wav.name, "generated_from": generated_from, "utterances": utterances}
    manifest_path.write_text(
        json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    duration = len(audio) / SAMPLE_RATE
    log.info("benchmark set written to %s (%d utterances, %.1f s)", wav, len(utterances), duration)
    return BuiltSet(wav, manifest_path, load_manifest(manifest_path), duration)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def _clip_path(clip: dict[str, Any], speech_dir: Path, models_dir: Path, store: Any) -> Path:
    origin = clip.get("source", "speech")
    if origin == "speech":
        path = speech_dir / clip["file"]
        if not path.is_file():
            raise ConfigError(
                f"benchmark clip {path} not found; the bundled set needs the "
                "speech clips of ../shared/data/speech (or pass --clips DIR, "
                "or your own --audio/--manifest)"
            )
        return path
    if origin.startswith("bundle:"):
        directory = store.bundle_path(store.load_catalogue(), models_dir, origin[len("bundle:") :])
        return directory / clip["file"]
    raise ConfigError(
        f"benchmark clip {clip['file']}: unknown source '{origin}' (allowed: speech, bundle:NAME)"
    )


# --- the real-speech development set -----------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One row of a real-speech manifest.tsv."""

    file: str
    language: str
    transcript: str
    duration: float = 0.0  # seconds, as the manifest gives it (0: not given)


def read_clips(manifest_tsv: Path) -> list[Clip]:
    """The rows of `manifest_tsv` (file, language, duration_s, transcript, ...)."""
    try:
        with manifest_tsv.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as exc:
        raise ConfigError(
            f"real-speech manifest {manifest_tsv}: cannot read: {exc.strerror}; the set needs "
            "../shared/data/realspeech (or pass --clips DIR holding manifest.tsv)"
        ) from exc
    clips = []
    for i, row in enumerate(rows, start=2):
        if not row.get("file") or not row.get("language") or not (row.get("transcript") or ""):
            raise ConfigError(f"{manifest_tsv}: line {i}: needs file, language and transcript")
        try:
            duration = float(row.get("duration_s") or 0.0)
        except ValueError as exc:
            raise ConfigError(f"{manifest_tsv}: line {i}: duration_s is not a number") from exc
        clips.append(Clip(row["file"], row["language"], _unquote(row["transcript"]), duration))
    if not clips:
        raise ConfigError(f"{manifest_tsv}: no clips")
    return clips


def _unquote(text: str) -> str:
    # The TSV is read without CSV quoting (transcripts contain quotes); a field written
    # CSV-style ("...""...") is undone here.
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('""', '"')
    return text


def speech_bounds(samples: np.ndarray, vad_model: Path) -> tuple[float, float] | None:
    """Seconds of the first speech onset and the last speech end the silero VAD finds in
    `samples` (pipeline format), or None when it finds no speech."""
    import sherpa_onnx

    config = sherpa_onnx.VadModelConfig()
    config.silero_vad.model = str(vad_model)
    config.silero_vad.threshold = 0.5
    config.silero_vad.min_silence_duration = 0.25
    config.silero_vad.min_speech_duration = 0.1
    config.silero_vad.max_speech_duration = 60.0
    config.silero_vad.window_size = FRAME_SAMPLES
    config.sample_rate = SAMPLE_RATE
    config.num_threads = 1
    vad = sherpa_onnx.VoiceActivityDetector(
        config, buffer_size_in_seconds=len(samples) / SAMPLE_RATE + 5
    )
    segments: list[tuple[int, int]] = []

    def collect() -> None:
        while not vad.empty():
            segments.append((vad.front.start, vad.front.start + len(vad.front.samples)))
            vad.pop()

    for start in range(0, len(samples), FRAME_SAMPLES):
        vad.accept_waveform(samples[start : start + FRAME_SAMPLES])
        collect()
    vad.flush()
    collect()
    if not segments:
        return None
    return segments[0][0] / SAMPLE_RATE, min(segments[-1][1], len(samples)) / SAMPLE_RATE


def min_speech_s(transcript: str, language: str) -> float:
    """The least time `transcript` can take to say (0.12 s a word, 0.06 s a character
    where words are not space-separated): a VAD span shorter than that missed speech."""
    if language in ("ja", "zh", "th", "ko"):
        return 0.06 * len(transcript.replace(" ", ""))
    return 0.12 * len(transcript.split())


def energy_bounds(samples: np.ndarray, frame: int = 160) -> tuple[float, float]:
    """First and last 10 ms frame whose RMS is 12 dB over the clip's noise floor (its 10th
    percentile frame) and within 45 dB of its loudest: where the sound of speech lies."""
    n = len(samples) // frame
    if n == 0:
        return 0.0, len(samples) / SAMPLE_RATE
    rms = frame_rms(samples, frame)
    threshold = max(4.0 * float(np.percentile(rms, 10)), float(rms.max()) * 10 ** (-45 / 20))
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return 0.0, len(samples) / SAMPLE_RATE
    return float(loud[0] * frame / SAMPLE_RATE), float((loud[-1] + 1) * frame / SAMPLE_RATE)


def build_realspeech(
    out_dir: Path,
    data_dir: Path,
    vad_model: Path,
    languages: Sequence[str] | None = None,
    limit: int | None = None,
) -> BuiltSet:
    """Generate the real-speech set into `out_dir` from `data_dir`/manifest.tsv: the clips
    in `languages` (default: all REALSPEECH_LANGUAGES), in manifest order, the first
    `limit` of them, each followed by a pause drawn from PAUSE_RANGE (fixed seed)."""
    from edged.audio.convert import to_pipeline_format
    from edged.audio.wav import read_wav

    wanted = [x for x in (languages or REALSPEECH_LANGUAGES) if x in REALSPEECH_LANGUAGES]
    clips = [c for c in read_clips(data_dir / "manifest.tsv") if c.language in wanted]
    if not clips:
        raise ConfigError(
            f"{data_dir}/manifest.tsv: no clip in {', '.join(languages or ())}; the real-speech "
            f"set has {', '.join(REALSPEECH_LANGUAGES)}"
        )
    clips = clips[:limit] if limit else clips
    pauses = random.Random(SEED)
    parts: list[np.ndarray] = [_silence(1.0)]
    position = len(parts[0])
    utterances: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    for clip in clips:
        path = data_dir / clip.file
        if not path.is_file():
            raise ConfigError(f"real-speech clip {path} (listed in manifest.tsv) not found")
        samples, rate = read_wav(path)
        audio = to_pipeline_format(samples, rate)
        sources[clip.file] = hashlib.sha256(path.read_bytes()).hexdigest()
        bounds = speech_bounds(audio, vad_model)
        if bounds is None or bounds[1] - bounds[0] < min_speech_s(clip.transcript, clip.language):
            # silero misses whispered and falsetto speech: fall back on the energy
            bounds = energy_bounds(audio)
        offset = position / SAMPLE_RATE
        utterances.append(
            {
                "id": Path(clip.file).stem,
                "language": clip.language,
                "text": clip.transcript,
                "t0": round(offset + bounds[0], 3),
                "t1": round(offset + bounds[1], 3),
                "clip": clip.file,
            }
        )
        gap = _silence(pauses.uniform(*PAUSE_RANGE))
        parts += [audio, gap]
        position += len(audio) + len(gap)
    parts.append(_silence(1.0))
    described = {"set": "realspeech", "data": str(data_dir), "pauses_s": list(PAUSE_RANGE)}
    return write_set(out_dir, parts, utterances, {**described, "clips_sha256": sources})
