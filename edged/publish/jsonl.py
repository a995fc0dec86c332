"""Events as JSON Lines on a text stream (stdout) or a file."""

from __future__ import annotations

import threading
from typing import TextIO

from edged.events import Event


class JsonlPublisher:
    """Writes one JSON object per line and flushes, so a reader sees events as they happen."""

    def __init__(self, stream: TextIO, interim: bool = True, owns_stream: bool = False) -> None:
        self._stream = stream
        self._interim = interim
        self._owns = owns_stream
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        if not self._interim and event.type in ("asr.partial", "mt.interim"):
            return
        with self._lock:
            self._stream.write(event.to_json() + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._owns:
            self._stream.close()
