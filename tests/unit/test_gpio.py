"""GPIO push-to-talk: the button watcher driven by a scripted line that plays edge events with
kernel-style timestamps (contact bounce included), and the real libgpiod request's errors.

There is no GPIO chip on the test machine: `ScriptedLines` stands in for the kernel. Its
clock is the script's own (it moves to each edge's timestamp, or by the timeout the watcher
waited), so debounce is tested on exact times, never on sleeps.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.errors import ConfigError
from edged.gpio import ButtonWatcher, Edge, EdgeKind, GpiodLines, button_lines, watch_buttons

MS = 1_000_000  # ns
R, F = EdgeKind.RISING, EdgeKind.FALLING


class ScriptedLines:
    """A LineReader playing scripted edges; when the script is exhausted the line is quiet
    (a wait with a timeout passes that much script time, one without blocks until interrupt)."""

    def __init__(self, edges: Iterable[Edge] = (), held: Iterable[int] = ()) -> None:
        self._edges = deque(sorted(edges, key=lambda e: e.timestamp_ns))
        self._held = set(held)
        self._cond = threading.Condition()
        self._interrupted = False
        self.now_ns = 0
        self.closed = False
        self.waiting_forever = threading.Event()

    def clock(self) -> int:
        return self.now_ns

    def wait_edge(self, timeout: float | None) -> Edge | None:
        with self._cond:
            while True:
                if self._interrupted:
                    self._interrupted = False
                    return None
                if self._edges:
                    edge = self._edges[0]
                    if timeout is not None and edge.timestamp_ns > self.now_ns + timeout * 1e9:
                        self.now_ns += round(timeout * 1e9)
                        return None
                    self._edges.popleft()
                    self.now_ns = max(self.now_ns, edge.timestamp_ns)
                    return edge
                if timeout is not None:
                    self.now_ns += round(timeout * 1e9)
                    return None
                self.waiting_forever.set()
                self._cond.wait()

    def active(self, line: int) -> bool:
        return line in self._held

    def interrupt(self) -> None:
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def close(self) -> None:
        self.closed = True


class Recorder:
    """Callbacks that record (what, lang, script time) and can be waited on."""

    def __init__(self, lines: ScriptedLines) -> None:
        self.lines = lines
        self.calls: list[tuple[str, str | None, int]] = []
        self._cond = threading.Condition()

    def press(self, lang: str | None) -> None:
        self._record("press", lang)

    def release(self, lang: str | None) -> None:
        self._record("release", lang)

    def _record(self, what: str, lang: str | None) -> None:
        with self._cond:
            self.calls.append((what, lang, self.lines.now_ns))
            self._cond.notify_all()

    def wait(self, count: int) -> list[tuple[str, str | None, int]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= count, 10), self.calls
            return list(self.calls)


def watch(
    lines: ScriptedLines,
    buttons: dict[int, str | None] | None = None,
    debounce: float = 0.03,
) -> tuple[ButtonWatcher, Recorder]:
    recorder = Recorder(lines)
    watcher = ButtonWatcher(
        lines,
        buttons or {17: None},
        on_press=recorder.press,
        on_release=recorder.release,
        debounce=debounce,
        clock=lines.clock,
    )
    watcher.start()
    return watcher, recorder


def edges(line: int, *timed: tuple[float, EdgeKind]) -> list[Edge]:
    return [Edge(line, kind, round(ms * MS)) for ms, kind in timed]


def settled(watcher: ButtonWatcher, lines: ScriptedLines) -> None:
    """Wait until the script is played and the watcher waits for a next edge for ever."""
    assert lines.waiting_forever.wait(10)


def test_a_clean_press_and_release() -> None:
    lines = ScriptedLines(edges(17, (1000, R), (2500, F)))
    watcher, got = watch(lines)
    assert got.wait(2) == [("press", None, 1000 * MS), ("release", None, 2500 * MS)]
    watcher.close()


def test_contact_bounce_gives_one_press_and_one_release_at_the_first_edge() -> None:
    bouncy_press = [(1000, R), (1002, F), (1003, R), (1005, F), (1006.5, R)]
    bouncy_release = [(2000, F), (2001, R), (2004, F)]
    lines = ScriptedLines(edges(17, *bouncy_press, *bouncy_release))
    watcher, got = watch(lines)
    settled(watcher, lines)
    assert got.wait(2) == [("press", None, 1000 * MS), ("release", None, 2000 * MS)]
    assert watcher.presses == 1 and watcher.bounces == 6
    watcher.close()


def test_a_tap_shorter_than_the_debounce_is_released_once_the_line_is_quiet() -> None:
    lines = ScriptedLines(edges(17, (1000, R), (1010, F)))
    watcher, got = watch(lines)
    assert got.wait(2) == [("press", None, 1000 * MS), ("release", None, 1040 * MS)]
    watcher.close()


def test_bounce_that_ends_released_releases_after_it_settles() -> None:
    lines = ScriptedLines(edges(17, (1000, R), (1004, F), (1006, R), (1009, F)))
    watcher, got = watch(lines)
    assert got.wait(2) == [("press", None, 1000 * MS), ("release", None, 1039 * MS)]
    watcher.close()


def test_two_buttons_name_their_languages() -> None:
    script = edges(5, (100, R), (400, F), (1300, R), (1302, F), (1303, R), (1600, F))
    script += edges(6, (700, R), (701, F), (702, R), (900, F))
    lines = ScriptedLines(script)
    watcher, got = watch(lines, {5: "en", 6: "es"})
    assert [(what, lang) for what, lang, _ in got.wait(6)] == [
        ("press", "en"),
        ("release", "en"),
        ("press", "es"),
        ("release", "es"),
        ("press", "en"),
        ("release", "en"),
    ]
    watcher.close()


def test_a_button_held_at_start_is_pressed_and_edges_on_other_lines_ignored() -> None:
    lines = ScriptedLines(edges(4, (50, R), (60, F)) + edges(17, (500, F)), held=[17])
    watcher, got = watch(lines)
    assert got.wait(2) == [("press", None, 0), ("release", None, 500 * MS)]
    watcher.close()


def test_close_stops_the_waiting_thread_promptly_and_releases_the_lines() -> None:
    lines = ScriptedLines()
    watcher, _ = watch(lines)
    assert lines.waiting_forever.wait(10)  # blocked in wait_edge(None), as on a quiet line
    watcher.close(timeout=5)
    assert not watcher.running and lines.closed
    names = [t.name for t in threading.enumerate()]
    assert "edged-gpio" not in names


def test_a_failing_callback_is_logged_and_the_watcher_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = ScriptedLines(edges(17, (100, R), (200, F), (300, R)))
    released = threading.Event()
    presses: list[int] = []

    def press(lang: str | None) -> None:
        presses.append(lines.now_ns)
        if len(presses) == 1:
            raise RuntimeError("pipeline busy")

    watcher = ButtonWatcher(
        lines, {17: None}, on_press=press, on_release=lambda _: released.set(), clock=lines.clock
    )
    watcher.start()
    settled(watcher, lines)
    assert released.is_set() and presses == [100 * MS, 300 * MS]
    assert "press callback failed" in caplog.text and "pipeline busy" in caplog.text
    watcher.close()


class BrokenLines(ScriptedLines):
    def wait_edge(self, timeout: float | None) -> Edge | None:
        raise OSError(19, "No such device")


def test_a_lost_chip_releases_a_held_button_and_ends_the_watcher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = BrokenLines(held=[17])
    watcher, got = watch(lines)
    assert got.wait(2) == [("press", None, 0), ("release", None, 0)]
    watcher.close()
    assert "no longer watched" in caplog.text


@st.composite
def bouncy_scripts(draw: st.DrawFn) -> tuple[list[Edge], list[int]]:
    """Presses held and gaps longer than twice the debounce (30 ms), every transition
    followed by a burst of bounce shorter than it; returns the edges and the press times."""
    t, script, presses = 100.0, [], []
    for _ in range(draw(st.integers(1, 5))):
        for level in (R, F):
            if level is R:
                presses.append(round(t * MS))
            script.append((t, level))
            bounce_t, other = t, F if level is R else R
            for _ in range(draw(st.integers(0, 3))):  # pairs of bounce edges
                bounce_t += draw(st.floats(0.1, 6.0))
                script.append((bounce_t, other))
                bounce_t += draw(st.floats(0.1, 6.0))
                script.append((bounce_t, level))
            t = bounce_t + draw(st.floats(60.0, 500.0))
    return edges(17, *script), presses


@settings(max_examples=200, deadline=None)
@given(bouncy_scripts())
def test_any_bouncy_sequence_gives_exactly_the_intended_presses(
    case: tuple[list[Edge], list[int]],
) -> None:
    script, presses = case
    lines = ScriptedLines(script)
    watcher, got = watch(lines)
    calls = got.wait(2 * len(presses))
    settled(watcher, lines)
    watcher.close()
    assert [what for what, _, _ in got.calls] == ["press", "release"] * len(presses)
    assert [at for what, _, at in calls if what == "press"] == presses


def test_the_real_libgpiod_request_names_a_missing_chip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; `gpiodetect` lists the chips"):
        GpiodLines(str(tmp_path / "gpiochip9"), [17])
    with pytest.raises(ConfigError, match="gpiochip9"):
        watch_buttons(
            str(tmp_path / "gpiochip9"),
            {17: None},
            active_low=True,
            debounce=0.03,
            on_press=print,
            on_release=print,
        )
    plain = tmp_path / "gpiochip0"
    plain.write_bytes(b"")
    for not_a_chip in ("/dev/null", str(plain)):
        with pytest.raises(ConfigError, match="is not a GPIO character device"):
            GpiodLines(not_a_chip, [17])


def test_button_lines_from_the_config() -> None:
    assert button_lines(-1) == {}
    assert button_lines(17) == {17: None}
    assert button_lines(-1, {"17": "en", "27": "es"}) == {17: "en", 27: "es"}
    assert button_lines(22, {"17": "en"}) == {17: "en", 22: None}
    with pytest.raises(ConfigError, match="must be a GPIO line offset"):
        button_lines(-1, {"GPIO17": "en"})
    with pytest.raises(ConfigError, match=r"gpio\.line = 17 is also in conversation\.buttons"):
        button_lines(17, {"17": "en"})
