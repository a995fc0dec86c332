"""Model store: catalogue validation, install/verify/list on local sources (file:// and a
loopback http.server), load-time checks, atomic installs and progress output."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from edged import store
from edged.errors import ModelError
from edged.store import CatalogueError, State, StderrProgress, load_catalogue
from edged.store.catalogue import catalogue_candidates
from edged.store.check import MAX_PROBLEMS

QUIET = store.SilentProgress()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalogue_from(tmp_path: Path, text: str, name: str = "test.toml") -> store.Catalogue:
    directory = tmp_path / "catalogue"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return load_catalogue(directory)


# --- the shipped catalogue ------------------------------------------------------------------


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "armv7l"])
def test_shipped_catalogue_loads_for_every_machine(machine: str) -> None:
    catalogue = load_catalogue(machine=machine)
    names = [b.name for b in catalogue.resolve("default")]
    assert names == [
        "whisper-base",
        "silero-vad",
        "piper-en_US-joe-medium",
        "espeak-ng-data",
        "sample-beckett",
    ]
    lib = next(f for f in catalogue.bundle("espeak-ng-data").files if f.path == "libespeak-ng.so.1")
    if machine == "armv7l":  # no wheel for it: unknown, recorded at install
        assert (lib.size, lib.sha256) == (None, "")
    else:
        assert lib.size and len(lib.sha256) == 64
    beckett = catalogue.bundle("sample-beckett")
    assert beckett.meta["transcript"].startswith("Ever tried. Ever failed.")


def test_shipped_default_bundles_pin_every_file() -> None:
    for bundle in load_catalogue(machine="x86_64").resolve("default"):
        for spec in bundle.files:
            assert spec.size is not None and len(spec.sha256) == 64, (bundle.name, spec.path)


def test_catalogue_is_found_beside_the_package() -> None:
    import edged

    package = Path(edged.__file__).resolve().parent
    candidates = catalogue_candidates()
    assert candidates[:2] == [package.parent / "models", package / "catalogue"]
    assert any((package / "catalogue").glob("*.toml"))  # the symlink wheels carry


def test_resolve_unknown_name_lists_what_exists() -> None:
    catalogue = load_catalogue()
    with pytest.raises(ModelError, match=r"unknown model bundle or group 'nope'.*default"):
        catalogue.resolve("nope")
    with pytest.raises(ModelError, match="whisper-base"):
        catalogue.bundle("nope")


# --- catalogue validation -------------------------------------------------------------------

GOOD = f"""
[[bundle]]
name = "tiny"
kind = "asr.test"
languages = ["en"]
licence = "MIT"
description = "a test bundle"
files = [{{ path = "a.bin", size = 3, sha256 = "{sha(b"abc")}" }}]

  [[bundle.sources]]
  type = "url"
  url = "file:///nowhere/a.bin"
  sha256 = ""
  path = "a.bin"

[group.small]
bundles = ["tiny"]
"""


def test_good_catalogue_parses(tmp_path: Path) -> None:
    catalogue = catalogue_from(tmp_path, GOOD)
    assert [b.name for b in catalogue.resolve("small")] == ["tiny"]
    assert catalogue.bundle("tiny").size == 3


BAD = [
    (GOOD.replace('licence = "MIT"', 'lisence = "MIT"'), r"bundle 'tiny': key 'licence': missing"),
    (GOOD.replace('description = "a test bundle"', 'description = "x"\nshaa = 1'), "unknown key"),
    (GOOD.replace('sha256 = "ba7816bf', 'sha256 = "BA7816bf'), "64 lowercase hex digits"),
    (GOOD.replace('kind = "asr.test"', 'kind = "speech"'), "FAMILY.ENGINE"),
    (GOOD.replace('kind = "asr.test"', 'kind = "foo.test"'), "FAMILY.ENGINE"),
    (GOOD.replace('name = "tiny"', 'name = "../tiny"'), "key 'name'"),
    (GOOD.replace('path = "a.bin", size', 'path = "../a.bin", size'), "relative path"),
    (GOOD.replace('path = "a.bin", size', 'path = "/a.bin", size'), "relative path"),
    (GOOD.replace('path = "a.bin", size', 'path = "b.bin", size'), "'b.bin' comes from no source"),
    (GOOD.replace("size = 3", "size = true"), "expected int"),
    (GOOD.replace("size = 3", "size = -1"), "must be >= 0"),
    (GOOD.replace('bundles = ["tiny"]', 'bundles = ["huge"]'), "unknown bundle 'huge'"),
    (GOOD.replace("[group.small]", "[group.tiny]"), "both a group and a bundle"),
    (GOOD.replace('url = "file:', 'url = "ftp:'), "https://"),
    (GOOD.replace('url = "file:///nowhere', 'url = "http://example.com'), "https://"),
    (GOOD.replace('type = "url"', 'type = "git"'), "'pypi' or 'url'"),
    (GOOD.replace('path = "a.bin"\n', 'archive = "tar"\n'), "needs 'members'"),
    (GOOD.replace('path = "a.bin"\n', 'archive = "rar"\n'), "must be one of tar, zip"),
    (GOOD.replace("size = 3,", "dir = true, size = 3,"), "needs 'count'"),
    (GOOD.replace('path = "a.bin", size', 'path = ".edged-stamp.json", size'), "reserved"),
    (GOOD + "\nsteps = 1\n", "unknown key"),
    (GOOD.replace("[[bundle", "[[bundles"), r"unknown key\(s\) bundles"),
    ("bundle = [", "cannot read catalogue file"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_catalogue_entry_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message) as info:
        catalogue_from(tmp_path, text)
    assert "test.toml" in str(info.value)


def test_bad_steps_and_members(tmp_path: Path) -> None:
    concat = GOOD.replace(
        'files = [{ path = "a.bin"',
        'steps = [{ type = "concat", inputs = ["a.bin", "nope"], output = "b.bin" }]\n'
        'files = [{ path = "a.bin"',
    )
    with pytest.raises(CatalogueError, match="concat input 'nope' comes from no source"):
        catalogue_from(tmp_path, concat)
    members = GOOD.replace('path = "a.bin"\n', 'archive = "tar"\nmembers = { "x/" = "a.bin" }\n')
    with pytest.raises(CatalogueError, match="a directory"):
        catalogue_from(tmp_path, members)
    opus = GOOD.replace(
        'files = [{ path = "a.bin"',
        'steps = [{ type = "ct2-opus-mt", release = "model.bin" }]\nfiles = [{ path = "a.bin"',
    )
    with pytest.raises(CatalogueError, match="key 'release': must not be one of"):
        catalogue_from(tmp_path, opus)
    wildcard = GOOD.replace(
        'path = "a.bin"\n', 'archive = "zip"\nmembers = { "x/*/a" = "a.bin" }\n'
    )
    with pytest.raises(CatalogueError, match="'\\*' may only stand for the top directory"):
        catalogue_from(tmp_path, wildcard)


def test_an_unpinned_directory_entry_needs_no_count(tmp_path: Path) -> None:
    text = GOOD.replace(
        f'{{ path = "a.bin", size = 3, sha256 = "{sha(b"abc")}" }}',
        '{ path = "model", dir = true, sha256 = "" }',
    ).replace('path = "a.bin"\n', 'archive = "zip"\nmembers = { "*/model/" = "model/" }\n')
    spec = catalogue_from(tmp_path, text).bundle("tiny").files[0]
    assert (spec.is_dir, spec.count, spec.sha256) == (True, None, "")


def test_duplicate_bundle_across_files_names_both(tmp_path: Path) -> None:
    catalogue_from(tmp_path, GOOD, "one.toml")
    with pytest.raises(CatalogueError, match=r"two\.toml.*already defined in .*one\.toml"):
        catalogue_from(tmp_path, GOOD.replace("[group.small]", "[group.other]"), "two.toml")


def test_empty_catalogue_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"no \*.toml"):
        load_catalogue(tmp_path)


# --- install, verify, list on local sources -------------------------------------------------

WEIGHTS = b"weights" * 1000
VOCAB = b"a b c\n"


def make_sources(tmp_path: Path) -> Path:
    """A plain file and a tar.bz2 archive with a directory, as a download site holds them."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "weights.bin").write_bytes(WEIGHTS)
    with tarfile.open(site / "voice.tar.bz2", "w:bz2") as tar:
        for name, data in [
            ("voice-1/model.onnx", b"onnx!"),
            ("voice-1/data/x.txt", b"x"),
            ("voice-1/data/y/z.txt", b"zz"),
            ("voice-1/README", b"not wanted"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return site


def tree_sha(entries: dict[str, bytes]) -> str:
    return store.tree_digest((rel, sha(data)) for rel, data in entries.items())


def local_catalogue(tmp_path: Path, base_url: str, archive_sha: str = "") -> store.Catalogue:
    data_dir = tree_sha({"x.txt": b"x", "y/z.txt": b"zz"})
    text = f"""
[[bundle]]
name = "weights"
kind = "asr.test"
languages = ["en"]
licence = "MIT"
description = "a plain download"
files = [{{ path = "weights.bin", size = {len(WEIGHTS)}, sha256 = "{sha(WEIGHTS)}" }}]

  [[bundle.sources]]
  type = "url"
  url = "{base_url}/weights.bin"
  sha256 = "{sha(WEIGHTS)}"
  path = "weights.bin"

[[bundle]]
name = "voice"
kind = "tts.test"
languages = ["de"]
licence = "CC0-1.0"
description = "an archive with a directory"
files = [
  {{ path = "model.onnx", size = 5, sha256 = "{sha(b"onnx!")}" }},
  {{ path = "data", dir = true, count = 2, size = 3, sha256 = "{data_dir}" }},
]

  [[bundle.sources]]
  type = "url"
  url = "{base_url}/voice.tar.bz2"
  sha256 = "{archive_sha}"
  archive = "tar"
  members = {{ "voice-1/model.onnx" = "model.onnx", "voice-1/data/" = "data/" }}

[group.both]
bundles = ["weights", "voice"]
"""
    return catalogue_from(tmp_path, text)


@pytest.fixture
def installed(tmp_path: Path) -> tuple[store.Catalogue, Path]:
    site = make_sources(tmp_path)
    catalogue = local_catalogue(tmp_path, site.as_uri())
    models = tmp_path / "models"
    assert store.install(catalogue, ["both"], models, QUIET) == ["weights", "voice"]
    return catalogue, models


def test_install_then_everything_verifies(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    assert store.verify(catalogue, None, models, QUIET) == []
    assert store.bundle_path(catalogue, models, "voice") == models / "voice"
    assert sorted(p.name for p in (models / "voice").iterdir()) == [
        ".edged-stamp.json",
        "data",
        "model.onnx",
    ]  # README was not declared, so it was not kept
    assert [p.name for p in models.iterdir() if p.name.startswith(".tmp-")] == []
    rows = {row.name: row for row in store.list_bundles(catalogue, models)}
    assert rows["voice"].state is State.INSTALLED and rows["voice"].size == 8


def test_second_install_skips_verified_bundles(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    assert store.install(catalogue, ["both"], models, QUIET) == []
    assert store.install(catalogue, ["voice"], models, QUIET, force=True) == ["voice"]


def damage_is_reported(catalogue: store.Catalogue, models: Path, rel: str, expect: str) -> None:
    """Both the load-time check and verify name the file and the fixing command."""
    with pytest.raises(ModelError, match=expect) as info:
        store.bundle_path(catalogue, models, rel.split("/")[0])
    assert f"fix: edged models install {rel.split('/')[0]}" in str(info.value)
    assert rel.split("/", 1)[1] in str(info.value)
    problems = store.verify(catalogue, None, models, QUIET)
    assert len(problems) == 1 and problems[0].path == rel.split("/", 1)[1]
    assert expect.split(".*")[0] in problems[0].message


def test_missing_file(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    (models / "weights" / "weights.bin").unlink()
    damage_is_reported(catalogue, models, "weights/weights.bin", "missing")
    rows = {row.name: row for row in store.list_bundles(catalogue, models)}
    assert rows["weights"].state is State.CORRUPT and "weights.bin" in rows["weights"].detail


def test_truncated_file(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    path = models / "weights" / "weights.bin"
    path.write_bytes(WEIGHTS[:100])
    damage_is_reported(
        catalogue, models, "weights/weights.bin", f"has 100 bytes, expected {len(WEIGHTS)}"
    )


def test_corrupt_file_same_size(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    path = models / "weights" / "weights.bin"
    path.write_bytes(WEIGHTS.replace(b"w", b"W", 1))  # new mtime: the cheap check re-hashes it
    damage_is_reported(catalogue, models, "weights/weights.bin", "content damaged")


def test_corruption_with_unchanged_mtime_is_caught_by_verify_only(
    installed: tuple[store.Catalogue, Path],
) -> None:
    catalogue, models = installed
    path = models / "weights" / "weights.bin"
    before = path.stat()
    path.write_bytes(WEIGHTS.replace(b"w", b"W", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # bit rot keeps the mtime
    store.bundle_path(catalogue, models, "weights")  # the cheap check trusts the stamp
    problems = store.verify(catalogue, ["weights"], models, QUIET)
    assert [p.path for p in problems] == ["weights.bin"]
    assert "content damaged" in str(problems[0])
    # install re-verifies fully before skipping, so it repairs the bundle
    assert store.install(catalogue, ["weights"], models, QUIET) == ["weights"]
    assert store.verify(catalogue, ["weights"], models, QUIET) == []


def test_damage_inside_a_directory_entry(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    (models / "voice" / "data" / "y" / "z.txt").unlink()
    damage_is_reported(catalogue, models, "voice/data/y/z.txt", "missing")


def test_extra_file_in_a_directory_entry_fails_verify(
    installed: tuple[store.Catalogue, Path],
) -> None:
    catalogue, models = installed
    (models / "voice" / "data" / "new.txt").write_text("?")
    problems = store.verify(catalogue, ["voice"], models, QUIET)
    assert [(p.path, p.message) for p in problems] == [
        ("data/new.txt", "unexpected file (not part of the bundle)")
    ]


def test_not_installed(tmp_path: Path) -> None:
    catalogue = local_catalogue(tmp_path, "file:///nowhere")
    models = tmp_path / "models"
    with pytest.raises(ModelError, match=r"'voice' is not installed.*edged models install voice"):
        store.bundle_path(catalogue, models, "voice")
    assert all(r.state is State.MISSING for r in store.list_bundles(catalogue, models))
    assert store.verify(catalogue, None, models, QUIET) == []  # nothing installed, nothing wrong
    problems = store.verify(catalogue, ["voice"], models, QUIET)
    assert [str(p) for p in problems] == ["voice: not installed; fix: edged models install voice"]


def test_lost_stamp_means_not_verified(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    (models / "voice" / store.STAMP).unlink()
    with pytest.raises(ModelError, match="install stamp missing"):
        store.bundle_path(catalogue, models, "voice")


def test_failed_install_leaves_nothing_behind(tmp_path: Path) -> None:
    site = make_sources(tmp_path)
    catalogue = local_catalogue(tmp_path, site.as_uri(), archive_sha="0" * 64)
    models = tmp_path / "models"
    (models / ".tmp-voice-stale").mkdir(parents=True)  # a crashed install's leftover
    with pytest.raises(ModelError, match=r"1 of 2 .*voice.*sha256 .*catalogue says 0000"):
        store.install(catalogue, ["both"], models, QUIET)
    assert sorted(p.name for p in models.iterdir()) == [".edged-lock", "weights"]


def test_failed_reinstall_keeps_the_working_copy(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    (models.parent / "site" / "voice.tar.bz2").write_bytes(b"not bzip2")
    (models / store.FIRST_USE).unlink()  # trust the new download anew: it is then unpacked
    with pytest.raises(ModelError, match="cannot read the archive"):
        store.install(catalogue, ["voice"], models, QUIET, force=True)
    assert store.verify(catalogue, ["voice"], models, QUIET) == []


def test_unpinned_hashes_are_recorded_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = make_sources(tmp_path)
    text = f"""
[[bundle]]
name = "new-voice"
kind = "tts.test"
languages = ["fr"]
licence = "MIT"
description = "hashes not known yet"
files = [{{ path = "w.bin", sha256 = "" }}]

  [[bundle.sources]]
  type = "url"
  url = "{site.as_uri()}/weights.bin"
  sha256 = ""
  path = "w.bin"
"""
    catalogue = catalogue_from(tmp_path, text)
    models = tmp_path / "models"
    with caplog.at_level(logging.WARNING, logger="edged.store"):
        store.install(catalogue, ["new-voice"], models, QUIET)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert (
        sha(WEIGHTS) in warnings[0] and "file w.bin" in warnings[0] and "test.toml" in warnings[0]
    )
    assert store.verify(catalogue, None, models, QUIET) == []
    (models / "new-voice" / "w.bin").write_bytes(WEIGHTS[::-1])  # held to the stamp from now on
    assert [p.path for p in store.verify(catalogue, None, models, QUIET)] == ["w.bin"]


def test_concat_step_joins_parts_and_drops_them(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "p1").write_bytes(b"hello ")
    (site / "p2").write_bytes(b"world")
    text = f"""
[[bundle]]
name = "joined"
kind = "asr.test"
languages = []
licence = "MIT"
description = "two parts"
steps = [{{ type = "concat", inputs = ["part1", "part2"], output = "model.bin" }}]
files = [{{ path = "model.bin", size = 11, sha256 = "{sha(b"hello world")}" }}]

  [[bundle.sources]]
  type = "url"
  url = "{site.as_uri()}/p1"
  sha256 = "{sha(b"hello ")}"
  path = "part1"

  [[bundle.sources]]
  type = "url"
  url = "{site.as_uri()}/p2"
  sha256 = "{sha(b"world")}"
  path = "part2"
"""
    catalogue = catalogue_from(tmp_path, text)
    models = tmp_path / "models"
    store.install(catalogue, ["joined"], models, QUIET)
    assert (models / "joined" / "model.bin").read_bytes() == b"hello world"
    assert not (models / "joined" / "part1").exists()


# --- the url source against a loopback http.server -------------------------------------------


@pytest.fixture
def http_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    site = make_sources(tmp_path)
    handler = partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_install_over_http_with_progress(tmp_path: Path, http_site: tuple[Path, str]) -> None:
    site, url = http_site
    archive_sha = sha((site / "voice.tar.bz2").read_bytes())
    catalogue = local_catalogue(tmp_path, url, archive_sha=archive_sha)
    models = tmp_path / "models"
    out = io.StringIO()
    progress = StderrProgress(out, tty=False, min_bytes=0)
    assert store.install(catalogue, ["both"], models, progress) == ["weights", "voice"]
    assert store.verify(catalogue, None, models, QUIET) == []
    log = out.getvalue()
    assert f"downloading {url}/weights.bin" in log
    assert "  downloading weights.bin: 100% 0.0/0.0 MB" in log
    assert "[2/2] voice: installed in" in log
    assert "\r" not in log
    stamp = json.loads((models / "voice" / store.STAMP).read_text())
    assert stamp["sources"] == {f"{url}/voice.tar.bz2": archive_sha}


def test_http_errors_are_clear(tmp_path: Path, http_site: tuple[Path, str]) -> None:
    _, url = http_site
    catalogue = local_catalogue(tmp_path, url + "/missing")
    with pytest.raises(ModelError, match=rf"cannot download {url}/missing/weights.bin: .*404"):
        store.install(catalogue, ["weights"], tmp_path / "models", QUIET)


# --- progress output ------------------------------------------------------------------------


def test_progress_in_a_log_prints_ten_percent_steps() -> None:
    out = io.StringIO()
    progress = StderrProgress(out, tty=False)
    total = 50_000_000
    for done in range(0, total + 1, total // 200):
        progress.update("unpacking x", done, total)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[-1] == "  unpacking x: 100% 50.0/50.0 MB"


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    out = io.StringIO()
    progress = StderrProgress(out, tty=True)
    total = 10_000_000
    for done in range(0, total + 1, total // 1000):
        progress.update("verifying", done, total)
    text = out.getvalue()
    assert (
        text.count("\r") == 100
        and text.count("\n") == 1
        and text.endswith("100% 10.0/10.0 MB\x1b[K\n")
    )


def test_progress_small_and_unknown_totals() -> None:
    out = io.StringIO()
    progress = StderrProgress(out, tty=False)
    progress.update("tiny", 0, 1000)
    progress.update("tiny", 1000, 1000)
    assert out.getvalue() == ""  # below min_bytes: the phase message is enough
    for done in range(0, 35_000_001, 1_000_000):
        progress.update("stream", done, None)
    assert out.getvalue().splitlines() == [
        "  stream: 10.0 MB",
        "  stream: 20.0 MB",
        "  stream: 30.0 MB",
    ]


def test_default_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGED_MODELS_DIR", str(tmp_path / "m"))
    assert store.default_models_dir() == tmp_path / "m"
    monkeypatch.delenv("EDGED_MODELS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store.default_models_dir() == tmp_path / "xdg" / "edged" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.default_models_dir() == tmp_path / "home" / ".local/share/edged/models"


def test_print_list(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    (models / "weights" / "weights.bin").unlink()
    out = io.StringIO()
    assert store.print_list(catalogue, models, out) == 0
    text = out.getvalue()
    assert "voice    tts.test" in text and "installed" in text
    assert "corrupt" in text and "weights/weights.bin: missing" in text
    assert "group both: weights voice" in text


def test_many_problems_are_summarised(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    for index in range(12):
        (models / "voice" / "data" / f"junk{index:02}").write_text("?")
    problems = store.verify(catalogue, ["voice"], models, QUIET)
    assert len(problems) == MAX_PROBLEMS
    assert str(problems[-1]) == "voice: and 3 more problems; fix: edged models install voice"


def test_archive_member_cannot_escape_the_bundle(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "evil.tar.gz", "w:gz") as tar:
        for name in ("pkg/ok.txt", "pkg/../../evil.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    text = f"""
[[bundle]]
name = "evil"
kind = "tts.test"
languages = []
licence = "MIT"
description = "a crafted archive"
files = [{{ path = "ok.txt", size = 2, sha256 = "{sha(b"hi")}" }}]

  [[bundle.sources]]
  type = "url"
  url = "{site.as_uri()}/evil.tar.gz"
  sha256 = ""
  archive = "tar"
  members = {{ "pkg/" = "" }}
"""
    catalogue = catalogue_from(tmp_path, text)
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="points outside the bundle"):
        store.install(catalogue, ["evil"], models, QUIET)
    assert list(tmp_path.rglob("evil.txt")) == []


# --- trust on first use ---------------------------------------------------------------------


UNPINNED = """
[[bundle]]
name = "new-voice"
kind = "tts.test"
languages = ["fr"]
licence = "MIT"
description = "upstream publishes no checksum"
files = [{ path = "w.bin", sha256 = "" }]

  [[bundle.sources]]
  type = "url"
  url = "SITE/weights.bin"
  sha256 = ""
  path = "w.bin"
"""


def test_unpinned_download_that_changes_later_is_refused(tmp_path: Path) -> None:
    site = make_sources(tmp_path)
    catalogue = catalogue_from(tmp_path, UNPINNED.replace("SITE", site.as_uri()))
    models = tmp_path / "models"
    assert store.install(catalogue, ["new-voice"], models, QUIET) == ["new-voice"]
    (site / "weights.bin").write_bytes(WEIGHTS.upper())  # replaced upstream, same size
    with pytest.raises(ModelError, match=r"weights\.bin: the download has sha256 .* refused"):
        store.install(catalogue, ["new-voice"], models, QUIET, force=True)
    assert (models / "new-voice" / "w.bin").read_bytes() == WEIGHTS  # the good copy stays
    shutil.rmtree(models / "new-voice")  # not even a fresh install accepts it
    with pytest.raises(ModelError, match="when it was first installed"):
        store.install(catalogue, ["new-voice"], models, QUIET)


def test_first_use_record_survives_and_pinning_overrides_it(
    installed: tuple[store.Catalogue, Path], tmp_path: Path
) -> None:
    catalogue, models = installed
    site = models.parent / "site"
    record = json.loads((models / store.FIRST_USE).read_text())
    url = f"{site.as_uri()}/voice.tar.bz2"
    seen = record["sources"][url]
    assert seen["sha256"] == sha((site / "voice.tar.bz2").read_bytes())
    assert seen["bundle"] == "voice" and seen["size"] == (site / "voice.tar.bz2").stat().st_size
    assert f"{site.as_uri()}/weights.bin" not in record["sources"]  # pinned: not recorded
    # the same archive again is accepted; a catalogue sha256 takes precedence over the record
    assert store.install(catalogue, ["voice"], models, QUIET, force=True) == ["voice"]
    (site / "voice.tar.bz2").write_bytes(b"garbage")
    (tmp_path / "catalogue" / "test.toml").unlink()
    pinned = local_catalogue(tmp_path, site.as_uri(), archive_sha=sha(b"garbage"))
    with pytest.raises(ModelError, match="cannot read the archive"):  # past the trust check
        store.install(pinned, ["voice"], models, QUIET, force=True)


def test_models_list_shows_trust_and_licence(installed: tuple[store.Catalogue, Path]) -> None:
    catalogue, models = installed
    rows = {row.name: row for row in store.list_bundles(catalogue, models)}
    assert rows["weights"].trust is store.Trust.PINNED
    assert rows["voice"].trust is store.Trust.FIRST_USE
    out = io.StringIO()
    store.print_list(catalogue, models, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "BUNDLE", "KIND", "LANGUAGES", "SIZE", "STATE", "TRUST", "LICENCE"
    ]  # fmt: skip
    voice = next(line for line in lines if line.startswith("voice "))
    assert voice.split()[-3:] == ["installed", "first-use", "CC0-1.0"]
    assert any(line.startswith("trust: pinned = ") for line in lines)


def test_shipped_catalogue_says_how_each_bundle_is_trusted() -> None:
    rows = store.list_bundles(load_catalogue(machine="x86_64"), Path("/nonexistent"))
    trust = {row.name: row.trust for row in rows}
    assert trust["whisper-base"] is store.Trust.PINNED
    assert all(row.licence for row in rows)


def test_models_readme_table_says_trust_and_licence_of_every_bundle() -> None:
    catalogue = load_catalogue(machine="x86_64")
    text = (catalogue.directory / "README.md").read_text(encoding="utf-8")
    table = text.split("| bundle | trust | revision | licence | notes |", 1)[1].split("\n\n")[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[1], cells[3])
    for bundle in catalogue.bundles.values():
        trust = "pinned" if bundle.pinned else "first use"
        assert rows.get(bundle.name) == (trust, bundle.licence), bundle.name
    assert rows.keys() == catalogue.bundles.keys()
