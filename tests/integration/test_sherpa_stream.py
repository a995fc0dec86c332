"""The sherpa recognizer end to end on real sherpa-onnx with tiny test-built models.

tests/tiny_sherpa.py explains the models: a tone burst of 0.5 s decodes to three words
("DO DO DO" for 400 Hz, "RE RE RE" for 1800 Hz, "MI MI MI" for 5000 Hz), one word every
0.2 s while it lasts, and silence to nothing. The recognizer is driven the way the
pipeline drives it: begin() at a VAD segment start, accept() with small chunks, end() at
the segment end, with the segment boundaries placed before or after sherpa's endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tiny_sherpa as ts

from edged.asr import Hypothesis, HypothesisKind
from edged.asr.punct import load_punctuator
from edged.asr.sherpa import EndpointRules, ModelKind, SherpaRecognizer
from edged.audio.wav import read_wav
from edged.errors import ConfigError, EngineError, ModelError

SR = ts.SAMPLE_RATE
CHUNK = 512  # 32 ms, the VAD's window
RULES = EndpointRules(rule1_silence=1.2, rule2_silence=0.6, rule3_max_utterance=20.0)
EXPECTED = ["Do do do.", "Re re re.", "Mi mi mi."]
BUILDERS = {
    "zipformer2-ctc": ts.build_zipformer2_ctc,
    "wenet-ctc": ts.build_wenet_ctc,
    "lstm-transducer": ts.build_lstm_transducer,
}


@dataclass(frozen=True)
class Heard:
    at: float  # audio time of the last sample fed when the hypothesis came out
    hyp: Hypothesis
    by_end: bool  # returned by end() (VAD closed it) rather than by accept()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sherpa")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def three_bursts(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list]:
    """The test WAV: 0.5 s quiet, then DO, RE, MI bursts of 0.5 s, each followed by 1.5 s
    of quiet; written to disk and read back as the pipeline's WAV source would."""
    samples, spans = ts.bursts()
    path = ts.write_wav(tmp_path_factory.mktemp("wav") / "three_bursts.wav", samples)
    audio, rate = read_wav(path)
    assert rate == SR
    return audio, spans


def drive(
    rec: SherpaRecognizer, audio: np.ndarray, segments: list[tuple[float, float]], chunk: int
) -> list[Heard]:
    """Feed `audio` through begin/accept/end for each VAD segment (start, end) in seconds."""
    heard: list[Heard] = []
    for start, end in segments:
        a, b = round(start * SR), min(len(audio), round(end * SR))
        rec.begin(start)
        for i in range(a, b, chunk):
            j = min(i + chunk, b)
            heard += [Heard(j / SR, h, False) for h in rec.accept(audio[i:j])]
        heard += [Heard(b / SR, h, True) for h in rec.end()]
    return heard


def finals(heard: list[Heard]) -> list[Heard]:
    return [h for h in heard if h.hyp.kind is HypothesisKind.FINAL]


def utterances(heard: list[Heard]) -> list[list[Heard]]:
    """Hypotheses grouped per utterance: each group ends with its final."""
    groups: list[list[Heard]] = [[]]
    for h in heard:
        groups[-1].append(h)
        if h.hyp.kind is HypothesisKind.FINAL:
            groups.append([])
    assert groups[-1] == [], f"partials after the last final: {groups[-1]}"
    return groups[:-1]


def check_three_utterances(rec: SherpaRecognizer, heard: list[Heard], spans: list) -> None:
    """Three utterances: growing partials while each burst lasts, one final per burst
    within the trailing-silence rule (plus one model chunk), nothing in the silences."""
    assert [f.hyp.text for f in finals(heard)] == EXPECTED
    # chunk latency: the model sees a chunk plus its right context before decoding it
    slack = rec.bundle.tail_padding + CHUNK / SR
    for group, (start, end), text in zip(utterances(heard), spans, EXPECTED, strict=True):
        *partials, final = group
        assert partials, f"no partial for {text!r}"
        words = text.rstrip(".").split()
        for p in partials:
            assert start < p.at <= end + slack, f"partial {p.hyp.text!r} at {p.at} s"
            assert p.hyp.kind is HypothesisKind.PARTIAL and p.hyp.lang == "en"
            assert words[: len(p.hyp.text.split())] == p.hyp.text.split()
            assert p.hyp.text.startswith(p.hyp.stable)
        assert partials[-1].hyp.text == text.rstrip(".")
        assert end < final.at <= end + RULES.rule2_silence + slack, f"final at {final.at} s"
        h = final.hyp
        assert h.stable == h.text and h.lang == "en"
        assert abs(h.t0 - start) <= 0.06, "t0 is the first word's timestamp"
        assert start < h.t1 <= end + 0.05, "t1 is the last word's end, not the silence after"


@pytest.mark.parametrize("flavour", list(BUILDERS))
def test_three_bursts_one_long_segment(flavour: str, bundles: dict, three_bursts: tuple) -> None:
    """The VAD keeps one segment open over everything: sherpa's endpoints close each
    utterance; end() adds nothing."""
    audio, spans = three_bursts
    rec = SherpaRecognizer(bundles[flavour], ("en",), threads=1, endpoint=RULES)
    assert rec.kind.value == flavour.replace("lstm-", "")
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], CHUNK)
    check_three_utterances(rec, heard, spans)
    assert not any(h.by_end for h in heard)


def test_partials_grow_word_by_word(bundles: dict, three_bursts: tuple) -> None:
    audio, _ = three_bursts
    rec = SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), threads=1, endpoint=RULES)
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], CHUNK)
    first = utterances(heard)[0]
    assert [(h.hyp.text, h.hyp.stable) for h in first[:-1]] == [
        ("Do", ""),
        ("Do do", "Do"),
        ("Do do do", "Do do"),
    ]


@pytest.mark.parametrize("flavour", ["zipformer2-ctc", "lstm-transducer"])
def test_vad_ends_before_the_endpoint(flavour: str, bundles: dict, three_bursts: tuple) -> None:
    """Segments close 0.25 s after each burst, before rule 2's 0.6 s: end() gives the final."""
    audio, spans = three_bursts
    rec = SherpaRecognizer(bundles[flavour], ("en",), threads=1, endpoint=RULES)
    segments = [(start - 0.3, end + 0.25) for start, end in spans]
    heard = drive(rec, audio, segments, CHUNK)
    assert [f.hyp.text for f in finals(heard)] == EXPECTED
    assert all(f.by_end for f in finals(heard))
    assert len(utterances(heard)) == 3


@pytest.mark.parametrize("flavour", ["zipformer2-ctc", "lstm-transducer"])
def test_vad_ends_after_the_endpoint(flavour: str, bundles: dict, three_bursts: tuple) -> None:
    """Segments close 1.3 s after each burst: the endpoint fires inside, end() adds nothing."""
    audio, spans = three_bursts
    rec = SherpaRecognizer(bundles[flavour], ("en",), threads=1, endpoint=RULES)
    segments = [(start - 0.3, end + 1.3) for start, end in spans]
    heard = drive(rec, audio, segments, CHUNK)
    check_three_utterances(rec, heard, spans)
    assert not any(f.by_end for f in finals(heard))


def test_silence_gives_nothing(bundles: dict) -> None:
    """A segment of room tone longer than rule 1: no partial, no final, no empty final."""
    rec = SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), threads=1, endpoint=RULES)
    quiet = ts.quiet(3.0, seed=7)
    assert drive(rec, quiet, [(0.0, 3.0)], CHUNK) == []


def test_large_blocks_do_not_merge_utterances(bundles: dict, three_bursts: tuple) -> None:
    """Blocks of 2 s hold an endpoint and the next burst's onset together: the endpoint is
    still honoured between them, and only the newest partial of a block is returned."""
    audio, _ = three_bursts
    rec = SherpaRecognizer(bundles["lstm-transducer"], ("en",), threads=1, endpoint=RULES)
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], 2 * SR)
    assert [f.hyp.text for f in finals(heard)] == EXPECTED
    for group in utterances(heard):
        assert len(group) <= 3


def test_t0_is_on_the_pipeline_timeline(bundles: dict, three_bursts: tuple) -> None:
    """begin(t0) anchors the stream: a segment starting at 10 s shifts every time by 10 s."""
    audio, spans = three_bursts
    rec = SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), threads=1, endpoint=RULES)
    start, end = spans[0]
    a = round((start - 0.3) * SR)
    rec.begin(10.0)
    out = []
    for i in range(a, round((end + 0.3) * SR), CHUNK):
        out += rec.accept(audio[i : i + CHUNK])
    out += rec.end()
    assert out[-1].kind is HypothesisKind.FINAL
    assert abs(out[-1].t0 - (10.0 + 0.3)) <= 0.06


def test_accept_outside_a_segment(bundles: dict) -> None:
    rec = SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), threads=1)
    with pytest.raises(EngineError, match="no begin"):
        rec.accept(np.zeros(160, np.float32))


# --- hotwords ---------------------------------------------------------------------------


def test_hotwords_bias_a_transducer_and_change_at_runtime(
    bundles: dict, three_bursts: tuple
) -> None:
    """In the tiny transducer DO narrowly beats TO (and MI beats ME); a hotword flips it."""
    audio, _ = three_bursts
    whole = [(0.0, len(audio) / SR)]
    rec = SherpaRecognizer(
        bundles["lstm-transducer"], ("en",), threads=1, endpoint=RULES,
        decoding="modified_beam_search", hotwords=["to"],
    )  # fmt: skip
    assert [f.hyp.text for f in finals(drive(rec, audio, whole, CHUNK))] == [
        "To to to.", "Re re re.", "Mi mi mi.",
    ]  # fmt: skip
    rec.set_hotwords(["me", "ray"])
    assert [f.hyp.text for f in finals(drive(rec, audio, whole, CHUNK))] == [
        "Do do do.", "Ray ray ray.", "Me me me.",
    ]  # fmt: skip
    rec.set_hotwords([])
    assert [f.hyp.text for f in finals(drive(rec, audio, whole, CHUNK))] == EXPECTED


def test_hotwords_from_a_sentencepiece_model(bundles: dict, tmp_path: Path, three_bursts) -> None:
    """Bundles that ship bpe.model but no bpe.vocab (2023-06-26): the vocabulary sherpa
    needs is derived from the model."""
    import shutil

    import sentencepiece

    folder = Path(shutil.copytree(bundles["lstm-transducer"], tmp_path / "lstm"))
    (folder / "bpe.vocab").unlink()
    corpus = ["DO RE MI TO RAY ME"] * 20
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=str(folder / "bpe"), model_type="word",
        vocab_size=9, character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    audio, _ = three_bursts
    rec = SherpaRecognizer(
        folder, ("en",), threads=1, endpoint=RULES,
        decoding="modified_beam_search", hotwords=["ray"],
    )  # fmt: skip
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], CHUNK)
    assert [f.hyp.text for f in finals(heard)] == ["Do do do.", "Ray ray ray.", "Mi mi mi."]


def test_hotwords_need_a_transducer(bundles: dict) -> None:
    with pytest.raises(ConfigError, match="hotwords are unsupported by zipformer2-ctc"):
        SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), hotwords=["do"])
    rec = SherpaRecognizer(bundles["wenet-ctc"], ("en",))
    rec.set_hotwords([])  # clearing is always fine
    with pytest.raises(ConfigError, match="unsupported by wenet-ctc"):
        rec.set_hotwords(["do"])


def test_hotwords_need_beam_search(bundles: dict) -> None:
    with pytest.raises(ConfigError, match='decoding = "modified_beam_search"'):
        SherpaRecognizer(bundles["lstm-transducer"], ("en",), hotwords=["to"])
    with pytest.raises(ConfigError, match="greedy_search only"):
        SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), decoding="modified_beam_search")


def test_hotwords_the_model_cannot_spell(bundles: dict) -> None:
    rec = SherpaRecognizer(bundles["lstm-transducer"], ("en",), decoding="modified_beam_search")
    with pytest.raises(ConfigError, match="cannot spell"):
        rec.set_hotwords(["zebra"])
    with pytest.raises(ConfigError, match="contains"):
        rec.set_hotwords(["to/me"])


# --- languages ----------------------------------------------------------------------------


def test_languages_must_be_the_bundles(bundles: dict) -> None:
    with pytest.raises(ConfigError, match="recognises only en, not de, fr"):
        SherpaRecognizer(bundles["zipformer2-ctc"], ("en",), languages=("de", "en", "fr"))
    rec = SherpaRecognizer(bundles["zipformer2-ctc"], ("en",))
    with pytest.raises(ConfigError, match="not es"):
        rec.set_languages(("es",))
    with pytest.raises(ConfigError, match="at least one"):
        rec.set_languages(())


def test_bilingual_model_labels_chinese_text(tmp_path: Path, three_bursts: tuple) -> None:
    """A zh-en bundle whose three 'words' are Chinese characters: the text is labelled zh,
    each character counts as a word for stability, the final ends with 。"""
    audio, _ = three_bursts
    bundle = ts.build_zipformer2_ctc(tmp_path / "zh", tokens=("<blk>", "<unk>", "你", "好", "吗"))
    rec = SherpaRecognizer(bundle, ("zh", "en"), threads=1, endpoint=RULES)
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], CHUNK)
    assert [f.hyp.text for f in finals(heard)] == ["你你你。", "好好好。", "吗吗吗。"]
    assert {h.hyp.lang for h in heard} == {"zh"}
    assert [h.hyp.stable for h in utterances(heard)[0][:-1]] == ["", "你", "你你"]
    rec.set_languages(("en",))
    assert {h.hyp.lang for h in drive(rec, audio, [(0.0, 1.5)], CHUNK)} == {"en"}


# --- punctuation and loading -------------------------------------------------------------


def test_punctuation_model_on_finals(bundles: dict, tmp_path: Path, three_bursts) -> None:
    """The (fake) CNN-BiLSTM punctuation bundle runs through sherpa's OnlinePunctuation."""
    audio, _ = three_bursts
    punctuator = load_punctuator(ts.build_punctuation(tmp_path / "punct"))
    rec = SherpaRecognizer(
        bundles["zipformer2-ctc"], ("en",), threads=1, endpoint=RULES, punctuator=punctuator
    )
    heard = drive(rec, audio, [(0.0, len(audio) / SR)], CHUNK)
    assert [f.hyp.text for f in finals(heard)] == ["Do, do, do?", "Re, re, re?", "Mi, mi, mi?"]
    assert utterances(heard)[0][-2].hyp.text == "Do do do"  # partials: casing only


def test_punctuation_bundle_missing_metadata(tmp_path: Path) -> None:
    ts.write_stub(tmp_path / "model.int8.onnx", {"COMMA": 1})
    (tmp_path / "bpe.vocab").write_text("<unk>\t0\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"model\.int8\.onnx: metadata lacks PERIOD"):
        load_punctuator(tmp_path)


def test_broken_bundle_fails_before_sherpa_can_exit(bundles: dict, tmp_path: Path) -> None:
    """sherpa-onnx exit()s on a missing blank symbol; the recognizer refuses first."""
    import shutil

    folder = Path(shutil.copytree(bundles["zipformer2-ctc"], tmp_path / "z2"))
    ts.write_tokens(folder / "tokens.txt", ("a", "b", "c", "d", "e"))
    with pytest.raises(ModelError, match=r"tokens\.txt"):
        SherpaRecognizer(folder, ("en",))


def test_kind_is_exposed(bundles: dict) -> None:
    rec = SherpaRecognizer(bundles["lstm-transducer"], ("en",))
    assert rec.kind is ModelKind.TRANSDUCER
