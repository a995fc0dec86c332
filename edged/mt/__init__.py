"""Text translators and the router that picks one per language pair."""

from __future__ import annotations

from typing import Protocol


class Translator(Protocol):
    """Translates text between the language pairs it reports."""

    def pairs(self) -> set[tuple[str, str]]: ...

    def translate(self, text: str, src: str, tgt: str) -> str: ...

    def close(self) -> None: ...
