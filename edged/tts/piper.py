"""Piper (VITS) voices through sherpa-onnx's OfflineTts, phonemes from espeak-ng.

sherpa-onnx 2.x carries no espeak-ng: edged phonemizes each sentence itself (Phonemizer)
and hands sherpa the code points. A bundle directory holds the converted model.onnx, its
tokens.txt (see piper_convert) and the voice's original .onnx.json.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edged.errors import ConfigError, EngineError, ModelError
from edged.tts.espeak import EspeakLibrary
from edged.tts.phonemes import Phonemizer, codepoints
from edged.tts.piper_convert import MODEL_FILE, TOKENS_FILE, check_phoneme_type, read_metadata

log = logging.getLogger(__name__)

# Metadata sherpa-onnx reads without a default: if one is missing it calls exit() in C++.
_REQUIRED_METADATA = ("sample_rate", "n_speakers", "language", "comment")
_PIPER_SPECIAL = ("_", "^", "$")  # pad, begin, end: sherpa-onnx looks them up unconditionally


@dataclass(frozen=True)
class PiperVoice:
    """What edged needs from a voice's .onnx.json."""

    espeak_voice: str  # e.g. "en-us"
    language: str  # ISO 639-1 family, e.g. "en"
    noise_scale: float
    length_scale: float
    noise_w: float
    num_speakers: int = 1
    speaker_ids: dict[str, int] = field(default_factory=dict)  # speaker_id_map: name -> id

    def speaker_id(self, speaker: str, where: str = "tts.speakers") -> int:
        """The sherpa speaker id for `speaker`: a name of the voice's speaker_id_map or a
        number below num_speakers; "" is the first speaker. ConfigError names the choices."""
        speaker = speaker.strip()
        if not speaker:
            return 0
        if speaker in self.speaker_ids:
            return self.speaker_ids[speaker]
        if speaker.isdigit() and int(speaker) < self.num_speakers:
            return int(speaker)
        if self.num_speakers <= 1:
            raise ConfigError(f"{where}: {speaker!r}, but this Piper voice has a single speaker")
        names = ", ".join(sorted(self.speaker_ids)[:8]) or "none"
        raise ConfigError(
            f"{where}: {speaker!r} is not a speaker of this voice: give a number from 0 to "
            f"{self.num_speakers - 1} or a name from its speaker_id_map ({names}, ...)"
        )


class PiperSynthesizer:
    """A Piper voice; synthesize() yields one sentence of audio at a time.

    Not for concurrent use from several threads: one pipeline stage owns it.
    """

    def __init__(
        self,
        bundle_dir: Path,
        *,
        threads: int = 1,
        speed: float = 1.0,
        speaker: str = "",
        espeak: EspeakLibrary | None = None,
    ) -> None:
        import sherpa_onnx  # imported here so a config check need not load onnxruntime

        if not 0.25 <= speed <= 4.0:
            raise ConfigError(f"tts speed {speed}: allowed range is 0.25 to 4.0")
        if threads < 1:
            raise ConfigError(f"tts threads {threads}: must be at least 1")
        model, tokens, voice_json = bundle_files(bundle_dir)
        self.voice = read_voice(voice_json)
        self._speaker = self.voice.speaker_id(speaker, f"tts.speakers ({bundle_dir.name})")
        self._symbols = _check_tokens(tokens)
        metadata = _check_metadata(model, bundle_dir)
        self._phonemizer = Phonemizer(espeak)

        started = time.monotonic()
        config = sherpa_onnx.OfflineTtsConfig(
            model=sherpa_onnx.OfflineTtsModelConfig(
                vits=sherpa_onnx.OfflineTtsVitsModelConfig(
                    model=str(model),
                    tokens=str(tokens),
                    noise_scale=self.voice.noise_scale,
                    noise_scale_w=self.voice.noise_w,
                    # sherpa replaces length_scale by 1/speed when speed != 1, losing the
                    # voice's own pace; folding speed in here keeps both.
                    length_scale=self.voice.length_scale / speed,
                ),
                num_threads=threads,
                provider="cpu",
            ),
            max_num_sentences=1,
            silence_scale=1.0,
        )
        self._tts = sherpa_onnx.OfflineTts(config)
        self.sample_rate = int(self._tts.sample_rate)
        if self.sample_rate != int(metadata["sample_rate"]):
            raise ModelError(f"{model}: sherpa-onnx reports an unexpected sample rate")
        log.info(
            "Piper voice %s loaded in %d ms (%d Hz, %d threads)",
            bundle_dir.name,
            (time.monotonic() - started) * 1000,
            self.sample_rate,
            threads,
        )

    def languages(self) -> set[str]:
        return {self.voice.language}

    def synthesize(self, text: str, lang: str) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at sample_rate, one sentence at a time; nothing for blanks."""
        import sherpa_onnx

        if lang.lower() not in self.languages():
            raise ConfigError(
                f"language {lang!r}: this Piper voice speaks {self.voice.language!r} only"
            )
        for sentence in self._phonemizer.phonemize(text, self.voice.espeak_voice):
            known = [cp for cp in codepoints(sentence) if cp in self._symbols]
            if len(known) != len(sentence):
                log.debug("dropped %d phonemes the voice lacks", len(sentence) - len(known))
            if not known:
                continue
            generation = sherpa_onnx.GenerationConfig()
            generation.sid = self._speaker
            generation.speed = 1.0  # already in length_scale
            generation.silence_scale = 1.0  # Piper's own pauses, not sherpa's shortened ones
            generation.phoneme_codepoints = [known]
            audio = self._tts.generate("", generation)
            samples = np.asarray(audio.samples, dtype=np.float32)
            if samples.size == 0:
                raise EngineError(f"Piper voice produced no audio for {sentence!r}")
            yield samples


def bundle_files(bundle_dir: Path) -> tuple[Path, Path, Path]:
    """model.onnx, tokens.txt and the voice's .onnx.json of a bundle, or a ModelError."""
    fix = f"run `edged models install {bundle_dir.name}`"
    if not bundle_dir.is_dir():
        raise ModelError(f"{bundle_dir}: Piper voice bundle not installed; {fix}")
    model, tokens = bundle_dir / MODEL_FILE, bundle_dir / TOKENS_FILE
    for path in (model, tokens):
        if not path.is_file():
            raise ModelError(f"{path}: missing; {fix}")
    configs = sorted(bundle_dir.glob("*.onnx.json"))
    if len(configs) != 1:
        found = ", ".join(p.name for p in configs) or "none"
        raise ModelError(f"{bundle_dir}: expected one Piper .onnx.json, found {found}; {fix}")
    return model, tokens, configs[0]


def read_voice(json_path: Path) -> PiperVoice:
    """The phonemizer voice, language, speakers and inference defaults from a Piper
    .onnx.json; ModelError for a voice that is not espeak-phonemized."""
    try:
        config: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
        espeak_voice = str(config["espeak"]["voice"])
        language = config.get("language", {}).get("family") or espeak_voice.split("-")[0]
        inference = config.get("inference", {})
        speaker_ids = {str(k): int(v) for k, v in (config.get("speaker_id_map") or {}).items()}
        voice = PiperVoice(
            espeak_voice=espeak_voice,
            language=str(language).lower(),
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
            num_speakers=int(config.get("num_speakers", 1)),
            speaker_ids=speaker_ids,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{json_path}: not a usable Piper voice config ({exc!r})") from exc
    check_phoneme_type(config, json_path)
    return voice


def _check_tokens(tokens: Path) -> set[int]:
    # sherpa-onnx exits the whole process on a malformed tokens.txt; find out first.
    symbols: set[int] = set()
    for number, line in enumerate(tokens.read_text(encoding="utf-8").splitlines(), 1):
        symbol, _, token_id = line.rpartition(" ")
        if len(symbol) != 1 or not token_id.isdigit():
            raise ModelError(f"{tokens}:{number}: malformed line {line!r}; reinstall the voice")
        symbols.add(ord(symbol))
    missing = [s for s in _PIPER_SPECIAL if ord(s) not in symbols]
    if missing:
        raise ModelError(f"{tokens}: lacks Piper symbols {missing}; reinstall the voice")
    return symbols


def _check_metadata(model: Path, bundle_dir: Path) -> dict[str, str]:
    metadata = read_metadata(model)
    missing = [key for key in _REQUIRED_METADATA if key not in metadata]
    if missing or "piper" not in metadata.get("comment", ""):
        raise ModelError(
            f"{model}: not converted for sherpa-onnx (metadata lacks "
            f"{missing or ['comment=piper']}); run `edged models install {bundle_dir.name}`"
        )
    return metadata
