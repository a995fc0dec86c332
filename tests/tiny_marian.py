"""Build a tiny OPUS-MT release as Helsinki-NLP distributes it: a zip with a Marian model
(`.npz` whose `special:model.yml` holds the training options), its YAML vocabulary,
`decoder.yml` naming both, and `source.spm` / `target.spm`.

The weights are random (the model translates nothing sensible); what matters is the layout
and options that CTranslate2's OPUS-MT converter reads: a post-norm Transformer
(`--transformer-preprocess '' --transformer-postprocess dan`), one vocabulary for both
sides, and `>>xx<<` target tokens in it, as in opus-mt-en-ROMANCE.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
from tiny_ct2 import sentencepiece_vocabulary, train_sentencepiece

TARGET_TOKENS = (">>fr<<", ">>es<<", ">>it<<")
MODEL_NAME = "opus.spm32k-spm32k.transformer-align.model1.npz.best-perplexity.npz"
VOCAB_NAME = "opus.spm32k-spm32k.vocab.yml"
_D, _FF, _HEADS = 16, 32, 2

_OPTIONS = f"""type: transformer
enc-depth: 1
dec-depth: 1
dim-emb: {_D}
transformer-heads: {_HEADS}
transformer-dim-ffn: {_FF}
transformer-ffn-activation: swish
transformer-preprocess: ""
transformer-postprocess: dan
transformer-postprocess-emb: d
transformer-postprocess-top: ""
transformer-decoder-autoreg: self-attention
transformer-no-projection: false
transformer-guided-alignment-layer: last
tied-embeddings-all: true
"""


def _weights(vocab_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)

    def row(cols: int, value: float = 0.0) -> np.ndarray:
        return np.full((1, cols), value, np.float32)

    weights = {"Wemb": matrix(vocab_size, _D), "decoder_ff_logit_out_b": row(vocab_size)}

    def attention(scope: str) -> None:
        for part in "qkvo":
            weights[f"{scope}_W{part}"] = matrix(_D, _D)
            weights[f"{scope}_b{part}"] = row(_D)
        weights[f"{scope}_Wo_ln_scale"] = row(_D, 1.0)
        weights[f"{scope}_Wo_ln_bias"] = row(_D)

    def ffn(scope: str) -> None:
        weights[f"{scope}_W1"], weights[f"{scope}_b1"] = matrix(_D, _FF), row(_FF)
        weights[f"{scope}_W2"], weights[f"{scope}_b2"] = matrix(_FF, _D), row(_D)
        weights[f"{scope}_ffn_ln_scale"] = row(_D, 1.0)
        weights[f"{scope}_ffn_ln_bias"] = row(_D)

    attention("encoder_l1_self")
    ffn("encoder_l1_ffn")
    attention("decoder_l1_self")
    attention("decoder_l1_context")
    ffn("decoder_l1_ffn")
    return weights


def build_opus_mt_release(path: Path, seed: int = 0) -> Path:
    """Write the zip to `path`: files at the archive root, as in Helsinki-NLP's releases."""
    with tempfile.TemporaryDirectory(prefix="opus-mt-") as tmp:
        root = Path(tmp)
        spm = train_sentencepiece(root / "source.spm")
        (root / "target.spm").write_bytes(spm.read_bytes())
        pieces = [p for p in sentencepiece_vocabulary(spm) if p not in ("<unk>", "<s>", "</s>")]
        vocabulary = ["</s>", "<unk>", *TARGET_TOKENS, *pieces]
        (root / VOCAB_NAME).write_text(
            "".join(f'"{token}": {index}\n' for index, token in enumerate(vocabulary)),
            encoding="utf-8",
        )
        weights = _weights(len(vocabulary), np.random.default_rng(seed))
        options = np.frombuffer(_OPTIONS.encode() + b"\0", dtype=np.int8)
        np.savez(root / MODEL_NAME, **weights, **{"special:model.yml": options})
        (root / "decoder.yml").write_text(
            f"models:\n  - {MODEL_NAME}\nvocabs:\n  - {VOCAB_NAME}\n  - {VOCAB_NAME}\n"
            "beam-size: 6\nnormalize: 0.6\n",
            encoding="utf-8",
        )
        (root / "README.md").write_text("# tiny opus-mt release\n", encoding="utf-8")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(root.iterdir()):
                archive.write(file, file.name)
    return path
