"""Local agreement: which words of a re-decoded, still-growing utterance are stable.

A word becomes stable once `n` consecutive hypotheses agree on it and on every word
before it (LocalAgreement-n of Machacek et al., 2023). Stable words are never retracted,
so interim translations and subscribers can rely on them.
"""

from __future__ import annotations

from collections import deque


def word_key(word: str) -> str:
    """Compare words without case or trailing punctuation: Whisper often changes both
    as more audio arrives ("tried," -> "tried.")."""
    return word.strip(".,!?;:¿¡\"'").casefold()


class LocalAgreement:
    """Feeds word hypotheses in, gives the committed (stable) prefix out."""

    def __init__(self, n: int = 2) -> None:
        if n < 2:
            raise ValueError("local agreement needs n >= 2 hypotheses")
        self._history: deque[list[str]] = deque(maxlen=n - 1)
        self._n = n
        self.committed: list[str] = []

    def update(self, words: list[str]) -> list[str]:
        """Add a hypothesis of the whole utterance; return the committed words so far."""
        if len(self._history) == self._n - 1:
            agreed = len(words)
            for previous in self._history:
                agreed = min(agreed, _common_prefix(previous, words))
            if agreed > len(self.committed) and _common_prefix(self.committed, words) == len(
                self.committed
            ):
                # Keep the latest spelling (it has seen the most audio).
                self.committed = self.committed + words[len(self.committed) : agreed]
        self._history.append(words)
        return list(self.committed)

    def reset(self) -> None:
        self._history.clear()
        self.committed = []


def _common_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if word_key(x) != word_key(y):
            break
        count += 1
    return count
