"""espeak-ng IPA phonemes for Piper voices, cut into sentences the way Piper cuts them.

Piper's phonemizer (piper-phonemize) asks espeak-ng for one clause at a time with
espeak_TextToPhonemesWithTerminator and re-inserts the clause's punctuation, which the
voices were trained to hear. That function exists only in Piper's fork of espeak-ng; the
stock library (Debian, PyPI espeakng-loader) has espeak_TextToPhonemes, so the terminator
is read back from the source text of the clause instead (EspeakLibrary.clauses).
"""

from __future__ import annotations

import re
import unicodedata

from edged.tts.espeak import EspeakLibrary, clause_terminator

# What Piper appends after a clause, by the punctuation espeak-ng ended it with. Sentence
# ends (. ? !) close the sentence; the others continue it after a space. Full-width forms
# end clauses in espeak-ng too and map to the symbols the voices know.
_PUNCTUATION = {
    **dict.fromkeys(".\u3002\uff0e", "."),  # also ideographic and full-width stops
    **dict.fromkeys("?\uff1f", "?"),
    **dict.fromkeys("!\uff01", "!"),
    **dict.fromkeys(",\uff0c\u3001", ", "),
    **dict.fromkeys(":\uff1a", ": "),
    # en and em dashes: espeak-ng gives them a semicolon's clause type
    **dict.fromkeys(";\uff1b\u2013\u2014", "; "),
}
# An ellipsis ("…") ends a clause with a flag that makes Piper append nothing.
_SENTENCE_END = frozenset(".?!")
# A longer sentence (phoneme symbols, ~3.5 s of speech) is cut between clauses, and a
# longer clause between words: onnxruntime's arena keeps the peak of the longest call
# (~30 MB a second of audio; a 17 s sentence of commas raised the process's RSS by 320 MB,
# the bench's translations +178 MB at 80 symbols and +106 MB at 50); a shorter piece also
# starts playing sooner.
MAX_SYMBOLS = 50
# The first piece of a text is also cut at its first clause break (", " ": " "; ") once it
# holds this many symbols (~1 s of speech): Piper's time grows with the piece, and the
# listener hears the first clause while the rest is synthesized. Shorter first clauses
# ("Yes, ...", "Très bien, ...") stay with their sentence.
FIRST_SYMBOLS = 20
_CLAUSE_BREAKS = frozenset((", ", ": ", "; "))

# espeak-ng wraps words it reads with another language's rules in "(en)...(fr)"; Piper drops
# these flags (piper-phonemize keepLanguageFlags=false).
_LANGUAGE_FLAG = re.compile(r"\([^()]*\)")


class Phonemizer:
    """Text to Piper-style phoneme sentences (NFD-normalised IPA, punctuation kept)."""

    def __init__(self, espeak: EspeakLibrary | None = None) -> None:
        self._espeak = espeak if espeak is not None else EspeakLibrary()

    def phonemize(self, text: str, voice: str) -> list[str]:
        """One phoneme string per sentence of text (a long one cut between clauses, see
        MAX_SYMBOLS, and the first at its first clause break, see FIRST_SYMBOLS); [] for
        empty or whitespace-only text."""
        sentences: list[str] = []
        current = ""
        clauses = self._espeak.clauses(text, voice)
        for index, clause in enumerate(clauses):
            phonemes = _LANGUAGE_FLAG.sub("", unicodedata.normalize("NFD", clause.phonemes))
            if current and len(current) + len(phonemes) > MAX_SYMBOLS:
                _keep(sentences, current)
                current = ""
            current += phonemes
            ending = _PUNCTUATION.get(clause_terminator(clause.text), "")
            if ending:
                current += ending
            elif index + 1 < len(clauses) and current and not current.endswith(" "):
                # Cut for length or at a paragraph break: Piper would run the words together.
                current += " "
            if ending.strip() in _SENTENCE_END or (
                not sentences
                and ending in _CLAUSE_BREAKS
                and len(current) >= FIRST_SYMBOLS
                and index + 1 < len(clauses)
            ):
                _keep(sentences, current)
                current = ""
        _keep(sentences, current)
        return sentences


def codepoints(sentence: str) -> list[int]:
    """A phoneme sentence as the code point list sherpa-onnx's phoneme_codepoints takes."""
    return [ord(symbol) for symbol in sentence]


def _keep(sentences: list[str], sentence: str) -> None:
    # A sentence of punctuation alone ("...", "?!") would come out as a click.
    sentence = sentence.rstrip(" ")
    for piece in _word_cuts(sentence):
        if any(symbol.isalpha() for symbol in piece):
            sentences.append(piece)


def _word_cuts(sentence: str) -> list[str]:
    """A clause longer than MAX_SYMBOLS cut between words into near-equal pieces: memory is
    bounded by the longest piece, and equal ones keep the rhythm better than a short tail."""
    if len(sentence) <= MAX_SYMBOLS:
        return [sentence]
    parts = -(-len(sentence) // MAX_SYMBOLS)
    spaces = [i for i, symbol in enumerate(sentence) if symbol == " "]
    pieces: list[str] = []
    start = 0
    for k in range(1, parts):
        target = k * len(sentence) / parts
        later = [i for i in spaces if i > start]
        if not later:
            break
        cut = min(later, key=lambda i: abs(i - target))
        pieces.append(sentence[start:cut])
        start = cut + 1
    pieces.append(sentence[start:])
    return [piece for piece in (p.strip(" ") for p in pieces) if piece]
