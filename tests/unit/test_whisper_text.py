"""What Whisper's speech->English output keeps when the decoder looped (trim_repeats)."""

from __future__ import annotations

import pytest

from edged.asr.whisper import trim_repeats


@pytest.mark.parametrize(
    ("looped", "kept"),
    [
        (  # base on a 10 s window, beam 5: the sentence twice
            "This ensemble is constituted by a series of several archipelts, quite close "
            "geographically. This ensemble is constituted by a series of several "
            "archipelts, quite close geographically.",
            "This ensemble is constituted by a series of several archipelts, quite close "
            "geographically.",
        ),
        (  # and a second copy cut short
            "From the path you go on the wind, I do not cross the sun. From the path you",
            "From the path you go on the wind, I do not cross the sun.",
        ),
        (  # a phrase looping inside a sentence
            "but it has been reported that it has been reported that it has been reported "
            "that it has",
            "but it has been reported that it has",
        ),
    ],
)
def test_what_a_loop_added_is_dropped(looped: str, kept: str) -> None:
    assert trim_repeats(looped) == kept


@pytest.mark.parametrize(
    "text",
    [
        "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
        "I had had enough, very very good.",
        "Turn on the light. Turn off the light.",
    ],
)
def test_text_without_a_loop_is_kept(text: str) -> None:
    assert trim_repeats(text) == text
