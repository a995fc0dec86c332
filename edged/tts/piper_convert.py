"""Turn a Piper voice (.onnx + .onnx.json) into the form sherpa-onnx's OfflineTts loads.

sherpa-onnx reads the voice's settings from ONNX metadata and its phoneme symbols from a
tokens.txt; Piper keeps both in the .onnx.json. The keys written are the ones sherpa-onnx's
own scripts/piper/add_meta_data.py writes, plus add_blank=0 (Piper interleaves its pad
symbol itself). Output is byte-for-byte deterministic: the model store records its sha256.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from edged.errors import ModelError
from edged.onnxinfo import read_onnx_info

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENS_FILE = "tokens.txt"

# Piper's training code wrote 22500 for some 22.05 kHz voices; sherpa's converter fixes it too.
_MISWRITTEN_RATE = 22500
_REAL_RATE = 22050
# Piper's PhonemeType values meaning espeak-ng phonemes: "espeak" (piper/config.py, also its
# default when the key is absent, as in older voices) and the enum's str() that some of
# Piper's training exports wrote instead (es_MX-ald-medium).
_ESPEAK_PHONEME_TYPES = ("espeak", "phonemetype.espeak")


def check_phoneme_type(config: dict[str, Any], json_path: Path) -> None:
    """Refuse a voice whose phoneme_type is not espeak: edged phonemizes with espeak-ng only,
    so a `text` (or other) voice would get symbols it was never trained on."""
    phoneme_type = config.get("phoneme_type", "espeak")
    if str(phoneme_type).lower() not in _ESPEAK_PHONEME_TYPES:
        raise ModelError(
            f"{json_path}: phoneme_type {phoneme_type!r} is not espeak: edged phonemizes with "
            f"espeak-ng only and cannot drive this voice; choose an espeak-phonemized Piper voice"
        )


def convert_piper_voice(onnx_path: Path, json_path: Path, out_dir: Path) -> None:
    """Write out_dir/model.onnx (Piper model + sherpa metadata) and out_dir/tokens.txt."""
    import onnx  # heavy import, only needed at install time

    config = _read_voice_config(json_path)
    check_phoneme_type(config, json_path)
    tokens = tokens_text(config, json_path)
    metadata = sherpa_metadata(config, json_path)

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ModelError(
            f"{onnx_path}: not a readable ONNX model ({exc}); reinstall the voice bundle"
        ) from exc
    del model.metadata_props[:]
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key = key
        prop.value = value
    blob = model.SerializeToString(deterministic=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(out_dir / TOKENS_FILE, tokens.encode("utf-8"))
    _write_atomically(out_dir / MODEL_FILE, blob)
    log.info("converted Piper voice %s into %s", onnx_path.name, out_dir)


def sherpa_metadata(config: dict[str, Any], json_path: Path) -> dict[str, str]:
    """The ONNX metadata sherpa-onnx needs for a Piper VITS voice, in a fixed order."""
    try:
        sample_rate = int(config["audio"]["sample_rate"])
        espeak_voice = str(config.get("lang_code") or config["espeak"]["voice"])
        n_speakers = int(config.get("num_speakers", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{json_path}: missing or bad Piper voice setting {exc}") from exc
    if sample_rate == _MISWRITTEN_RATE:
        sample_rate = _REAL_RATE
    language = config.get("language", {})
    language_name = (
        language.get("name_english") if isinstance(language, dict) else None
    ) or espeak_voice
    return {
        "model_type": "vits",
        "comment": "piper",  # sherpa-onnx switches to Piper's input layout on this word
        "language": str(language_name),
        "voice": espeak_voice,
        "has_espeak": "1",
        "n_speakers": str(n_speakers),
        "sample_rate": str(sample_rate),
        "add_blank": "0",
    }


def tokens_text(config: dict[str, Any], json_path: Path) -> str:
    """tokens.txt content: one "symbol id" line per phoneme, ordered by id."""
    id_map = config.get("phoneme_id_map")
    if not isinstance(id_map, dict) or not id_map:
        raise ModelError(f"{json_path}: no phoneme_id_map; is this a Piper voice config?")
    lines: list[tuple[int, str]] = []
    for symbol, ids in id_map.items():
        if symbol in ("\n", "\r"):
            continue  # a line-based tokens.txt cannot hold it; espeak never emits it
        if len(symbol) != 1:
            raise ModelError(f"{json_path}: phoneme_id_map symbol {symbol!r} is not one code point")
        token_id = ids[0] if isinstance(ids, list) else ids
        # The space symbol becomes the line " 3": sherpa-onnx reads a leading space as it.
        lines.append((int(token_id), f"{symbol} {int(token_id)}\n"))
    lines.sort()
    return "".join(line for _, line in lines)


def _read_voice_config(json_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(json_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{json_path}: cannot read Piper voice config ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{json_path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{json_path}: not a Piper voice config (top level is not an object)")
    return config


def _write_atomically(path: Path, blob: bytes) -> None:
    # An interrupted install must not leave a half-written model that merely fails its checksum.
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_metadata(onnx_path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX model, read without loading its weights."""
    return read_onnx_info(onnx_path).metadata
