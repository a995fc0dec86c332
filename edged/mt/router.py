"""Choosing how to translate each (source, target) pair, once, before any model loads.

The router holds the available translators by engine name and a preference order (config
`mt.engines`). For a pair it returns a TranslationPlan: nothing to do when the languages are
equal; else the best route over every installed pair of every engine, through any pivot
languages (at most MAX_HOPS hops). Routes are ranked by
1. fewest hops (each hop compounds errors, and a direct pair beats any pivot);
2. the engines used, by `mt.engines` order, comparing each route's least preferred engine
   first (so with the default order a neural hop beats a rule-based one);
3. English as the pivot before other languages, then the pivot's code (stable plans).
A pair no route serves gets no plan: cover() names it in a MissingPair with what would
provide it (a catalogue bundle, a Debian Apertium package) instead of refusing the config,
unless a target is reached by no source candidate at all.

Whisper's speech→English task is a pseudo-engine (`WhisperSpeechTranslation`, name
"whisper"): it offers (src, "en") for the recognizer's languages and is ranked like any other
engine, but it can only be a route's first hop. So it wins over a text route to English with
more hops (fr->en over Apertium's fr>es>en: chrF 42.3 against 34.7 on real French speech,
tools/mt_pivot_chrf.py) and, on equal hops, where `mt.engines` puts it first (es->en scored
46.9 against Apertium's 47.3, and costs a second decoder pass: the default order puts it
last). Its text comes from the recognizer, which decodes the final's audio with the
translate task (`Hypothesis.translation_en`); the caller hands that text to
`plan.translate(text, english=...)`. Partials carry no Whisper translation, so a plan that
starts with Whisper also carries the best plan without it (`text_plan`), used when no
English is given; `plan.serves_text` says whether interim text can be translated at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from edged.errors import ConfigError, EngineError
from edged.mt import Translator

log = logging.getLogger(__name__)

PIVOT = "en"  # Whisper's only output language, and the first choice among pivots
WHISPER = "whisper"
# Three hops cover every pair of the Debian Apertium graph that connects at all (pt->ca
# is pt>es>ca, gl->fr is gl>en>es>fr); a fourth rule-based hop adds more errors than meaning.
MAX_HOPS = 3


@runtime_checkable
class Loadable(Protocol):
    """A translator that can load its models for some pairs ahead of the first request."""

    def load(self, pairs: Iterable[tuple[str, str]] | None = None) -> None: ...


class WhisperSpeechTranslation:
    """The pseudo-translator for Whisper's own speech→English task.

    It serves (src, "en") for each recognizer language but cannot translate text: its
    output is the recognizer's `translation_en`, passed to TranslationPlan.translate().
    """

    def __init__(self, languages: Iterable[str]) -> None:
        self._pairs = {(code, PIVOT) for code in languages if code != PIVOT}

    def pairs(self) -> set[tuple[str, str]]:
        return set(self._pairs)

    def translate(self, text: str, src: str, tgt: str) -> str:
        raise EngineError(
            "whisper translates speech, not text: pass the recognizer's translation_en "
            "to TranslationPlan.translate(english=...)"
        )

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Hop:
    """One translation step by one engine."""

    engine: str
    src: str
    tgt: str


@dataclass(frozen=True)
class Translation:
    """A translated text and the engine name(s) that made it."""

    text: str
    engine: str


@dataclass(frozen=True)
class TranslationPlan:
    """How one (src, tgt) pair is translated: zero (same language) or up to MAX_HOPS hops."""

    src: str
    tgt: str
    hops: tuple[Hop, ...]
    text_plan: TranslationPlan | None = None  # without Whisper, for text with no English
    translators: Mapping[str, Translator] = field(default_factory=dict, repr=False, compare=False)

    @property
    def engine(self) -> str:
        """Engine name(s) for events: "identity", "ct2+apertium via en", "apertium via es,en"."""
        if not self.hops:
            return "identity"
        names = list(dict.fromkeys(hop.engine for hop in self.hops))
        if len(self.hops) == 1:
            return names[0]
        return f"{'+'.join(names)} via {','.join(hop.tgt for hop in self.hops[:-1])}"

    @property
    def path(self) -> str:
        """The route hop by hop, e.g. "fr -apertium-> es -apertium-> en"."""
        if not self.hops:
            return f"{self.src} (same language)"
        return self.src + "".join(f" -{hop.engine}-> {hop.tgt}" for hop in self.hops)

    @property
    def uses_whisper(self) -> bool:
        """True when the first hop is Whisper's speech→English: pass `english=`."""
        return bool(self.hops) and self.hops[0].engine == WHISPER

    @property
    def serves_text(self) -> bool:
        """Whether text without a Whisper translation (a partial's) can be translated."""
        return not self.uses_whisper or self.text_plan is not None

    def translate(self, text: str, english: str | None = None) -> Translation:
        """Translate `text`; `english` is the recognizer's translation_en (Whisper plans).

        A Whisper plan without `english` falls back to `text_plan`, or raises EngineError
        if there is none. Blank text gives "" without calling an engine.
        """
        if self.uses_whisper and english is None:
            if self.text_plan is None:
                raise EngineError(
                    f"{self.src}->{self.tgt} is only served by whisper's speech translation, "
                    f"which this text does not have"
                )
            return self.text_plan.translate(text)
        if not text.strip():
            return Translation("", self.engine)
        current = text
        for index, hop in enumerate(self.hops):
            if index == 0 and hop.engine == WHISPER:
                current = english or ""
            elif current.strip():
                current = self.translators[hop.engine].translate(current, hop.src, hop.tgt)
        return Translation(current, self.engine)


@dataclass(frozen=True)
class Provider:
    """Something not in use that would add pairs to an engine: a catalogue bundle to install,
    a Debian Apertium package. `hint` is what to tell the user ("edged models install x")."""

    engine: str
    pairs: frozenset[tuple[str, str]]
    hint: str


@dataclass(frozen=True)
class MissingPair:
    """A (src, tgt) pair no route serves, and what would provide one (Provider hints)."""

    src: str
    tgt: str
    provides: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.src}->{self.tgt} ({self.hint})"

    @property
    def hint(self) -> str:
        """ "provided by `edged models install x` or ...", or that nothing provides it."""
        return _hint_text(self.provides)

    def to_json(self) -> dict[str, object]:
        """For the daemon's status: {"src", "tgt", "provides": [hints]}."""
        return {"src": self.src, "tgt": self.tgt, "provides": list(self.provides)}


@dataclass(frozen=True)
class Coverage:
    """What a set of sources x targets gets: the plans of the served pairs, the rest named."""

    plans: tuple[TranslationPlan, ...]
    unserved: tuple[MissingPair, ...]

    def warning(self, key: str = "mt.targets") -> str | None:
        """One line naming the unserved pairs and what would provide each; None if all served."""
        if not self.unserved:
            return None
        return (
            f"{key}: not translated, no route for {_group_by_hint(self.unserved)}; "
            f"the other pairs are served"
        )


class _PairsOnly:
    """A stand-in translator that only reports pairs: the router's what-if searches."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = set(pairs)

    def pairs(self) -> set[tuple[str, str]]:
        return set(self._pairs)

    def translate(self, text: str, src: str, tgt: str) -> str:
        raise EngineError("a what-if route cannot translate")

    def close(self) -> None:
        pass


_Key = tuple[int, tuple[int, ...], tuple[tuple[bool, str], ...]]


class Router:
    """Plans each language pair over the available translators in preference order.

    `translators` maps engine names ("ct2", "apertium", "whisper") to translators; `order`
    is the preference (config `mt.engines`); names in `order` without a translator are
    skipped (not installed), translators not in `order` are not used. `providers` are what
    could be installed, named in the MissingPair of a pair no route serves.
    """

    def __init__(
        self,
        translators: Mapping[str, Translator],
        order: Sequence[str],
        providers: Sequence[Provider] = (),
    ) -> None:
        self.translators = dict(translators)
        self.order = tuple(name for name in order if name in self.translators)
        self.missing = tuple(name for name in order if name not in self.translators)
        self.providers = tuple(providers)
        self._preference = tuple(order)
        self._rank = {name: index for index, name in enumerate(self.order)}
        # pairs() may read a directory or a catalogue: ask each engine once
        self._pairs = {name: frozenset(self.translators[name].pairs()) for name in self.order}
        # the most preferred text engine of each direct pair, by source language
        self._edges: dict[str, dict[str, str]] = {}
        for name in reversed(self.order):
            if name != WHISPER:
                for src, tgt in self._pairs[name]:
                    self._edges.setdefault(src, {})[tgt] = name
        self._whisper = self._pairs.get(WHISPER, frozenset())
        # Caches filled on first use, by the translation thread and the daemon's command
        # thread alike: each entry is computed whole and then stored in one assignment, so a
        # race costs at most one search twice, never a half-built plan.
        self._text_routes: dict[str, dict[str, tuple[Hop, ...]]] = {}
        self._plans: dict[tuple[str, str, bool], TranslationPlan | None] = {}
        self._what_if: list[Router] | None = None

    def find(self, src: str, tgt: str, *, whisper: bool = True) -> TranslationPlan | None:
        """The plan for (src, tgt), or None if no route exists."""
        key = (src, tgt, whisper)
        if key not in self._plans:
            self._plans[key] = self._search(src, tgt, whisper)
        return self._plans[key]

    def plan(
        self, src: str, tgt: str, *, whisper: bool = True, key: str = "mt.targets"
    ) -> TranslationPlan:
        """The plan for (src, tgt), or ConfigError naming the pair, `key` and what is installed."""
        found = self.find(src, tgt, whisper=whisper)
        if found is None:
            raise ConfigError(self._no_path_message([self.missing_pair(src, tgt)], key))
        return found

    def check(
        self, sources: Iterable[str], targets: Iterable[str], *, key: str = "mt.targets"
    ) -> list[TranslationPlan]:
        """Plan every source x target pair; one ConfigError listing all pairs without a path."""
        coverage = self._coverage(sources, targets)
        if coverage.unserved:
            raise ConfigError(self._no_path_message(list(coverage.unserved), key))
        return list(coverage.plans)

    def cover(
        self, sources: Iterable[str], targets: Iterable[str], *, key: str = "mt.targets"
    ) -> Coverage:
        """Plan every source x target pair that has a route and name the others.

        ConfigError only when some target is reached by no source candidate other than
        itself (a German speaker "translated" to German is no translation).
        """
        sources, targets = tuple(sources), tuple(targets)
        coverage = self._coverage(sources, targets)
        served = {plan.tgt for plan in coverage.plans if plan.hops}
        unreachable = [
            tgt for tgt in targets if tgt not in served and any(src != tgt for src in sources)
        ]
        if unreachable:
            pairs = [m for m in coverage.unserved if m.tgt in unreachable]
            raise ConfigError(self._no_path_message(pairs, key))
        return coverage

    def missing_pair(self, src: str, tgt: str) -> MissingPair:
        """(src, tgt) with the hints of the providers that would give it a route, best first
        (fewest hops once installed), at most three."""
        if self._what_if is None:
            self._what_if = [self._with(provider) for provider in self.providers]
        found = []
        for index, (provider, trial) in enumerate(zip(self.providers, self._what_if, strict=True)):
            plan = trial.find(src, tgt)
            if plan is not None:
                found.append((len(plan.hops), index, provider.hint))
        hints = tuple(dict.fromkeys(hint for *_, hint in sorted(found)))
        return MissingPair(src, tgt, hints[:3])

    def routes(
        self, sources: Iterable[str] | None = None, targets: Iterable[str] | None = None
    ) -> list[TranslationPlan]:
        """Every plan between different languages of `sources` x `targets` (default: every
        language any engine reads or writes), sorted by source then target."""
        known_sources = {src for pairs in self._pairs.values() for src, _ in pairs}
        known_targets = {tgt for pairs in self._pairs.values() for _, tgt in pairs}
        found = []
        for src in sorted(known_sources if sources is None else set(sources)):
            for tgt in sorted(known_targets if targets is None else set(targets)):
                plan = self.find(src, tgt) if src != tgt else None
                if plan is not None:
                    found.append(plan)
        return found

    def load(self, plans: Iterable[TranslationPlan]) -> None:
        """Load ahead of time the models that `plans` (and their text fallbacks) use."""
        wanted: dict[str, set[tuple[str, str]]] = {}
        for plan in plans:
            for each in (plan, plan.text_plan):
                for hop in each.hops if each else ():
                    wanted.setdefault(hop.engine, set()).add((hop.src, hop.tgt))
        for name, pairs in wanted.items():
            translator = self.translators[name]
            if isinstance(translator, Loadable):
                translator.load(sorted(pairs))

    def close(self) -> None:
        """Close every translator (each once)."""
        for translator in {id(t): t for t in self.translators.values()}.values():
            translator.close()

    # --- search ----------------------------------------------------------------------

    def _coverage(self, sources: Iterable[str], targets: Iterable[str]) -> Coverage:
        plans, unserved = [], []
        targets = tuple(targets)
        for src in sources:
            for tgt in targets:
                found = self.find(src, tgt)
                if found is None:
                    unserved.append(self.missing_pair(src, tgt))
                else:
                    plans.append(found)
        return Coverage(tuple(plans), tuple(unserved))

    def _search(self, src: str, tgt: str, whisper: bool) -> TranslationPlan | None:
        if src == tgt:
            return TranslationPlan(src, tgt, ())
        best = self._routes_from(src).get(tgt)
        spoken = self._whisper_route(src, tgt) if whisper else None
        if spoken is not None and (best is None or self._key(spoken) < self._key(best)):
            best = spoken
        if best is None:
            return None
        text_plan = self.find(src, tgt, whisper=False) if best[0].engine == WHISPER else None
        plan = TranslationPlan(src, tgt, best, text_plan, self.translators)
        log.debug("plan %s: %s", f"{src}->{tgt}", plan.path)
        return plan

    def _routes_from(self, src: str) -> dict[str, tuple[Hop, ...]]:
        """The best text route from `src` to every language it reaches (breadth first: on a
        shortest route every prefix is a shortest route, and the key keeps its order when
        both routes it compares grow by the same hop)."""
        if src in self._text_routes:
            return self._text_routes[src]
        best: dict[str, tuple[Hop, ...]] = {src: ()}
        frontier = [src]
        for _ in range(MAX_HOPS):
            layer: dict[str, tuple[Hop, ...]] = {}
            for lang in frontier:
                for nxt, engine in self._edges.get(lang, {}).items():
                    if nxt in best:
                        continue
                    route = (*best[lang], Hop(engine, lang, nxt))
                    if nxt not in layer or self._key(route) < self._key(layer[nxt]):
                        layer[nxt] = route
            best.update(layer)
            frontier = sorted(layer)
        del best[src]
        self._text_routes[src] = best
        return best

    def _whisper_route(self, src: str, tgt: str) -> tuple[Hop, ...] | None:
        """Whisper's speech->English then the best text route on, if any."""
        if (src, PIVOT) not in self._whisper:
            return None
        onward = () if tgt == PIVOT else self._routes_from(PIVOT).get(tgt)
        if onward is None or 1 + len(onward) > MAX_HOPS:
            return None
        return (Hop(WHISPER, src, PIVOT), *onward)

    def _key(self, route: tuple[Hop, ...]) -> _Key:
        """Ranking of a route: hops, then engine ranks worst first, then pivots (en first)."""
        ranks = tuple(sorted((self._rank[hop.engine] for hop in route), reverse=True))
        pivots = tuple((hop.tgt != PIVOT, hop.tgt) for hop in route[:-1])
        return (len(route), ranks, pivots)

    def _with(self, provider: Provider) -> Router:
        """This router as it would be with `provider` installed (for hints only)."""
        translators: dict[str, Translator] = dict(self.translators)
        present = self._pairs.get(provider.engine, frozenset())
        translators[provider.engine] = _PairsOnly(present | provider.pairs)
        order = self._preference
        if provider.engine not in order:  # its hint says to add it; last, as a fallback
            order = (*order, provider.engine)
        return Router(translators, order)

    def _no_path_message(self, pairs: list[MissingPair], key: str) -> str:
        installed = (
            "; ".join(f"{name}: {_pair_list(self._pairs[name])}" for name in self.order)
            or "no translator"
        )
        absent = f"; not available: {', '.join(self.missing)}" if self.missing else ""
        return (
            f"{key}: no translation path for {_group_by_hint(pairs)}; installed: "
            f"{installed}{absent}. Install what is named, or change {key}"
        )


def _hint_text(provides: Sequence[str]) -> str:
    if not provides:
        return "no catalogue bundle or Debian Apertium package provides it"
    return "provided by " + " or ".join(provides)


def _group_by_hint(pairs: Iterable[MissingPair]) -> str:
    """ "en->de, fr->de (provided by x); ca->de (...)": pairs sharing hints named once."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for pair in pairs:
        groups.setdefault(pair.provides, []).append(f"{pair.src}->{pair.tgt}")
    return "; ".join(f"{', '.join(names)} ({_hint_text(hints)})" for hints, names in groups.items())


def _pair_list(pairs: Iterable[tuple[str, str]]) -> str:
    ordered = sorted(pairs)
    if not ordered:
        return "none"
    if len(ordered) > 10:
        return f"{len(ordered)} pairs incl. " + ", ".join(f"{s}->{t}" for s, t in ordered[:6])
    return ", ".join(f"{s}->{t}" for s, t in ordered)
