"""The conversation set: two people taking turns in two languages (en and es), built from
real recordings, for language-identification accuracy (`edged bench --set conversation`).

Turns alternate between the languages with pauses of 0.6-1.5 s. They are cut from the
speech clips (../shared/data/speech) and the real-speech clips (../shared/data/realspeech;
those short enough for one turn first) at word boundaries found by Whisper's word
timestamps (faster-whisper, beam 5, language given): a clip of up to MAX_TURN_S is one turn (its
reference is the clip's transcript); a longer one is cut at pauses between words into turns
of at most MAX_TURN_S (their reference is Whisper's own words: good enough to score
language ID, not a transcript to score WER by). Every third turn of a language is short:
the first one or two words of a clip, cut from the recording (`"short": true`).
The word timestamps are cached in the output folder (words.json), keyed by clip checksum.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edged.audio import SAMPLE_RATE
from edged.bench.sets import BuiltSet, read_clips, write_set
from edged.errors import ConfigError

log = logging.getLogger(__name__)

LANGUAGES = ("en", "es")
PAUSE_RANGE = (0.6, 1.5)  # seconds between turns, as in a conversation
MAX_TURN_S = 8.0
MIN_GAP_S = 0.3  # a pause between words where a long clip may be cut
MARGIN_S = 0.15  # audio kept before the first and after the last word of a cut
SHORT_EVERY = 3  # every third turn of a language is one or two words
SEED = 9
# The speech clips of ../shared/data/speech in en or es, with their transcripts (its README).
SPEECH_CLIPS = {
    "living_room_light_en.wav": ("en", "Turn on the living room light."),
    "turn_on_the_living_room_lamp.wav": ("en", "Turn on the living room lamp."),
    "living_room_light_es.wav": ("es", "Enciende la luz del salón."),
}


@dataclass(frozen=True)
class Word:
    """A word Whisper found and where it lies in its clip (seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Turn:
    """A stretch of one clip spoken as one turn."""

    id: str
    language: str
    text: str
    audio: np.ndarray
    speech: tuple[float, float]  # first word start, last word end, in `audio` (seconds)
    short: bool


def cut_turns(
    clip_id: str,
    language: str,
    transcript: str,
    audio: np.ndarray,
    words: Sequence[Word],
    max_turn: float = MAX_TURN_S,
) -> list[Turn]:
    """The clip as one turn, or cut at pauses between words into turns of <= max_turn s."""
    if not words:
        return []
    pieces: list[list[Word]] = [[words[0]]]
    for prev, word in itertools.pairwise(words):
        too_long = word.end - pieces[-1][0].start > max_turn
        if too_long and word.start - prev.end >= MIN_GAP_S:
            pieces.append([word])
        else:
            pieces[-1].append(word)
    whole = len(pieces) == 1
    turns = []
    for i, piece in enumerate(pieces):
        before = pieces[i - 1][-1].end if i else None
        after = pieces[i + 1][0].start if i + 1 < len(pieces) else None
        text = transcript if whole else " ".join(w.text for w in piece)
        turns.append(_cut(f"{clip_id}.{i + 1}", language, text, audio, piece, before, after, False))
    return turns


def short_turn(
    clip_id: str, language: str, audio: np.ndarray, words: Sequence[Word], n: int
) -> Turn | None:
    """The first `n` words of a clip, cut from the recording."""
    if len(words) <= n:
        return None
    piece = list(words[:n])
    text = " ".join(w.text for w in piece)
    return _cut(f"{clip_id}.short{n}", language, text, audio, piece, None, words[n].start, True)


def _cut(
    uid: str,
    language: str,
    text: str,
    audio: np.ndarray,
    piece: Sequence[Word],
    before: float | None,
    after: float | None,
    short: bool,
) -> Turn:
    # Keep a margin of real audio around the words, but never reach into a neighbour's word:
    # stop halfway to it.
    a = piece[0].start - MARGIN_S
    if before is not None:
        a = max(a, (before + piece[0].start) / 2)
    b = piece[-1].end + MARGIN_S
    if after is not None:
        b = min(b, (piece[-1].end + after) / 2)
    a, b = max(0.0, a), min(len(audio) / SAMPLE_RATE, b)
    samples = audio[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)]
    speech = (round(piece[0].start - a, 3), round(min(piece[-1].end, b) - a, 3))
    return Turn(uid, language, text.strip(), samples, speech, short)


def interleave(turns: dict[str, list[Turn]], shorts: dict[str, list[Turn]]) -> list[Turn]:
    """Alternate the languages turn by turn; every SHORT_EVERY-th turn of a language is a
    short one while they last; stops when a language runs out of turns."""
    queues = {lang: list(turns[lang]) for lang in turns}
    short_queues = {lang: list(shorts.get(lang, [])) for lang in turns}
    out: list[Turn] = []
    count = dict.fromkeys(turns, 0)
    while True:
        for lang in turns:
            count[lang] += 1
            if count[lang] % SHORT_EVERY == 0 and short_queues[lang]:
                out.append(short_queues[lang].pop(0))
            elif queues[lang]:
                out.append(queues[lang].pop(0))
            else:
                return out


def build_conversation(
    out_dir: Path,
    realspeech_dir: Path,
    speech_dir: Path,
    model_dir: Path,
    threads: int,
    limit: int | None = None,
) -> BuiltSet:
    """Generate the conversation set into `out_dir` (benchset.wav + manifest.json)."""
    from edged.audio.convert import to_pipeline_format
    from edged.audio.wav import read_wav

    sources: list[tuple[str, str, str, Path]] = []  # id, language, transcript, path
    for name, (language, transcript) in SPEECH_CLIPS.items():
        sources.append((Path(name).stem, language, transcript, speech_dir / name))
    clips = [c for c in read_clips(realspeech_dir / "manifest.tsv") if c.language in LANGUAGES]
    # clips short enough to be one turn (with their real transcripts) before long readings
    clips.sort(key=lambda c: c.duration > MAX_TURN_S)
    for c in clips:
        sources.append((Path(c.file).stem, c.language, c.transcript, realspeech_dir / c.file))
    # Spanish is the scarcer language: take all of it, then only as much English as the
    # alternation uses (each clip costs a Whisper decode the first time).
    sources.sort(key=lambda s: s[1] != "es")
    cache_path = out_dir / "words.json"
    cache = _read_cache(cache_path)
    aligner: Any = None
    whole: dict[str, list[Turn]] = {lang: [] for lang in LANGUAGES}
    pieces: dict[str, list[Turn]] = {lang: [] for lang in LANGUAGES}
    shorts: dict[str, list[Turn]] = {lang: [] for lang in LANGUAGES}
    checksums: dict[str, str] = {}
    # with --limit, only as many turns of each language as the limit uses
    needed = math.ceil(limit / 2) + 1 if limit else None
    for uid, language, transcript, path in sources:
        have = len(whole[language]) + len(pieces[language]) + len(shorts[language])
        if language == "es":
            enough = needed is not None and have >= needed
        else:
            spanish = len(whole["es"]) + len(pieces["es"]) + len(shorts["es"])
            enough = have >= (needed if needed is not None else spanish + 2)
        if enough:
            continue
        if not path.is_file():
            raise ConfigError(f"conversation set: clip {path} not found")
        samples, rate = read_wav(path)
        audio = to_pipeline_format(samples, rate)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        checksums[path.name] = digest
        if digest not in cache:
            aligner = aligner or _aligner(model_dir, threads)
            cache[digest] = _words(aligner, audio, language)
        words = [Word(*w) for w in cache[digest]]
        cut = cut_turns(uid, language, transcript, audio, words)
        (whole if len(cut) == 1 else pieces)[language].extend(cut)
        n = 1 + len(shorts[language]) % 2  # one word, then two, alternately
        short = short_turn(uid, language, audio, words, n)
        if short is not None:
            shorts[language].append(short)
    # clips said as one turn (with their real transcripts) first, then the cut readings
    turns = {lang: whole[lang] + pieces[lang] for lang in LANGUAGES}
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(cache) + "\n", encoding="utf-8")
    order = interleave(turns, shorts)
    order = order[:limit] if limit else order
    pauses = random.Random(SEED)
    parts: list[np.ndarray] = [np.zeros(SAMPLE_RATE, np.float32)]
    position = len(parts[0])
    utterances: list[dict[str, Any]] = []
    for turn in order:
        offset = position / SAMPLE_RATE
        utterances.append(
            {
                "id": turn.id,
                "language": turn.language,
                "text": turn.text,
                "t0": round(offset + turn.speech[0], 3),
                "t1": round(offset + turn.speech[1], 3),
                **({"short": True} if turn.short else {}),
            }
        )
        gap = np.zeros(round(pauses.uniform(*PAUSE_RANGE) * SAMPLE_RATE), np.float32)
        parts += [turn.audio, gap]
        position += len(turn.audio) + len(gap)
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    described = {
        "set": "conversation",
        "languages": list(LANGUAGES),
        "pauses_s": list(PAUSE_RANGE),
        "word_boundaries": "faster-whisper word timestamps (beam 5, language given)",
        "clips_sha256": checksums,
    }
    return write_set(out_dir, parts, utterances, described)


def _read_cache(path: Path) -> dict[str, list[list[Any]]]:
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _aligner(model_dir: Path, threads: int) -> Any:
    from edged.bench.offline import load_faster_whisper

    log.info("finding word boundaries with faster-whisper (cached in words.json)")
    return load_faster_whisper(model_dir, threads, "--set conversation (word boundaries)")


def _words(model: Any, audio: np.ndarray, language: str) -> list[list[Any]]:
    segments, _ = model.transcribe(audio, language=language, beam_size=5, word_timestamps=True)
    return [
        [w.word.strip(), round(w.start, 3), round(w.end, 3)]
        for s in segments
        for w in (s.words or [])
        if w.word.strip()
    ]
