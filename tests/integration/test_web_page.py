"""The live page in a real browser: Debian's chromium, headless, driven by Playwright.

`edged translate --serve` and `edged run` as real processes on loopback ports; the page's
text after a clip, conversation mode's two halves (one turned 180°), and a page that
follows a daemon restart without a reload. Screenshots go to tmp_path, never to git.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from conftest import REPO

from edged.events import AsrFinal, AsrPartial, MtFinal, MtInterim
from edged.publish.web import WebServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 412, "height": 915}
DEVICE = "pi-web"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (user-data-dir).
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def phone(browser) -> Iterator:
    """A page in a phone-sized, touch context (no hover)."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """`python -m edged ...` with stdout and stderr read line by line by threads."""

    def __init__(self, args: list[str], models_dir: Path) -> None:
        env = dict(os.environ, EDGED_MODELS_DIR=str(models_dir))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: queue.Queue[str | None] = queue.Queue()
        self.stderr_lines: list[str] = []
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line)
        lines.put(None)

    def stderr_until(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        while (line := self.stderr.get(timeout=timeout)) is not None:
            self.stderr_lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"exited without {pattern!r}:\n{''.join(self.stderr_lines)}")

    def events_until(self, kind: str, timeout: float = 180) -> list[dict]:
        events = []
        while (line := self.stdout.get(timeout=timeout)) is not None:
            events.append(json.loads(line))
            if events[-1]["type"] == kind:
                return events
        raise AssertionError(f"stdout ended before a {kind} event: {events}")

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        while (line := self.stderr.get(timeout=10)) is not None:
            self.stderr_lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def page_text(page) -> str:
    return page.evaluate("document.body.innerText")


def wait_for_text(page, text: str) -> None:
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=text)


def status_of(page) -> str:
    return page.inner_text("#status")


# --- (a) edged translate --serve ------------------------------------------------------------


def test_translate_serve_shows_final_and_translation(
    phone, speech_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    clip = speech_dir / "living_room_light_es.wav"
    proc = Proc(["translate", str(clip), "--to", "en", "--serve", "127.0.0.1:0"], models_dir)
    try:
        url = proc.stderr_until(r"live page on (http://\S+)")[1]
        phone.goto(url)
        events = proc.events_until("mt.final")
        asr = next(e for e in events if e["type"] == "asr.final")
        mt = events[-1]
        assert asr["src"] == "es" and mt["tgt"] == "en" and mt["text"]
        wait_for_text(phone, mt["text"])
        proc.stderr_until("translation done; still serving")  # the recording is over
        text = page_text(phone)
        assert asr["text"] in text and mt["text"] in text
        assert status_of(phone) == "online"
        # The translation is the large line: at least 28 px on a phone (7vw of 412 px).
        size = phone.eval_on_selector(
            ".utt.latest .tr:not(.interim)", "e => parseFloat(getComputedStyle(e).fontSize)"
        )
        assert size >= 28
        shot = tmp_path / "translate-serve.png"
        phone.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
        phone.wait_for_function(
            "() => document.querySelector('#status').textContent === 'disconnected'"
        )
    finally:
        proc.kill()


def test_translate_serve_on_a_bad_or_busy_address_fails_before_loading_models(
    edged, speech_dir: Path
) -> None:
    clip = str(speech_dir / "living_room_light_es.wav")
    bad = edged("translate", clip, "--serve", "127.0.0.1:70000", timeout=30)
    assert bad.code == 78 and not bad.events
    assert "--serve = '127.0.0.1:70000'" in bad.stderr and "HOST:PORT" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = edged("translate", clip, "--serve", f"127.0.0.1:{port}", timeout=30)
    assert busy.code == 78 and not busy.events
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--serve = '127.0.0.1:{port}'" in lines[0] and "in use" in lines[0]


# --- (b) conversation mode and live partials, fed in-process ---------------------------------


@pytest.fixture
def web() -> Iterator[WebServer]:
    server = WebServer("127.0.0.1:0", device=DEVICE)
    server.start()
    yield server
    server.close()


def final_pair(utt: int, src: str, text: str, tgt: str, translation: str) -> list:
    common = {"device": DEVICE, "utt": utt, "seq": 0, "src": src, "t0": 0.0, "t1": 1.0}
    return [
        AsrFinal(**common, text=text, lat_ms=5),
        MtFinal(**common, tgt=tgt, text=translation, engine="apertium", lat_ms=9),
    ]


def test_conversation_shows_both_halves_one_turned(phone, web: WebServer, tmp_path: Path) -> None:
    web.set_state({"state": "online", "targets": ["en", "es"], "conversation": None})
    phone.goto(web.url)
    phone.wait_for_selector("#single")
    # Switched on while the page is open: the layout follows without a reload.
    web.set_state({"conversation": ["en", "es"]})
    phone.wait_for_selector('.pane[data-lang="es"]')
    for event in [
        *final_pair(1, "es", "¿Dónde está la estación?", "en", "Where is the station?"),
        *final_pair(2, "en", "Two blocks ahead.", "es", "Dos cuadras adelante."),
    ]:
        web.publish(event)
    wait_for_text(phone, "Dos cuadras adelante.")
    en = phone.locator('.pane[data-lang="en"]')
    es = phone.locator('.pane[data-lang="es"]')
    # Each person reads what the other said, in their own language, and their own words.
    assert en.locator(".said").inner_text() == "Where is the station?"
    assert en.locator(".own").inner_text() == "Two blocks ahead."
    assert es.locator(".said").inner_text() == "Dos cuadras adelante."
    assert es.locator(".own").inner_text() == "¿Dónde está la estación?"
    assert "Dos cuadras" not in en.inner_text() and "Where is" not in es.inner_text()
    # The es half is turned 180° for the person across the device; the en half is upright.
    transform = "e => getComputedStyle(e).transform"
    assert es.evaluate(transform) == "matrix(-1, 0, 0, -1, 0, 0)"
    assert en.evaluate(transform) == "none"
    top, bottom = es.bounding_box(), en.bounding_box()
    assert top and bottom and top["y"] < bottom["y"]
    for box in (top, bottom):
        assert box["height"] > PHONE["height"] * 0.4  # each half of the screen
    said = en.locator(".said").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    own = en.locator(".own").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert said > own
    assert es.locator(".status").inner_text() == "online"  # both people see the status
    shot = tmp_path / "conversation.png"
    phone.screenshot(path=str(shot))
    assert shot.stat().st_size > 0


def test_partials_grow_then_final_and_translation(phone, web: WebServer) -> None:
    web.set_state({"state": "degraded", "targets": ["en"]})
    phone.goto(web.url)
    phone.wait_for_function("() => document.querySelector('#status').textContent === 'degraded'")
    common = {"device": DEVICE, "utt": 7, "seq": 0, "src": "es", "t0": 0.0, "lat_ms": 5}
    web.publish(AsrPartial(**common, text="Enciende", stable="", t1=0.5))
    phone.wait_for_selector(".utt .unstable:text('Enciende')")
    web.publish(AsrPartial(**common, text="Enciende la luz", stable="Enciende", t1=1.0))
    phone.wait_for_function(
        "() => document.querySelector('.utt .src').innerText.includes('Enciende la luz')"
    )
    assert phone.inner_text(".utt .src .stable") == "Enciende"
    web.publish(MtInterim(**common, tgt="en", text="Turn on", engine="apertium", t1=1.0))
    phone.wait_for_selector(".utt .tr.interim")
    for event in final_pair(7, "es", "Enciende la luz del salón.", "en", "Turn on the light."):
        web.publish(event)
    phone.wait_for_selector(".utt .tr:not(.interim)")
    assert phone.inner_text(".utt .tr .text") == "Turn on the light."
    assert "Enciende la luz del salón." in phone.inner_text(".utt .src")
    # Transcripts are text, never markup.
    web.publish(final_pair(8, "en", "<img src=x onerror=alert(1)>", "es", "<b>x</b>")[0])
    wait_for_text(phone, "<img src=x onerror=alert(1)>")
    assert phone.locator(".utt img").count() == 0


# --- (c) a daemon restarted under an open page ------------------------------------------------


def daemon_config(path: Path, clip: Path, port: int, targets: str, jsonl: Path) -> Path:
    path.write_text(
        f'device_id = "{DEVICE}"\n'
        f'[audio]\nsource = "wav"\npath = "{clip}"\nrealtime = true\n'
        f"[mt]\ntargets = {targets}\n"
        "[tts]\nenabled = false\n"
        "[mqtt]\nenabled = false\n"
        f'[publish]\njsonl = "{jsonl}"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\n'
    )
    return path


def events_of(jsonl: Path, kind: str) -> list[dict]:
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [e for e in events if e["type"] == kind]


def test_page_follows_a_daemon_restart_without_reload(
    phone, speech_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    runs = [
        ("living_room_light_es.wav", '["en"]'),
        ("living_room_light_en.wav", '["es"]'),
    ]
    configs, logs = [], []
    for n, (clip, targets) in enumerate(runs, 1):
        logs.append(tmp_path / f"run{n}.jsonl")
        configs.append(
            daemon_config(tmp_path / f"run{n}.toml", speech_dir / clip, port, targets, logs[-1])
        )
    first = Proc(["run", "-c", str(configs[0])], models_dir)
    try:
        url = first.stderr_until(r"live page on (http://\S+)")[1]
        assert url == f"http://127.0.0.1:{port}/"
        phone.goto(url)
        # Every status the page shows, in order, and a mark that a reload would wipe.
        phone.evaluate(
            """() => {
                window.notReloaded = true;
                window.statuses = [document.querySelector('#status').textContent];
                new MutationObserver(() => {
                    const s = document.querySelector('#status').textContent;
                    if (s !== window.statuses.at(-1)) window.statuses.push(s);
                }).observe(document.querySelector('#status'), {childList: true});
            }"""
        )
        assert first.wait(240) == 0  # the clip ends: the daemon stops
        phone.wait_for_function("() => window.statuses.at(-1) === 'disconnected'")
        mt1 = events_of(logs[0], "mt.final")
        assert mt1 and mt1[0]["src"] == "es"
        wait_for_text(phone, mt1[0]["text"])
    finally:
        first.kill()

    second = Proc(["run", "-c", str(configs[1])], models_dir)
    try:
        assert second.wait(240) == 0
        asr2, mt2 = events_of(logs[1], "asr.final"), events_of(logs[1], "mt.final")
        assert mt2 and mt2[0]["src"] == "en" and mt2[0]["tgt"] == "es"
        wait_for_text(phone, mt2[0]["text"])
        text = page_text(phone)
        assert asr2[0]["text"] in text and mt1[0]["text"] in text
        assert phone.evaluate("window.notReloaded") is True
        statuses = phone.evaluate("window.statuses")
        # run 1: online -> offline (its last word) -> disconnected; run 2 brings it back.
        gap = statuses.index("disconnected")
        assert statuses[gap - 2 : gap] == ["online", "offline"], statuses
        assert "online" in statuses[gap + 1 :], statuses
        shot = tmp_path / "restart.png"
        phone.screenshot(path=str(shot))
        assert shot.stat().st_size > 0
    finally:
        second.kill()


def test_daemon_with_its_web_port_in_use_warns_once_and_runs(
    speech_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        jsonl = tmp_path / "events.jsonl"
        config = daemon_config(
            tmp_path / "edged.toml", speech_dir / "living_room_light_es.wav", port, '["en"]', jsonl
        )
        proc = Proc(["run", "-c", str(config)], models_dir)
        try:
            assert proc.wait(240) == 0
        finally:
            proc.kill()
    warnings = [line for line in proc.stderr_lines if "live page" in line]
    assert len(warnings) == 1, proc.stderr_lines
    assert "WARNING" in warnings[0] and f"127.0.0.1:{port}" in warnings[0]
    assert "in use" in warnings[0]
    assert events_of(jsonl, "mt.final")  # it translated all the same
