"""Bundle inspection for the sherpa recognizer: kind detection, file preference and the
errors that must name the missing or mismatched file (sherpa-onnx itself would exit()).

The bundles are the tiny models of tests/tiny_sherpa.py, written to temporary
directories; nothing here runs sherpa-onnx."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import tiny_sherpa as ts

from edged.asr.sherpa import ModelKind, inspect_bundle
from edged.errors import ModelError
from edged.onnxinfo import read_onnx_info


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "z2": ts.build_zipformer2_ctc(root / "z2"),
        "wenet": ts.build_wenet_ctc(root / "wenet"),
        "lstm": ts.build_lstm_transducer(root / "lstm"),
    }


@pytest.fixture
def copy(built: dict[str, Path], tmp_path: Path):
    def make(name: str) -> Path:
        return Path(shutil.copytree(built[name], tmp_path / name))

    return make


def test_zipformer2_ctc_is_detected_from_metadata(built: dict[str, Path]) -> None:
    b = inspect_bundle(built["z2"])
    assert b.kind is ModelKind.ZIPFORMER2_CTC
    assert b.files == {"model": built["z2"] / "model.int8.onnx"}
    assert b.vocab_size == len(ts.CTC_TOKENS)  # from the log-probs output shape
    assert (b.chunk_frames, b.shift_frames) == (23, 16)


def test_wenet_ctc_prefers_the_streaming_export(copy) -> None:
    folder = copy("wenet")
    shutil.copy(folder / "model-streaming.onnx", folder / "model.onnx")  # an offline twin
    b = inspect_bundle(folder)
    assert b.kind is ModelKind.WENET_CTC
    assert b.files["model"].name == "model-streaming.onnx"


def test_transducer_prefers_int8_encoder_joiner_and_float_decoder(copy) -> None:
    folder = copy("lstm")
    shutil.copy(folder / "decoder-epoch-99-avg-1.onnx", folder / "decoder-epoch-99-avg-1.int8.onnx")
    b = inspect_bundle(folder)
    assert b.kind is ModelKind.TRANSDUCER
    assert b.model_type == "lstm"
    assert {role: p.name for role, p in b.files.items()} == {
        "encoder": "encoder-epoch-99-avg-1.int8.onnx",
        "decoder": "decoder-epoch-99-avg-1.onnx",
        "joiner": "joiner-epoch-99-avg-1.int8.onnx",
    }
    assert b.modeling_unit == "bpe" and b.upper_case and b.bpe_vocab == folder / "bpe.vocab"


def test_float_files_are_used_when_there_is_no_int8(copy) -> None:
    folder = copy("lstm")
    for p in folder.glob("*.int8.onnx"):
        p.unlink()
    assert inspect_bundle(folder).files["encoder"].name == "encoder-epoch-99-avg-1.onnx"


def test_paraformer_is_told_from_a_joinerless_transducer_by_its_metadata(tmp_path: Path) -> None:
    ts.write_stub(tmp_path / "encoder.int8.onnx", ts.PARAFORMER_META)
    ts.write_stub(tmp_path / "decoder.int8.onnx", {})
    ts.write_stub(tmp_path / "decoder.onnx", {})
    ts.write_tokens(tmp_path / "tokens.txt", ts.CTC_TOKENS)
    b = inspect_bundle(tmp_path)
    assert b.kind is ModelKind.PARAFORMER
    assert b.files["decoder"].name == "decoder.int8.onnx"


def test_several_exports_need_a_variant(copy) -> None:
    folder = copy("lstm")
    for role in ("encoder", "decoder", "joiner"):
        src = folder / f"{role}-epoch-99-avg-1.onnx"
        shutil.copy(src, folder / f"{role}-epoch-99-avg-1-chunk-16-left-64.onnx")
    with pytest.raises(ModelError, match=r"several encoder exports.*variant"):
        inspect_bundle(folder)
    b = inspect_bundle(folder, variant="left-64")
    assert all("left-64" in p.name for p in b.files.values())


# --- files missing or mismatched: the message names the file ---------------------------


def test_missing_tokens(copy) -> None:
    folder = copy("z2")
    (folder / "tokens.txt").unlink()
    with pytest.raises(ModelError, match=r"tokens\.txt: file missing"):
        inspect_bundle(folder)


def test_tokens_shorter_than_the_vocabulary(copy) -> None:
    folder = copy("z2")
    ts.write_tokens(folder / "tokens.txt", ts.CTC_TOKENS[:3])
    with pytest.raises(ModelError, match=r"tokens\.txt: 3 symbols .*model\.int8\.onnx.* 5"):
        inspect_bundle(folder)


def test_tokens_shorter_than_the_transducer_vocabulary(copy) -> None:
    folder = copy("lstm")
    ts.write_tokens(folder / "tokens.txt", ts.TRANSDUCER_TOKENS[:-1])
    with pytest.raises(ModelError, match=r"tokens\.txt: 7 symbols .* vocabulary of 8"):
        inspect_bundle(folder)


def test_malformed_tokens_line(copy) -> None:
    folder = copy("z2")
    (folder / "tokens.txt").write_text("<blk> 0\n<unk> one\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"tokens\.txt: line 2"):
        inspect_bundle(folder)


def test_ctc_tokens_without_blank(copy) -> None:
    folder = copy("z2")
    ts.write_tokens(folder / "tokens.txt", ("a", "b", "c", "d", "e"))
    with pytest.raises(ModelError, match=r"tokens\.txt: a CTC model needs a blank"):
        inspect_bundle(folder)


def test_encoder_without_joiner(copy) -> None:
    folder = copy("lstm")
    for p in folder.glob("joiner*"):
        p.unlink()
    with pytest.raises(ModelError, match=r"encoder-epoch-99-avg-1\.int8\.onnx but no joiner"):
        inspect_bundle(folder)


def test_joiner_without_decoder(copy) -> None:
    folder = copy("lstm")
    (folder / "decoder-epoch-99-avg-1.onnx").unlink()
    with pytest.raises(ModelError, match=r"no decoder\*\.onnx \(file missing\)"):
        inspect_bundle(folder)


def test_corrupt_model_file(copy) -> None:
    folder = copy("z2")
    model = folder / "model.int8.onnx"
    model.write_bytes(model.read_bytes()[:300])
    with pytest.raises(ModelError, match=r"model\.int8\.onnx: not a readable ONNX model"):
        inspect_bundle(folder)


def test_text_file_posing_as_model(copy) -> None:
    folder = copy("z2")
    (folder / "model.int8.onnx").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ModelError, match=r"model\.int8\.onnx: not a readable ONNX model"):
        inspect_bundle(folder)


def test_metadata_key_missing(copy) -> None:
    folder = copy("lstm")
    path = folder / "encoder-epoch-99-avg-1.int8.onnx"
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != "decode_chunk_len"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"encoder-epoch-99-avg-1\.int8\.onnx: metadata lacks dec"):
        inspect_bundle(folder)


def test_unknown_single_model_type(tmp_path: Path) -> None:
    ts.write_stub(tmp_path / "model.onnx", {"model_type": "EncDecCTCModelBPE"}, ["N", 4, 5])
    ts.write_tokens(tmp_path / "tokens.txt", ts.CTC_TOKENS)
    with pytest.raises(ModelError, match=r"model\.onnx: metadata model_type='EncDecCTCModelBPE'"):
        inspect_bundle(tmp_path)


def test_empty_and_absent_bundles(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a directory"):
        inspect_bundle(tmp_path / "nowhere")
    ts.write_tokens(tmp_path / "tokens.txt", ts.CTC_TOKENS)
    with pytest.raises(ModelError, match=r"no \*\.onnx model"):
        inspect_bundle(tmp_path)


def test_onnx_info_matches_the_onnx_package(built: dict[str, Path]) -> None:
    path = built["lstm"] / "encoder-epoch-99-avg-1.onnx"
    info = read_onnx_info(path)
    model = onnx.load(str(path))
    assert info.metadata == {p.key: p.value for p in model.metadata_props}
    expected = [
        (o.name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in
                  o.type.tensor_type.shape.dim])
        for o in model.graph.output
    ]  # fmt: skip
    assert info.outputs == expected
