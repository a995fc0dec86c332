"""Speech synthesizers: text in a language to mono float32 audio."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class Synthesizer(Protocol):
    """Speaks text in the languages it reports, sentence by sentence."""

    sample_rate: int

    def languages(self) -> set[str]: ...

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at `sample_rate`, one sentence at a time."""
        ...
