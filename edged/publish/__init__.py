"""Publishers: where events leave the device (JSON Lines, MQTT)."""

from __future__ import annotations

from typing import Protocol

from edged.events import Event


class Publisher(Protocol):
    """Receives every event in order; must not block the pipeline for long."""

    def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...
