"""Tiny deterministic streaming models that sherpa-onnx's OnlineRecognizer loads.

No pretrained streaming model can be downloaded where edged is tested, so the tests
build their own: a few dozen ONNX nodes with hand-set weights (the `onnx` package and
numpy, no training, no torch) in exactly the form sherpa-onnx's loaders expect. The
recognizer under test then runs the real sherpa-onnx code: feature extraction, chunking,
CTC/transducer decoding, endpoint rules, stream reset.

What the models "hear" (identical for every flavour):

* Input: sherpa's 80-bin log-mel fbank, 10 ms frames. Every 4 frames (40 ms, sherpa's
  assumed subsampling) make one output frame. Its loudness is the log of the total mel
  energy, log-sum-exp over the 80 bins of the 4-frame mean (a 0.3-amplitude tone gives
  about +4 to +9, voiced speech at a normal level 0 to +5, digital silence -11.6, white
  noise of amplitude 1e-3 about -3.8); the frame is *loud* above `threshold` (-1.5).
* A run counter `c` counts consecutive loud output frames; it lives in one element of a
  cache tensor that sherpa feeds back chunk after chunk, so it survives chunk borders.
* A word is emitted on the 1st loud frame of a run and then every `period` frames
  (c = 1, 1+period, 1+2*period, ...); every other frame is blank. CTC greedy search
  collapses repeats only when they are adjacent, and emissions are always separated by
  blanks, so a burst of n output frames decodes to exactly 1 + (n-1)//period words:
  the text grows word by word while the burst lasts, i.e. one partial per word.
* Which word: the mel bins are split into three bands (0-26: below ~940 Hz, 27-53:
  ~940-3000 Hz, 54-79: above); the band with the highest mean log energy names it:
  "DO", "RE" or "MI". A 400 Hz tone sings DO, 1800 Hz RE, 5000 Hz MI.
* Silence (and anything below the threshold) is all blank: CTC's trailing-blank count
  drives sherpa's endpoint rules exactly as with a real model, and silence never
  produces text.

So a 0.5 s burst of 400 Hz (12-14 output frames, period 5) decodes as "DO", "DO DO",
"DO DO DO", and sherpa's rule 2 closes the utterance once the trailing blanks after the
last word exceed rule2_min_trailing_silence. Real speech works too (each syllable onset
emits a word, the band decides which): beckett.wav gives six utterances, one per
sentence, which makes the model usable for pipeline tests with a real VAD.

sherpa-onnx passes inputs and reads outputs by position, not by name; what it checks
is the metadata (a missing key makes it exit()) and, for zipformer2-CTC, the static
vocabulary dimension of the first output.

Flavours:
* `build_zipformer2_ctc`: a zipformer2-CTC single `model.onnx` (sherpa:
  OnlineZipformer2CtcModel). Metadata `model_type=zipformer2`, `T` (frames per chunk fed
  in), `decode_chunk_len` (frames the chunk advances), and the per-stack vectors
  `encoder_dims, query_head_dims, value_head_dims, num_heads, num_encoder_layers,
  cnn_module_kernels, left_context_len` (comma-separated). With `num_encoder_layers=0`
  sherpa allocates no per-layer caches, leaving two state tensors: the embed cache
  (N, 128, 3, 19) float and processed_lens (N,) int64. Inputs are (x, *states), outputs
  (log_probs (N, T', vocab) with a static vocab dim, which sherpa reads as the vocab
  size, *new states) in the same order.
* `build_wenet_ctc`: a WeNet CTC `model-streaming.onnx` (OnlineWenetCtcModel). Metadata
  `model_type=wenet_ctc, head, num_blocks, output_size, cnn_module_kernel, right_context,
  subsampling_factor, vocab_size`. Inputs x (1, (chunk-1)*4+right_context+1, 80),
  offset (1,) and required_cache_size (1,) int64, attn_cache (num_blocks, head,
  chunk*left_chunks, output_size/head*2), conv_cache (num_blocks, 1, output_size,
  kernel-1), attn_mask (1, 1, cache+chunk) bool; outputs log_probs (1, chunk, vocab),
  attn_cache, conv_cache; sherpa keeps the offset itself. `chunk` is the recognizer's
  chunk_size (16 output frames = 0.64 s by default). WeNet features are computed from
  int16-scaled samples, which shifts every log-mel by 2*ln(32768).
* `build_lstm_transducer`: an LSTM transducer (encoder/decoder/joiner, sherpa:
  OnlineLstmTransducerModel), the kind that supports hotwords. Encoder metadata
  `model_type=lstm, num_encoder_layers, T, decode_chunk_len, rnn_hidden_size, d_model`;
  inputs x, h (layers, N, d_model), c (layers, N, rnn_hidden); outputs encoder_out
  (N, T', joiner_dim), h, c. Decoder metadata `vocab_size, context_size`; y (N, context)
  int64 -> (N, joiner_dim). Joiner (N, joiner_dim) x2 -> logit (N, vocab). The encoder
  output is the one-hot emission decision above; the joiner maps it to logits in which,
  during an emission, the band's word wins over its "rival" (DO/TO, RE/RAY, MI/ME) by
  only `rival_margin` nats, so a hotword naming the rival flips the result under
  modified_beam_search.

For zipformer2-CTC and the transducer the chunk is 16 frames (0.16 s) plus `lookahead`
frames of right context that the model ignores; sherpa decodes a chunk once T frames
are ready. `build_punctuation` makes a fake online punctuation bundle (see there).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WORDS = ("DO", "RE", "MI")
RIVALS = ("TO", "RAY", "ME")
# Word pieces as sentencepiece writes them; sherpa turns the leading U+2581 into a space.
CTC_TOKENS = ("<blk>", "<unk>", *(f"\u2581{w}" for w in WORDS))
TRANSDUCER_TOKENS = ("<blk>", "<unk>", *(f"\u2581{w}" for w in WORDS + RIVALS))

FEATURE_DIM = 80
SUBSAMPLING = 4
CHUNK_FRAMES = 16  # input frames per decoded chunk (0.16 s): 4 output frames
BANDS = ((0, 27), (27, 54), (54, 80))
INT16_LOG_OFFSET = 2 * math.log(32768.0)  # WeNet: fbank of samples scaled to int16

_OPSET = [helper.make_opsetid("", 13)]
_IR_VERSION = 7  # old enough for the onnxruntime bundled inside sherpa-onnx


class _Graph:
    """Collects nodes and constants with generated names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: object, dtype: type = np.float32) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _emissions(
    g: _Graph, x: str, run_in: str, threshold: float, period: int, frames: int
) -> tuple[str, str]:
    """The word each of `frames` output frames emits, as (N, frames, 3): one-hot band
    when emitting, zeros otherwise; plus the new run counter (N,).
    `x` is (N, >= frames*4, 80), `run_in` (N,)."""
    chunk = g.op(
        "Slice", x, g.const([0], np.int64), g.const([frames * SUBSAMPLING], np.int64),
        g.const([1], np.int64),
    )  # fmt: skip
    grouped = g.op("Reshape", chunk, g.const([0, frames, SUBSAMPLING, FEATURE_DIM], np.int64))
    mean = g.op("ReduceMean", grouped, axes=[2], keepdims=0)  # (N, T', 80)
    energy = g.op("ReduceLogSumExp", mean, axes=[2], keepdims=0)  # (N, T')
    loud = g.op("Cast", g.op("Greater", energy, g.const(threshold)), to=TensorProto.FLOAT)

    band_matrix = np.zeros((FEATURE_DIM, len(BANDS)), np.float32)
    for j, (lo, hi) in enumerate(BANDS):
        band_matrix[lo:hi, j] = 1.0 / (hi - lo)
    bands = g.op("MatMul", mean, g.const(band_matrix))  # (N, T', 3)
    best = g.op("ReduceMax", bands, axes=[2], keepdims=1)
    onehot = g.op("Cast", g.op("Equal", bands, best), to=TensorProto.FLOAT)

    # The run counter is sequential, so unroll it over the few output frames.
    run = run_in
    emits = []
    one, zero, per = g.const(1.0), g.const(0.0), g.const(float(period))
    for k in range(frames):
        loud_k = g.op("Gather", loud, g.const(k, np.int64), axis=1)  # (N,)
        run = g.op("Mul", loud_k, g.op("Add", run, one))
        phase = g.op("Mod", g.op("Sub", run, one), per, fmod=1)
        on_phase = g.op("Cast", g.op("Equal", phase, zero), to=TensorProto.FLOAT)
        emits.append(g.op("Unsqueeze", g.op("Mul", loud_k, on_phase), g.const([1], np.int64)))
    emit = g.op("Concat", *emits, axis=1)  # (N, T')
    emit3 = g.op("Unsqueeze", emit, g.const([2], np.int64))
    return g.op("Mul", emit3, onehot), run  # (N, T', 3) one-hot word per emitting frame


def _ctc_log_probs(g: _Graph, words: str, vocab: int, out: str) -> str:
    """(N, T', 3) word one-hot -> log-probs over [blank, unk, word 1-3] (blank unless a
    word is emitted)."""
    strength = 20.0
    emitting = g.op("ReduceMax", words, axes=[2], keepdims=1)  # (N, T', 1)
    blank = g.op("Mul", g.op("Sub", g.const(1.0), emitting), g.const(strength))
    unk = g.op("Mul", emitting, g.const(0.0))
    word_logits = g.op("Mul", words, g.const(strength))
    logits = g.op("Concat", blank, unk, word_logits, axis=2)
    assert vocab == 2 + len(WORDS)
    return g.op("LogSoftmax", logits, axis=2, out=out)


def _save(g: _Graph, path: Path, inputs, outputs, metadata: dict[str, object]) -> Path:
    graph = helper.make_graph(g.nodes, path.stem.replace(".", "_"), inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=_OPSET, producer_name="edged-tests")
    model.ir_version = _IR_VERSION
    helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tokens(path: Path, tokens: tuple[str, ...]) -> Path:
    """tokens.txt as sherpa-onnx reads it: `symbol id` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    return path


def build_zipformer2_ctc(
    bundle: Path,
    *,
    threshold: float = -1.5,
    period: int = 5,
    lookahead: int = 7,
    model_name: str = "model.int8.onnx",
    tokens: tuple[str, ...] = CTC_TOKENS,
) -> Path:
    """Write a zipformer2-CTC bundle (model + tokens.txt) into `bundle`; return it.
    `tokens` may respell the three words (e.g. as CJK characters) in the same order."""
    g = _Graph()
    frames = CHUNK_FRAMES // SUBSAMPLING
    t_in = CHUNK_FRAMES + lookahead
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", t_in, FEATURE_DIM])
    embed = helper.make_tensor_value_info(
        "cached_embed_left_pad", TensorProto.FLOAT, ["N", 128, 3, 19]
    )
    lens = helper.make_tensor_value_info("processed_lens", TensorProto.INT64, ["N"])

    # The run counter rides in element [:, 0, 0, 0] of the embed cache.
    run_in, rest = _cache_counter(g, "cached_embed_left_pad")
    words, run = _emissions(g, "x", run_in, threshold, period, frames)
    vocab = len(tokens)
    _ctc_log_probs(g, words, vocab, out="log_probs")
    _store_counter(g, run, rest, [-1, 128, 3, 19], out="new_cached_embed_left_pad")
    g.op("Add", "processed_lens", g.const(frames, np.int64), out="new_processed_lens")

    outputs = [
        helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["N", frames, vocab]),
        helper.make_tensor_value_info(
            "new_cached_embed_left_pad", TensorProto.FLOAT, ["N", 128, 3, 19]
        ),
        helper.make_tensor_value_info("new_processed_lens", TensorProto.INT64, ["N"]),
    ]
    metadata = {
        "model_type": "zipformer2",
        "model_author": "edged tests (tiny deterministic model)",
        "T": t_in,
        "decode_chunk_len": CHUNK_FRAMES,
        "encoder_dims": "8",
        "query_head_dims": "4",
        "value_head_dims": "4",
        "num_heads": "2",
        "num_encoder_layers": "0",
        "cnn_module_kernels": "3",
        "left_context_len": "4",
    }
    _save(g, bundle / model_name, [x, embed, lens], outputs, metadata)
    write_tokens(bundle / "tokens.txt", tokens)
    return bundle


def _cache_counter(g: _Graph, cache: str) -> tuple[str, str]:
    """Read the run counter from element 0 of a (N, ...) float cache: (counter (N,),
    the flattened rest (N, size-1)) so the caller can write it back."""
    flat = g.op("Reshape", cache, g.const([0, -1], np.int64))
    run_in = g.op("Gather", flat, g.const(0, np.int64), axis=1)
    rest = g.op(
        "Slice", flat, g.const([1], np.int64), g.const([2**62], np.int64), g.const([1], np.int64)
    )
    return run_in, rest


def _store_counter(g: _Graph, run: str, rest: str, shape: list[int], out: str) -> str:
    joined = g.op("Concat", g.op("Unsqueeze", run, g.const([1], np.int64)), rest, axis=1)
    return g.op("Reshape", joined, g.const(shape, np.int64), out=out)


def build_wenet_ctc(
    bundle: Path,
    *,
    threshold: float = -1.5,
    period: int = 5,
    chunk_size: int = 16,
    model_name: str = "model-streaming.onnx",
) -> Path:
    """Write a WeNet streaming CTC bundle; `chunk_size` (output frames per chunk) must
    match the recognizer's (sherpa's default 16)."""
    g = _Graph()
    right_context, left_chunks, head, blocks, size, kernel = 6, 4, 1, 1, 2, 3
    t_in = (chunk_size - 1) * SUBSAMPLING + right_context + 1
    cache_len = chunk_size * left_chunks
    attn_shape = [blocks, head, cache_len, size // head * 2]
    conv_shape = [blocks, 1, size, kernel - 1]
    inputs = [
        helper.make_tensor_value_info("chunk", TensorProto.FLOAT, [1, t_in, FEATURE_DIM]),
        helper.make_tensor_value_info("offset", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("required_cache_size", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("att_cache", TensorProto.FLOAT, attn_shape),
        helper.make_tensor_value_info("cnn_cache", TensorProto.FLOAT, conv_shape),
        helper.make_tensor_value_info("att_mask", TensorProto.BOOL, [1, 1, cache_len + chunk_size]),
    ]
    run_in, rest = _cache_counter(g, "att_cache")
    # Features come from int16-scaled samples: every log-mel is shifted up.
    words, run = _emissions(g, "chunk", run_in, threshold + INT16_LOG_OFFSET, period, chunk_size)
    vocab = len(CTC_TOKENS)
    _ctc_log_probs(g, words, vocab, out="output")
    _store_counter(g, run, rest, attn_shape, out="r_att_cache")
    g.op("Identity", "cnn_cache", out="r_cnn_cache")
    outputs = [
        helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, chunk_size, vocab]),
        helper.make_tensor_value_info("r_att_cache", TensorProto.FLOAT, attn_shape),
        helper.make_tensor_value_info("r_cnn_cache", TensorProto.FLOAT, conv_shape),
    ]
    metadata = {
        "model_type": "wenet_ctc",
        "head": head,
        "num_blocks": blocks,
        "output_size": size,
        "cnn_module_kernel": kernel,
        "right_context": right_context,
        "subsampling_factor": SUBSAMPLING,
        "vocab_size": vocab,
    }
    _save(g, bundle / model_name, inputs, outputs, metadata)
    write_tokens(bundle / "tokens.txt", CTC_TOKENS)
    return bundle


def build_lstm_transducer(
    bundle: Path,
    *,
    threshold: float = -1.5,
    period: int = 5,
    lookahead: int = 7,
    rival_margin: float = 0.5,
    suffix: str = "-epoch-99-avg-1",
    int8: bool = True,
) -> Path:
    """Write an LSTM transducer bundle: encoder/decoder/joiner, tokens.txt, bpe.vocab.
    With `int8`, encoder and joiner are also written as *.int8.onnx (same graphs) so
    the recognizer's file preference can be checked."""
    frames = CHUNK_FRAMES // SUBSAMPLING
    t_in = CHUNK_FRAMES + lookahead
    joiner_dim, d_model, hidden = len(WORDS) + 1, 2, 2
    vocab = len(TRANSDUCER_TOKENS)

    # Encoder: the emission decision as a (N, T', 4) vector: three word dims + "blank".
    g = _Graph()
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", t_in, FEATURE_DIM]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "N", d_model]),
        helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, "N", hidden]),
    ]
    h0 = g.op("Squeeze", "h", g.const([0], np.int64))  # (N, d_model)
    run_in, rest = _cache_counter(g, h0)
    words, run = _emissions(g, "x", run_in, threshold, period, frames)
    emitting = g.op("ReduceMax", words, axes=[2], keepdims=1)
    g.op("Concat", words, g.op("Sub", g.const(1.0), emitting), axis=2, out="encoder_out")
    h_new = _store_counter(g, run, rest, [-1, d_model], out=g.name("h_flat"))
    g.op("Unsqueeze", h_new, g.const([0], np.int64), out="next_h")
    g.op("Identity", "c", out="next_c")
    outputs = [
        helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", frames, joiner_dim]),
        helper.make_tensor_value_info("next_h", TensorProto.FLOAT, [1, "N", d_model]),
        helper.make_tensor_value_info("next_c", TensorProto.FLOAT, [1, "N", hidden]),
    ]
    encoder_meta = {
        "model_type": "lstm",
        "num_encoder_layers": 1,
        "T": t_in,
        "decode_chunk_len": CHUNK_FRAMES,
        "rnn_hidden_size": hidden,
        "d_model": d_model,
    }
    names = [f"encoder{suffix}.onnx"] + ([f"encoder{suffix}.int8.onnx"] if int8 else [])
    for name in names:
        _save(g, bundle / name, inputs, outputs, encoder_meta)

    # Decoder: stateless and history-blind (zeros), so logits depend on audio only.
    g = _Graph()
    context_size = 2
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["N", context_size])
    first = g.op(
        "Slice", "y", g.const([0], np.int64), g.const([1], np.int64), g.const([1], np.int64)
    )
    zeros = g.op("Mul", g.op("Cast", first, to=TensorProto.FLOAT), g.const(0.0))
    g.op("Mul", zeros, g.const(np.zeros((1, joiner_dim))), out="decoder_out")
    _save(
        g,
        bundle / f"decoder{suffix}.onnx",
        [y],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", joiner_dim])],
        {"vocab_size": vocab, "context_size": context_size},
    )

    # Joiner: word dim j -> its word (strong) and its rival (rival_margin nats weaker);
    # the blank dim -> blank.
    g = _Graph()
    weights = np.zeros((joiner_dim, vocab), np.float32)
    strength = 20.0
    for j, (word, rival) in enumerate(zip(WORDS, RIVALS, strict=True)):
        weights[j, TRANSDUCER_TOKENS.index(f"\u2581{word}")] = strength
        weights[j, TRANSDUCER_TOKENS.index(f"\u2581{rival}")] = strength - rival_margin
    weights[len(WORDS), 0] = strength
    enc = helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", joiner_dim])
    dec = helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", joiner_dim])
    g.op("Add", g.op("MatMul", "encoder_out", g.const(weights)), g.op(
        "ReduceSum", "decoder_out", g.const([1], np.int64), keepdims=1), out="logit")  # fmt: skip
    names = [f"joiner{suffix}.onnx"] + ([f"joiner{suffix}.int8.onnx"] if int8 else [])
    for name in names:
        _save(
            g,
            bundle / name,
            [enc, dec],
            [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", vocab])],
            {},
        )

    write_tokens(bundle / "tokens.txt", TRANSDUCER_TOKENS)
    # sentencepiece's vocabulary listing (piece<TAB>score), which sherpa needs to split
    # hotwords into pieces: whole words only, so each word is one piece.
    (bundle / "bpe.vocab").write_text(
        "".join(f"{t}\t{0.0 if t.startswith('<') else -1.0}\n" for t in TRANSDUCER_TOKENS),
        encoding="utf-8",
    )
    return bundle


# --- test signals -------------------------------------------------------------------

SAMPLE_RATE = 16000
TONES = {"DO": 400.0, "RE": 1800.0, "MI": 5000.0}


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    """A sine burst with 5 ms ramps (no clicks that would smear energy across bands)."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    ramp = min(n // 2, round(0.005 * SAMPLE_RATE))
    envelope = np.ones(n)
    envelope[:ramp] = np.linspace(0, 1, ramp)
    envelope[n - ramp :] = np.linspace(1, 0, ramp)
    return (wave * envelope).astype(np.float32)


def quiet(seconds: float, seed: int = 0, amplitude: float = 1e-3) -> np.ndarray:
    """Room-tone stand-in: uniform noise far below the model's threshold."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    return rng.uniform(-amplitude, amplitude, n).astype(np.float32)


def bursts(
    words: tuple[str, ...] = WORDS, burst: float = 0.5, gap: float = 1.5, lead: float = 0.5
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """`lead` s of quiet, then one tone burst per word separated by `gap` s of quiet,
    then `gap` s of quiet. Returns samples and the (start, end) second of each burst.
    A 0.5 s burst spans 12-14 output frames, so with period 5 it decodes to exactly
    three words whatever the frame alignment."""
    parts = [quiet(lead, seed=0)]
    spans = []
    t = lead
    for i, word in enumerate(words):
        parts.append(tone(TONES[word], burst))
        spans.append((t, t + burst))
        t += burst
        parts.append(quiet(gap, seed=i + 1))
        t += gap
    return np.concatenate(parts), spans


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16-bit mono PCM WAV at SAMPLE_RATE (edged's own writer)."""
    from edged.audio.wavwrite import write_wav as write

    write(path, samples, SAMPLE_RATE)
    return path


def build_punctuation(bundle: Path) -> Path:
    """Write a fake sherpa-onnx online punctuation bundle (model.int8.onnx + bpe.vocab).

    sherpa's CNN-BiLSTM runner feeds token_ids, valid_ids (1 at each word's first piece
    and at <s>, </s>) and label_lens, both (N, 200) int32, and reads back (words, 4) case
    and punctuation logits. This one is a fixed, recognisable rule: the first word is
    capitalised, every word but the last gets a comma, the last a question mark
    ("do re mi" -> "Do, re, mi?"), unlike the fallback's "Do re mi.".
    """
    g = _Graph()
    seq = 200
    inputs = [
        helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["N", seq]),
        helper.make_tensor_value_info("valid_ids", TensorProto.INT32, ["N", seq]),
        helper.make_tensor_value_info("label_lens", TensorProto.INT32, ["N"]),
    ]
    # words = valid positions minus <s> and </s> (one sentence: N == 1)
    valid = g.op("Cast", "valid_ids", to=TensorProto.FLOAT)
    count = g.op("ReduceSum", valid, g.const([0, 1], np.int64), keepdims=0)
    words = g.op("Sub", count, g.const(2.0))
    index = g.op("Range", g.const(0.0), words, g.const(1.0))  # (W,)
    first = g.op("Cast", g.op("Equal", index, g.const(0.0)), to=TensorProto.FLOAT)
    last = g.op(
        "Cast", g.op("Equal", index, g.op("Sub", words, g.const(1.0))), to=TensorProto.FLOAT
    )
    zero = g.op("Mul", index, g.const(0.0))

    def column(v: str) -> str:
        return g.op("Unsqueeze", g.op("Mul", v, g.const(10.0)), g.const([1], np.int64))

    not_first = g.op("Sub", g.const(1.0), first)
    not_last = g.op("Sub", g.const(1.0), last)
    # case classes: 0 lower, 1 UPPER, 2 Cap, 3 MiXed; punctuation: 0 none, 1 , 2 . 3 ?
    g.op("Concat", column(not_first), column(zero), column(first), column(zero), axis=1,
         out="case_logits")  # fmt: skip
    g.op("Concat", column(zero), column(not_last), column(zero), column(last), axis=1,
         out="punct_logits")  # fmt: skip
    outputs = [
        helper.make_tensor_value_info("case_logits", TensorProto.FLOAT, ["W", 4]),
        helper.make_tensor_value_info("punct_logits", TensorProto.FLOAT, ["W", 4]),
    ]
    metadata = {"COMMA": 1, "PERIOD": 2, "QUESTION": 3, "UPPER": 1, "CAP": 2, "MIX_CASE": 3}
    _save(g, bundle / "model.int8.onnx", inputs, outputs, metadata)
    pieces = ["<unk>", "<s>", "</s>", "\u2581", *"abcdefghijklmnopqrstuvwxyz'"]
    (bundle / "bpe.vocab").write_text(
        "".join(f"{p}\t{-1.0 if i > 2 else 0.0}\n" for i, p in enumerate(pieces)), encoding="utf-8"
    )
    return bundle


def write_stub(
    path: Path, metadata: dict[str, object], out_dims: list[int | str] | None = None
) -> Path:
    """A trivial valid ONNX file (y = x) carrying `metadata`: enough for bundle inspection,
    which reads files without running them (e.g. a paraformer layout)."""
    dims = out_dims or ["N", 4]
    g = _Graph()
    g.op("Identity", "x", out="y")
    _save(
        g,
        path,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        metadata,
    )
    return path


PARAFORMER_META = {
    "vocab_size": len(CTC_TOKENS),
    "lfr_window_size": 7,
    "lfr_window_shift": 6,
    "encoder_output_size": 4,
    "decoder_num_blocks": 1,
    "decoder_kernel_size": 3,
    "neg_mean": "0,0",
    "inv_stddev": "1,1",
}
