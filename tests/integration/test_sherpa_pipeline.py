"""Switching asr.engine to sherpa changes nothing else: same command, same events.

The sherpa bundle is the tiny test-built streaming zipformer2-CTC model (tests/tiny_sherpa.py)
given by path; beckett.wav is real speech, so silero's VAD segments it as it would a live
voice and the tiny model turns each loud stretch into words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_sherpa as ts

pytestmark = pytest.mark.slow


def shape(events: list[dict]) -> list[tuple[str, frozenset[str]]]:
    """Each event's type and field names (not values)."""
    return [(e["type"], frozenset(e)) for e in events]


@pytest.fixture(scope="module")
def sherpa_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sherpa-pipeline")
    bundle = ts.build_zipformer2_ctc(root / "tiny-zipformer2-ctc")
    config = root / "edged.toml"
    config.write_text(f'[asr]\nengine = "sherpa"\n\n[asr.sherpa]\nbundle = "{bundle}"\n')
    return config


def test_sherpa_engine_gives_the_same_event_vocabulary(edged, beckett, sherpa_config) -> None:
    sherpa = edged(
        "-c", str(sherpa_config), "translate", str(beckett), "--from", "en", "--to", "es"
    )
    assert sherpa.code == 0, sherpa.stderr
    whisper = edged("translate", str(beckett), "--from", "en", "--to", "es")
    assert whisper.code == 0, whisper.stderr

    finals = sherpa.of("asr.final")
    assert finals, sherpa.events
    assert all(f["text"] and f["src"] == "en" for f in finals)
    assert set(f["text"].split()[0].rstrip(".,") for f in finals) <= {"Do", "Re", "Mi"}
    assert sherpa.of("asr.partial") and len(sherpa.of("mt.final")) == len(finals)
    # Same types with the same fields as the Whisper run.
    # (mt.interim needs a stable prefix: Whisper forms one only on longer utterances than
    # beckett's, and skips partials at pauses, so it is compared only when both have it.)
    optional = {"mt.interim"}
    assert {t for t, _ in shape(sherpa.events)} - optional == {
        t for t, _ in shape(whisper.events)
    } - optional
    fields = dict(shape(whisper.events))
    token_fields = {"tokens", "token_t0"}  # sherpa models give token times; Whisper here not
    for kind, names in shape(sherpa.events):
        if kind in fields:
            assert names - token_fields == fields[kind], kind
    for final in finals:
        assert len(final["tokens"]) == len(final["token_t0"]) > 0
        assert final["t0"] - 0.05 <= final["token_t0"][0] <= final["token_t0"][-1] <= final["t1"]
    # One speech.start per utterance, partials before each final.
    for utt in {e["utt"] for e in sherpa.events}:
        types = [e["type"] for e in sherpa.events if e["utt"] == utt]
        assert types[0] == "speech.start" and types.count("asr.final") <= 1


def test_a_sherpa_bundle_not_installed_names_the_fix(edged, beckett, tmp_path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text('[asr]\nengine = "sherpa"\n')
    run = edged("-c", str(config), "translate", str(beckett), "--to", "en")
    assert run.code == 3 and "Traceback" not in run.stderr
    assert "edged models install sherpa-zipformer-en-20m" in run.stderr
