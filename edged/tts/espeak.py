"""libespeak-ng through ctypes (phonemes for Piper voices) and its own formant voice.

The formant voice is the fallback synthesizer for the ~100 languages without a neural
voice. It runs in-process through espeak_Synth rather than the `espeak-ng --stdout` CLI:
the PyPI espeak-ng bundle the model store installs ships the library and its data but no
executable, and a process per sentence costs more than the synthesis itself on a Pi. The
price of in-process use is libespeak-ng's global state, handled by EspeakLibrary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from edged.errors import ConfigError, EngineError, ModelError

log = logging.getLogger(__name__)

LIBRARY_FILE = "libespeak-ng.so.1"
DATA_DIR = "espeak-ng-data"
_DATA_FILES = ("phontab", "phondata", "phonindex", "intonations")

# speak_lib.h constants (stable since espeak 1.48).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a bad data dir calls exit() inside the library
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE = 1
_EE_OK = 0
_DEFAULT_RATE_WPM = 175

# ISO 639-1 codes whose espeak-ng default dialect is not the one edged wants: Piper's default
# English voice is American, and "zh" has no voice of its own name.
DEFAULT_VOICE_OVERRIDES: Mapping[str, str] = {"en": "en-us", "zh": "cmn"}

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated tag)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


@dataclass(frozen=True)
class EspeakVoice:
    """One voice of the data directory: its name for espeak_SetVoiceByName and language tags."""

    name: str
    identifier: str
    languages: tuple[tuple[int, str], ...]  # (priority, tag); a lower priority is preferred


@dataclass(frozen=True)
class Clause:
    """One clause as espeak-ng cut it: the source text it covers and its IPA phonemes."""

    text: str
    phonemes: str


class EspeakLibrary:
    """libespeak-ng loaded from `library` (default: the system's) with data from `data_dir`.

    libespeak-ng keeps everything (data directory, voice, rate, synth callback, even a
    look-ahead character between TextToPhonemes calls) in process globals. So every call
    from every instance runs under one class-wide lock and first sets what it needs; an
    instance whose data directory is not the one the library was last initialised with
    re-initialises it (well under a millisecond). The lock and the record of each loaded
    library's data directory are class-level (process-wide) on purpose: the state they
    guard is the C library's, which is process-wide too.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _current_data: ClassVar[dict[str, str | None]] = {}  # library handle key -> data dir

    def __init__(self, library: Path | None = None, data_dir: Path | None = None) -> None:
        if data_dir is not None:
            _check_data_dir(data_dir)
        self._data = str(data_dir) if data_dir is not None else None
        self._lib, self._key = _load(library)
        _declare(self._lib)
        self._voices: list[EspeakVoice] | None = None
        with self._lock:
            self.sample_rate = self._ensure_initialised()

    @classmethod
    def from_bundle(cls, bundle_dir: Path) -> EspeakLibrary:
        """The library and data of an installed espeak-ng bundle (libespeak-ng.so.1, data dir)."""
        library = bundle_dir / LIBRARY_FILE
        if not library.is_file():
            raise ModelError(
                f"{library}: missing; run `edged models install default` to reinstall espeak-ng"
            )
        return cls(library, bundle_dir / DATA_DIR)

    def clauses(self, text: str, voice: str) -> list[Clause]:
        """Cut text into clauses the way espeak-ng does and give each one's IPA phonemes."""
        encoded = text.replace("\0", " ").encode("utf-8", errors="replace")
        if not encoded.strip():
            return []
        buffer = ctypes.create_string_buffer(encoded)
        base = ctypes.addressof(buffer)
        cursor = ctypes.c_void_p(base)
        result: list[Clause] = []
        start = 0
        with self._lock:
            self._ensure_initialised()
            self._set_voice(voice)
            while cursor.value is not None:
                raw = self._lib.espeak_TextToPhonemes(
                    ctypes.byref(cursor), _CHARS_UTF8, _PHONEMES_IPA
                )
                end = len(encoded) if cursor.value is None else cursor.value - base
                # espeak-ng reads one character past the clause and keeps it for the next call.
                if cursor.value is not None:
                    end = _start_of_last_char(encoded, end)
                phonemes = raw.decode("utf-8", errors="replace") if raw else ""
                source = encoded[start:end].decode("utf-8", errors="replace")
                result.append(Clause(source, phonemes))
                start = end
        return result

    def synthesize(self, text: str, voice: str, rate_wpm: int = _DEFAULT_RATE_WPM) -> np.ndarray:
        """Speak text with espeak-ng's formant voice: int16 samples at sample_rate."""
        encoded = text.replace("\0", " ").encode("utf-8", errors="replace")
        pieces: list[np.ndarray] = []

        def collect(wav: ctypes._Pointer, count: int, _events: int) -> int:
            if count > 0:
                pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0  # 0 = continue

        callback = _SynthCallback(collect)  # must stay referenced until espeak_Synth returns
        with self._lock:
            self._ensure_initialised()
            self._set_voice(voice)
            self._lib.espeak_SetSynthCallback(callback)
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
            status = self._lib.espeak_Synth(
                encoded,
                len(encoded) + 1,
                0,
                _POS_CHARACTER,
                0,
                _CHARS_UTF8 | _ENDPAUSE,
                None,
                None,
            )
        if status != _EE_OK:
            raise EngineError(f"espeak-ng failed to speak {text[:40]!r} (status {status})")
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(pieces)

    def voices(self) -> list[EspeakVoice]:
        """Every voice in the data directory except MBROLA ones (they need extra files)."""
        if self._voices is None:
            with self._lock:
                self._ensure_initialised()
                self._voices = _list_voices(self._lib)
        return self._voices

    def _ensure_initialised(self) -> int:
        if self._key in self._current_data and self._current_data[self._key] == self._data:
            return int(self._lib.espeak_ng_GetSampleRate())
        data = self._data.encode() if self._data is not None else None
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise ModelError(
                f"espeak-ng could not load its data from {self._data or 'the default location'}"
                " (install Debian espeak-ng-data or run `edged models install default`)"
            )
        self._current_data[self._key] = self._data
        return int(rate)

    def _set_voice(self, voice: str) -> None:
        status = self._lib.espeak_SetVoiceByName(voice.encode("utf-8"))
        if status != _EE_OK:
            raise ConfigError(
                f"espeak-ng has no voice {voice!r} in {self._data or 'its default data'}"
            )


class EspeakSynthesizer:
    """espeak-ng's formant voice: intelligible, robotic, ~100 languages; edged's fallback."""

    def __init__(
        self,
        espeak: EspeakLibrary | None = None,
        *,
        speed: float = 1.0,
        voices: Mapping[str, str] | None = None,
    ) -> None:
        if not 0.25 <= speed <= 4.0:
            raise ConfigError(f"tts speed {speed}: allowed range is 0.25 to 4.0")
        self._espeak = espeak if espeak is not None else EspeakLibrary()
        self._rate = round(_DEFAULT_RATE_WPM * speed)
        self._voice_for = voice_table(self._espeak.voices(), voices or DEFAULT_VOICE_OVERRIDES)
        self.sample_rate = self._espeak.sample_rate

    def languages(self) -> set[str]:
        return set(self._voice_for)

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        """Yield float32 audio at sample_rate, one sentence (as espeak-ng cuts them) at a time."""
        voice = self.voice(lang)
        for sentence in sentences_of(self._espeak.clauses(text, voice)):
            samples = self._espeak.synthesize(sentence, voice, self._rate)
            if len(samples):
                yield samples.astype(np.float32) / 32768.0

    def voice(self, lang: str) -> str:
        """The espeak-ng voice name used for an ISO 639 language code."""
        try:
            return self._voice_for[lang.lower()]
        except KeyError:
            raise ConfigError(
                f"language {lang!r}: espeak-ng has no voice for it; "
                f"known: {', '.join(sorted(self._voice_for))}"
            ) from None


def voice_table(voices: list[EspeakVoice], overrides: Mapping[str, str]) -> dict[str, str]:
    """Map each plain language tag (no region) to the voice that claims it most strongly."""
    best: dict[str, tuple[int, str]] = {}
    for voice in voices:
        for priority, tag in voice.languages:
            if "-" in tag:
                continue
            if tag not in best or priority < best[tag][0]:
                best[tag] = (priority, voice.name)
    table = {tag: name for tag, (_, name) in best.items()}
    known = {v.name.lower() for v in voices}
    for lang, name in overrides.items():
        if name.lower() in known:
            table[lang] = name
    return table


_SENTENCE_ENDS = frozenset(".?!\u3002\uff1f\uff01")  # with ideographic/full-width forms
_CLOSERS = "\"'\u00bb\u201d\u2019)]}"  # closing quotes and brackets after the punctuation


def sentences_of(clauses: list[Clause]) -> Iterator[str]:
    """Join espeak-ng's clauses back into sentences (a clause ending in . ? ! ends one)."""
    current = ""
    for clause in clauses:
        current += clause.text
        if clause_terminator(clause.text) in _SENTENCE_ENDS:
            if current.strip():
                yield current.strip()
            current = ""
    if current.strip():
        yield current.strip()


def clause_terminator(clause_text: str) -> str:
    """The punctuation that ended a clause ('' if espeak-ng cut it for another reason)."""
    tail = clause_text.rstrip().rstrip(_CLOSERS).rstrip()
    if tail.endswith(("..", "…")):
        return "…"  # espeak-ng reads "..." as an ellipsis: a pause, not a sentence end
    return tail[-1] if tail else ""


def _start_of_last_char(encoded: bytes, end: int) -> int:
    # Step back over UTF-8 continuation bytes (10xxxxxx) to the look-ahead character's start.
    pos = end - 1
    while pos > 0 and encoded[pos] & 0xC0 == 0x80:
        pos -= 1
    return max(pos, 0)


def _check_data_dir(data_dir: Path) -> None:
    missing = [name for name in _DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        raise ModelError(
            f"{data_dir}: not an espeak-ng data directory (missing {', '.join(missing)}); "
            "run `edged models install default`"
        )


def _load(library: Path | None) -> tuple[ctypes.CDLL, str]:
    if library is not None:
        if not library.is_file():
            raise ModelError(f"{library}: missing; run `edged models install default`")
        path = str(library.resolve())
    else:
        found = ctypes.util.find_library("espeak-ng")
        if found is None:
            raise ModelError(
                "libespeak-ng not found: install Debian espeak-ng or run "
                "`edged models install default` and point tts at its espeak-ng bundle"
            )
        path = found
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot load libespeak-ng ({exc})") from exc
    # The same file opened twice is one library with one global state: key on the handle.
    return lib, str(lib._handle)


def _declare(lib: ctypes.CDLL) -> None:
    signatures: dict[str, tuple[list[type] | None, type | None]] = {
        "espeak_Initialize": (
            [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int],
            ctypes.c_int,
        ),
        "espeak_ng_GetSampleRate": ([], ctypes.c_int),
        "espeak_SetVoiceByName": ([ctypes.c_char_p], ctypes.c_int),
        "espeak_TextToPhonemes": (
            [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int],
            ctypes.c_char_p,
        ),
        "espeak_SetSynthCallback": ([_SynthCallback], None),
        "espeak_SetParameter": ([ctypes.c_int, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "espeak_Synth": (
            [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ],
            ctypes.c_int,
        ),
        "espeak_ListVoices": ([ctypes.c_void_p], ctypes.POINTER(ctypes.POINTER(_Voice))),
    }
    for name, (argtypes, restype) in signatures.items():
        func: Callable[..., object] = getattr(lib, name)
        func.argtypes = argtypes  # type: ignore[attr-defined]
        func.restype = restype  # type: ignore[attr-defined]


def _list_voices(lib: ctypes.CDLL) -> list[EspeakVoice]:
    array = lib.espeak_ListVoices(None)
    voices: list[EspeakVoice] = []
    index = 0
    while array[index]:
        raw = array[index].contents
        index += 1
        identifier = (raw.identifier or b"").decode("utf-8", errors="replace")
        if identifier.startswith("mb/"):
            continue
        languages: list[tuple[int, str]] = []
        pos = raw.languages
        while pos:
            priority = ctypes.string_at(pos, 1)[0]
            if priority == 0:
                break
            tag = ctypes.string_at(pos + 1)
            languages.append((priority, tag.decode("utf-8", errors="replace").lower()))
            pos += 2 + len(tag)
        # SetVoiceByName matches the file name, so name the voice by its identifier's last part.
        voices.append(EspeakVoice(identifier.rsplit("/", 1)[-1], identifier, tuple(languages)))
    return voices
