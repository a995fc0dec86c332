"""What the sherpa and Piper catalogue files pin (defect 10 of issue 11): Hugging Face URLs
at a commit, sha256 and size wherever the upstream publishes them, and trust-on-first-use
("" sha256) only where it does not, as each file's header says per bundle."""

from __future__ import annotations

import re

import pytest

from edged import store

COMMIT_URL = re.compile(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/[0-9a-f]{40}/")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
PIPER = ["piper-de_DE-thorsten-medium", "piper-es_ES-davefx-medium", "piper-fr_FR-siwis-medium"]


@pytest.fixture(scope="module")
def catalogue() -> store.Catalogue:
    return store.load_catalogue()


def url_sources(bundle) -> list:
    return [s for s in bundle.sources if hasattr(s, "url")]


@pytest.mark.parametrize("name", PIPER)
def test_piper_voices_are_pinned_to_a_commit_with_hashes_and_sizes(catalogue, name: str) -> None:
    bundle = catalogue.bundle(name)
    for source in url_sources(bundle):
        assert COMMIT_URL.match(source.url), source.url
        assert SHA256.match(source.sha256) and source.size, source.url
    # the files kept as downloaded are pinned; model.onnx and tokens.txt are made locally
    for spec in bundle.files:
        pinned = bool(SHA256.match(spec.sha256)) and spec.size is not None
        assert pinned == (spec.path not in ("model.onnx", "tokens.txt")), spec.path


def test_piper_voice_model_hashes_differ(catalogue) -> None:
    """Three voices of the same architecture share a size (63201294) but not a hash."""
    hashes = {
        s.sha256 for name in PIPER for s in url_sources(catalogue.bundle(name))
        if s.url.endswith("-medium.onnx")
    }  # fmt: skip
    assert len(hashes) == 3


def test_default_sherpa_bundle_is_pinned_to_commits(catalogue) -> None:
    bundle = catalogue.bundle("sherpa-zipformer-en-20m")
    assert all(COMMIT_URL.match(s.url) for s in url_sources(bundle))
    assert all(SHA256.match(f.sha256) and f.size for f in bundle.files)
    assert all(SHA256.match(s.sha256) and s.size for s in url_sources(bundle))
    assert bundle.size == 45202074 + 244865  # the four model files + bpe.model


@pytest.mark.parametrize(
    "name", ["sherpa-zipformer-en-2023-06-26", "sherpa-zipformer-zh-en", "sherpa-zipformer-fr"]
)
def test_release_archives_stay_trust_on_first_use(catalogue, name: str) -> None:
    """GitHub release assets publish no sha256: first install records and then holds it."""
    archive = next(s for s in url_sources(catalogue.bundle(name)) if s.archive)
    assert archive.url.startswith("https://github.com/k2-fsa/sherpa-onnx/releases/download/")
    assert archive.sha256 == ""


def test_punctuation_bundle_is_fully_pinned(catalogue) -> None:
    bundle = catalogue.bundle("sherpa-punct-en")
    assert all(SHA256.match(f.sha256) and f.size for f in bundle.files)
    assert all(SHA256.match(s.sha256) and s.size for s in url_sources(bundle))


def test_hugging_face_urls_are_commit_pinned(catalogue) -> None:
    """Every Hugging Face download of the sherpa and Piper bundles names a commit, except
    the zh-en bpe.vocab (no commit of that repository known: main, trust-on-first-use)."""
    following_main = []
    for bundle in catalogue.bundles.values():
        if not bundle.kind.startswith(("asr.sherpa", "tts.piper")):
            continue
        for source in url_sources(bundle):
            if "huggingface.co" in source.url and not COMMIT_URL.match(source.url):
                following_main.append((bundle.name, source.path))
    assert following_main == [("sherpa-zipformer-zh-en", "bpe.vocab")]
