"""Streaming recognition with sherpa-onnx: partials every chunk, finals at endpoints.

A bundle directory holds one streaming model in one of the layouts sherpa-onnx's
`OnlineRecognizer` loads; `inspect_bundle` tells which from the files present and their
ONNX metadata, read straight from the protobuf without loading the model:

* transducer: `encoder*.onnx`, `decoder*.onnx`, `joiner*.onnx` (zipformer, zipformer2,
  LSTM, conformer, e-branchformer encoders);
* zipformer2-CTC or WeNet CTC: a single model file (`model_type` metadata `zipformer2`
  or `wenet_ctc`);
* streaming paraformer: `encoder*.onnx` + `decoder*.onnx` whose encoder metadata has the
  paraformer keys (`lfr_window_size`, ...);

plus `tokens.txt` always. `*.int8.onnx` is preferred over the float file, except for a
transducer's decoder: sherpa-onnx's own apps pair int8 encoder/joiner with the float
decoder (tiny, and more accurate unquantized). For some models those apps also keep the
float joiner (their APK generator deletes the int8 one); `float_joiner` asks for that.

Everything sherpa-onnx would choke on is checked first, because its loaders call
`exit()` on a missing metadata key or blank symbol (the daemon would vanish without a
word) and index past the end of tokens.txt on a short vocabulary.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sherpa_onnx

from edged.asr import Hypothesis, HypothesisKind
from edged.asr.punct import Punctuator, SentenceCase
from edged.audio import SAMPLE_RATE
from edged.errors import ConfigError, EngineError, ModelError
from edged.onnxinfo import OnnxInfo, read_onnx_info

log = logging.getLogger(__name__)

FRAME_S = 0.01  # sherpa-onnx's fbank frame shift
OUTPUT_FRAME_S = 0.04  # sherpa-onnx assumes 4x subsampling for timestamps and endpoints
DECODINGS = ("greedy_search", "modified_beam_search")
BLANKS = ("<blk>", "<blank>", "<eps>")  # what sherpa's CTC decoder accepts as blank

# Metadata keys each sherpa-onnx loader reads with SHERPA_ONNX_READ_META_DATA (exit on miss).
_REQUIRED_META = {
    "zipformer2": (
        "encoder_dims", "query_head_dims", "value_head_dims", "num_heads",
        "num_encoder_layers", "cnn_module_kernels", "left_context_len", "T", "decode_chunk_len",
    ),
    "zipformer": (
        "encoder_dims", "attention_dims", "num_encoder_layers", "cnn_module_kernels",
        "left_context_len", "T", "decode_chunk_len",
    ),
    "lstm": ("num_encoder_layers", "T", "decode_chunk_len", "rnn_hidden_size", "d_model"),
    "conformer": (
        "num_encoder_layers", "T", "decode_chunk_len", "left_context", "encoder_dim",
        "pad_length", "cnn_module_kernel",
    ),
    # online-ebranchformer-transducer-model.cc reads these ten and exit()s on a miss
    "ebranchformer": (
        "decode_chunk_len", "T", "num_hidden_layers", "hidden_size", "intermediate_size",
        "csgu_kernel_size", "merge_conv_kernel", "left_context_len", "num_heads", "head_dim",
    ),
    "wenet_ctc": (
        "head", "num_blocks", "output_size", "cnn_module_kernel", "right_context",
        "subsampling_factor", "vocab_size",
    ),
    "paraformer": (
        "vocab_size", "lfr_window_size", "lfr_window_shift", "encoder_output_size",
        "decoder_num_blocks", "decoder_kernel_size", "neg_mean", "inv_stddev",
    ),
    "decoder": ("vocab_size", "context_size"),
}  # fmt: skip
_WENET_CHUNK = 16  # sherpa-onnx's default chunk_size (output frames) for WeNet models
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_HAN}]")
# A unit of text for stability: one CJK character, or a run of other non-space characters.
_UNIT = re.compile(f"[{_HAN}]|[^\\s{_HAN}]+")


class ModelKind(enum.Enum):
    TRANSDUCER = "transducer"
    ZIPFORMER2_CTC = "zipformer2-ctc"
    WENET_CTC = "wenet-ctc"
    PARAFORMER = "paraformer"


@dataclass(frozen=True)
class EndpointRules:
    """sherpa-onnx's endpoint rules, tuned for conversation rather than dictation.

    rule 1: this much trailing silence with nothing decoded resets the stream (no final);
    rule 2: this much trailing silence after decoded text closes the utterance;
    rule 3: an utterance is closed at this length whatever follows.
    """

    rule1_silence: float = 1.2
    rule2_silence: float = 0.6
    rule3_max_utterance: float = 20.0

    def __post_init__(self) -> None:
        for name in ("rule1_silence", "rule2_silence", "rule3_max_utterance"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"asr.sherpa.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SherpaBundle:
    """What `inspect_bundle` found: the files to load and what they say about themselves."""

    path: Path
    kind: ModelKind
    model_type: str  # encoder/model `model_type` metadata (zipformer2, lstm, wenet_ctc, ...)
    files: dict[str, Path]  # role (encoder, decoder, joiner, model) -> file
    tokens: Path
    vocab_size: int
    symbols: tuple[str, ...]  # tokens.txt by id
    chunk_frames: int  # fbank frames a decode step needs (T), 0 if unknown
    shift_frames: int  # fbank frames a decode step advances, 0 if unknown
    bpe_vocab: Path | None = None
    bpe_model: Path | None = None

    @property
    def modeling_unit(self) -> str:
        """How sherpa-onnx should split hotwords into tokens: bpe, cjkchar, cjkchar+bpe, or
        "" when the vocabulary is neither (hotwords then unsupported)."""
        bpe = any(s.startswith("\u2581") for s in self.pieces)
        cjk = any(len(s) == 1 and _CJK.match(s) for s in self.pieces)
        if bpe and cjk:
            return "cjkchar+bpe"
        return "bpe" if bpe else "cjkchar" if cjk else ""

    @property
    def pieces(self) -> tuple[str, ...]:
        """The symbols that spell text: without <blk>, <unk>, <sos/eos> and the like."""
        return tuple(s for s in self.symbols if s and not (s.startswith("<") and s.endswith(">")))

    @property
    def upper_case(self) -> bool:
        """English streaming zipformers spell their pieces in capitals (▁HELLO)."""
        letters = "".join(ch for s in self.pieces for ch in s if ch.isascii() and ch.isalpha())
        return bool(letters) and letters.isupper()

    @property
    def tail_padding(self) -> float:
        """Seconds of silence that push the last real frames through the model at a
        segment end: one chunk plus one shift (its right context), default 0.8 s."""
        if not self.chunk_frames:
            return 0.8
        return (self.chunk_frames + self.shift_frames + 3) * FRAME_S


# --- bundle inspection --------------------------------------------------------------


def inspect_bundle(path: Path, variant: str = "", *, float_joiner: bool = False) -> SherpaBundle:
    """Find and check the model files of a sherpa-onnx streaming bundle.

    `variant` picks among several exports in one directory by a substring of their file
    names (e.g. "chunk-16-left-64"); `float_joiner` prefers a transducer's float joiner
    over its int8 one. ModelError names the missing or mismatched file.
    """
    if not path.is_dir():
        raise ModelError(f"sherpa model bundle {path} is not a directory; install it first")
    tokens = path / "tokens.txt"
    if not tokens.is_file():
        raise ModelError(f"{tokens}: file missing (every sherpa-onnx bundle needs tokens.txt)")
    symbols = _read_tokens(tokens)
    onnx_files = sorted(p for p in path.glob("*.onnx") if p.is_file())
    by_role = {
        role: [p for p in onnx_files if p.name.startswith(role)]
        for role in ("encoder", "decoder", "joiner")
    }
    if by_role["encoder"] or by_role["decoder"] or by_role["joiner"]:
        bundle = _inspect_encoder_decoder(path, by_role, tokens, symbols, variant, float_joiner)
    else:
        bundle = _inspect_single(path, onnx_files, tokens, symbols, variant)
    if len(symbols) < bundle.vocab_size:
        raise ModelError(
            f"{tokens}: {len(symbols)} symbols but the model "
            f"({', '.join(p.name for p in bundle.files.values())}) has a vocabulary of "
            f"{bundle.vocab_size}: tokens.txt belongs to another model; reinstall the bundle"
        )
    return bundle


def _read_tokens(tokens: Path) -> tuple[str, ...]:
    try:
        lines = tokens.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{tokens}: cannot read ({exc})") from exc
    table: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # "symbol id"; a symbol may itself be a space, so split from the right
        head, _, last = line.rstrip("\r\n").rpartition(" ")
        try:
            table[int(last)] = head
        except ValueError:
            raise ModelError(f"{tokens}: line {number} is not 'symbol id': {line!r}") from None
    if not table:
        raise ModelError(f"{tokens}: no symbols; reinstall the bundle")
    size = max(table) + 1
    return tuple(table.get(i, "") for i in range(size))


def _pick(candidates: list[Path], role: str, folder: Path, variant: str, int8: bool) -> Path:
    """One file among `role*.onnx` / `role*.int8.onnx` exports."""
    if variant:
        candidates = [p for p in candidates if variant in p.name]
    bases = sorted({p.name.removesuffix(".onnx").removesuffix(".int8") for p in candidates})
    if not bases:
        wanted = f"{role}*.onnx" + (f" containing {variant!r}" if variant else "")
        raise ModelError(f"{folder}: no {wanted} (file missing); reinstall the bundle")
    streaming = [b for b in bases if "streaming" in b]
    if len(bases) > 1 and len(streaming) == 1:
        bases = streaming  # WeNet bundles ship model.onnx (offline) beside model-streaming
    if len(bases) > 1:
        raise ModelError(
            f"{folder}: several {role} exports ({', '.join(bases)}); choose one with the "
            f"sherpa variant setting (a part of the file name, e.g. 'chunk-16-left-64')"
        )
    base = bases[0]
    order = [f"{base}.int8.onnx", f"{base}.onnx"] if int8 else [f"{base}.onnx", f"{base}.int8.onnx"]
    return next(folder / name for name in order if (folder / name).is_file())


def _require(info: OnnxInfo, model_type: str, file: Path) -> None:
    missing = [k for k in _REQUIRED_META[model_type] if k not in info.metadata]
    if missing:
        raise ModelError(
            f"{file}: metadata lacks {', '.join(missing)} needed by sherpa-onnx's {model_type}"
            f" loader (not a sherpa-onnx export, or a different model); reinstall the bundle"
        )


def _meta_int(info: OnnxInfo, key: str, file: Path) -> int:
    try:
        return int(info.metadata[key])
    except (KeyError, ValueError):
        raise ModelError(f"{file}: metadata {key!r} missing or not an integer") from None


def _inspect_encoder_decoder(
    folder: Path,
    by_role: dict[str, list[Path]],
    tokens: Path,
    symbols: tuple[str, ...],
    variant: str,
    float_joiner: bool,
) -> SherpaBundle:
    encoder = _pick(by_role["encoder"], "encoder", folder, variant, int8=True)
    decoder = _pick(by_role["decoder"], "decoder", folder, variant, int8=False)
    enc = read_onnx_info(encoder)
    dec = read_onnx_info(decoder)
    if "lfr_window_size" in enc.metadata:  # streaming paraformer: no joiner
        _require(enc, "paraformer", encoder)
        # paraformer decoders quantize well (unlike transducer decoders): int8 first
        decoder = _pick(by_role["decoder"], "decoder", folder, variant, int8=True)
        return SherpaBundle(
            folder, ModelKind.PARAFORMER, "paraformer", {"encoder": encoder, "decoder": decoder},
            tokens, _meta_int(enc, "vocab_size", encoder), symbols, 0, 0,
        )  # fmt: skip
    if not by_role["joiner"]:
        raise ModelError(
            f"{folder}: transducer encoder {encoder.name} but no joiner*.onnx (file missing);"
            f" reinstall the bundle"
        )
    joiner = _pick(by_role["joiner"], "joiner", folder, variant, int8=not float_joiner)
    read_onnx_info(joiner)  # readable at all
    model_type = enc.metadata.get("model_type", "")
    if model_type not in ("zipformer", "zipformer2", "lstm", "conformer", "ebranchformer"):
        raise ModelError(
            f"{encoder}: metadata model_type={model_type!r} is not a streaming transducer "
            f"encoder sherpa-onnx knows (zipformer, zipformer2, lstm, conformer, ebranchformer)"
        )
    _require(enc, model_type, encoder)
    _require(dec, "decoder", decoder)
    chunk = int(enc.metadata.get("T", "0") or 0)
    shift = int(enc.metadata.get("decode_chunk_len", "0") or 0)
    bpe_vocab = folder / "bpe.vocab"
    bpe_model = folder / "bpe.model"
    return SherpaBundle(
        folder, ModelKind.TRANSDUCER, model_type,
        {"encoder": encoder, "decoder": decoder, "joiner": joiner},
        tokens, _meta_int(dec, "vocab_size", decoder), symbols, chunk, shift,
        bpe_vocab if bpe_vocab.is_file() else None, bpe_model if bpe_model.is_file() else None,
    )  # fmt: skip


def _inspect_single(
    folder: Path, onnx_files: list[Path], tokens: Path, symbols: tuple[str, ...], variant: str
) -> SherpaBundle:
    if not onnx_files:
        raise ModelError(
            f"{folder}: no *.onnx model (file missing): expected encoder/decoder/joiner*.onnx "
            f"(transducer) or one CTC model.onnx; reinstall the bundle"
        )
    model = _pick(onnx_files, "model", folder, variant, int8=True)
    info = read_onnx_info(model)
    model_type = info.metadata.get("model_type", "")
    if not any(b in symbols for b in BLANKS):
        raise ModelError(f"{tokens}: a CTC model needs a blank symbol ({', '.join(BLANKS)})")
    if model_type == "zipformer2":
        _require(info, "zipformer2", model)
        dims = info.outputs[0][1] if info.outputs else []
        if len(dims) != 3 or not isinstance(dims[2], int):
            raise ModelError(f"{model}: first output is not (N, T, vocab) log-probs")
        return SherpaBundle(
            folder, ModelKind.ZIPFORMER2_CTC, model_type, {"model": model}, tokens, dims[2],
            symbols, _meta_int(info, "T", model), _meta_int(info, "decode_chunk_len", model),
        )  # fmt: skip
    if model_type == "wenet_ctc":
        _require(info, "wenet_ctc", model)
        sub = _meta_int(info, "subsampling_factor", model)
        chunk = (_WENET_CHUNK - 1) * sub + _meta_int(info, "right_context", model) + 1
        return SherpaBundle(
            folder, ModelKind.WENET_CTC, model_type, {"model": model}, tokens,
            _meta_int(info, "vocab_size", model), symbols, chunk, _WENET_CHUNK * sub,
        )  # fmt: skip
    raise ModelError(
        f"{model}: metadata model_type={model_type!r}; a single-file streaming model must be "
        f"zipformer2 (CTC) or wenet_ctc"
    )


# --- the recognizer -----------------------------------------------------------------


class SherpaRecognizer:
    """Streaming recognizer over sherpa_onnx.OnlineRecognizer, following the Recognizer
    protocol. One stream per VAD segment; inside it sherpa's endpoint rules close
    utterances (final, stream reset, the next text starts a new utterance); end() closes
    whatever is left. Either order of VAD end and endpoint yields one final per utterance.

    `stable` of a partial: every word but the last (greedy decoding never rewrites decoded
    tokens, only extends the last word); with modified_beam_search, additionally only words
    on which two consecutive partials agree. CJK characters count as words.
    """

    def __init__(
        self,
        bundle: Path,
        model_languages: tuple[str, ...],
        *,
        languages: tuple[str, ...] | None = None,
        threads: int = 2,
        endpoint: EndpointRules | None = None,
        decoding: str = "greedy_search",
        hotwords: Sequence[str] = (),
        hotwords_score: float = 1.5,
        punctuator: Punctuator | None = None,
        variant: str = "",
        float_joiner: bool = False,
    ) -> None:
        if not model_languages:
            raise ConfigError(f"sherpa bundle {bundle.name}: its languages are unknown")
        if threads < 1:
            raise ConfigError(f"asr.threads must be >= 1, got {threads}")
        if decoding not in DECODINGS:
            raise ConfigError(
                f"asr.sherpa.decoding: {decoding!r} is not one of {', '.join(DECODINGS)}"
            )
        self.bundle = inspect_bundle(bundle, variant, float_joiner=float_joiner)
        self.model_languages = tuple(model_languages)
        self.decoding = decoding
        self.endpoint = endpoint or EndpointRules()
        self.punctuator: Punctuator = punctuator or SentenceCase()
        self._lock = threading.Lock()  # set_* may come from the control thread
        self._candidates = self.model_languages
        self._hotwords = ""
        if self.bundle.kind is not ModelKind.TRANSDUCER and decoding != "greedy_search":
            raise ConfigError(
                f"asr.sherpa.decoding: {self.bundle.kind.value} models decode with greedy_search"
                f" only (modified_beam_search needs a transducer)"
            )
        self.set_languages(languages or self.model_languages)
        self._check_hotwords(hotwords)  # before loading: a bad config fails fast
        started = time.monotonic()
        self._recognizer = self._load(threads, hotwords_score)
        log.info(
            "sherpa %s model (%s) loaded from %s in %d ms",
            self.bundle.kind.value, self.bundle.model_type, bundle,
            (time.monotonic() - started) * 1e3,
        )  # fmt: skip
        self.set_hotwords(hotwords)
        self._padding = np.zeros(round(self.bundle.tail_padding * SAMPLE_RATE), np.float32)
        self._stream: sherpa_onnx.OnlineStream | None = None
        self._origin = 0.0  # audio time of the stream's first sample
        self._fed = 0  # real samples fed to the stream
        self._last = ""  # last partial text emitted in this utterance
        self._utt_t0: float | None = None
        self._history: list[str] = []  # previous partial's units (beam search agreement)
        self._new_utterance()

    # --- configuration ---------------------------------------------------------------

    @property
    def kind(self) -> ModelKind:
        return self.bundle.kind

    def set_languages(self, candidates: tuple[str, ...], turns: bool = False) -> None:
        """Restrict to these languages; each must be one the bundle recognises (`turns`,
        conversation turn-taking, does not change a sherpa model's decoding)."""
        if not candidates:
            raise ConfigError("asr.languages: at least one language is needed")
        unknown = [c for c in candidates if c not in self.model_languages]
        if unknown:
            raise ConfigError(
                f"asr.languages: the sherpa bundle {self.bundle.path.name} recognises only "
                f"{', '.join(self.model_languages)}, not {', '.join(unknown)}"
            )
        with self._lock:
            self._candidates = tuple(candidates)

    def set_hotwords(self, words: Sequence[str]) -> None:
        """Bias recognition towards these words/phrases (transducer + modified_beam_search).
        Takes effect at the next speech segment; an empty list removes the bias."""
        self._check_hotwords(words)
        phrases = [" ".join(w.split()) for w in words if w.strip()]
        if self.bundle.upper_case:
            phrases = [p.upper() for p in phrases]
        with self._lock:
            self._hotwords = "/".join(phrases)

    def _check_hotwords(self, words: Sequence[str]) -> None:
        if not any(w.strip() for w in words):
            return
        if self.bundle.kind is not ModelKind.TRANSDUCER:
            raise ConfigError(
                f"asr.sherpa.hotwords: hotwords are unsupported by {self.bundle.kind.value} "
                f"models ({self.bundle.path.name}); they need a transducer bundle"
            )
        if self.decoding != "modified_beam_search":
            raise ConfigError(
                'asr.sherpa.hotwords: hotwords need asr.sherpa.decoding = "modified_beam_search"'
            )
        unit = self.bundle.modeling_unit
        if not unit or ("bpe" in unit and not (self.bundle.bpe_vocab or self.bundle.bpe_model)):
            raise ConfigError(
                f"asr.sherpa.hotwords: bundle {self.bundle.path.name} has no bpe.vocab or "
                f"bpe.model to split hotwords into its tokens"
            )
        alphabet = {ch for s in self.bundle.pieces for ch in s}
        for word in words:
            if any(mark in word for mark in "/:\n") or word.strip().startswith(("#", "@")):
                raise ConfigError(f"asr.sherpa.hotwords: {word!r} contains / : newline # or @")
            text = word.upper() if self.bundle.upper_case else word
            missing = {ch for ch in text if not ch.isspace() and ch not in alphabet}
            if missing:
                raise ConfigError(
                    f"asr.sherpa.hotwords: {word!r} uses characters the model cannot spell "
                    f"({''.join(sorted(missing))})"
                )

    def _load(self, threads: int, hotwords_score: float) -> sherpa_onnx.OnlineRecognizer:
        b = self.bundle
        rules = dict(
            enable_endpoint_detection=True,
            rule1_min_trailing_silence=self.endpoint.rule1_silence,
            rule2_min_trailing_silence=self.endpoint.rule2_silence,
            rule3_min_utterance_length=self.endpoint.rule3_max_utterance,
        )
        common = dict(tokens=str(b.tokens), num_threads=threads, **rules)
        try:
            if b.kind is ModelKind.ZIPFORMER2_CTC:
                return sherpa_onnx.OnlineRecognizer.from_zipformer2_ctc(
                    model=str(b.files["model"]), **common
                )
            if b.kind is ModelKind.WENET_CTC:
                return sherpa_onnx.OnlineRecognizer.from_wenet_ctc(
                    model=str(b.files["model"]), chunk_size=_WENET_CHUNK, **common
                )
            if b.kind is ModelKind.PARAFORMER:
                return sherpa_onnx.OnlineRecognizer.from_paraformer(
                    encoder=str(b.files["encoder"]), decoder=str(b.files["decoder"]), **common
                )
            with self._bpe_vocab() as bpe_vocab:
                return sherpa_onnx.OnlineRecognizer.from_transducer(
                    encoder=str(b.files["encoder"]),
                    decoder=str(b.files["decoder"]),
                    joiner=str(b.files["joiner"]),
                    model_type=b.model_type,  # else sherpa loads the encoder twice to learn it
                    decoding_method=self.decoding,
                    hotwords_score=hotwords_score,
                    modeling_unit=b.modeling_unit or "cjkchar",
                    bpe_vocab=bpe_vocab,
                    **common,
                )
        except (RuntimeError, ValueError, OSError) as exc:
            files = ", ".join(str(p) for p in b.files.values())
            raise ModelError(f"sherpa-onnx cannot load {files}: {exc}") from exc

    @contextlib.contextmanager
    def _bpe_vocab(self) -> Iterator[str]:
        """The bpe.vocab sherpa needs to split hotwords; made from bpe.model when the
        bundle lacks one (sherpa reads it once, at construction)."""
        b = self.bundle
        if self.decoding != "modified_beam_search" or "bpe" not in b.modeling_unit:
            yield ""
        elif b.bpe_vocab:
            yield str(b.bpe_vocab)
        elif b.bpe_model:
            import sentencepiece

            try:
                sp = sentencepiece.SentencePieceProcessor(model_file=str(b.bpe_model))
            except (RuntimeError, OSError) as exc:
                raise ModelError(f"{b.bpe_model}: not a sentencepiece model ({exc})") from exc
            with tempfile.TemporaryDirectory(prefix="edged-bpe-") as tmp:
                vocab = Path(tmp) / "bpe.vocab"
                vocab.write_text(
                    "".join(
                        f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n"
                        for i in range(sp.get_piece_size())
                    ),
                    encoding="utf-8",
                )
                yield str(vocab)
        else:
            yield ""

    # --- Recognizer protocol -----------------------------------------------------------

    def begin(self, t0: float) -> None:
        with self._lock:
            hotwords = self._hotwords
        rec = self._recognizer
        self._stream = rec.create_stream(hotwords) if hotwords else rec.create_stream()
        self._origin = t0
        self._fed = 0
        self._new_utterance()

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        stream = self._require_stream()
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        self._fed += len(samples)
        with self._engine_errors():
            stream.accept_waveform(SAMPLE_RATE, samples)
            return self._decode(stream)

    def end(self) -> list[Hypothesis]:
        stream = self._require_stream()
        self._stream = None
        with self._engine_errors():
            # Silence pushes the last real frames through the model's chunk + right context.
            stream.accept_waveform(SAMPLE_RATE, self._padding)
            stream.input_finished()
            out = self._decode(stream, partials=False)
            final = self._final(stream)
        return [*out, final] if final else out

    # --- decoding ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _engine_errors(self) -> Iterator[None]:
        try:
            yield
        except (RuntimeError, IndexError, ValueError) as exc:
            raise EngineError(f"sherpa-onnx failed on {self.bundle.path}: {exc}") from exc

    def _require_stream(self) -> sherpa_onnx.OnlineStream:
        if self._stream is None:
            raise EngineError("sherpa recognizer: audio outside a speech segment (no begin())")
        return self._stream

    def _new_utterance(self) -> None:
        self._last = ""
        self._utt_t0 = None
        self._history = []
        self._stable_units = 0
        self._stable_words: list[str] = []
        self._stable_text = ""

    def _decode(self, stream: sherpa_onnx.OnlineStream, partials: bool = True) -> list[Hypothesis]:
        """Run every ready chunk; endpoints are checked after each chunk so that text after
        an endpoint never joins the utterance before it. Only the latest partial of a call
        is returned: older ones are already superseded."""
        rec = self._recognizer
        out: list[Hypothesis] = []
        pending: Hypothesis | None = None
        while rec.is_ready(stream):
            rec.decode_stream(stream)
            if rec.is_endpoint(stream):
                final = self._final(stream)
                pending = None
                if final:
                    out.append(final)
                rec.reset(stream)
                self._new_utterance()
            elif partials:
                pending = self._partial(stream) or pending
        if pending:
            out.append(pending)
        return out

    def _result(
        self, stream: sherpa_onnx.OnlineStream
    ) -> tuple[str, float, float, tuple[tuple[str, float], ...]]:
        """(raw text, utterance t0, t1, (token, start) pairs) on the audio timeline."""
        r = self._recognizer.get_result_all(stream)
        text = r.text.strip()
        heard = self._origin + self._fed / SAMPLE_RATE
        segment = self._origin + r.start_time  # where the stream was last reset
        stamps = list(r.timestamps)
        if self._utt_t0 is None and text:
            self._utt_t0 = min(segment + stamps[0], heard) if stamps else segment
        t0 = self._utt_t0 if self._utt_t0 is not None else segment
        t1 = min(segment + stamps[-1] + OUTPUT_FRAME_S, heard) if stamps else heard
        tokens = tuple(
            (token, round(segment + stamp, 3))
            for token, stamp in zip(r.tokens, stamps, strict=False)
        )
        return text, t0, max(t0, t1), tokens

    def _lang(self, text: str) -> str:
        with self._lock:
            candidates = self._candidates
        if len(candidates) > 1 and "zh" in candidates:
            if _CJK.search(text):
                return "zh"
            return next(c for c in candidates if c != "zh")
        return candidates[0]

    def _partial(self, stream: sherpa_onnx.OnlineStream) -> Hypothesis | None:
        raw, t0, t1, tokens = self._result(stream)
        if not raw or raw == self._last:
            return None
        self._last = raw
        lang = self._lang(raw)
        text = self.punctuator.partial(raw, lang)
        stable = self._stable(text)
        return Hypothesis(HypothesisKind.PARTIAL, text, stable, lang, t0, t1, tokens=tokens)

    def _stable(self, text: str) -> str:
        units = list(_UNIT.finditer(text))
        words = [m.group() for m in units]
        count = max(0, len(units) - 1)  # the last word may still grow
        if self.decoding == "modified_beam_search":
            # Beam search may revise recent words: keep only those two partials agree on,
            # and never retract what was already declared stable.
            agreed = 0
            for a, b in zip(self._history, words, strict=False):
                if a != b:
                    break
                agreed += 1
            self._history = words
            if words[: self._stable_units] != self._stable_words:
                return self._stable_text
            count = max(self._stable_units, min(count, agreed))
        self._stable_units = count
        self._stable_words = words[:count]
        self._stable_text = text[: units[count - 1].end()] if count else ""
        return self._stable_text

    def _final(self, stream: sherpa_onnx.OnlineStream) -> Hypothesis | None:
        raw, t0, t1, tokens = self._result(stream)
        if not raw:
            return None
        lang = self._lang(raw)
        text = self.punctuator.final(raw, lang)
        return Hypothesis(HypothesisKind.FINAL, text, text, lang, t0, t1, tokens=tokens)
