"""The benchmark's accounting on synthetic event streams with known timings."""

from __future__ import annotations

import pytest

from edged.bench.manifest import parse_manifest
from edged.bench.metrics import (
    Received,
    Span,
    Timeline,
    busy_intervals,
    flicker,
    flicker_by_utt,
    groups,
    match,
    normalise,
    per_utterance,
    quality,
    retracted,
    silence_cpu,
    summarise,
    translation_scores,
    utterance_texts,
    word_errors,
)
from edged.events import AsrFinal, AsrPartial, MtFinal, MtInterim, SpeechStart, TtsEnd, TtsStart

ORIGIN = 100.0  # monotonic time of audio time 0 in the synthetic runs
D = "dev"


def manifest(*utts: tuple[str, str, str, float, float], **translations: dict) -> object:
    return parse_manifest(
        [
            {
                "id": i,
                "language": lang,
                "text": text,
                "t0": t0,
                "t1": t1,
                "translations": translations.get(i, {}),
            }
            for i, lang, text, t0, t1 in utts
        ]
    )


def partial(utt: int, text: str, t0: float, t1: float, stable: str = "") -> AsrPartial:
    return AsrPartial(
        device=D, utt=utt, seq=0, src="en", text=text, stable=stable, t0=t0, t1=t1, lat_ms=100
    )


def final(utt: int, text: str, t0: float, t1: float, src: str = "en") -> AsrFinal:
    return AsrFinal(device=D, utt=utt, seq=0, src=src, text=text, t0=t0, t1=t1, lat_ms=900)


def mt(utt: int, tgt: str, text: str, t0: float, t1: float, engine: str = "apertium") -> MtFinal:
    return MtFinal(
        device=D,
        utt=utt,
        seq=0,
        src="en",
        tgt=tgt,
        text=text,
        engine=engine,
        t0=t0,
        t1=t1,
        lat_ms=950,
    )


def tts(utt: int, text: str) -> TtsStart:
    return TtsStart(device=D, utt=utt, seq=0, lang="en", voice="v", text=text, lat_ms=1000)


def at(seconds: float, event: object) -> Received:
    """An event received `seconds` after the feed began."""
    return Received(ORIGIN + seconds, event)  # type: ignore[arg-type]


def timeline(duration: float = 10.0, cpu_rate: float = 0.0) -> Timeline:
    return Timeline.paced(ORIGIN, duration, cpu_rate=cpu_rate, frame=160)  # 10 ms chunks


TWO = manifest(
    ("a", "en", "Hello world.", 1.0, 2.0),
    ("b", "es", "Hola mundo.", 4.0, 5.0),
    a={"es": ["Hola mundo."]},
    b={"en": ["Hello world.", "Hello, world."]},
)

STREAM = [
    at(1.3, SpeechStart(device=D, utt=1, seq=0, t0=0.9)),
    at(1.7, partial(1, "Hello", 0.9, 1.6)),
    at(2.2, partial(1, "Hello word", 0.9, 2.0, stable="Hello")),
    at(3.1, final(1, "Hello world.", 0.9, 2.0)),
    at(3.15, mt(1, "en", "Hello world.", 0.9, 2.0, "identity")),
    at(3.3, mt(1, "es", "Hola mundo.", 0.9, 2.0)),
    at(3.5, tts(1, "Hello world.")),
    at(3.5, TtsEnd(device=D, utt=1, seq=0, lang="en", duration=1.0)),
    at(4.4, SpeechStart(device=D, utt=2, seq=0, t0=3.9)),
    at(6.0, final(2, "Hola mundo.", 3.9, 5.0, src="es")),
    at(6.25, mt(2, "en", "Hello world.", 3.9, 5.0)),
    at(6.4, tts(2, "Hello world.")),
]


def test_timeline_maps_audio_time_to_arrival_and_back() -> None:
    t = timeline()
    assert t.origin == pytest.approx(ORIGIN)
    assert t.wall(1.0) == pytest.approx(ORIGIN + 1.0)
    assert t.wall(1.005) == pytest.approx(ORIGIN + 1.01)  # the chunk holding the sample
    assert t.wall(12.0) == pytest.approx(ORIGIN + 12.0)  # past the end: extrapolated
    assert t.audio_time(ORIGIN + 3.5) == pytest.approx(3.5)


def test_latencies_from_reference_times_to_event_arrival() -> None:
    # the synthesized speech of utterance 1 reached the sink 0.1 s after its tts.start
    results = per_utterance(STREAM, TWO, timeline(), ("en", "es"), {1: ORIGIN + 3.6})
    a, b = results
    assert a.latency_ms == pytest.approx(
        {
            "first_partial": 700.0,  # onset 1.0 -> partial at 1.7
            "first_text": 700.0,
            "final": 1100.0,  # end 2.0 -> final at 3.1
            "mt.en": 1150.0,
            "mt.es": 1300.0,
            "tts": 1500.0,
            "audio": 1600.0,  # end 2.0 -> first synthesized samples at 3.6
        }
    )
    assert a.event_lat_ms["final"] == 900
    assert a.final == "Hello world." and a.translations == {
        "en": "Hello world.",
        "es": "Hola mundo.",
    }
    assert a.utts == [1] and a.group == ("a",)
    # no partials: the first text is the final; no Spanish translation of Spanish speech
    assert b.latency_ms["first_partial"] is None
    assert b.latency_ms["first_text"] == pytest.approx(2000.0)
    assert b.latency_ms["final"] == pytest.approx(1000.0)
    assert b.latency_ms["mt.en"] == pytest.approx(1250.0)
    assert b.latency_ms["mt.es"] is None
    assert b.latency_ms["tts"] == pytest.approx(1400.0)
    assert b.latency_ms["audio"] is None  # no speech of utterance 2 reached the sink


def test_summary_of_latencies_counts_missing() -> None:
    results = per_utterance(STREAM, TWO, timeline(), ("en", "es"))
    s = summarise(r.latency_ms["final"] for r in results)
    assert s == {
        "n": 2,
        "missing": 0,
        "min": 1000.0,
        "median": 1050.0,
        "p90": 1090.0,
        "max": 1100.0,
        "mean": 1050.0,
    }
    assert summarise(r.latency_ms["first_partial"] for r in results)["missing"] == 1
    assert summarise([]) == {"n": 0, "missing": 0}


def test_retracted_characters() -> None:
    assert retracted("Comment t'as", "Comment t'appelles-tu ?") == 1  # the "s"
    assert retracted("Turn on the left", "Turn on the light") == 3
    assert retracted("Turn on", "Turn on the light") == 0
    assert retracted("abc", "") == 3
    assert retracted("", "abc") == 0


def test_flicker_counts_rewrites_stable_retractions_and_the_final() -> None:
    f = flicker(
        [
            ("Turn on the left", "Turn"),
            ("Turn on the light", "Turn on the"),
            ("Turn on the light", "Turn on the"),
        ],
        "Turn on the light.",
    )
    assert (f.partials, f.chars, f.retractions, f.stable_chars, f.final_chars) == (3, 3, 1, 0, 0)
    broken = flicker([("a b", "a b"), ("a c", "a")], "a c")
    assert broken.stable_chars == 2 and broken.chars == 1
    rewritten = flicker([("ever tried", "")], "Ever tried.")
    assert rewritten.final_chars == len("ever tried")
    assert flicker([], "x").partials == 0


def test_flicker_per_pipeline_utterance() -> None:
    by_utt = flicker_by_utt(STREAM)
    assert set(by_utt) == {1}
    assert by_utt[1].chars == 0 and by_utt[1].final_chars == 1  # "Hello word" -> "Hello world."


def test_match_assigns_by_overlap_and_a_merge_makes_a_group() -> None:
    m = manifest(
        ("x", "en", "No matter.", 1.0, 1.6),
        ("y", "en", "Try again.", 2.4, 3.0),
        ("z", "en", "Fail.", 6.0, 6.5),
    )
    spans = [Span(1, 0.8, 3.1, True), Span(2, 5.9, 6.6, True), Span(3, 9.0, 9.2, True)]
    found = match(spans, m)
    assert found == {"x": [1], "y": [1], "z": [2, 3]}  # 3 overlaps nothing: nearest is z
    assert groups(found, m) == [("x", "y"), ("z",)]


def test_a_merged_utterance_is_scored_once_against_both_references() -> None:
    m = manifest(
        ("x", "en", "No matter.", 1.0, 1.6),
        ("y", "en", "Try again.", 2.4, 3.0),
        x={"es": ["No importa."]},
        y={"es": ["Inténtalo otra vez."]},
    )
    stream = [
        at(3.9, final(1, "No matter. Try again.", 0.8, 3.1)),
        at(4.0, mt(1, "es", "No importa. Inténtalo otra vez.", 0.8, 3.1)),
    ]
    results = per_utterance(stream, m, timeline(), ("es",))
    assert [r.group for r in results] == [("x", "y"), ("x", "y")]
    # each closed by the same final: measured from its own end of speech
    assert results[0].latency_ms["final"] == pytest.approx(2300.0)
    assert results[1].latency_ms["final"] == pytest.approx(900.0)
    q = quality(results, m, ("es",), utterance_texts(stream))
    assert q["asr"]["all"]["wer"] == 0.0 and q["asr"]["all"]["n"] == 1
    assert q["mt"]["es"]["chrf"] == pytest.approx(100.0)
    assert q["groups"] == [["x", "y"]]


def test_speech_nobody_said_counts_as_insertions() -> None:
    m = manifest(("x", "en", "turn on the light", 1.0, 2.0))
    stream = [
        at(2.5, final(1, "turn on the light", 0.9, 2.0)),
        at(8.5, final(2, "thank you", 7.0, 7.5)),
    ]
    results = per_utterance(stream, m, timeline(), ("en",))
    assert results[0].utts == [1, 2]
    assert results[0].latency_ms["final"] == pytest.approx(500.0)  # closed by utt 1, not 2
    q = quality(results, m, ("en",), utterance_texts(stream))
    assert q["asr"]["all"]["insertions"] == 2 and q["asr"]["all"]["wer"] == pytest.approx(0.5)


def test_first_partial_of_a_merged_utterance_must_cover_its_audio() -> None:
    m = manifest(("x", "en", "one", 1.0, 1.5), ("y", "en", "two", 2.2, 2.8))
    stream = [
        at(1.8, partial(1, "one", 0.9, 1.7)),
        at(2.9, partial(1, "one two", 0.9, 2.7)),
        at(3.9, final(1, "one two", 0.9, 2.8)),
    ]
    _, y = per_utterance(stream, m, timeline(), ("en",))
    assert y.latency_ms["first_partial"] == pytest.approx(700.0)  # 2.2 -> 2.9, not 1.8


def test_interim_translations_are_not_finals() -> None:
    stream = [
        *STREAM[:4],
        at(
            3.05,
            MtInterim(
                device=D,
                utt=1,
                seq=0,
                src="en",
                tgt="es",
                text="Hola",
                engine="apertium",
                t0=0.9,
                t1=1.6,
                lat_ms=10,
            ),
        ),
    ]
    a, _ = per_utterance(stream, TWO, timeline(), ("es",))
    assert a.translations["es"] == "" and a.latency_ms["mt.es"] is None


def test_silence_cpu_leaves_out_busy_time() -> None:
    m = manifest(("a", "en", "x", 2.0, 3.0))
    t = timeline(duration=10.0, cpu_rate=0.05)
    # silences: 0-2 s (idle), 3-10 s (busy until the last event at 4.0, + settle 0.3)
    s = silence_cpu(m, t, [(ORIGIN + 1.9, ORIGIN + 4.0)], settle=0.3)
    assert s["windows"] == 2
    assert s["wall_s"] == pytest.approx(1.9 + 5.7, abs=0.02)
    assert s["cpu_percent"] == pytest.approx(5.0, abs=0.1)
    assert [w["from_s"] for w in s["detail"]] == pytest.approx([0.0, 4.3], abs=0.02)


def test_silence_cpu_ignores_short_windows_and_cuts_around_busy_time() -> None:
    m = manifest(("a", "en", "x", 0.2, 9.9))
    assert silence_cpu(m, timeline(duration=10.0, cpu_rate=0.5), [])["cpu_percent"] is None
    m = manifest(("a", "en", "x", 0.5, 1.0), ("b", "en", "y", 9.0, 9.5))
    # an utterance nobody listed (noise) keeps the pipeline busy from 4 to 5 s
    s = silence_cpu(m, timeline(duration=10.0), [(ORIGIN + 4.0, ORIGIN + 5.0)], settle=0.0)
    flat = [x for w in s["detail"] for x in (w["from_s"], w["seconds"])]
    # 0-0.5 s is under min_window (the first sample arrives with the first 10 ms chunk)
    assert flat == pytest.approx([1.0, 3.0, 5.0, 4.0, 9.5, 0.5], abs=0.02)


def test_busy_intervals_run_from_onset_to_the_last_event() -> None:
    results = per_utterance(STREAM, TWO, timeline(), ("en", "es"))
    busy = busy_intervals(STREAM, results, timeline())
    flat = [x - ORIGIN for span in busy for x in span]
    assert flat == pytest.approx([0.9, 3.5, 3.9, 6.4])


def test_word_errors_normalise_case_and_punctuation() -> None:
    assert normalise("Comment t\u2019appelles-tu ?") == "comment t'appelles tu"
    ok = word_errors([("Turn on the light.", "turn on the light")])
    assert ok["wer"] == 0.0 and ok["cer"] == 0.0
    one = word_errors([("a b c d", "a x c d"), ("e f", "e f")])
    assert one["wer"] == pytest.approx(1 / 6, abs=1e-4) and one["substitutions"] == 1
    assert word_errors([("a b", "")])["deletions"] == 2
    assert word_errors([("...", "x")]) == {"n": 0}


def test_translation_scores_pad_references_without_changing_them() -> None:
    hyp = "Turn on the living room light."
    perfect = translation_scores([(hyp, [hyp])])
    assert perfect["chrf"] == pytest.approx(100.0) and perfect["bleu"] == pytest.approx(100.0)
    one = translation_scores([("Switch the light on in the room.", [hyp]), (hyp, [hyp])])
    padded = translation_scores(
        [
            ("Switch the light on in the room.", [hyp]),
            (hyp, [hyp, "Switch on the living room light."]),
        ]
    )
    assert padded["chrf"] == pytest.approx(one["chrf"])
    assert padded["bleu"] == pytest.approx(one["bleu"])
    assert translation_scores([("x", [])]) == {"n": 0}


def test_quality_skips_translation_into_the_spoken_language() -> None:
    results = per_utterance(STREAM, TWO, timeline(), ("en", "es"))
    q = quality(results, TWO, ("en", "es"), utterance_texts(STREAM))
    assert q["mt"]["en"]["n"] == 1 and q["mt"]["en"]["engines"] == ["apertium"]
    assert q["mt"]["en"]["chrf"] == pytest.approx(100.0)
    assert q["mt"]["es"]["n"] == 1
    assert q["asr"]["en"]["wer"] == 0.0 and q["asr"]["es"]["wer"] == 0.0
