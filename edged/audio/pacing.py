"""Pacing of file and stdin sources so they deliver audio as a microphone would."""

from __future__ import annotations

import threading
import time

from edged.audio import SAMPLE_RATE


class Pacer:
    """Holds a source back until its samples would have been captured live.

    Waiting is on a stop Event, so close() from another thread ends a paced source at once.
    """

    def __init__(self, realtime: bool) -> None:
        self._realtime = realtime
        self._stopped = threading.Event()
        self._origin = time.monotonic()

    def start(self) -> None:
        self._origin = time.monotonic()

    def wait_until(self, sample_index: int) -> bool:
        """Block until `sample_index` samples are due; False once stopped."""
        if self._realtime:
            delay = self._origin + sample_index / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                return not self._stopped.wait(delay)
        return not self._stopped.is_set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
