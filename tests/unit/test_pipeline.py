"""The pipeline's concurrency core with fakes (tests/fake_engines.py): milliseconds each.

Latest-wins interims, finals never dropped, push-to-talk endpoints, dropped frames,
stop/drain/abort, hush and mute, speech that never blocks translation, rejected finals,
conversation routing, the speech->English pass after the transcript, numbering."""

from __future__ import annotations

import threading

import pytest
from fake_engines import (
    FakeRecognizer,
    FakeSpeaker,
    ListSource,
    LiveFakeSource,
    Recorder,
    ResumableRecognizer,
    SpeechTranslatingRecognizer,
    Translator,
    make_pipeline,
    script,
)

from edged.bus import EventBus, Session
from edged.errors import EdgedError
from edged.events import AsrPartial, MtFinal
from edged.pipeline import SPEAK_QUEUE, Settings, Trigger
from edged.vad import Endpointing


def types(recorder: Recorder) -> list[str]:
    return [e.type for e in recorder.events]


def finals(recorder: Recorder, kind: str = "mt.final") -> list:
    return recorder.of(kind)


def test_utterances_flow_through_every_stage_in_order() -> None:
    pipeline, rec = make_pipeline(ListSource(script("SSS....SS....")))
    pipeline.run()
    asr = finals(rec, "asr.final")
    assert [e.text for e in asr] == ["w1 w2 w3", "w1 w2"]
    assert [e.text for e in finals(rec)] == ["es:w1 w2 w3", "es:w1 w2"]
    assert len(rec.of("tts.start")) == 2
    for utt in (1, 2):
        seqs = [e.seq for e in rec.events if e.utt == utt]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {e.session for e in rec.events} == {pipeline.bus.session.id}
    # speech.start opens each utterance, before its partials and final
    first = [e.type for e in rec.events if e.utt == 1]
    assert first[0] == "speech.start" and first.index("asr.partial") < first.index("asr.final")


def test_interim_translation_is_latest_wins_and_finals_are_all_translated() -> None:
    gate = threading.Event()
    translate = Translator(gate=gate)
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source, translate=translate)
    pipeline.start()
    source.feed("SS")  # the first stable partial reaches the translator, which blocks
    assert translate.entered.wait(5)
    source.feed("SSSSSS")  # more partials pile up behind the blocked translator
    assert rec.wait_for(lambda r: len(r.of("asr.partial")) == 8)
    source.feed("....")
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 1)
    gate.set()
    source.close()
    pipeline.wait(10)
    pipeline.bus.drain(5)
    assert pipeline.interims_superseded >= 1
    interim_texts = [t for t, _, final in translate.calls if not final]
    assert len(interim_texts) < 7  # not every stable prefix was translated
    assert [e.text for e in finals(rec)] == ["es:w1 w2 w3 w4 w5 w6 w7 w8"]


def test_finals_are_never_dropped_when_translation_is_slow() -> None:
    gate = threading.Event()
    pipeline, rec = make_pipeline(ListSource(script("SS...." * 6)), translate=Translator(gate=gate))
    pipeline.start()
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 6)
    gate.set()
    pipeline.wait(10)
    pipeline.bus.drain(5)
    assert len(finals(rec)) == 6


def test_push_to_talk_listens_only_while_held_and_release_ends_the_utterance() -> None:
    source = LiveFakeSource()
    settings = Settings(("en",), ("es",), "es", trigger=Trigger.PUSH_TO_TALK)
    pipeline, rec = make_pipeline(source, settings=settings)
    pipeline.start()
    source.feed("SSS....")  # not pressed: gated
    pipeline.ptt_start()
    source.feed("SSSS")  # speech, no trailing silence: only the release ends it
    assert rec.wait_for(lambda r: len(r.of("asr.partial")) == 4)
    assert not rec.of("asr.final")
    pipeline.ptt_stop()
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 1)
    assert rec.of("asr.final")[0].text == "w1 w2 w3 w4"
    source.feed("SS....")  # released: gated again
    pipeline.ptt_start()  # the next press works
    source.feed("SS")
    pipeline.ptt_stop()
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 2)
    source.close()
    pipeline.wait(10)
    assert pipeline.stats.frames_unheld == 7 + 6


def test_ptt_stop_in_continuous_mode_ends_the_utterance_and_keeps_listening() -> None:
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source)
    pipeline.start()
    pipeline.ptt_start()
    source.feed("SSS")
    assert rec.wait_for(lambda r: len(r.of("asr.partial")) == 3)
    pipeline.ptt_stop()
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 1)
    source.feed("SS....")  # the microphone is still open
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 2)
    source.close()
    pipeline.wait(10)
    assert pipeline.stats.frames_gated == 0


def test_per_language_button_fixes_the_turns_language() -> None:
    source = LiveFakeSource()
    recognizer = FakeRecognizer()
    settings = Settings(
        ("en", "es"), ("es",), "", conversation=("en", "es"), trigger=Trigger.PUSH_TO_TALK
    )
    pipeline, rec = make_pipeline(source, recognizer=recognizer, settings=settings)
    pipeline.start()
    pipeline.ptt_start("es")
    source.feed("SS")
    pipeline.ptt_stop()
    assert rec.wait_for(lambda r: len(r.of("mt.final")) == 1)
    final = rec.of("mt.final")[0]
    assert (final.src, final.tgt) == ("es", "en")
    assert recognizer.language_calls[-1] == ("es",)
    source.close()
    pipeline.wait(10)


def test_a_slow_recognizer_behind_a_live_source_drops_and_counts_frames() -> None:
    gate = threading.Event()
    source = LiveFakeSource()
    pipeline, _ = make_pipeline(
        source, recognizer=FakeRecognizer(gate=gate), realtime=True, queue_seconds=0.1
    )
    pipeline.start()
    source.feed("S" * 200)  # capture never blocks: the queue holds 4 frames
    source.close()
    assert pipeline.wait(0.0) is False
    gate.set()
    pipeline.wait(10)
    assert pipeline.stats.frames_in == 200
    assert pipeline.stats.frames_dropped > 150


def test_stop_drains_the_utterance_in_progress_and_abort_drops_it() -> None:
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source)
    pipeline.start()
    source.feed("SSS")
    assert rec.wait_for(lambda r: len(r.of("asr.partial")) == 3)
    pipeline.stop()
    assert pipeline.wait(10)
    pipeline.bus.drain(5)
    assert [e.text for e in rec.of("mt.final")] == ["es:w1 w2 w3"]

    gate = threading.Event()
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source, translate=Translator(gate=gate))
    pipeline.start()
    source.feed("SS....")
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 1)
    pipeline.abort()
    gate.set()
    assert pipeline.wait(10)
    assert len(rec.of("tts.start")) == 0


def test_stop_playback_cuts_the_current_speech_and_drops_the_queue_not_later_speech() -> None:
    speaker = FakeSpeaker(blocking=True)
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source, sink=speaker)
    pipeline.start()
    source.feed("SS....SSS....SSSS....")
    assert speaker.playing.wait(5)
    assert rec.wait_for(lambda r: len(r.of("mt.final")) == 3)
    assert pipeline.stop_playback() == 2  # two translations were waiting
    assert rec.wait_for(lambda r: len(r.of("tts.end")) == 1)
    speaker.unblock()
    source.feed("SS....")  # speech after the stop is spoken
    assert rec.wait_for(lambda r: len(r.of("tts.end")) == 2)
    source.close()
    pipeline.wait(10)
    assert [e.utt for e in rec.of("tts.start")] == [1, 4]


def test_mute_silences_translations_and_speak_commands_until_unmute() -> None:
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source)
    pipeline.start()
    pipeline.mute()
    with pytest.raises(EdgedError, match="muted"):
        pipeline.speak("hello", "en")
    source.feed("SS....")
    assert rec.wait_for(lambda r: len(r.of("mt.final")) == 1)
    pipeline.unmute()
    pipeline.speak("hello", "en")
    assert rec.wait_for(lambda r: len(r.of("tts.end")) == 1)
    source.close()
    pipeline.wait(10)
    assert [e.text for e in rec.of("tts.start")] == ["hello"]


def test_speak_commands_are_bounded_and_never_block_translation() -> None:
    speaker = FakeSpeaker(blocking=True)
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(source, sink=speaker)
    pipeline.start()
    pipeline.speak("first", "en")
    assert speaker.playing.wait(5)
    for i in range(SPEAK_QUEUE):
        pipeline.speak(f"queued {i}", "en")
    with pytest.raises(EdgedError, match="queue full"):
        pipeline.speak("one too many", "en")
    with pytest.raises(EdgedError, match="characters"):
        pipeline.speak("x" * 1000, "en")
    source.feed("SS...." * 10)  # translation goes on while speech is stuck
    assert rec.wait_for(lambda r: len(r.of("mt.final")) == 10)
    assert pipeline.speech_dropped > 0
    assert any(e.code == "tts-dropped" for e in rec.of("error"))
    speaker.unblock()
    source.close()
    assert pipeline.wait(10)


def test_a_rejected_final_is_announced_and_not_translated() -> None:
    pipeline, rec = make_pipeline(
        ListSource(script("SSS....SS....")), recognizer=FakeRecognizer(finals=["", "ok"])
    )
    pipeline.run()
    asr = rec.of("asr.final")
    assert [(e.text, e.reason) for e in asr] == [("", "repetition"), ("ok", None)]
    assert [e.text for e in rec.of("mt.final")] == ["es:ok"]
    assert pipeline.stats.finals_rejected == 1


def test_conversation_translates_each_turn_into_the_other_language_and_speaks_it() -> None:
    settings = Settings(("en", "es"), ("en",), "en", conversation=("en", "es"))
    pipeline, rec = make_pipeline(
        ListSource(script("SS....SSS....")),
        recognizer=FakeRecognizer(langs=["es", "en"]),
        settings=settings,
    )
    pipeline.run()
    pairs = [(e.src, e.tgt) for e in rec.of("mt.final")]
    assert pairs == [("es", "en"), ("en", "es")]
    assert [e.lang for e in rec.of("tts.start")] == ["en", "es"]


def test_asr_final_is_published_before_the_speech_translation_runs() -> None:
    recognizer = SpeechTranslatingRecognizer(langs=["de"])
    recognizer.set_languages(("de",))
    translate = Translator(speech_only={("de", "en")})
    settings = Settings(("de",), ("en", "es"), "en")
    source = LiveFakeSource()
    pipeline, rec = make_pipeline(
        source, recognizer=recognizer, translate=translate, settings=settings
    )
    pipeline.start()
    source.feed("SS....")
    assert recognizer.translated.wait(5)
    # The English pass is running: the transcript and the text-served pair are out.
    assert rec.wait_for(lambda r: len(r.of("asr.final")) == 1 and len(r.of("mt.final")) == 1)
    assert rec.of("mt.final")[0].tgt == "es"
    recognizer.release.set()
    assert rec.wait_for(lambda r: len(r.of("mt.final")) == 2)
    whisper = rec.of("mt.final")[1]
    assert (whisper.tgt, whisper.text, whisper.engine) == ("en", "english words", "whisper")
    source.close()
    pipeline.wait(10)


def test_utterance_numbers_and_the_timeline_continue_across_pipelines() -> None:
    session = Session()
    first, rec1 = make_pipeline(ListSource(script("SS....")), session=session)
    first.run()
    session.time_offset = first.audio_end
    second, rec2 = make_pipeline(ListSource(script("SS....")), session=session)
    second.run()
    a, b = rec1.of("asr.final")[0], rec2.of("asr.final")[0]
    assert (a.utt, b.utt) == (1, 2)
    assert b.t0 >= a.t1
    assert a.session == b.session == session.id


class _Stuck:
    """A publisher that blocks until released (a broker socket, an SD card fsync)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.got: list = []

    def publish(self, event: object) -> None:
        self.release.wait(10)
        self.got.append(event)

    def close(self) -> None:
        pass


def test_a_stuck_publisher_never_blocks_emit_and_loses_only_interims() -> None:
    stuck = _Stuck()
    bus = EventBus("test", [stuck])
    common = dict(device="test", seq=0, src="en", t0=0.0, t1=1.0, lat_ms=1)
    for i in range(2000):  # returns at once although the publisher is stuck
        bus.emit(AsrPartial(utt=1, text=str(i), stable="", **common))
    for i in range(5):
        bus.emit(MtFinal(utt=1, tgt="es", text=str(i), engine="x", **common))
    assert bus.dropped["_Stuck"] > 0
    stuck.release.set()
    assert bus.drain(10)
    got = [e for e in stuck.got if e.type == "mt.final"]
    assert [e.text for e in got] == ["0", "1", "2", "3", "4"]
    seqs = [e.seq for e in stuck.got]
    assert seqs == sorted(seqs)
    bus.close()


# Chunks are 32 ms; the fake VAD reports a pause after 3 silent chunks (96 ms).
ENDPOINTING = Endpointing(sentence=0.1, upper=0.32)


def test_a_final_decoded_at_a_pause_is_dropped_when_speech_resumes() -> None:
    recognizer = ResumableRecognizer()
    pipeline, rec = make_pipeline(
        ListSource(script("SS" + "." * 5 + "SS" + "." * 12)),
        recognizer=recognizer,
        endpointing=ENDPOINTING,
    )
    pipeline.run()
    assert [e.text for e in rec.of("asr.final")] == ["w1 w2 w3 w4"]  # one final, not two
    assert len(rec.of("speech.start")) == 1
    assert recognizer.resumed == 1 and pipeline.stats.finals_resumed == 1
    assert [e.text for e in rec.of("mt.final")] == ["es:w1 w2 w3 w4"]


def test_a_sentence_end_needs_less_silence_than_an_unfinished_clause() -> None:
    pattern = "SS" + "." * 5 + "SS" + "." * 12
    pipeline, rec = make_pipeline(
        ListSource(script(pattern)),
        recognizer=ResumableRecognizer(finals=["Done.", "Next one."]),
        endpointing=ENDPOINTING,
    )
    pipeline.run()
    # "Done." ends a sentence: 0.1 s of silence publish it, the next words are a new turn.
    assert [e.text for e in rec.of("asr.final")] == ["Done.", "Next one."]
    assert [e.utt for e in rec.of("asr.final")] == [1, 2]
    assert pipeline.stats.finals_resumed == 0


def test_without_a_resumable_recognizer_the_vad_endpoint_is_final() -> None:
    pipeline, rec = make_pipeline(
        ListSource(script("SS" + "." * 5 + "SS" + "." * 12)), endpointing=ENDPOINTING
    )
    pipeline.run()
    assert [e.text for e in rec.of("asr.final")] == ["w1 w2", "w1 w2"]
