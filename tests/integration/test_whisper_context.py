"""A segment that continues the previous one (the same speaker, cut at a short pause) is
decoded after it, on the real Whisper model: the previous segment's audio goes ahead of it
in the window and its text is the decoder's forced start, which the final leaves out
(issue 8: readings cut into 2-7 s segments lost 6 WER points against offline decoding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import normalise, speech_of

from edged.asr.whisper import WhisperRecognizer
from edged.audio import SAMPLE_RATE
from edged.config import WhisperConfig

pytestmark = pytest.mark.slow

# beckett.wav: "Ever tried. Ever failed. | No matter. Try again. | Fail again. Fail better."
FIRST_CUT_S, SECOND_CUT_S = 2.7, 5.7


@pytest.fixture(scope="module")
def recognizer(models_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(
        models_dir / "whisper-base", ("en", "es"), WhisperConfig(partials=False), threads=2
    )


@pytest.fixture(scope="module")
def pieces(beckett: Path) -> tuple[np.ndarray, np.ndarray]:
    audio = speech_of(beckett)
    first, second = int(FIRST_CUT_S * SAMPLE_RATE), int(SECOND_CUT_S * SAMPLE_RATE)
    return audio[:first], audio[first:second]


def _final(r: WhisperRecognizer, t0: float, audio: np.ndarray) -> str:
    r.begin(t0)
    r.accept(audio)
    (final,) = r.end()
    return final.text


def test_a_segment_right_after_the_previous_one_is_decoded_after_it(recognizer, pieces) -> None:
    first, second = pieces
    assert "ever failed" in normalise(_final(recognizer, 0.0, first))
    before = recognizer.in_context
    text = normalise(_final(recognizer, FIRST_CUT_S + 0.2, second))
    assert recognizer.in_context == before + 1
    # this segment's words only: the previous one's, the forced start, are left out
    assert "matter" in text and "try again" in text
    assert "ever" not in text


def test_a_segment_after_a_longer_pause_is_decoded_on_its_own(recognizer, pieces) -> None:
    first, second = pieces
    _final(recognizer, 100.0, first)
    before = recognizer.in_context
    text = normalise(_final(recognizer, 100.0 + FIRST_CUT_S + 2.0, second))
    assert recognizer.in_context == before
    assert "try again" in text


def test_a_continuation_in_another_language_is_decoded_on_its_own(
    recognizer, pieces, speech_dir
) -> None:
    first, _ = pieces
    spanish = speech_of(speech_dir / "living_room_light_es.wav")
    _final(recognizer, 200.0, first)
    before = recognizer.in_context
    r = recognizer
    r.begin(200.0 + FIRST_CUT_S + 0.2)
    r.accept(spanish)
    r._segment_lang = "es"  # what the partials (off here) made of the segment on its own
    (final,) = r.end()
    assert final.lang == "es" and r.in_context == before
    assert "ever" not in normalise(final.text)
