"""The one event bus: events are numbered under its lock and handed to each publisher by
that publisher's own dispatcher thread, so no stage ever waits on a socket or a disk sync.

Numbering belongs to the process, not to a pipeline: a `Session` has an id that is new
with every process start, and utterance numbers and the audio timeline continue across
config reloads, so `(device, session, utt, seq, type, tgt)` is unique for subscribers.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from edged.events import Event
from edged.publish import Publisher

log = logging.getLogger(__name__)


class Session:
    """Process-wide numbering: a random id, the utterance counter and the timeline offset."""

    def __init__(self, session_id: str | None = None) -> None:
        self.id = session_id or secrets.token_hex(4)
        self._utt = 0
        self._lock = threading.Lock()
        self.time_offset = 0.0  # audio seconds of the generations before the current one

    def next_utt(self) -> int:
        with self._lock:
            self._utt += 1
            return self._utt

    @property
    def utterances(self) -> int:
        return self._utt


class Borrowed:
    """A publisher the bus delivers to but does not close: its owner outlives the bus (the
    live page of `edged translate --serve` keeps serving after the recording)."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.name = type(publisher).__name__

    def publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def close(self) -> None:
        pass


class Outlet:
    """One publisher's queue and dispatcher thread.

    Policy when the publisher falls behind: the queue holds `limit` events; past that an
    interim event (partial, interim translation, tts) is dropped and counted, and a final
    makes room by dropping the oldest interim; finals are never dropped and never wait
    (finals come a few per utterance, so the queue cannot grow without bound).
    """

    def __init__(self, publisher: Publisher, limit: int = 500) -> None:
        self.publisher = publisher
        self.name = getattr(publisher, "name", type(publisher).__name__)
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._limit = limit
        self._closing = False
        self.dropped = 0
        self.delivered = 0
        self._busy = False
        self._thread = threading.Thread(
            target=self._run, name=f"edged-pub-{self.name}", daemon=True
        )
        self._thread.start()

    def offer(self, event: Event) -> None:
        with self._cond:
            if len(self._queue) >= self._limit:
                if not event.is_final:
                    self.dropped += 1
                    return
                for i, queued in enumerate(self._queue):
                    if not queued.is_final:
                        del self._queue[i]
                        self.dropped += 1
                        break
            self._queue.append(event)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def drain(self, timeout: float) -> bool:
        """Wait until everything offered so far was delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float) -> None:
        """Deliver what is queued (bounded), stop the thread, close the publisher."""
        if not self.drain(timeout):
            log.warning("%s: %d events not delivered at close", self.name, self.pending)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        self.publisher.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
                self._busy = True
            try:
                self.publisher.publish(event)
            except Exception:
                log.exception("publisher %s failed on %s", self.name, event.type)
            with self._cond:
                self._busy = False
                self.delivered += 1
                self._cond.notify_all()


class EventBus:
    """Numbers events (`seq` within an utterance, the session id) and offers each, in order,
    to every attached publisher's outlet. emit() never blocks on a publisher."""

    def __init__(
        self, device: str, publishers: Iterable[Publisher] = (), session: Session | None = None
    ) -> None:
        self.device = device
        self.session = session or Session()
        self._lock = threading.Lock()
        self._seq: dict[int, int] = {}
        self._outlets: list[Outlet] = []
        self._observers: list[Callable[[Event], None]] = []
        self.counts: dict[str, int] = {}
        for publisher in publishers:
            self.attach(publisher)

    def attach(self, publisher: Publisher) -> None:
        with self._lock:
            self._outlets.append(Outlet(publisher))

    def observe(self, observer: Callable[[Event], None]) -> None:
        """Call `observer(event)` inside emit(), on the stage's own thread, as the event is
        numbered: for measurement only (the benchmark's clock, which must see a tts.start
        before the audio it announces reaches the sink). It must return at once."""
        with self._lock:
            self._observers.append(observer)

    def detach(self, publisher: Publisher, timeout: float = 5.0) -> None:
        """Deliver what `publisher` has queued (bounded), then close it."""
        with self._lock:
            outlet = next((o for o in self._outlets if o.publisher is publisher), None)
            if outlet is None:
                return
            self._outlets.remove(outlet)
        outlet.close(timeout)

    def emit(self, event: Event) -> Event:
        with self._lock:
            seq = self._seq.get(event.utt, 0) + 1
            self._seq[event.utt] = seq
            if len(self._seq) > 64:  # utterances long finished
                del self._seq[min(self._seq)]
            event = dataclasses.replace(event, seq=seq, session=self.session.id)
            self.counts[event.type] = self.counts.get(event.type, 0) + 1
            for observe in self._observers:
                observe(event)
            for outlet in self._outlets:
                outlet.offer(event)
        return event

    def drain(self, timeout: float) -> bool:
        """Wait until every publisher has been handed everything emitted so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            outlets = list(self._outlets)
        return all(o.drain(max(0.0, deadline - time.monotonic())) for o in outlets)

    @property
    def dropped(self) -> dict[str, int]:
        """Interim events each slow publisher lost (latest-wins policy of its outlet)."""
        with self._lock:
            return {o.name: o.dropped for o in self._outlets if o.dropped}

    def close(self, timeout: float = 5.0) -> None:
        """Deliver everything (bounded) and close every publisher."""
        with self._lock:
            outlets, self._outlets = self._outlets, []
        deadline = time.monotonic() + timeout
        for outlet in outlets:
            outlet.close(max(0.0, deadline - time.monotonic()))
