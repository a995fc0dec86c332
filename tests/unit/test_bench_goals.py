"""The figures issue 8 and 9 name, on synthetic event streams: rejected finals, partials
repeating the previous final, mt.final latency by serving engine, language-ID accuracy,
numbers spelled as the reference does, the offline comparison and RSS over time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from edged.bench.analysis import rss_by_minute
from edged.bench.manifest import parse_manifest, repeated
from edged.bench.metrics import (
    Received,
    Timeline,
    english_cardinal,
    language_id,
    mt_latency_by_engine,
    offline_comparison,
    per_utterance,
    quality,
    rejected_finals,
    repeated_previous,
    spell_numbers,
    utterance_starts,
    utterance_texts,
)
from edged.events import AsrFinal, AsrPartial, MtFinal

ORIGIN = 100.0
D = "dev"


@dataclass(frozen=True)
class RejectedFinal(AsrFinal):
    """asr.final as the lead announces it for a rejected final: empty text and a reason."""

    type: ClassVar[str] = "asr.final"
    reason: str = ""


def at(seconds: float, event: object) -> Received:
    return Received(ORIGIN + seconds, event)  # type: ignore[arg-type]


def partial(utt: int, text: str, t0: float, t1: float) -> AsrPartial:
    return AsrPartial(
        device=D, utt=utt, seq=0, src="en", text=text, stable="", t0=t0, t1=t1, lat_ms=1
    )


def final(utt: int, text: str, t0: float, t1: float, src: str = "en") -> AsrFinal:
    return AsrFinal(device=D, utt=utt, seq=0, src=src, text=text, t0=t0, t1=t1, lat_ms=1)


def mt(utt: int, tgt: str, engine: str, src: str = "en") -> MtFinal:
    return MtFinal(
        device=D, utt=utt, seq=0, src=src, tgt=tgt, text="x", engine=engine, t0=0, t1=0, lat_ms=1
    )


def manifest(*utts: tuple[str, str, str, float, float], short: tuple[str, ...] = ()) -> object:
    return parse_manifest(
        [
            {"id": i, "language": lang, "text": text, "t0": t0, "t1": t1, "short": i in short}
            for i, lang, text, t0, t1 in utts
        ]
    )


def timeline(duration: float = 20.0) -> Timeline:
    return Timeline.paced(ORIGIN, duration, frame=160)


def test_partials_that_repeat_the_previous_final_are_counted() -> None:
    stream = [
        at(2.0, final(1, "Turn on the living room light.", 0.5, 1.8)),
        # the next utterance starts with the previous final as its text: a leak, twice
        at(3.0, partial(2, "Turn on the living room light", 2.5, 2.9)),
        at(3.5, partial(2, "turn on the living room light, please", 2.5, 3.4)),
        at(4.0, partial(2, "Turn on the living room lamp", 2.5, 3.9)),  # not a repeat
        at(4.5, final(2, "Turn on the living room lamp.", 2.5, 4.0)),
        at(5.5, partial(3, "Turn on the living room", 5.0, 5.4)),  # a prefix: not counted
    ]
    got = repeated_previous(stream)
    assert got["partials"] == 2 and got["utterances"] == 1
    assert got["examples"][0] == {
        "utt": 2,
        "previous": "turn on the living room light",
        "partial": "Turn on the living room light",
    }
    assert repeated_previous(stream[:1] + stream[3:5])["partials"] == 0


def test_a_speaker_saying_the_previous_words_again_is_not_a_leak() -> None:
    m = manifest(
        ("a", "en", "but um montreal forced aligner", 1.0, 2.5),
        ("b", "en", "montreal forced aligner i hardly know her", 4.0, 6.0),
        ("c", "en", "he was not an ill disposed young man and so on and so on", 8.0, 14.0),
        ("d", "en", "unless to be rather cold hearted", 16.0, 18.0),
    )  # fmt: skip
    stream = [
        at(3.0, final(1, "Montreal Forest Liner.", 0.9, 2.5)),  # misheard, and said again:
        at(5.0, partial(2, "Montreal Forest Liner. I hardly", 3.9, 4.9)),  # genuine
        at(6.5, final(2, "Montreal forced aligner, I hardly know her.", 3.9, 6.0)),
        at(10.0, final(3, "He was not an ill-disposed young man.", 7.9, 9.9)),
        # the VAD split c: its second part cannot genuinely repeat the first
        at(11.0, partial(4, "He was not an ill-disposed young man.", 10.5, 10.9)),
        at(14.5, final(4, "and so on and so on", 10.5, 14.0)),
        at(17.0, partial(5, "And so on and so on", 15.9, 16.9)),  # leaked into d
    ]
    results = per_utterance(stream, m, timeline(), ("en",))
    starts = utterance_starts(results)
    assert starts == {1: "but um montreal forced aligner", 2: m.utterances[1].text,  # type: ignore[attr-defined]
                      3: m.utterances[2].text, 5: m.utterances[3].text}  # type: ignore[attr-defined]  # fmt: skip
    got = repeated_previous(stream, starts)
    assert got["genuine_repeats"] == 1
    assert got["partials"] == 2 and got["utterances"] == 2
    assert [x["utt"] for x in got["examples"]] == [4, 5]
    assert repeated_previous(stream)["partials"] == 3  # without references, all count


def test_rejected_finals_are_counted_by_reason_and_are_not_finals() -> None:
    m = manifest(("a", "en", "one two", 1.0, 2.0), ("b", "en", "one two one two", 4.0, 6.0))
    stream = [
        at(2.5, final(1, "one two", 0.9, 2.0)),
        at(6.5, RejectedFinal(device=D, utt=2, seq=0, src="en", text="", t0=3.9, t1=6.0, lat_ms=1,
                              reason="hallucination")),
        at(8.0, RejectedFinal(device=D, utt=3, seq=0, src="en", text="", t0=7.5, t1=7.9, lat_ms=1,
                              reason="no_speech")),
        at(9.0, final(4, "", 8.5, 8.8)),  # a final without text is a rejection too
    ]  # fmt: skip
    assert rejected_finals(stream) == {"empty": 1, "hallucination": 1, "no_speech": 1}
    a, b = per_utterance(stream, m, timeline(), ("en",))
    assert a.final == "one two" and a.latency_ms["final"] == pytest.approx(500.0)
    # the two stray rejections overlap nothing: they go to the nearest utterance, b
    assert b.final == "" and b.rejected == ["hallucination", "no_speech", "empty"]
    assert b.latency_ms["final"] is None  # a rejection is not a final's latency
    q = quality([a, b], m, ("en",), utterance_texts(stream))
    assert q["asr"]["en"]["deletions"] == 4


def test_mt_final_latency_is_split_by_the_engine_that_served_it() -> None:
    m = manifest(
        ("es1", "es", "hola", 1.0, 2.0), ("de1", "de", "hallo", 4.0, 5.0),
        ("en1", "en", "hello", 7.0, 8.0),
    )  # fmt: skip
    stream = [
        at(2.2, final(1, "hola", 0.9, 2.0, "es")),
        at(2.4, mt(1, "en", "apertium", "es")),
        at(5.2, final(2, "hallo", 3.9, 5.0, "de")),
        at(6.0, mt(2, "en", "whisper", "de")),
        at(6.5, mt(2, "es", "whisper+apertium", "de")),
        at(8.2, final(3, "hello", 6.9, 8.0)),
        at(8.21, mt(3, "en", "identity")),  # the speaker's own language: not a translation
        at(8.3, mt(3, "es", "apertium")),
    ]
    results = per_utterance(stream, m, timeline(), ("en", "es"))
    by_engine = mt_latency_by_engine(results, ("en", "es"))
    assert set(by_engine) == {"apertium", "whisper", "whisper+apertium"}
    assert by_engine["apertium"]["n"] == 2 and by_engine["apertium"]["median"] == pytest.approx(
        350.0
    )
    assert by_engine["whisper"]["median"] == pytest.approx(1000.0)
    assert by_engine["whisper+apertium"]["median"] == pytest.approx(1500.0)


def test_language_id_accuracy_per_spoken_language_and_for_short_turns() -> None:
    m = manifest(
        ("en1", "en", "thank you", 1.0, 1.6), ("es1", "es", "sí", 3.0, 3.3),
        ("en2", "en", "good morning", 5.0, 6.0), ("es2", "es", "buenos días", 7.0, 8.0),
        ("es3", "es", "gracias", 10.0, 10.5),
        short=("en1", "es1"),
    )  # fmt: skip
    stream = [
        at(2.0, final(1, "Thank you.", 0.9, 1.6, "en")),
        at(3.8, final(2, "See.", 2.9, 3.3, "en")),  # a short Spanish turn heard as English
        at(6.5, final(3, "Good morning.", 4.9, 6.0, "en")),
        at(8.1, final(4, "Buenos", 6.9, 7.4, "es")),  # split in two, both Spanish
        at(8.5, final(5, "días.", 7.5, 8.0, "es")),
        # es3 has no final at all: not a language-ID error, counted apart
    ]
    results = per_utterance(stream, m, timeline(), ("en", "es"))
    lid = language_id(results)
    assert lid["en"] == {
        "turns": 2, "with_final": 2, "correct": 2, "accuracy": 1.0, "heard_as": {"en": 2},
        "short": {
            "turns": 1, "with_final": 1, "correct": 1, "accuracy": 1.0, "heard_as": {"en": 1},
        },
    }  # fmt: skip
    assert lid["es"]["turns"] == 3 and lid["es"]["with_final"] == 2
    assert lid["es"]["correct"] == 1 and lid["es"]["accuracy"] == 0.5
    assert lid["es"]["heard_as"] == {"en": 1, "es": 2}
    assert lid["es"]["short"]["correct"] == 0
    assert lid["all"]["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("hypothesis", "reference", "language", "expected"),
    [
        ("In 1813.", "IN EIGHTEEN THIRTEEN", "en", "In eighteen thirteen."),
        ("Platforms 1 and 3.", "platforms one and three", "en", "Platforms one and three."),
        ("Go forward 10 meters", "go forward ten meters", "en", "Go forward ten meters"),
        ("about 1,455", "of about 1455", "en", "about 1,455"),  # the reference has digits
        ("1455", "fourteen hundred and fifty five", "en", "one thousand four hundred fifty five"),
        ("Testar 1, 2, 3", "Testar en två tre", "sv", "Testar en, två, tre"),
        ("Un 2", "un deux", "fr", "Un deux"),
        ("x 123456789", "x", "en", "x 123456789"),  # no words known for it: kept
        ("nº 42", "numero quarantadue", "it", "nº 42"),
    ],
)
def test_numbers_in_digits_are_spelled_as_the_reference_does(
    hypothesis: str, reference: str, language: str, expected: str
) -> None:
    assert spell_numbers(hypothesis, reference, language) == expected


def test_english_cardinals() -> None:
    assert english_cardinal(0) == "zero" and english_cardinal(40) == "forty"
    assert english_cardinal(101) == "one hundred one"
    assert english_cardinal(20_045) == "twenty thousand forty five"


def test_offline_comparison_side_by_side_in_points() -> None:
    m = manifest(
        ("a", "en", "go forward ten meters", 1.0, 2.0),
        ("b", "en", "four queen of clubs", 3.0, 4.0),
        ("c", "ja", "真っ昼間", 5.0, 6.0),
    )  # fmt: skip
    streaming = {
        "all": {"wer": 0.3}, "en": {"wer": 0.25, "cer": 0.1}, "ja": {"wer": 1.0, "cer": 0.5},
    }  # fmt: skip
    offline = {"a": "Go forward 10 meters.", "b": "for queen of clubs", "c": "真昼間"}
    got = offline_comparison(m, streaming, offline)
    assert got["en"] == {
        "metric": "wer", "n": 2, "streaming": 0.25, "offline": 0.125, "difference_points": 12.5,
    }  # fmt: skip
    assert got["ja"]["metric"] == "cer" and got["ja"]["offline"] == pytest.approx(0.25)
    assert got["ja"]["difference_points"] == pytest.approx(25.0)
    assert got["all"]["n"] == 3


def test_rss_at_each_minute_and_a_repeated_manifest() -> None:
    samples = [(0.0, 300.0), (30.0, 310.0), (59.9, 305.0), (60.0, 320.0), (150.0, 321.0)]
    assert rss_by_minute(samples) == [
        {"minute": 0, "rss_mb": 310.0},
        {"minute": 1, "rss_mb": 320.0},
        {"minute": 2, "rss_mb": 321.0},
    ]
    m = manifest(("a", "en", "x", 1.0, 2.0))
    soak = repeated(m, 10.0, 3)  # type: ignore[arg-type]
    assert [(u.id, u.t0, u.t1) for u in soak.utterances] == [
        ("a", 1.0, 2.0), ("a@2", 11.0, 12.0), ("a@3", 21.0, 22.0),
    ]  # fmt: skip
    assert repeated(m, 10.0, 1) is m  # type: ignore[arg-type]
