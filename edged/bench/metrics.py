"""The benchmark's arithmetic, as pure functions of what a run recorded: the events with the
monotonic time each was received, the audio timeline (when each stretch of audio reached
the pipeline, and the process CPU clock then) and the manifest.

Latencies are measured against the manifest's reference times on the audio timeline,
mapped to wall time through the recorded arrivals: "end of speech" is the moment the last
sample of the utterance reached the pipeline, as it would from a microphone.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import partial
from typing import Any

import numpy as np

from edged.audio import SAMPLE_RATE
from edged.bench.manifest import Manifest, Utterance
from edged.events import AsrFinal, AsrPartial, Event, MtFinal, TtsStart


@dataclass(frozen=True)
class Received:
    """An event and the time.monotonic() at which the benchmark's publisher received it."""

    rx: float
    event: Event


class Timeline:
    """Audio time to wall time and wall time to process CPU time, from one sample per chunk:
    (end sample of the chunk, monotonic arrival, process CPU seconds at arrival)."""

    def __init__(
        self, ends: Sequence[int], arrivals: Sequence[float], cpu: Sequence[float]
    ) -> None:
        if not ends:
            raise ValueError("a timeline needs at least one chunk")
        self.ends = np.asarray(ends, dtype=np.int64)
        self.arrivals = np.asarray(arrivals, dtype=np.float64)
        self.cpu = np.asarray(cpu, dtype=np.float64)

    @classmethod
    def paced(
        cls, origin: float, duration: float, cpu_rate: float = 0.0, frame: int = 512
    ) -> Timeline:
        """A perfectly paced feed starting at `origin` (tests and dry runs): CPU grows at
        `cpu_rate` seconds per second."""
        ends = list(range(frame, int(duration * SAMPLE_RATE) + frame, frame))
        arrivals = [origin + e / SAMPLE_RATE for e in ends]
        return cls(ends, arrivals, [(a - origin) * cpu_rate for a in arrivals])

    @property
    def origin(self) -> float:
        """Wall time of audio time 0 (the first chunk's arrival minus its length)."""
        return float(self.arrivals[0] - self.ends[0] / SAMPLE_RATE)

    @property
    def duration(self) -> float:
        return float(self.ends[-1] / SAMPLE_RATE)

    def wall(self, t: float) -> float:
        """When the sample at audio time `t` reached the pipeline."""
        sample = round(t * SAMPLE_RATE)
        i = int(np.searchsorted(self.ends, sample, side="left"))
        if i >= len(self.ends):
            return float(self.arrivals[-1] + (sample - self.ends[-1]) / SAMPLE_RATE)
        return float(self.arrivals[i])

    def audio_time(self, wall: float) -> float:
        """Seconds since the feed began, for plotting wall-clock events on the audio axis."""
        return wall - self.origin

    def cpu_at(self, wall: float) -> float:
        return float(np.interp(wall, self.arrivals, self.cpu))


# --- matching pipeline utterances to the manifest ----------------------------------------


@dataclass(frozen=True)
class Span:
    """A pipeline utterance (event `utt`) and the audio it covered."""

    utt: int
    t0: float
    t1: float
    final: bool


def spans(received: Iterable[Received]) -> list[Span]:
    """Each pipeline utterance's audio span: its final's, else its last partial's."""
    best: dict[int, Span] = {}
    for r in received:
        e = r.event
        if isinstance(e, AsrFinal):
            best[e.utt] = Span(e.utt, e.t0, e.t1, True)
        elif isinstance(e, AsrPartial) and not (e.utt in best and best[e.utt].final):
            best[e.utt] = Span(e.utt, e.t0, e.t1, False)
    return sorted(best.values(), key=lambda s: (s.t0, s.utt))


def match(spans_: Sequence[Span], manifest: Manifest) -> dict[str, list[int]]:
    """For each manifest utterance, the pipeline utterances overlapping it in time (one
    may overlap several when the VAD merged them); a pipeline utterance overlapping none
    goes to the nearest, so its words still count as errors."""
    found: dict[str, list[int]] = {u.id: [] for u in manifest.utterances}
    for s in spans_:
        hits = [u for u in manifest.utterances if _overlap(s, u) > 0]
        if not hits:
            hits = [min(manifest.utterances, key=partial(_gap, span=s))]
        for u in hits:
            found[u.id].append(s.utt)
    return found


def _overlap(span: Any, u: Utterance) -> float:
    return float(min(span.t1, u.t1) - max(span.t0, u.t0))


def _gap(u: Utterance, span: Span) -> float:
    return max(u.t0 - span.t1, span.t0 - u.t1, 0.0)


def groups(found: dict[str, list[int]], manifest: Manifest) -> list[tuple[str, ...]]:
    """Manifest utterances joined where a pipeline utterance spans more than one: quality is
    scored per group, so a merge or split is not counted as a deletion plus insertions."""
    out: list[list[str]] = []
    previous: set[int] = set()
    for u in manifest.utterances:
        mine = set(found.get(u.id, ()))
        if out and mine & previous:
            out[-1].append(u.id)
            previous |= mine
        else:
            out.append([u.id])
            previous = mine
    return [tuple(g) for g in out]


# --- flicker -----------------------------------------------------------------------------


def retracted(previous: str, current: str) -> int:
    """Characters of `previous` a reader sees taken back when `current` replaces it."""
    common = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        common += 1
    return len(previous) - common


@dataclass(frozen=True)
class Flicker:
    """Rewrites of an utterance's partial text."""

    partials: int
    chars: int  # characters retracted between successive partials
    retractions: int  # successive partial pairs with any retraction
    stable_chars: int  # characters retracted from the `stable` prefix (should be 0)
    final_chars: int  # characters of the last partial the final retracted


def flicker(partials: Sequence[tuple[str, str]], final: str | None) -> Flicker:
    """Flicker of one utterance from its partials' (text, stable) in order and its final."""
    chars = count = stable = 0
    for (prev, prev_stable), (cur, cur_stable) in itertools.pairwise(partials):
        n = retracted(prev, cur)
        chars += n
        count += n > 0
        stable += retracted(prev_stable, cur_stable)
    final_chars = retracted(partials[-1][0], final) if partials and final is not None else 0
    return Flicker(len(partials), chars, count, stable, final_chars)


# --- per-utterance timing ------------------------------------------------------------------


@dataclass
class UtteranceResult:
    """What the pipeline made of one manifest utterance, and how long it took."""

    id: str
    language: str
    reference: str
    group: tuple[str, ...] = ()  # manifest utterances scored together with this one
    utts: list[int] = field(default_factory=list)  # pipeline utterances overlapping it
    final: str = ""
    detected_language: str = ""  # `src` of its last final
    final_languages: list[str] = field(default_factory=list)  # `src` of each of its finals
    rejected: list[str] = field(default_factory=list)  # reasons of its rejected finals
    short: bool = False  # a turn of one or two words
    translations: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    spoken: str = ""  # text of the synthesized speech
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    event_lat_ms: dict[str, int | None] = field(default_factory=dict)
    flicker: Flicker | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "flicker"}
        out["group"] = list(self.group)
        out["flicker"] = self.flicker.__dict__ if self.flicker else None
        return out


def rejection(event: Event) -> str | None:
    """Why an asr.final was rejected (its `reason`, or "empty" for a final without text),
    None for a final with text and for any other event."""
    if not isinstance(event, AsrFinal):
        return None
    reason = getattr(event, "reason", None)
    if reason or not event.text.strip():
        return str(reason or "empty")
    return None


def is_final(event: Event) -> bool:
    """An asr.final with text (a rejected final announces that there is none)."""
    return isinstance(event, AsrFinal) and rejection(event) is None


def per_utterance(
    received: Sequence[Received],
    manifest: Manifest,
    timeline: Timeline,
    targets: Sequence[str],
    first_audio: dict[int, float] | None = None,
) -> list[UtteranceResult]:
    """Per manifest utterance: the overlapping finals, translations, speech, and latencies

    - first_partial / first_text: reference onset -> first asr.partial (or any text) that
      covers some of the utterance's audio;
    - final, mt.<tgt>, tts: reference end of speech -> asr.final (with text), mt.final,
      tts.start of the pipeline utterance that closed it (the overlapping one ending last);
    - audio: reference end of speech -> its first synthesized samples handed to the sink
      (`first_audio`: pipeline utterance -> monotonic time).
    """
    found = match(spans(received), manifest)
    by_utt: dict[int, list[Received]] = {}
    for r in received:
        by_utt.setdefault(r.event.utt, []).append(r)
    group_of = {uid: g for g in groups(found, manifest) for uid in g}
    flickers = flicker_by_utt(received)
    results = []
    for u in manifest.utterances:
        res = UtteranceResult(u.id, u.language, u.text, group_of[u.id], short=u.short)
        res.utts = sorted(found[u.id], key=lambda n: _span_of(by_utt[n]))
        events = [r for n in res.utts for r in by_utt[n]]
        finals = [r for r in events if is_final(r.event)]
        res.final = " ".join(r.event.text for r in finals).strip()  # type: ignore[attr-defined]
        res.final_languages = [r.event.src for r in finals]  # type: ignore[attr-defined]
        if finals:
            res.detected_language = res.final_languages[-1]
        res.rejected = [why for r in events if (why := rejection(r.event))]
        for tgt in targets:
            mts = [r for r in events if isinstance(r.event, MtFinal) and r.event.tgt == tgt]
            res.translations[tgt] = " ".join(r.event.text for r in mts).strip()  # type: ignore[attr-defined]
            if mts:
                res.engines[tgt] = mts[-1].event.engine  # type: ignore[attr-defined]
        res.spoken = " ".join(r.event.text for r in events if isinstance(r.event, TtsStart))  # type: ignore[attr-defined]
        onset, end = timeline.wall(u.t0), timeline.wall(u.t1)
        texts = [
            r
            for r in events
            if (isinstance(r.event, AsrPartial) or is_final(r.event)) and r.event.t1 > u.t0  # type: ignore[attr-defined]
        ]
        partials = [r for r in texts if isinstance(r.event, AsrPartial)]
        res.latency_ms["first_partial"] = _ms(min((r.rx for r in partials), default=None), onset)
        res.latency_ms["first_text"] = _ms(min((r.rx for r in texts), default=None), onset)
        # the final that closed it: of those overlapping it (not a stray one nearby), the last
        covering = [r for r in finals if _overlap(r.event, u) > 0] or finals
        closing = max(covering, key=lambda r: r.event.t1).event.utt if covering else None  # type: ignore[attr-defined]
        closing_events = by_utt.get(closing, []) if closing is not None else []
        for key, pick in _closing_picks(targets):
            hit = next((r for r in closing_events if pick(r.event)), None)
            res.latency_ms[key] = _ms(hit.rx if hit else None, end)
            res.event_lat_ms[key] = getattr(hit.event, "lat_ms", None) if hit else None
        heard = (first_audio or {}).get(closing) if closing is not None else None
        res.latency_ms["audio"] = _ms(heard, end)
        res.flicker = _sum_flicker(flickers[n] for n in res.utts if n in flickers)
        results.append(res)
    return results


def flicker_by_utt(received: Iterable[Received]) -> dict[int, Flicker]:
    """Flicker of every pipeline utterance that had partials."""
    partials: dict[int, list[tuple[str, str]]] = {}
    finals: dict[int, str] = {}
    for r in received:
        e = r.event
        if isinstance(e, AsrPartial):
            partials.setdefault(e.utt, []).append((e.text, e.stable))
        elif isinstance(e, AsrFinal):
            finals[e.utt] = e.text
    return {n: flicker(p, finals.get(n)) for n, p in partials.items()}


def _sum_flicker(items: Iterable[Flicker]) -> Flicker:
    total = Flicker(0, 0, 0, 0, 0)
    for f in items:
        total = Flicker(
            *(a + b for a, b in zip(total.__dict__.values(), f.__dict__.values(), strict=True))
        )
    return total


def _closing_picks(targets: Sequence[str]) -> list[tuple[str, Any]]:
    picks: list[tuple[str, Any]] = [("final", is_final)]
    for tgt in targets:
        picks.append((f"mt.{tgt}", lambda e, tgt=tgt: isinstance(e, MtFinal) and e.tgt == tgt))
    picks.append(("tts", lambda e: isinstance(e, TtsStart)))
    return picks


def _span_of(events: list[Received]) -> float:
    return min(getattr(r.event, "t0", math.inf) for r in events)


def _ms(rx: float | None, reference: float) -> float | None:
    return None if rx is None else round((rx - reference) * 1000.0, 1)


# --- whole-run figures --------------------------------------------------------------------


def summarise(values: Iterable[float | None]) -> dict[str, Any]:
    """n, missing, min, median, p90, max, mean of the values that are not None."""
    values = list(values)
    present = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"n": len(present), "missing": len(values) - len(present)}
    if present:
        out.update(
            min=round(present[0], 1),
            median=round(statistics.median(present), 1),
            p90=round(float(np.percentile(present, 90)), 1),
            max=round(present[-1], 1),
            mean=round(statistics.fmean(present), 1),
        )
    return out


def busy_intervals(
    received: Sequence[Received], results: Sequence[UtteranceResult], timeline: Timeline
) -> list[tuple[float, float]]:
    """Wall intervals in which the pipeline worked on an utterance: from the start of the
    audio it covered to the last event of the pipeline utterances that covered it (final,
    translations, speech), so work that emits nothing until it is done counts as busy."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for r in received:
        n = r.event.utt
        last[n] = max(last.get(n, r.rx), r.rx)
        t0 = getattr(r.event, "t0", None)
        if t0 is not None:
            first[n] = min(first.get(n, t0), t0)
    return [
        (timeline.wall(min(first.get(n, 0.0) for n in res.utts)), max(last[n] for n in res.utts))
        for res in results
        if res.utts
    ]


def silence_cpu(
    manifest: Manifest,
    timeline: Timeline,
    busy: Sequence[tuple[float, float]],
    settle: float = 0.3,
    min_window: float = 0.5,
) -> dict[str, Any]:
    """Process CPU over the silent stretches while the pipeline had nothing to do.

    Windows are the silences between the manifest's utterances (wall time) minus the
    `busy` intervals (busy_intervals()) each extended by `settle` seconds; windows shorter
    than `min_window` are skipped. Returns the windows, their wall and CPU seconds, and CPU
    as percent of one core.
    """
    bounds = [0.0]
    for u in manifest.utterances:
        bounds += [u.t0, u.t1]
    bounds.append(timeline.duration)
    windows: list[tuple[float, float]] = []
    for a, b in zip(bounds[::2], bounds[1::2], strict=True):
        pieces = [(timeline.wall(a), timeline.wall(b))]
        for start, stop in busy:
            pieces = [q for p in pieces for q in _minus(p, (start, stop + settle))]
        windows += [p for p in pieces if p[1] - p[0] >= min_window]
    wall = sum(b - a for a, b in windows)
    cpu = sum(timeline.cpu_at(b) - timeline.cpu_at(a) for a, b in windows)
    return {
        "windows": len(windows),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_percent": round(100.0 * cpu / wall, 2) if wall > 0 else None,
        "detail": [
            {
                "from_s": round(timeline.audio_time(a), 3),
                "seconds": round(b - a, 3),
                "cpu_percent": round(
                    100.0 * (timeline.cpu_at(b) - timeline.cpu_at(a)) / (b - a), 2
                ),
            }
            for a, b in windows
        ],
    }


def _minus(span: tuple[float, float], cut: tuple[float, float]) -> list[tuple[float, float]]:
    """`span` without `cut`: zero, one or two pieces."""
    (a, b), (c, d) = span, cut
    if d <= a or c >= b:
        return [span]
    return [p for p in ((a, c), (d, b)) if p[1] > p[0]]


# --- quality ------------------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s']")


def normalise(text: str) -> str:
    """How transcripts are compared: case-folded, NFC, punctuation (but apostrophes) to
    spaces, blanks collapsed."""
    text = unicodedata.normalize("NFC", text).casefold().replace("\u2019", "'")
    return " ".join(_PUNCT.sub(" ", text).split())


def word_errors(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """WER and CER (jiwer) over (reference, hypothesis) pairs, after normalise();
    pairs whose reference normalises to nothing are left out."""
    import jiwer

    refs, hyps = [], []
    for ref, hyp in pairs:
        if normalise(ref):
            refs.append(normalise(ref))
            hyps.append(normalise(hyp))
    if not refs:
        return {"n": 0}
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {
        "n": len(refs),
        "wer": round(words.wer, 4),
        "cer": round(chars.cer, 4),
        "ref_words": sum(len(r.split()) for r in refs),
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
    }


def translation_scores(items: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Any]:
    """Corpus chrF and BLEU (sacrebleu, default settings) of (hypothesis, references) items.

    Items may have different numbers of references: shorter lists are padded with their
    first reference, which changes neither metric (each takes the best-matching reference).
    """
    import sacrebleu

    items = [(h, list(refs)) for h, refs in items if refs]
    if not items:
        return {"n": 0}
    width = max(len(refs) for _, refs in items)
    streams = [[refs[i] if i < len(refs) else refs[0] for _, refs in items] for i in range(width)]
    hyps = [h for h, _ in items]
    chrf = sacrebleu.corpus_chrf(hyps, streams)
    bleu = sacrebleu.corpus_bleu(hyps, streams)
    return {
        "n": len(items),
        "chrf": round(chrf.score, 2),
        "bleu": round(bleu.score, 2),
        "bleu_detail": str(bleu),
    }


def sentence_chrf(hypothesis: str, references: Sequence[str]) -> float | None:
    """chrF of one translation, for the per-utterance table."""
    import sacrebleu

    if not references:
        return None
    return round(sacrebleu.sentence_chrf(hypothesis, list(references)).score, 1)


def utterance_texts(received: Iterable[Received]) -> dict[int, dict[str, str]]:
    """Per pipeline utterance: its final ("asr") and final translations ("mt.<tgt>")."""
    texts: dict[int, dict[str, str]] = {}
    for r in received:
        e = r.event
        if isinstance(e, AsrFinal):
            texts.setdefault(e.utt, {})["asr"] = e.text
        elif isinstance(e, MtFinal):
            texts.setdefault(e.utt, {})[f"mt.{e.tgt}"] = e.text
    return texts


def quality(
    results: Sequence[UtteranceResult],
    manifest: Manifest,
    targets: Sequence[str],
    texts: dict[int, dict[str, str]],
) -> dict[str, Any]:
    """ASR WER/CER (all and per language; digits spelled as the reference does, see
    spell_numbers) and, per target, chrF/BLEU of the final
    translations of utterances not already in that language. Scored per group: manifest
    utterances that one pipeline utterance spanned are joined on both sides, so a merge is
    not counted as a deletion plus insertions. `texts` is utterance_texts()."""
    refs = {u.id: u for u in manifest.utterances}
    by_id = {r.id: r for r in results}
    scored = [[by_id[i] for i in g] for g in dict.fromkeys(r.group or (r.id,) for r in results)]

    def hypothesis(group: list[UtteranceResult], key: str) -> str:
        utts = dict.fromkeys(n for r in group for n in r.utts)  # shared ones once, in order
        return " ".join(t for n in utts if (t := texts.get(n, {}).get(key, ""))).strip()

    def asr_pairs(lang: str | None) -> list[tuple[str, str]]:
        pairs = []
        for g in scored:
            if lang is None or g[0].language == lang:
                reference = " ".join(r.reference for r in g)
                spelled = spell_numbers(hypothesis(g, "asr"), reference, g[0].language)
                pairs.append((reference, spelled))
        return pairs

    asr = {"all": word_errors(asr_pairs(None))}
    for lang in sorted({r.language for r in results}):
        asr[lang] = word_errors(asr_pairs(lang))
    mt: dict[str, Any] = {}
    for tgt in targets:
        items = []
        for g in scored:
            if any(r.language == tgt for r in g):
                continue  # nothing to translate: scored as recognition
            alternatives = [refs[r.id].references(tgt) for r in g]
            if not all(alternatives):
                continue
            width = max(len(a) for a in alternatives)
            joined = [
                " ".join(a[i] if i < len(a) else a[0] for a in alternatives) for i in range(width)
            ]
            items.append((hypothesis(g, f"mt.{tgt}"), joined))
        scores = translation_scores(items)
        scores["engines"] = sorted(
            {r.engines[tgt] for r in results if r.language != tgt and tgt in r.engines}
        )
        mt[tgt] = scores
    return {"asr": asr, "mt": mt, "groups": [[r.id for r in g] for g in scored if len(g) > 1]}


# --- numbers written as digits ------------------------------------------------------------

_ONES_EN = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS_EN = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
# 0-20 elsewhere (what short commands and counting use); alternatives for "one" by gender
_SMALL = {
    "de": "null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn "
    "vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
    "quince dieciséis diecisiete dieciocho diecinueve veinte",
    "fr": "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze "
    "quinze seize dix-sept dix-huit dix-neuf vingt",
    "it": "zero uno due tre quattro cinque sei sette otto nove dieci undici dodici tredici "
    "quattordici quindici sedici diciassette diciotto diciannove venti",
    "pt": "zero um dois três quatro cinco seis sete oito nove dez onze doze treze catorze "
    "quinze dezesseis dezessete dezoito dezenove vinte",
    "sv": "noll en två tre fyra fem sex sju åtta nio tio elva tolv tretton fjorton femton "
    "sexton sjutton arton nitton tjugo",
}
_ONE_ALTERNATIVES = {
    "de": ("ein", "eine"),
    "es": ("un", "una"),
    "fr": ("une",),
    "it": ("un", "una"),
    "pt": ("uma",),
    "sv": ("ett",),
}
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")


def english_cardinal(n: int) -> str:
    """0-999999 in English words, without "and" ("one thousand four hundred fifty five")."""
    if n < 20:
        return _ONES_EN[n]
    if n < 100:
        return _TENS_EN[n // 10] + ("" if n % 10 == 0 else " " + _ONES_EN[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + english_cardinal(n % 100)
        return _ONES_EN[n // 100] + " hundred" + rest
    rest = "" if n % 1000 == 0 else " " + english_cardinal(n % 1000)
    return english_cardinal(n // 1000) + " thousand" + rest


def _spellings(n: int, language: str) -> list[str]:
    if language == "en":
        out = [english_cardinal(n)] if n < 1_000_000 else []
        if 1100 <= n <= 2099 and n % 100 != 0 and not 2000 <= n <= 2009:
            out.append(english_cardinal(n // 100) + " " + english_cardinal(n % 100))  # years
        elif 1100 <= n <= 1999:
            out.append(english_cardinal(n // 100) + " hundred")
        if 100 < n < 1000 and n % 100 < 10 and n % 100:
            out.append(_ONES_EN[n // 100] + " o " + _ONES_EN[n % 100])  # "four o five"
        return out
    small = _SMALL.get(language, "").split()
    if n < len(small):
        return [small[n], *(_ONE_ALTERNATIVES.get(language, ()) if n == 1 else ())]
    return []


def spell_numbers(hypothesis: str, reference: str, language: str) -> str:
    """`hypothesis` with each number written in digits replaced by the words the reference
    uses for it (references spell numbers out: "eighteen thirteen" for 1813), or by its
    plain cardinal when the reference has none of its spellings; digits the reference
    also has, and numbers this knows no words for, are kept."""
    ref = f" {normalise(reference)} "

    def words(match: re.Match[str]) -> str:
        digits = match.group(0).replace(",", "")
        if f" {digits} " in ref:
            return match.group(0)
        options = _spellings(int(digits), language)
        for option in options:
            if f" {normalise(option)} " in ref:
                return option
        return options[0] if options else match.group(0)

    return _NUMBER.sub(words, hypothesis)


# --- what the goals name ----------------------------------------------------------

CER_LANGUAGES = ("ja", "zh", "th", "ko")
GENUINE_RATIO = 0.75  # see repeated_previous  # written without spaces between words: scored by CER


def error_rate(scores: dict[str, Any], language: str) -> float | None:
    """The headline error rate of a language: CER where words are not space-separated."""
    return scores.get("cer" if language in CER_LANGUAGES else "wer")


def repeated_previous(
    received: Sequence[Received], said: dict[int, str] | None = None
) -> dict[str, Any]:
    """Partials of an utterance that repeat the previous utterance's final: their text,
    normalised, equals that final or begins with it (the previous final used as a decoder
    prompt leaking into the next utterance).

    `said`: for a pipeline utterance that begins a manifest utterance, that utterance's
    reference. A repeat is genuine, and not counted, when the reference begins with words
    like the previous final's (SequenceMatcher ratio >= GENUINE_RATIO: the final may be
    misrecognised): the speaker said it again. A pipeline utterance that continues a
    manifest utterance (the VAD split it) never repeats genuinely here."""
    by_utt: dict[int, list[Event]] = {}
    for r in received:
        by_utt.setdefault(r.event.utt, []).append(r.event)
    previous = ""
    hits: dict[int, int] = {}
    genuine = 0
    examples: list[dict[str, Any]] = []
    for utt in sorted(by_utt):
        events = by_utt[utt]
        reference = normalise((said or {}).get(utt, ""))
        for e in events if previous else ():
            if not isinstance(e, AsrPartial):
                continue
            text = normalise(e.text)
            if text != previous and not text.startswith(previous + " "):
                continue
            start = reference[: len(previous)]
            if start and SequenceMatcher(None, previous, start).ratio() >= GENUINE_RATIO:
                genuine += 1
                continue
            hits[utt] = hits.get(utt, 0) + 1
            if len(examples) < 10:
                examples.append({"utt": utt, "previous": previous, "partial": e.text})
        finals = [normalise(e.text) for e in events if is_final(e)]  # type: ignore[attr-defined]
        if finals and finals[-1]:
            previous = finals[-1]
    return {
        "partials": sum(hits.values()),
        "utterances": len(hits),
        "genuine_repeats": genuine,
        "examples": examples,
    }


def utterance_starts(results: Sequence[UtteranceResult]) -> dict[int, str]:
    """The pipeline utterance that begins each manifest utterance, and its reference (the
    `said` of repeated_previous)."""
    starts: dict[int, str] = {}
    for r in results:
        if r.utts:
            starts.setdefault(r.utts[0], r.reference)  # a merge: the first one began it
    return starts


def rejected_finals(received: Iterable[Received]) -> dict[str, int]:
    """Rejected finals by reason (asr.final with a `reason` or without text)."""
    counts: dict[str, int] = {}
    for r in received:
        why = rejection(r.event)
        if why:
            counts[why] = counts.get(why, 0) + 1
    return dict(sorted(counts.items()))


def mt_latency_by_engine(
    results: Sequence[UtteranceResult], targets: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """End of speech -> mt.final per serving engine (apertium, ct2, whisper …), over every
    translation into a target other than the utterance's own language."""
    by_engine: dict[str, list[float | None]] = {}
    for r in results:
        for tgt in targets:
            engine = r.engines.get(tgt)
            if tgt == r.language or not engine or engine == "identity":
                continue
            by_engine.setdefault(engine, []).append(r.latency_ms.get(f"mt.{tgt}"))
    return {engine: summarise(values) for engine, values in sorted(by_engine.items())}


def language_id(results: Sequence[UtteranceResult]) -> dict[str, Any]:
    """Language-identification accuracy per spoken language: a turn is right when every
    final it got has that language as `src`; turns without a final are counted apart.
    Short turns (one or two words) are also reported on their own."""

    def score(rows: Sequence[UtteranceResult]) -> dict[str, Any]:
        heard = [r for r in rows if r.final_languages]
        right = [r for r in heard if all(lang == r.language for lang in r.final_languages)]
        return {
            "turns": len(rows),
            "with_final": len(heard),
            "correct": len(right),
            "accuracy": round(len(right) / len(heard), 4) if heard else None,
            # how often each language was the `src` of these turns' finals
            "heard_as": dict(sorted(Counter(x for r in heard for x in r.final_languages).items())),
        }

    out: dict[str, Any] = {"all": score(results)}
    for lang in sorted({r.language for r in results}):
        mine = [r for r in results if r.language == lang]
        out[lang] = score(mine)
        short = [r for r in mine if r.short]
        if short:
            out[lang]["short"] = score(short)
    return out


def offline_comparison(
    manifest: Manifest, streaming_asr: dict[str, Any], offline: dict[str, str]
) -> dict[str, Any]:
    """Per language (and all): the streaming finals' error rate (`streaming_asr`, the
    quality()["asr"] of the run) beside the offline decode's (`offline`: utterance id ->
    text) on the same utterances, and the difference in points (streaming - offline).
    The rate is WER, CER for CER_LANGUAGES ("metric" says which)."""
    pairs: dict[str, list[tuple[str, str]]] = {}
    for u in manifest.utterances:
        if u.id in offline:
            pair = (u.text, spell_numbers(offline[u.id], u.text, u.language))
            pairs.setdefault(u.language, []).append(pair)
            pairs.setdefault("all", []).append(pair)
    out: dict[str, Any] = {}
    for lang in ["all", *sorted(k for k in pairs if k != "all")]:
        metric = "cer" if lang in CER_LANGUAGES else "wer"
        offline_scores = word_errors(pairs[lang])
        stream = streaming_asr.get(lang, {}).get(metric)
        base = offline_scores.get(metric)
        out[lang] = {
            "metric": metric,
            "n": offline_scores.get("n", 0),
            "streaming": stream,
            "offline": base,
            "difference_points": None
            if stream is None or base is None
            else round(100 * (stream - base), 1),
        }
    return out
