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


# --- precision sherpa-onnx's own apps use, and metadata of the e-branchformer -----------


def test_float_joiner_is_preferred_when_asked(copy) -> None:
    """sherpa-onnx's APK generator keeps the float joiner (deletes joiner*.int8.onnx) for
    the zipformer-en-2023-06-26 and zipformer-fr-2023-04-14 models."""
    folder = copy("lstm")
    b = inspect_bundle(folder, float_joiner=True)
    assert b.files["joiner"].name == "joiner-epoch-99-avg-1.onnx"
    assert b.files["encoder"].name == "encoder-epoch-99-avg-1.int8.onnx"
    assert b.files["decoder"].name == "decoder-epoch-99-avg-1.onnx"


@pytest.mark.parametrize("bundle", ["sherpa-zipformer-en-2023-06-26", "sherpa-zipformer-fr"])
def test_catalogue_extracts_the_float_joiner_for_apps_pairing(bundle: str) -> None:
    from edged import store

    entry = store.load_catalogue().bundle(bundle)
    joiners = [f.path for f in entry.files if f.path.startswith("joiner")]
    assert len(joiners) == 1 and not joiners[0].endswith(".int8.onnx"), joiners
    assert entry.meta.get("joiner") == "float"
    members = [m for s in entry.sources for m in s.members.values()]
    assert joiners[0] in members


@pytest.mark.parametrize("bundle", ["sherpa-zipformer-en-20m", "sherpa-zipformer-zh-en"])
def test_catalogue_keeps_the_int8_joiner_where_the_apps_do(bundle: str) -> None:
    from edged import store

    entry = store.load_catalogue().bundle(bundle)
    assert [f.path for f in entry.files if f.path.startswith("joiner")] == [
        "joiner-epoch-99-avg-1.int8.onnx"
    ]
    assert entry.meta.get("joiner", "int8") == "int8"


EBRANCHFORMER_META = {
    "model_type": "ebranchformer",
    "decode_chunk_len": 32,
    "T": 40,
    "num_hidden_layers": 2,
    "hidden_size": 8,
    "intermediate_size": 16,
    "csgu_kernel_size": 31,
    "merge_conv_kernel": 31,
    "left_context_len": 64,
    "num_heads": 2,
    "head_dim": 4,
}


def ebranchformer_bundle(folder: Path, meta: dict[str, object]) -> Path:
    ts.write_stub(folder / "encoder.int8.onnx", meta)
    ts.write_stub(folder / "decoder.onnx", {"vocab_size": 5, "context_size": 2})
    ts.write_stub(folder / "joiner.int8.onnx", {})
    ts.write_tokens(folder / "tokens.txt", ts.CTC_TOKENS)
    return folder


def test_ebranchformer_with_all_ten_keys_is_accepted(tmp_path: Path) -> None:
    b = inspect_bundle(ebranchformer_bundle(tmp_path, EBRANCHFORMER_META))
    assert (b.kind, b.model_type) == (ModelKind.TRANSDUCER, "ebranchformer")
    assert (b.chunk_frames, b.shift_frames) == (40, 32)


@pytest.mark.parametrize("key", [k for k in EBRANCHFORMER_META if k != "model_type"])
def test_ebranchformer_missing_a_key_names_it_and_the_file(tmp_path: Path, key: str) -> None:
    """sherpa-onnx's OnlineEbranchformerTransducerModel reads these ten keys with
    SHERPA_ONNX_READ_META_DATA, which exit()s on a miss."""
    meta = {k: v for k, v in EBRANCHFORMER_META.items() if k != key}
    with pytest.raises(ModelError, match=rf"encoder\.int8\.onnx: metadata lacks {key} needed"):
        inspect_bundle(ebranchformer_bundle(tmp_path, meta))


def test_default_english_bundle_has_the_bpe_model_hotwords_need() -> None:
    """Defect 9: the default bundle's recipe publishes its sentencepiece model (sherpa-onnx's
    CI adds desh2608/...-streaming-small data/lang_bpe_500/bpe.model to it); with it the
    recognizer derives bpe.vocab and accepts hotwords (test_sherpa_stream)."""
    import re

    from edged import store
    from edged.config import Config

    entry = store.load_catalogue().bundle(Config().asr.sherpa.bundle)
    bpe = next(f for f in entry.files if f.path == "bpe.model")
    assert len(bpe.sha256) == 64 and bpe.size == 244865
    source = next(s for s in entry.sources if getattr(s, "path", "") == "bpe.model")
    assert re.search(r"/resolve/[0-9a-f]{40}/data/lang_bpe_500/bpe\.model$", source.url)
    assert "desh2608/icefall-asr-librispeech-pruned-transducer-stateless7" in source.url
