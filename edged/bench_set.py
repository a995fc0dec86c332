"""Benchmark recordings: the manifest format (where each utterance is on the audio timeline,
what was said, how it should be translated) and the builder of the bundled set.

A manifest is JSON: `{"audio": "set.wav", "utterances": [{"id", "language", "text",
"translations": {"en": ["reference", ...]}, "t0", "t1"}, ...]}`; `audio` is relative to the
manifest and optional when the WAV is given separately. A bare list of utterances is
accepted too. Reference translations may be one string or a list of alternatives.

The bundled set is described by tools/benchset/set.json (clips, where the speech lies in
each, transcripts, references) and generated at run time: the clips are converted to the
pipeline format and concatenated with silences, and the manifest's times are computed from
the placement. Audio is never committed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edged.audio import SAMPLE_RATE
from edged.errors import ConfigError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO / "tools" / "benchset" / "set.json"
DEFAULT_SPEECH_DIR = REPO.parent / "shared" / "data" / "speech"


@dataclass(frozen=True)
class Utterance:
    """One spoken utterance: where it lies on the audio timeline and what it should become."""

    id: str
    language: str
    text: str
    t0: float
    t1: float
    translations: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def references(self, target: str) -> tuple[str, ...]:
        """Reference translations into `target`; the transcript itself when target is the
        utterance's language; () when none are given."""
        if target == self.language:
            return (self.text,)
        return self.translations.get(target, ())


@dataclass(frozen=True)
class Manifest:
    """The utterances of one recording in time order, and the recording if named."""

    utterances: tuple[Utterance, ...]
    audio: Path | None = None
    source: str = ""  # where it was read from, for messages

    def ids(self) -> list[str]:
        return [u.id for u in self.utterances]

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio": self.audio.name if self.audio else None,
            "utterances": [
                {
                    "id": u.id,
                    "language": u.language,
                    "text": u.text,
                    "translations": {k: list(v) for k, v in u.translations.items()},
                    "t0": u.t0,
                    "t1": u.t1,
                }
                for u in self.utterances
            ],
        }


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest file; ConfigError names the file, the entry and the fix."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"manifest {path}: cannot read: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"manifest {path}: not valid JSON: {exc}") from exc
    return parse_manifest(raw, str(path), base=path.parent)


def parse_manifest(raw: Any, name: str = "manifest", base: Path | None = None) -> Manifest:
    """Build a Manifest from decoded JSON (an object with `utterances`, or a list)."""
    audio = None
    if isinstance(raw, dict):
        if "utterances" not in raw:
            raise ConfigError(
                f'{name}: no \'utterances\' list (expected {{"audio": "...", "utterances": [...]}})'
            )
        if raw.get("audio"):
            audio = (base or Path(".")) / str(raw["audio"])
        raw = raw["utterances"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{name}: 'utterances' must be a non-empty list of objects")
    utterances = [_utterance(entry, f"{name}: utterance {i + 1}") for i, entry in enumerate(raw)]
    utterances.sort(key=lambda u: u.t0)
    seen: set[str] = set()
    for prev, cur in itertools.pairwise(utterances):
        if cur.t0 < prev.t1:
            raise ConfigError(
                f"{name}: utterances '{prev.id}' and '{cur.id}' overlap "
                f"({prev.t0}-{prev.t1} s and {cur.t0}-{cur.t1} s)"
            )
    for u in utterances:
        if u.id in seen:
            raise ConfigError(f"{name}: utterance id '{u.id}' appears twice; ids must be unique")
        seen.add(u.id)
    return Manifest(tuple(utterances), audio, name)


def _utterance(entry: Any, where: str) -> Utterance:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be an object with id, language, text, t0, t1")
    missing = [k for k in ("id", "language", "text", "t0", "t1") if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    try:
        t0, t1 = float(entry["t0"]), float(entry["t1"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: t0 and t1 must be seconds (numbers)") from exc
    if not 0 <= t0 < t1:
        raise ConfigError(f"{where} ('{entry['id']}'): need 0 <= t0 < t1, got t0={t0} t1={t1}")
    text = str(entry["text"]).strip()
    if not text:
        raise ConfigError(f"{where} ('{entry['id']}'): empty reference text")
    translations: dict[str, tuple[str, ...]] = {}
    for lang, refs in (entry.get("translations") or {}).items():
        options = (refs,) if isinstance(refs, str) else tuple(refs)
        if not options or not all(isinstance(r, str) and r.strip() for r in options):
            raise ConfigError(
                f"{where} ('{entry['id']}'): translations.{lang} must be a "
                "non-empty string or list of non-empty strings"
            )
        translations[str(lang)] = options
    return Utterance(
        str(entry["id"]), str(entry["language"]), text, round(t0, 3), round(t1, 3), translations
    )


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
    from edged.audio.wavwrite import write_wav

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
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / "benchset.wav"
    write_wav(wav, np.concatenate(parts), SAMPLE_RATE)
    manifest_path = out_dir / "manifest.json"
    document = {
        "description": spec.get("description", ""),
        "audio": wav.name,
        "generated_from": {"spec": str(spec_path), "clips_sha256": sources},
        "utterances": utterances,
    }
    manifest_path.write_text(
        json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    log.info(
        "benchmark set written to %s (%d utterances, %.1f s)",
        wav,
        len(utterances),
        position / SAMPLE_RATE,
    )
    return BuiltSet(wav, manifest_path, load_manifest(manifest_path), position / SAMPLE_RATE)


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
