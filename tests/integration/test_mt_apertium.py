"""ApertiumTranslator against Debian's apertium and its pairs (eng-spa, fr-es, es-pt,
spa-cat, spa-ita, eng-cat, en-gl), as real processes, alone and routed through pivots."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.errors import EngineError
from edged.mt.apertium import (
    DEBIAN_PACKAGES,
    DEFAULT_MODES_DIR,
    ApertiumTranslator,
    discover_modes,
    package_pairs,
)
from edged.mt.router import Router, WhisperSpeechTranslation


@pytest.fixture(scope="module")
def apertium() -> Iterator[ApertiumTranslator]:
    if not (DEFAULT_MODES_DIR / "spa-eng.mode").is_file():
        pytest.fail(
            f"Apertium eng-spa is not installed ({DEFAULT_MODES_DIR}/spa-eng.mode missing): "
            "apt-get install apertium apertium-eng-spa"
        )
    translator = ApertiumTranslator(timeout=20.0)
    yield translator
    translator.close()


def test_installed_pairs(apertium: ApertiumTranslator) -> None:
    assert {("es", "en"), ("en", "es")} <= apertium.pairs()
    assert apertium.mode("es", "en") == "spa-eng"


def test_translates_the_reference_sentences(apertium: ApertiumTranslator) -> None:
    # Apertium's own output (rule-based: the imperative comes out as a 3rd person verb)
    assert apertium.translate("Enciende la luz del salón.", "es", "en") == (
        "It lights the light of the living room."
    )
    assert apertium.translate("Turn on the living room light.", "en", "es") == (
        "Turno en la luz de salón."
    )


def test_many_sentences_go_through_one_process(apertium: ApertiumTranslator) -> None:
    sentences = {
        "Buenos días.": "Good morning.",
        "Los niños juegan en el parque.": "The boys play in the park.",
        "El perro come manzanas.": "The dog eats apples.",
        "Hola, ¿cómo estás?": "Hello, how you are?",
    }
    apertium.translate("Hola.", "es", "en")
    pid = apertium.pid("es", "en")
    assert pid is not None
    for _ in range(3):
        for source, expected in sentences.items():
            assert apertium.translate(source, "es", "en") == expected
    assert apertium.pid("es", "en") == pid


def test_unknown_words_come_back_unmarked(apertium: ApertiumTranslator) -> None:
    assert apertium.translate("El perro come xyzzyq.", "es", "en") == "The dog eats xyzzyq."


def test_special_characters_survive(apertium: ApertiumTranslator) -> None:
    text = 'a [b] ^c$ /d\\ <e> @f #g *h {i} 100% "q" mail a@b.com'
    out = apertium.translate(text, "es", "en")
    for fragment in ("[b]", "^c$", "/d\\", "@f", "#g", "*h", "{i}", "100%", '"q"', "a@b.com"):
        assert fragment in out, (fragment, out)
    # an unescaped '@' makes the eng-spa pipeline exit with "Malformed input stream"
    assert apertium.translate("Hello@world #tag", "en", "es").startswith("Hello@world")


def test_empty_and_blank_text(apertium: ApertiumTranslator) -> None:
    assert apertium.translate("", "es", "en") == ""
    assert apertium.translate(" \n\t", "es", "en") == ""
    assert apertium.translate("Dos\nlíneas", "es", "en") == "Two lines"


def test_restarts_after_the_pipeline_dies(apertium: ApertiumTranslator) -> None:
    apertium.translate("Hola.", "es", "en")
    pid = apertium.pid("es", "en")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    assert apertium.translate("Buenos días.", "es", "en") == "Good morning."
    assert apertium.pid("es", "en") not in (None, pid)


def test_restarts_after_one_stage_dies(apertium: ApertiumTranslator) -> None:
    apertium.translate("Hola.", "es", "en")
    pid = apertium.pid("es", "en")
    assert pid is not None
    stages = _group_members(pid)
    assert len(stages) >= 10  # bash and the mode's programs
    os.kill(stages[len(stages) // 2], signal.SIGKILL)
    assert apertium.translate("Buenos días.", "es", "en") == "Good morning."


def test_a_hung_pipeline_is_killed_and_restarted() -> None:
    with ApertiumTranslator(timeout=1.0) as apertium:
        apertium.load([("es", "en")])
        pid = apertium.pid("es", "en")
        assert pid is not None
        os.killpg(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(EngineError, match="no answer within 1 s"):
            apertium.translate("Hola.", "es", "en")
        assert time.monotonic() - started < 5
        assert apertium.pid("es", "en") is None
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_gone(pid)
        assert apertium.translate("Buenos días.", "es", "en") == "Good morning."


def test_close_stops_every_process() -> None:
    apertium = ApertiumTranslator()
    apertium.load()
    pids = [apertium.pid(*pair) for pair in sorted(apertium.pairs())]
    members = [m for pid in pids if pid for m in _group_members(pid)]
    apertium.close()
    assert all(_is_zombie_or_gone(m) for m in members)


def test_latency_per_sentence_is_small(apertium: ApertiumTranslator) -> None:
    apertium.translate("Hola.", "es", "en")
    started = time.monotonic()
    for _ in range(20):
        apertium.translate("Enciende la luz del salón.", "es", "en")
    per_sentence = (time.monotonic() - started) / 20
    assert per_sentence < 0.1, f"{per_sentence * 1000:.1f} ms per sentence"


def _group_members(pgid: int) -> list[int]:
    """Pids of the live processes in process group `pgid` (bash first)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_threads_share_one_translator(apertium: ApertiumTranslator) -> None:
    expected = {"Buenos días.": "Good morning.", "El perro come manzanas.": "The dog eats apples."}
    results: list[bool] = []

    def work(source: str) -> None:
        results.extend(
            apertium.translate(source, "es", "en") == expected[source] for _ in range(20)
        )

    threads = [threading.Thread(target=work, args=(source,)) for source in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 40 and all(results)


# --- routes through pivots other than English, over the real pairs ------------------------

PIVOT_PACKAGES = (
    "apertium-fr-es",
    "apertium-es-pt",
    "apertium-spa-cat",
    "apertium-spa-ita",
    "apertium-eng-cat",
    "apertium-en-gl",
)


@pytest.fixture(scope="module")
def pivot_router(apertium: ApertiumTranslator) -> Router:
    wanted = {("fr", "es"), ("es", "pt"), ("pt", "es"), ("es", "ca"), ("it", "es"), ("gl", "en")}
    if not wanted <= apertium.pairs():
        pytest.fail(
            f"Apertium pairs missing in {DEFAULT_MODES_DIR}: "
            f"{sorted(wanted - apertium.pairs())}; apt-get install {' '.join(PIVOT_PACKAGES)}"
            " (tools/bootstrap.sh does)"
        )
    return Router({"apertium": apertium}, ["apertium"])


def test_french_reaches_english_through_spanish(pivot_router: Router) -> None:
    plan = pivot_router.plan("fr", "en")
    assert plan.path == "fr -apertium-> es -apertium-> en"
    assert plan.translate("Le chat dort.").text == "The cat sleeps."


def test_portuguese_reaches_catalan_and_italian_reaches_english(pivot_router: Router) -> None:
    to_catalan = pivot_router.plan("pt", "ca")
    assert to_catalan.engine == "apertium via es"
    assert to_catalan.translate("O gato dorme.").text == "El gat dorm."
    assert pivot_router.plan("it", "en").translate("Il gatto dorme.").text == "The cat sleeps."


def test_galician_to_french_takes_two_pivots(pivot_router: Router) -> None:
    plan = pivot_router.plan("gl", "fr")
    assert plan.path == "gl -apertium-> en -apertium-> es -apertium-> fr"
    assert plan.translate("Bos días.").text  # three real processes answered


def test_whisper_speech_beats_two_apertium_hops_but_not_one(apertium: ApertiumTranslator) -> None:
    router = Router(
        {"apertium": apertium, "whisper": WhisperSpeechTranslation(["fr", "es", "en"])},
        ["ct2", "apertium", "whisper"],
    )
    french = router.plan("fr", "en")
    assert french.engine == "whisper" and french.text_plan is not None
    assert french.translate("Le chat dort.").text == "The cat sleeps."  # a partial: via es
    assert french.translate("Le chat dort.", english="The cat is asleep.").text == (
        "The cat is asleep."
    )
    assert router.plan("es", "en").engine == "apertium"


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return status.returncode == 0 and "install ok installed" in status.stdout


def test_package_table_matches_the_modes_installed_packages_ship() -> None:
    installed = [p for p in DEBIAN_PACKAGES if _installed(p)]
    assert set(PIVOT_PACKAGES) | {"apertium-eng-spa"} <= set(installed)
    table = package_pairs()
    for package in installed:
        listing = subprocess.run(
            ["dpkg-query", "-L", package], capture_output=True, text=True, check=True
        ).stdout.split()
        modes_dir = DEFAULT_MODES_DIR
        shipped = {Path(f).stem for f in listing if Path(f).parent == modes_dir}
        from_modes = {pair for pair, mode in discover_modes(modes_dir).items() if mode in shipped}
        assert table[package] == from_modes, package
