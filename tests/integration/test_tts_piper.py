"""The installed Piper voice (en_US joe) through sherpa-onnx, phonemes from espeak-ng."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from edged.errors import ConfigError, ModelError
from edged.store import default_models_dir
from edged.tts.espeak import EspeakLibrary
from edged.tts.piper import PiperSynthesizer
from edged.tts.piper_convert import MODEL_FILE, TOKENS_FILE, convert_piper_voice

JOE = "piper-en_US-joe-medium"
ESPEAK_BUNDLE = "espeak-ng-data"
FIX = "run `edged models install default`"

pytestmark = pytest.mark.slow


def _installed(name: str) -> Path:
    path = default_models_dir() / name
    if not path.is_dir():
        pytest.fail(f"model bundle {name} not installed in {path.parent}: {FIX}")
    return path


def _voice_json(bundle: Path) -> Path:
    configs = sorted(bundle.glob("*.onnx.json"))
    if len(configs) != 1:
        pytest.fail(f"{bundle}: expected one .onnx.json; {FIX}")
    return configs[0]


@pytest.fixture(scope="module")
def joe_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed joe bundle, or one converted here from the original Piper files in it."""
    bundle = _installed(JOE)
    if (bundle / MODEL_FILE).is_file() and (bundle / TOKENS_FILE).is_file():
        return bundle
    originals = [p for p in bundle.glob("*.onnx") if p.name != MODEL_FILE]
    if len(originals) != 1:
        pytest.fail(f"{bundle}: neither a converted model.onnx nor the Piper .onnx; {FIX}")
    converted = tmp_path_factory.mktemp("joe")
    convert_piper_voice(originals[0], _voice_json(bundle), converted)
    shutil.copy(_voice_json(bundle), converted)
    return converted


@pytest.fixture(scope="module")
def espeak() -> EspeakLibrary:
    return EspeakLibrary.from_bundle(_installed(ESPEAK_BUNDLE))


@pytest.fixture(scope="module")
def joe(joe_bundle: Path, espeak: EspeakLibrary) -> PiperSynthesizer:
    return PiperSynthesizer(joe_bundle, threads=2, espeak=espeak)


def test_joe_speaks_one_chunk_per_sentence(joe: PiperSynthesizer) -> None:
    assert joe.sample_rate == 22050
    assert joe.languages() == {"en"}
    chunks = list(joe.synthesize("Ever tried. Ever failed.", "en"))
    assert len(chunks) == 2
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1
        seconds = len(chunk) / joe.sample_rate
        assert 0.4 < seconds < 2.5, seconds  # two words each: about 0.8 s
        assert float(np.sqrt(np.mean(chunk**2))) > 0.02
        assert float(np.abs(chunk).max()) <= 1.0


def test_longer_sentence_has_plausible_duration(joe: PiperSynthesizer) -> None:
    text = "The quick brown fox jumps over the lazy dog while the cat watches from the window."
    chunks = list(joe.synthesize(text, "en"))  # cut between words (phonemes.MAX_SYMBOLS)
    seconds = sum(map(len, chunks)) / joe.sample_rate
    assert len(chunks) >= 2 and 3.0 < seconds < 8.0, seconds  # 16 words at 2-4 words a second


def test_speed_shortens_speech(joe_bundle: Path, espeak: EspeakLibrary) -> None:
    fast = PiperSynthesizer(joe_bundle, threads=1, speed=1.5, espeak=espeak)
    text = "Offline speech translation runs on small boards."
    normal = PiperSynthesizer(joe_bundle, threads=1, espeak=espeak).synthesize(text, "en")
    quick = fast.synthesize(text, "en")
    assert sum(map(len, quick)) < 0.85 * sum(map(len, normal))


def test_blank_text_gives_no_audio_and_other_languages_are_refused(joe: PiperSynthesizer) -> None:
    assert list(joe.synthesize("", "en")) == []
    assert list(joe.synthesize("  \n\t ", "en")) == []
    assert list(joe.synthesize("...", "en")) == []
    with pytest.raises(ConfigError, match="'de'"):
        list(joe.synthesize("Guten Tag.", "de"))


def test_conversion_of_the_real_voice_is_deterministic(joe_bundle: Path, tmp_path: Path) -> None:
    # The store prunes the original .onnx after converting; converting the converted model
    # again must give the same bytes (metadata is replaced, not appended).
    originals = [p for p in joe_bundle.glob("*.onnx") if p.name != MODEL_FILE]
    source = originals[0] if originals else joe_bundle / MODEL_FILE
    digests = []
    for run in ("a", "b"):
        convert_piper_voice(source, _voice_json(joe_bundle), tmp_path / run)
        digests.append(
            {
                n: hashlib.sha256((tmp_path / run / n).read_bytes()).hexdigest()
                for n in (MODEL_FILE, TOKENS_FILE)
            }
        )
    assert digests[0] == digests[1]
    installed = hashlib.sha256((joe_bundle / MODEL_FILE).read_bytes()).hexdigest()
    assert digests[0][MODEL_FILE] == installed


def test_broken_bundles_are_model_errors_not_crashes(
    joe_bundle: Path, espeak: EspeakLibrary, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="edged models install"):
        PiperSynthesizer(tmp_path / "absent", espeak=espeak)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(_voice_json(joe_bundle), bundle)
    (bundle / TOKENS_FILE).write_text("_ 0\n^ 1\n$ 2\n", encoding="utf-8")
    (bundle / MODEL_FILE).write_bytes(b"")  # sherpa-onnx would exit() on a model without metadata
    with pytest.raises(ModelError, match=r"model.onnx"):
        PiperSynthesizer(bundle, espeak=espeak)
    (bundle / TOKENS_FILE).write_text("_ 0\nbad line\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"tokens.txt:2"):
        PiperSynthesizer(bundle, espeak=espeak)


def _joe_copy(joe_bundle: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of the joe bundle whose .onnx.json has `changes` (None deletes a key)."""
    import json

    bundle = Path(shutil.copytree(joe_bundle, tmp_path / "joe"))
    voice_json = _voice_json(bundle)
    config = json.loads(voice_json.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    voice_json.write_text(json.dumps(config), encoding="utf-8")
    return bundle


def test_a_text_phonemized_voice_is_refused_before_loading(
    joe_bundle: Path, espeak: EspeakLibrary, tmp_path: Path
) -> None:
    bundle = _joe_copy(joe_bundle, tmp_path, phoneme_type="text")
    with pytest.raises(ModelError, match=r"\.onnx\.json: phoneme_type 'text' is not espeak"):
        PiperSynthesizer(bundle, espeak=espeak)


def test_speaker_of_the_real_voice(joe_bundle: Path, espeak: EspeakLibrary) -> None:
    """joe has one speaker: "0" (or nothing) speaks, any other speaker is a config error
    naming the key, before the model is loaded."""
    voice = PiperSynthesizer(joe_bundle, speaker="0", espeak=espeak)
    assert next(iter(voice.synthesize("Hello.", "en"))).size > 0
    with pytest.raises(ConfigError, match=r"tts.speakers .*'1', but this Piper voice has a single"):
        PiperSynthesizer(joe_bundle, speaker="1", espeak=espeak)


def test_speaker_config_reaches_the_voice(models_dir: Path, tmp_path: Path) -> None:
    """tts.speakers is handed to the voice of its language by engines.py."""
    from edged import engines
    from edged.config import load_config

    config = tmp_path / "edged.toml"
    config.write_text('[tts]\nspeakers = { en = "7" }\n', encoding="utf-8")
    prepared = engines.prepare(load_config(config))
    engines_ = prepared.load()  # voices load on first use (issue 12): the speaker with it
    assert engines_.voices is not None
    with pytest.raises(ConfigError, match=r"tts.speakers \(piper-en_US-joe-medium\): '7'"):
        engines_.voices.for_language("en")
