"""`edged routes` and targets beyond some candidates' reach, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_wav

from edged.audio.convert import to_pipeline_format
from edged.audio.wav import read_wav

pytestmark = pytest.mark.slow

NLLB_HINT = "`edged models install nllb-200-distilled-600M-int8` (+ mt.ct2_bundles)"


def routes_table(models_dir: Path, *args: str) -> list[str]:
    """`edged routes ARGS` as a real process: its table's lines (stdout is not JSON here)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "routes", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, EDGED_MODELS_DIR=str(models_dir)),
        cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


def test_routes_lists_each_pair_with_its_route(models_dir: Path) -> None:
    lines = routes_table(models_dir, "--from", "fr", "--from", "es", "--to", "en", "--to", "ca",
                         "--to", "de")  # fmt: skip
    rows = {line.split("  ")[0]: line for line in lines}
    assert rows["es -> ca"].split() == ["es", "->", "ca", "apertium", "es", "-apertium->", "ca"]
    assert rows["fr -> ca"].split()[3:6] == ["apertium", "via", "es"]
    assert rows["fr -> en"].endswith(
        "fr -whisper-> en (speech; partials: fr -apertium-> es -apertium-> en)"
    )
    assert "es -> en" in rows and "es -> es" not in rows
    assert rows["fr -> de"].split()[3] == "none"
    assert f"no route: provided by {NLLB_HINT}" in rows["fr -> de"]
    assert lines[0].startswith("PAIR")


def test_routes_as_json_and_a_target_filter_alone(edged) -> None:
    run = edged("routes", "--to", "pt", "--mt", "apertium", "--json")
    assert run.code == 0, run.stderr
    by_pair = {(e["src"], e["tgt"]): e for e in run.events}
    assert by_pair[("fr", "pt")]["hops"] == [
        {"engine": "apertium", "src": "fr", "tgt": "es"},
        {"engine": "apertium", "src": "es", "tgt": "pt"},
    ]
    assert by_pair[("gl", "pt")]["engine"] == "apertium via en,es"
    assert all(tgt == "pt" for _, tgt in by_pair)
    # de is a candidate (asr.languages) that no installed engine reads without whisper
    assert by_pair[("de", "pt")]["engine"] is None
    assert by_pair[("de", "pt")]["provides"][0].startswith("`edged models install nllb")


@pytest.fixture(scope="module")
def german_then_spanish(tmp_path_factory: pytest.TempPathFactory, speech_dir: Path) -> Path:
    """The German and the Spanish clip, one after the other, a second of silence between."""
    parts = []
    for name in ("living_room_light_de.wav", "living_room_light_es.wav"):
        samples, rate = read_wav(speech_dir / name)
        parts += [to_pipeline_format(samples, rate), np.zeros(16000, dtype=np.float32)]
    return write_wav(tmp_path_factory.mktemp("routes") / "de_es.wav", np.concatenate(parts))


def test_unreachable_pair_is_warned_and_the_served_one_translated(
    edged, german_then_spanish: Path
) -> None:
    run = edged(
        "translate", str(german_then_spanish), "--from", "de", "--from", "es", "--to", "ca",
        "--mt", "apertium", "--no-interim",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, run.stderr
    assert "mt.targets: not translated, no route for de->ca (provided by " in warnings[0]
    assert NLLB_HINT in warnings[0] and "es->ca" not in warnings[0]
    assert [f["src"] for f in run.of("asr.final")] == ["de", "es"]
    (mt,) = run.of("mt.final")  # the German final is not translated, and nothing fails
    assert (mt["src"], mt["tgt"], mt["engine"]) == ("es", "ca", "apertium")
    assert mt["text"] == "Encén la llum del saló."
    assert run.of("error") == []


def test_no_candidate_reaching_a_target_is_a_config_error_with_the_fix(
    edged, german_then_spanish: Path
) -> None:
    run = edged(
        "translate", str(german_then_spanish), "--from", "de", "--from", "es", "--to", "nl",
        "--to", "en", "--mt", "apertium",
    )  # fmt: skip
    assert run.code == 78, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("edged: error: mt.targets: no translation path for de->nl, es->nl (")
    assert f"provided by {NLLB_HINT} with ct2 in mt.engines" in line
    assert "de->en" not in line  # en is reached (from es): not what stops the start
    assert run.events == []
