"""Push-to-talk buttons on GPIO lines: libgpiod v2 (Python `gpiod` >= 2) edge events,
debounced, turned into press and release callbacks.

`LineReader` is the small interface the watcher needs (tests drive a scripted one);
`GpiodLines` implements it on a real chip: both edges, pull-up bias, active-low by default
(a button that connects the pin to ground), and the kernel's own debounce where it has one.
`ButtonWatcher` runs one thread, `edged-gpio`, and debounces again in software from the
events' kernel timestamps, so contact bounce never gives two presses.

With active-low lines the kernel reports edges of the logical value: a press (the pin pulled
to ground) is a RISING edge (Linux, Documentation/userspace-api/gpio/gpio-v2-line-event-read).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Protocol

from edged.errors import ConfigError, EdgedError

log = logging.getLogger(__name__)

CONSUMER = "edged"  # how the lines show up in `gpioinfo`


class EdgeKind(Enum):
    """A change of a line's logical value (active = button pressed)."""

    RISING = "rising"  # became active
    FALLING = "falling"  # became inactive


@dataclass(frozen=True)
class Edge:
    """One edge event: the line offset, its kind and the kernel's timestamp (CLOCK_MONOTONIC
    nanoseconds). The kind alone gives the level after it, whatever was lost before."""

    line: int
    kind: EdgeKind
    timestamp_ns: int


class LineReader(Protocol):
    """Edge events from a set of requested input lines."""

    def wait_edge(self, timeout: float | None) -> Edge | None:
        """The next edge, or None after `timeout` seconds (None: wait forever) or interrupt()."""
        ...

    def active(self, line: int) -> bool:
        """The line's logical value now (True = pressed)."""
        ...

    def interrupt(self) -> None:
        """Make a wait_edge() in another thread return None now."""
        ...

    def close(self) -> None:
        """Release the lines."""
        ...


def _import_gpiod() -> Any:
    try:
        import gpiod
    except ImportError:
        raise ConfigError(
            "gpio.line is set but the Python package 'gpiod' (libgpiod v2 bindings) is not "
            "installed; install it with `pip install 'edged[gpio]'` (or `pip install gpiod`)"
        ) from None
    version = getattr(gpiod, "__version__", "0")
    if int(version.split(".")[0]) < 2:
        raise ConfigError(
            f"gpio: the installed 'gpiod' is version {version}; edged needs the v2 API "
            "(gpiod >= 2.0; Debian's python3-libgpiod before trixie is v1)"
        )
    return gpiod


class GpiodLines:
    """Input lines of one GPIO chip with edge detection on both edges (libgpiod v2)."""

    def __init__(
        self,
        chip: str,
        lines: Iterable[int],
        *,
        active_low: bool = True,
        debounce: float = 0.03,
        consumer: str = CONSUMER,
    ) -> None:
        gpiod = _import_gpiod()
        from gpiod.line import Bias, Direction
        from gpiod.line import Edge as GpiodEdge

        self._offsets = sorted(set(lines))
        if not self._offsets:
            raise ConfigError("gpio: no line to watch")
        self._rising = gpiod.EdgeEvent.Type.RISING_EDGE

        def settings(debounce_s: float) -> Any:
            return gpiod.LineSettings(
                direction=Direction.INPUT,
                edge_detection=GpiodEdge.BOTH,
                bias=Bias.PULL_UP,
                active_low=active_low,
                debounce_period=timedelta(seconds=debounce_s),
            )

        try:
            self._request = self._open(gpiod, chip, consumer, settings(debounce))
        except OSError as err:
            if err.errno != errno.EINVAL or not debounce:
                raise self._explain(chip, err) from err
            # A kernel before 5.10 has no debounce_period: software debounce alone is enough.
            log.warning("gpio: %s refuses debounce_period; debouncing in software only", chip)
            try:
                self._request = self._open(gpiod, chip, consumer, settings(0.0))
            except OSError as err2:
                raise self._explain(chip, err2) from err2
        self._pending: deque[Edge] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        log.info(
            "gpio: watching %s line(s) %s (active-%s, pull-up)",
            chip,
            ", ".join(map(str, self._offsets)),
            "low" if active_low else "high",
        )

    def _open(self, gpiod: Any, chip: str, consumer: str, settings: Any) -> Any:
        return gpiod.request_lines(chip, consumer=consumer, config={tuple(self._offsets): settings})

    def _explain(self, chip: str, err: OSError) -> EdgedError:
        lines = ", ".join(map(str, self._offsets))
        hints = {
            errno.ENOENT: f"gpio.chip = {chip!r} does not exist; `gpiodetect` lists the chips",
            errno.EACCES: f"no permission to open {chip}; add the user to the 'gpio' group "
            "(the systemd unit: SupplementaryGroups=gpio)",
            errno.EBUSY: f"gpio line {lines} on {chip} is used by another program "
            "(`gpioinfo` shows the consumer)",
            errno.EINVAL: f"gpio line {lines} is not a valid input line of {chip} "
            "(`gpioinfo` lists its lines)",
            errno.ENOTTY: f"gpio.chip = {chip!r} is not a GPIO character device",
            errno.ENODEV: f"gpio.chip = {chip!r} is not a GPIO character device",
        }
        assert err.errno is not None
        message = hints.get(err.errno, f"cannot request gpio line {lines} on {chip}: {err}")
        return ConfigError(message) if err.errno != errno.EBUSY else EdgedError(message)

    def wait_edge(self, timeout: float | None) -> Edge | None:
        if self._pending:
            return self._pending.popleft()
        fd = self._request.fd
        readable, _, _ = select.select([fd, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 64)
            return None
        if fd not in readable:
            return None
        for event in self._request.read_edge_events():
            kind = EdgeKind.RISING if event.event_type is self._rising else EdgeKind.FALLING
            self._pending.append(Edge(event.line_offset, kind, event.timestamp_ns))
        return self._pending.popleft() if self._pending else None

    def active(self, line: int) -> bool:
        from gpiod.line import Value

        return bool(self._request.get_value(line) == Value.ACTIVE)

    def interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is already pending
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        if self._request:
            self._request.release()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


@dataclass
class _Button:
    lang: str | None
    pressed: bool  # the debounced state callbacks were told about
    raw: bool  # the level of the last edge
    last_edge_ns: int | None = None


class ButtonWatcher:
    """Watches buttons (line offset -> language, None for the one push-to-talk button) and
    calls `on_press(lang)` / `on_release(lang)` once per debounced press and release.

    Debounce: a change counts at once if the line was quiet for `debounce` seconds before it
    (so a press starts the utterance without delay); edges within `debounce` of the previous
    one are bounce, and the level they leave is taken once the line has been quiet that long.
    Times are the kernel's edge timestamps; `clock` (the same clock, CLOCK_MONOTONIC ns) is
    only read to know when a quiet period has ended.
    """

    def __init__(
        self,
        reader: LineReader,
        buttons: Mapping[int, str | None],
        *,
        on_press: Callable[[str | None], None],
        on_release: Callable[[str | None], None],
        debounce: float = 0.03,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not buttons:
            raise ConfigError("gpio: no button line configured")
        self._reader = reader
        self._debounce_ns = int(debounce * 1e9)
        self._on_press, self._on_release = on_press, on_release
        self._clock = clock
        self._buttons = {line: _Button(lang, False, False) for line, lang in buttons.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edged-gpio", daemon=True)
        self.presses = 0
        self.bounces = 0  # edges that changed nothing: contact bounce

    def start(self) -> None:
        """Read the buttons' current levels (held at start counts as pressed), start the thread."""
        for line, button in self._buttons.items():
            level = self._reader.active(line)
            button.raw = level
            if level:
                self._change(button, True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread (it is waiting for an edge: interrupted at once), release the lines."""
        self._stop.set()
        self._reader.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("gpio: the watcher did not stop in %.1f s (a callback hangs)", timeout)
        self._reader.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                edge = self._reader.wait_edge(self._timeout())
            except Exception:
                # A line that cannot be read any more (the chip went away) ends push-to-talk,
                # not the daemon; release any held button so the utterance ends.
                log.exception("gpio: reading edges failed; the buttons are no longer watched")
                for button in self._buttons.values():
                    if button.pressed:
                        self._change(button, False)
                return
            if self._stop.is_set():
                return
            self._settle(edge.timestamp_ns if edge else self._clock())
            if edge is not None:
                self._edge(edge)

    def _timeout(self) -> float | None:
        """Until the earliest quiet period ends on a button whose level is still unsettled."""
        deadlines = [
            b.last_edge_ns + self._debounce_ns
            for b in self._buttons.values()
            if b.last_edge_ns is not None and b.raw != b.pressed
        ]
        if not deadlines:
            return None
        return max(0.0, (min(deadlines) - self._clock()) / 1e9)

    def _settle(self, now_ns: int) -> None:
        for button in self._buttons.values():
            quiet = button.last_edge_ns is None or now_ns - button.last_edge_ns >= self._debounce_ns
            if quiet and button.raw != button.pressed:
                self._change(button, button.raw)

    def _edge(self, edge: Edge) -> None:
        button = self._buttons.get(edge.line)
        if button is None:
            return
        level = edge.kind is EdgeKind.RISING
        quiet = (
            button.last_edge_ns is None
            or edge.timestamp_ns - button.last_edge_ns >= self._debounce_ns
        )
        button.last_edge_ns = edge.timestamp_ns
        button.raw = level
        if quiet and level != button.pressed:
            self._change(button, level)
        else:
            self.bounces += 1

    def _change(self, button: _Button, pressed: bool) -> None:
        button.pressed = pressed
        callback = self._on_press if pressed else self._on_release
        if pressed:
            self.presses += 1
        try:
            callback(button.lang)
        except Exception:
            log.exception("gpio: %s callback failed", "press" if pressed else "release")


def watch_buttons(
    chip: str,
    buttons: Mapping[int, str | None],
    *,
    active_low: bool,
    debounce: float,
    on_press: Callable[[str | None], None],
    on_release: Callable[[str | None], None],
) -> ButtonWatcher:
    """Request the buttons' lines on `chip` and start watching them: the one call the daemon
    makes (gpio.line -> None, conversation.buttons' lines -> their languages)."""
    lines = GpiodLines(chip, buttons, active_low=active_low, debounce=debounce)
    watcher = ButtonWatcher(
        lines, buttons, on_press=on_press, on_release=on_release, debounce=debounce
    )
    try:
        watcher.start()
    except BaseException:
        lines.close()
        raise
    return watcher


def button_lines(line: int, languages: Mapping[str, str] | None = None) -> dict[int, str | None]:
    """The buttons to watch from the config: `gpio.line` (-1 = none) as the push-to-talk
    button, and `conversation.buttons` (TOML keys are strings: "17" = line 17) with their
    languages. A line given twice, or a key that is not a line number, is a ConfigError."""
    buttons: dict[int, str | None] = {}
    for key, lang in (languages or {}).items():
        if not key.isdigit():
            raise ConfigError(
                f"conversation.buttons key {key!r} must be a GPIO line offset, e.g. "
                '{ 17 = "en", 27 = "es" }'
            )
        buttons[int(key)] = lang
    if line >= 0:
        if line in buttons:
            raise ConfigError(
                f"gpio.line = {line} is also in conversation.buttons; a line is either the "
                "push-to-talk button or a language's button"
            )
        buttons[line] = None
    return buttons
