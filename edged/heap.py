"""Handing freed heap memory back to the system.

glibc keeps what the engines free (Whisper's encoder activations of a long window, a
synthesized sentence's buffers) in its arenas, so the daemon's resident memory only ever
grows to its worst moment and stays there; malloc_trim(0) returns the free pages.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc (musl, macOS): nothing to do
    return getattr(libc, "malloc_trim", None)


_TRIM = _malloc_trim()


def trim() -> None:
    """Return free heap pages to the system (about a millisecond; once per utterance)."""
    if _TRIM is not None:
        _TRIM(0)
