"""Choosing how to translate each (source, target) pair, once, before any model loads.

The router holds the available translators by engine name and a preference order (config
`mt.engines`). For a pair it returns a TranslationPlan: nothing to do when the languages are
equal; else the first engine in order with a direct pair; else two hops through English
(each hop the first engine serving it, so engines may mix); else a ConfigError naming the
pair and what is installed.

Whisper's speech→English task is a pseudo-engine (`WhisperSpeechTranslation`, name
"whisper"): it offers (src, "en") for the recognizer's languages and is planned like any
other engine, but its text comes from the recognizer, which decodes the final's audio with
the translate task (`Hypothesis.translation_en`). The caller hands that text to
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

PIVOT = "en"
WHISPER = "whisper"


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
    """How one (src, tgt) pair is translated: zero (same language), one or two hops."""

    src: str
    tgt: str
    hops: tuple[Hop, ...]
    text_plan: TranslationPlan | None = None  # without Whisper, for text with no English
    translators: Mapping[str, Translator] = field(default_factory=dict, repr=False, compare=False)

    @property
    def engine(self) -> str:
        """Engine name(s) for events: "identity", "apertium", "ct2+apertium via en", ..."""
        if not self.hops:
            return "identity"
        names = list(dict.fromkeys(hop.engine for hop in self.hops))
        if len(self.hops) == 1:
            return names[0]
        return f"{'+'.join(names)} via {self.hops[0].tgt}"

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


class Router:
    """Plans each language pair over the available translators in preference order.

    `translators` maps engine names ("ct2", "apertium", "whisper") to translators; `order`
    is the preference (config `mt.engines`); names in `order` without a translator are
    skipped (not installed), translators not in `order` are not used.
    """

    def __init__(self, translators: Mapping[str, Translator], order: Sequence[str]) -> None:
        self.translators = dict(translators)
        self.order = tuple(name for name in order if name in self.translators)
        self.missing = tuple(name for name in order if name not in self.translators)
        # pairs() may read a directory or a catalogue: ask each engine once
        self._pairs = {name: frozenset(self.translators[name].pairs()) for name in self.order}
        self._plans: dict[tuple[str, str, bool], TranslationPlan | None] = {}

    def find(self, src: str, tgt: str, *, whisper: bool = True) -> TranslationPlan | None:
        """The plan for (src, tgt), or None if no engine path exists."""
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
            raise ConfigError(self._no_path_message([(src, tgt)], key))
        return found

    def check(
        self, sources: Iterable[str], targets: Iterable[str], *, key: str = "mt.targets"
    ) -> list[TranslationPlan]:
        """Plan every source x target pair; one ConfigError listing all pairs without a path."""
        plans, missing = [], []
        for src in sources:
            for tgt in targets:
                found = self.find(src, tgt)
                if found is None:
                    missing.append((src, tgt))
                else:
                    plans.append(found)
        if missing:
            raise ConfigError(self._no_path_message(missing, key))
        return plans

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

    def _serving(self, src: str, tgt: str, whisper: bool) -> str | None:
        for name in self.order:
            if name == WHISPER and not whisper:
                continue
            if (src, tgt) in self._pairs[name]:
                return name
        return None

    def _search(self, src: str, tgt: str, whisper: bool) -> TranslationPlan | None:
        if src == tgt:
            return TranslationPlan(src, tgt, ())
        hops: tuple[Hop, ...] | None = None
        direct = self._serving(src, tgt, whisper)
        if direct is not None:
            hops = (Hop(direct, src, tgt),)
        elif PIVOT not in (src, tgt):
            first = self._serving(src, PIVOT, whisper)
            # Whisper only translates the speech itself, so it can only be the first hop
            second = self._serving(PIVOT, tgt, whisper=False)
            if first is not None and second is not None:
                hops = (Hop(first, src, PIVOT), Hop(second, PIVOT, tgt))
        if hops is None:
            return None
        text_plan = self.find(src, tgt, whisper=False) if hops[0].engine == WHISPER else None
        plan = TranslationPlan(src, tgt, hops, text_plan, self.translators)
        log.debug("plan %s->%s: %s", src, tgt, plan.engine)
        return plan

    def _no_path_message(self, pairs: list[tuple[str, str]], key: str) -> str:
        wanted = ", ".join(f"{s}->{t}" for s, t in pairs)
        installed = (
            "; ".join(f"{name}: {_pair_list(self._pairs[name])}" for name in self.order)
            or "no translator"
        )
        absent = f"; not available: {', '.join(self.missing)}" if self.missing else ""
        return (
            f"{key}: no translation path for {wanted} (direct or through {PIVOT}); "
            f"installed: {installed}{absent}. Install a model for the pair "
            f"(`edged models list`) or an Apertium package, or change {key}"
        )


def _pair_list(pairs: Iterable[tuple[str, str]]) -> str:
    ordered = sorted(pairs)
    if not ordered:
        return "none"
    if len(ordered) > 10:
        return f"{len(ordered)} pairs incl. " + ", ".join(f"{s}->{t}" for s, t in ordered[:6])
    return ", ".join(f"{s}->{t}" for s, t in ordered)
