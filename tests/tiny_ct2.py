"""Build a tiny CTranslate2 translation bundle whose output is known: it copies its input.

No torch and no download: the weights are numpy arrays set by hand in a
`ctranslate2.specs.TransformerSpec`, the tokenizer is a SentencePiece model trained here on a
few sentences. The model runs through the real `ctranslate2.Translator` and SentencePiece, so
the translator code under test does all its real work (tokenize, language tokens, beam
search, detokenize), and its output is predictable: decoding step i emits source token i, so
`translate(text)` returns `text` (for NLLB/M2M the forced target-language token comes first
and is stripped by the translator).

How the copy works (one encoder and one decoder layer, pre-norm, no final norms):
- the model width is three blocks: T (one-hot token), P (one-hot position), C (copied token);
- embeddings put a token's one-hot in T; hand-made position encodings put a one-hot in P;
  embeddings are not scaled by sqrt(d);
- every sublayer's output projection is zero except the decoder's cross-attention, so the
  encoder output is T+P of each source token, and the residual stream is unchanged elsewhere;
- cross-attention: the query reads the decoder step's P block (after layer norm), the key
  reads the source position's P block, with a large gain, so step i attends to source
  position i alone; the value carries that source token's T block and the output
  projection writes it into C;
- the output projection reads C with a large gain: the logits are a one-hot of the source
  token at position i. The last source token is `</s>`, so decoding stops after the copy.

Variants for the layouts of real families (`build_copy_model` options):
- `add_source_eos`: config.json says so, as CTranslate2's Marian and fairseq converters
  write it; CTranslate2 then appends `</s>` to every source itself;
- `shift=1`: step i copies source position i+1, so a leading token (marian-multi's
  `>>fra<<`) is not echoed;
- `spell_end`: each source `</s>` comes out as `<unk>` (SentencePiece decodes it as " ⁇ "),
  and decoding stops at the end of the source instead: every value also carries a small
  constant into the `</s>` logit, which wins once the attention past the last source
  position spreads evenly (no copy gets the full gain). The output then shows how many end
  tokens the source had, which the defect of doubled or unwanted `</s>` changes. Decode
  it greedily (`beam_size=1`): a beam keeps the `</s>` alternative, 30 nats behind, as a
  finished hypothesis, and CTranslate2 stops at the first finished one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS = (
    "hola mundo",
    "enciende la luz del salón",
    "buenos días a todos",
    "the cat sat on the mat",
    "turn on the living room light",
    "good morning everyone",
    "where is the station",
    "dónde está la estación",
    "ich bin ein berliner",
    "bonjour tout le monde",
    "hola, ¿cómo estás? ¡muy bien!",
    "the end. it is late; go home: now",
)
"""Sentences the tiny SentencePiece model is trained on; any text made of their characters
round-trips through it."""

LANGUAGE_TOKENS = {
    "nllb": ("eng_Latn", "spa_Latn", "deu_Latn", "fra_Latn"),
    "m2m100": ("__en__", "__es__", "__de__", "__fr__"),
    "marian-multi": (">>fr<<", ">>es<<", ">>it<<"),  # opus-mt-en-ROMANCE's form
}
MAX_POSITIONS = 128
_GAIN = 60.0  # attention and output sharpness; large enough that softmax is one-hot
_END_BIAS = 0.5  # spell_end: the </s> logit as a share of a copy's; above an even spread


def train_sentencepiece(path: Path, vocab_size: int = 64) -> Path:
    """Train a small unigram SentencePiece model on CORPUS and write it to `path`."""
    import sentencepiece as spm

    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = path.parent / "spm-training"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        normalization_rule_name="identity",  # no NFKC: the copy must give back the exact text
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    prefix.with_suffix(".model").replace(path)
    prefix.with_suffix(".vocab").unlink(missing_ok=True)
    return path


def sentencepiece_vocabulary(spm_path: Path) -> list[str]:
    """The pieces of a SentencePiece model in id order (`<unk>`, `<s>`, `</s>`, ...)."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_path))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def build_copy_model(
    model_dir: Path,
    vocabulary: list[str],
    *,
    add_source_eos: bool = False,
    shift: int = 0,
    spell_end: bool = False,
) -> None:
    """Write a CTranslate2 Transformer that copies its source tokens (see module docstring)."""
    from ctranslate2.specs import TransformerSpec

    v, p = len(vocabulary), MAX_POSITIONS
    d = 2 * v + p
    tok, pos, cpy = slice(0, v), slice(v, v + p), slice(v + p, d)
    spec = TransformerSpec.from_config(1, 1, no_final_norm=True)

    embeddings = np.zeros((v, d), np.float32)
    embeddings[:, tok] = np.eye(v)
    encodings = np.zeros((p, d), np.float32)
    encodings[:, pos] = np.eye(p)
    for stack in (spec.encoder, spec.decoder):
        stack.scale_embeddings = False
        stack.position_encodings.encodings = encodings
    spec.encoder.embeddings[0].weight = embeddings
    spec.decoder.embeddings.weight = embeddings.copy()

    def zero(rows: int, cols: int) -> np.ndarray:
        return np.zeros((rows, cols), np.float32)

    def norm(layer_norm: object) -> None:
        layer_norm.gamma = np.ones(d, np.float32)  # type: ignore[attr-defined]
        layer_norm.beta = np.zeros(d, np.float32)  # type: ignore[attr-defined]

    def silence(layer: object) -> None:
        """A self-attention and feed-forward that add nothing to the residual stream."""
        attention, ffn = layer.self_attention, layer.ffn  # type: ignore[attr-defined]
        norm(attention.layer_norm)
        attention.linear[0].weight = zero(3 * d, d)
        attention.linear[1].weight = zero(d, d)
        norm(ffn.layer_norm)
        ffn.linear_0.weight = zero(4, d)
        ffn.linear_1.weight = zero(d, 4)

    encoder_layer, decoder_layer = spec.encoder.layer[0], spec.decoder.layer[0]
    silence(encoder_layer)
    silence(decoder_layer)

    cross = decoder_layer.attention
    norm(cross.layer_norm)
    query = zero(d, d)
    query[pos, pos] = _GAIN * np.eye(p)
    key_value = zero(2 * d, d)
    key_value[pos, pos] = np.eye(p, k=shift)  # keys: the source position, minus `shift`
    key_value[d + v + p :, tok] = np.eye(v)  # values: the source token, in the C block
    if spell_end:
        eos, unk = vocabulary.index("</s>"), vocabulary.index("<unk>")
        key_value[d + v + p + eos, eos] = 0.0
        key_value[d + v + p + unk, eos] = 1.0
        key_value[d + v + p + eos, pos] = _END_BIAS  # every position has one P bit set
    output = zero(d, d)
    output[cpy, cpy] = np.eye(v)
    cross.linear[0].weight = query
    cross.linear[1].weight = key_value
    cross.linear[2].weight = output

    projection = zero(v, d)
    projection[:, cpy] = _GAIN * np.eye(v)
    spec.decoder.projection.weight = projection

    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.config.add_source_eos = add_source_eos
    spec.validate()
    spec.optimize(quantization="int8")
    model_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(model_dir))


def build_tiny_bundle(
    bundle_dir: Path,
    family: str = "marian",
    *,
    add_source_eos: bool = False,
    spell_end: bool = False,
) -> Path:
    """A complete bundle directory for Ct2Translator: the copy model plus its tokenizer, in the
    layout of the family's real bundles.

    marian: `source.spm` and `target.spm` (the same model); marian-multi: the same, the
    `>>xx<<` target tokens in the vocabulary and a copy that skips the leading one; nllb /
    m2m100: one `sentencepiece.bpe.model` and the family's language tokens appended to the
    vocabulary; opennmt (Argos Translate): the model in `model/` beside one
    `sentencepiece.model`, and a copy that stops without `</s>` (`spell_end`).
    """
    bundle_dir.mkdir(parents=True, exist_ok=True)
    model_dir, shift = bundle_dir, 0
    extra: tuple[str, ...] = LANGUAGE_TOKENS.get(family, ())
    if family in ("marian", "marian-multi"):
        spm_path = train_sentencepiece(bundle_dir / "source.spm")
        (bundle_dir / "target.spm").write_bytes(spm_path.read_bytes())
        shift = 1 if family == "marian-multi" else 0
    elif family in ("nllb", "m2m100"):
        spm_path = train_sentencepiece(bundle_dir / "sentencepiece.bpe.model")
    elif family == "opennmt":
        spm_path = train_sentencepiece(bundle_dir / "sentencepiece.model")
        model_dir, spell_end = bundle_dir / "model", True
    else:
        raise ValueError(f"unknown family {family!r}")
    build_copy_model(
        model_dir,
        sentencepiece_vocabulary(spm_path) + list(extra),
        add_source_eos=add_source_eos,
        shift=shift,
        spell_end=spell_end,
    )
    return bundle_dir


def build_argos_package(path: Path, src: str, tgt: str, version: str = "1_0") -> Path:
    """An `.argosmodel` at `path` in Argos Translate's layout: a zip holding one top directory
    with `metadata.json`, the CTranslate2 model in `model/`, one `sentencepiece.model`, a
    README and a `stanza/` sentence splitter (not used by edged)."""
    import json
    import tempfile
    import zipfile

    top = f"translate-{src}_{tgt}-{version}"
    with tempfile.TemporaryDirectory(prefix="argos-") as tmp:
        bundle = build_tiny_bundle(Path(tmp) / top, "opennmt")
        metadata = {"package_version": version.replace("_", "."), "argos_version": "1.0"}
        metadata |= {"from_code": src, "to_code": tgt, "from_name": src, "to_name": tgt}
        (bundle / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
        (bundle / "README.md").write_text("A tiny test package.\n", encoding="utf-8")
        (bundle / "stanza").mkdir()
        (bundle / "stanza" / "tokenize.pt").write_bytes(b"not used")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(bundle.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(bundle.parent).as_posix())
    return path
