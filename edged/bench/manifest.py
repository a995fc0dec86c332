"""The manifest of a benchmark recording: where each utterance lies on the audio timeline,
what was said, and how it should be translated.

A manifest is JSON: `{"audio": "set.wav", "utterances": [{"id", "language", "text",
"translations": {"en": ["reference", ...]}, "t0", "t1"}, ...]}`; `audio` is relative to the
manifest and optional when the WAV is given separately. A bare list of utterances is
accepted too. Reference translations may be one string or a list of alternatives.
`"short": true` marks a turn of one or two words (reported apart in language-ID accuracy);
other keys (e.g. `clip`) are ignored.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.errors import ConfigError


@dataclass(frozen=True)
class Utterance:
    """One spoken utterance: where it lies on the audio timeline and what it should become."""

    id: str
    language: str
    text: str
    t0: float
    t1: float
    translations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    short: bool = False  # a turn of one or two words (the conversation set)

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
        str(entry["id"]),
        str(entry["language"]),
        text,
        round(t0, 3),
        round(t1, 3),
        translations,
        short=bool(entry.get("short", False)),
    )


def repeated(manifest: Manifest, period: float, repeats: int) -> Manifest:
    """The manifest of a recording of `period` seconds played `repeats` times in a row
    (a soak): ids of the k-th pass (k >= 2) get "@k"."""
    if repeats <= 1:
        return manifest
    utterances = [
        dataclasses.replace(
            u,
            id=u.id if k == 0 else f"{u.id}@{k + 1}",
            t0=round(u.t0 + k * period, 3),
            t1=round(u.t1 + k * period, 3),
        )
        for k in range(repeats)
        for u in manifest.utterances
    ]
    return Manifest(tuple(utterances), manifest.audio, manifest.source)
