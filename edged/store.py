"""The model store: install catalogue bundles into a models directory, verify them, list them,
and hand engines a checked bundle directory.

Layout of a models directory: one subdirectory per bundle, each with a stamp file recording
(size, mtime_ns, sha256) of every file at install time. Loaders call `bundle_path`, which
stats every file and re-hashes only those whose size or mtime changed since the stamp, so a
corrupt bundle is caught cheaply at load time; `verify` re-hashes everything.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

from edged import __version__
from edged.errors import ModelError
from edged.store_catalogue import (
    Bundle,
    Catalogue,
    CatalogueError,
    FileSpec,
    PypiSource,
    default_catalogue_dir,
    load_catalogue,
)
from edged.store_fetch import (
    MB,
    Progress,
    SilentProgress,
    StderrProgress,
    check_digest,
    extract_tar,
    extract_zip,
    pip_download,
    prune,
    remove_tree,
    run_step,
    sha256_file,
    url_download,
    walk_files,
)

__all__ = [
    "Bundle",
    "BundleRow",
    "Catalogue",
    "CatalogueError",
    "Problem",
    "Progress",
    "SilentProgress",
    "State",
    "StderrProgress",
    "bundle_path",
    "default_catalogue_dir",
    "default_models_dir",
    "install",
    "list_bundles",
    "load_catalogue",
    "print_list",
    "tree_digest",
    "verify",
]

log = logging.getLogger(__name__)

STAMP = ".edged-stamp.json"
LOCK = ".edged-lock"
WORK_PREFIX = ".tmp-"  # install work directories inside the models dir; removed under the lock
STAMP_FORMAT = 1
MAX_PROBLEMS = 10  # per bundle


def default_models_dir() -> Path:
    """$EDGED_MODELS_DIR, else $XDG_DATA_HOME/edged/models, else ~/.local/share/edged/models."""
    if env := os.environ.get("EDGED_MODELS_DIR"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "edged" / "models"


class State(enum.Enum):
    """What `list_bundles` reports for a bundle."""

    INSTALLED = "installed"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an installed bundle; `str()` names the file and the fix."""

    bundle: str
    path: str  # relative to the bundle directory, "" for the bundle as a whole
    message: str
    missing: bool = False  # the whole bundle is not installed

    def __str__(self) -> str:
        where = f"{self.bundle}/{self.path}" if self.path else self.bundle
        return f"{where}: {self.message}; fix: edged models install {self.bundle}"


@dataclass(frozen=True)
class BundleRow:
    """One line of `edged models list`."""

    name: str
    kind: str
    languages: tuple[str, ...]
    size: int | None  # bytes installed (catalogue figure, or the stamp's if unknown there)
    state: State
    detail: str  # the first problem when not installed, else ""


def tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of a directory tree from (relative path, sha256) pairs: sha256 of the lines
    `"<sha256>  <path>\\n"` sorted by path — the output of `sha256sum` over the sorted files."""
    lines = sorted(entries, key=lambda e: e[0].encode())
    return hashlib.sha256("".join(f"{sha}  {rel}\n" for rel, sha in lines).encode()).hexdigest()


def bundle_path(catalogue: Catalogue, models_dir: Path, name: str) -> Path:
    """The directory of installed bundle `name` after a cheap check (every file present with
    its size; files changed since install re-hashed); else ModelError naming file and fix."""
    bundle = catalogue.bundle(name)
    problems = check_bundle(bundle, models_dir)
    if problems:
        first = problems[0]
        more = " (and more: edged models verify lists them)" if len(problems) > 1 else ""
        if first.missing:
            raise ModelError(
                f"model bundle {name!r} is not installed in {models_dir} "
                f"(EDGED_MODELS_DIR selects another directory); fix: edged models install {name}"
            )
        raise ModelError(
            f"model bundle {name!r} is damaged: {models_dir / name / first.path}: "
            f"{first.message}{more}; fix: edged models install {name}"
        )
    return models_dir / name


def list_bundles(catalogue: Catalogue, models_dir: Path) -> list[BundleRow]:
    """Every catalogue bundle with its install state (cheap check, no full hashing)."""
    rows = []
    for bundle in catalogue.bundles.values():
        problems = check_bundle(bundle, models_dir)
        if not problems:
            state, detail = State.INSTALLED, ""
        elif problems[0].missing:
            state, detail = State.MISSING, ""
        else:
            state, detail = State.CORRUPT, str(problems[0])
        size = bundle.size
        if size is None and state is State.INSTALLED:
            stamp = _read_stamp(models_dir / bundle.name) or {}
            size = sum(rec[0] for rec in stamp.get("files", {}).values())
        rows.append(BundleRow(bundle.name, bundle.kind, bundle.languages, size, state, detail))
    return rows


def print_list(catalogue: Catalogue, models_dir: Path, stream: TextIO | None = None) -> int:
    """Print the `edged models list` table (stdout by default); return the exit status 0."""
    out = stream if stream is not None else sys.stdout
    rows = list_bundles(catalogue, models_dir)
    width = max(len(r.name) for r in rows)
    out.write(f"{'BUNDLE':<{width}}  {'KIND':<16} {'LANGUAGES':<10} {'SIZE':>9}  STATE\n")
    for row in rows:
        size = f"{row.size / MB:.1f} MB" if row.size is not None else "?"
        langs = ",".join(row.languages) or "-"
        if len(langs) > 24:  # NLLB: 107 languages would push the table off the screen
            langs = f"{len(row.languages)} languages"
        out.write(f"{row.name:<{width}}  {row.kind:<16} {langs:<10} {size:>9}  {row.state.value}\n")
        if row.detail:
            out.write(f"{'':<{width}}    {row.detail}\n")
    for group in catalogue.groups.values():
        out.write(f"group {group.name}: {' '.join(group.bundles)}\n")
    out.write(f"models directory: {models_dir}\n")
    return 0


def verify(
    catalogue: Catalogue,
    names: Sequence[str] | None,
    models_dir: Path,
    progress: Progress | None = None,
) -> list[Problem]:
    """Re-hash every file of the named bundles/groups (None: every installed bundle) and
    return what is wrong; an empty list means all is well. Progress: stderr by default."""
    progress = progress if progress is not None else StderrProgress()
    if names:
        bundles = catalogue.resolve_all(names)
    else:
        bundles = [b for b in catalogue.bundles.values() if (models_dir / b.name).is_dir()]
    problems: list[Problem] = []
    for bundle in bundles:
        found = check_bundle(bundle, models_dir, full=True, progress=progress)
        progress.message(f"{bundle.name}: {'damaged' if found else 'ok'}")
        problems.extend(found)
    return problems


def install(
    catalogue: Catalogue,
    names: Sequence[str],
    models_dir: Path,
    progress: Progress | None = None,
    force: bool = False,
) -> list[str]:
    """Install the named bundles/groups into `models_dir`; return the names actually installed.

    A bundle that is present and passes a full verification is skipped unless `force`.
    Each bundle is assembled in a work directory inside `models_dir` and renamed into place,
    so a crash never leaves a half bundle that looks installed. Bundles that fail do not stop
    the others; a ModelError listing the failures is raised at the end.
    Progress goes to stderr unless another `progress` (e.g. SilentProgress()) is given.
    """
    progress = progress if progress is not None else StderrProgress()
    bundles = catalogue.resolve_all(names)
    installed: list[str] = []
    failures: list[str] = []
    with _install_lock(models_dir, progress):
        for index, bundle in enumerate(bundles, 1):
            head = f"[{index}/{len(bundles)}] {bundle.name}"
            if not force and (models_dir / bundle.name).is_dir():
                if not check_bundle(bundle, models_dir, full=True, progress=progress):
                    progress.message(f"{head}: already installed and verified")
                    continue
                progress.message(f"{head}: installed copy is damaged, reinstalling")
            size = f"{bundle.size / MB:.1f} MB" if bundle.size is not None else "size unknown"
            progress.message(f"{head}: installing ({size}) into {models_dir / bundle.name}")
            started = time.monotonic()
            try:
                _install_bundle(bundle, models_dir, progress)
            except (ModelError, OSError) as exc:
                failures.append(f"{bundle.name}: {exc}")
                progress.message(f"{head}: FAILED")
                continue
            progress.message(f"{head}: installed in {time.monotonic() - started:.1f} s")
            installed.append(bundle.name)
    if failures:
        raise ModelError(
            f"{len(failures)} of {len(bundles)} model bundle(s) failed to install: "
            + "; ".join(failures)
        )
    return installed


def check_bundle(
    bundle: Bundle, models_dir: Path, full: bool = False, progress: Progress | None = None
) -> list[Problem]:
    """What is wrong with an installed bundle. Cheap by default (stat, re-hash only files whose
    size/mtime differ from the stamp); `full` re-hashes every file."""
    bundle_dir = models_dir / bundle.name
    if not bundle_dir.is_dir():
        return [Problem(bundle.name, "", "not installed", missing=True)]
    stamp = _read_stamp(bundle_dir)
    if stamp is None:
        return [Problem(bundle.name, STAMP, "install stamp missing or unreadable (interrupted?)")]
    hasher = _Hasher(progress, f"verifying {bundle.name}", bundle.size) if full else None
    derived = bundle.derived()
    problems: list[Problem] = []
    for spec in bundle.files:
        if spec.is_dir:
            found = _check_dir(spec, bundle_dir, stamp, hasher)
        else:
            found = _check_file(spec, bundle_dir, stamp, hasher, pinned=spec.path not in derived)
        problems.extend(Problem(bundle.name, path, message) for path, message in found)
    if len(problems) > MAX_PROBLEMS:  # a wiped directory would print hundreds of lines
        more = len(problems) - MAX_PROBLEMS + 1
        problems[MAX_PROBLEMS - 1 :] = [Problem(bundle.name, "", f"and {more} more problems")]
    return problems


class _Hasher:
    """Full hashing with one progress phase across all files of a bundle."""

    def __init__(self, progress: Progress | None, label: str, total: int | None) -> None:
        self.progress = progress
        self.label = label
        self.total = total
        self.done = 0

    def sha256(self, path: Path) -> str:
        sha = sha256_file(path, self.progress, self.label, self.done, self.total)
        self.done += path.stat().st_size
        return sha


def _check_file(
    spec: FileSpec,
    bundle_dir: Path,
    stamp: dict[str, Any],
    hasher: _Hasher | None,
    pinned: bool,
) -> Iterator[tuple[str, str]]:
    """Problems of one file; an unpinned (step-made) file is held to its stamp only."""
    record = stamp["files"].get(spec.path)
    if record is None:
        yield spec.path, "not recorded in the install stamp (installed from another catalogue?)"
        return
    if pinned and spec.sha256 and record[2] != spec.sha256:
        yield spec.path, "installed copy differs from the catalogue's (catalogue updated?)"
        return
    size = spec.size if pinned else None
    message = _check_recorded(bundle_dir / spec.path, record, size, hasher)
    if message:
        yield spec.path, message


def _check_dir(
    spec: FileSpec, bundle_dir: Path, stamp: dict[str, Any], hasher: _Hasher | None
) -> Iterator[tuple[str, str]]:
    recorded_digest = stamp["dirs"].get(spec.path)
    prefix = spec.path + "/"
    records = {rel: rec for rel, rec in stamp["files"].items() if rel.startswith(prefix)}
    if recorded_digest is None or (spec.sha256 and recorded_digest != spec.sha256):
        yield spec.path, "installed copy differs from the catalogue's (catalogue updated?)"
        return
    for rel, record in records.items():
        message = _check_recorded(bundle_dir / rel, record, None, hasher)
        if message:
            yield rel, message
    if hasher is not None:
        root = bundle_dir / spec.path
        present = {p.relative_to(bundle_dir).as_posix() for p in walk_files(root)}
        for extra in sorted(present - records.keys()):
            yield extra, "unexpected file (not part of the bundle)"


def _check_recorded(
    path: Path, record: list[Any], catalogue_size: int | None, hasher: _Hasher | None
) -> str:
    """The problem with one file against its stamp record (size, mtime_ns, sha256), or ""."""
    size, mtime_ns, sha = record
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    expected_size = catalogue_size if catalogue_size is not None else size
    if st.st_size != expected_size:
        return f"has {st.st_size} bytes, expected {expected_size} (truncated or damaged)"
    if hasher is None and st.st_mtime_ns == mtime_ns:
        return ""
    actual = hasher.sha256(path) if hasher is not None else sha256_file(path)
    if actual != sha:
        return f"content damaged (sha256 {actual[:12]}…, expected {sha[:12]}…)"
    return ""


def _read_stamp(bundle_dir: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((bundle_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return None
    if not isinstance(stamp.get("files"), dict) or not isinstance(stamp.get("dirs"), dict):
        return None
    return stamp


@contextlib.contextmanager
def _install_lock(models_dir: Path, progress: Progress) -> Iterator[None]:
    """Serialise installs into one models dir; under the lock, leftovers of crashed installs
    are safe to delete."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        lock = (models_dir / LOCK).open("w")
    except OSError as exc:
        raise ModelError(
            f"cannot use models directory {models_dir}: {exc.strerror}; "
            "set EDGED_MODELS_DIR to a writable directory"
        ) from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.message(f"waiting for another install into {models_dir} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in models_dir.glob(WORK_PREFIX + "*"):
            log.info("removing leftover of an interrupted install: %s", leftover)
            remove_tree(leftover)
        yield


def _install_bundle(bundle: Bundle, models_dir: Path, progress: Progress) -> None:
    if bundle.size is not None:
        free = shutil.disk_usage(models_dir).free
        # archives/wheels and their extracted files coexist for a moment
        if free < 2 * bundle.size:
            raise ModelError(
                f"not enough space in {models_dir}: {free / MB:.0f} MB free, "
                f"about {2 * bundle.size / MB:.0f} MB needed"
            )
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{bundle.name}-", dir=models_dir))
    try:
        stage = work / "bundle"
        stage.mkdir()
        unpinned: list[str] = []  # what the catalogue has no sha256 for, with the one found
        sources = _fetch_sources(bundle, stage, work / "downloads", progress, unpinned)
        for step in bundle.steps:
            run_step(step, stage, progress)
        prune(
            stage,
            keep={f.path for f in bundle.files if not f.is_dir},
            keep_dirs={f.path for f in bundle.files if f.is_dir},
        )
        stamp = _stamp_staged(bundle, stage, progress, unpinned)
        stamp["sources"] = sources
        if unpinned:
            log.warning(
                "%s: not verified, the catalogue has no sha256 for: %s; recorded at install, "
                "add them to %s", bundle.name, "; ".join(unpinned), bundle.origin,
            )  # fmt: skip
        (stage / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")
        target = models_dir / bundle.name
        if target.exists():
            target.rename(work / "replaced")
        stage.rename(target)
    finally:
        remove_tree(work)


def _fetch_sources(
    bundle: Bundle, stage: Path, downloads: Path, progress: Progress, unpinned: list[str]
) -> dict[str, str]:
    """Fetch and unpack every source into `stage`; return {source: sha256} for the stamp."""
    recorded: dict[str, str] = {}
    for index, source in enumerate(bundle.sources):
        folder = downloads / str(index)
        what = f"{bundle.name}: {source.describe()}"
        if isinstance(source, PypiSource):
            wheel = pip_download(source, folder, progress)
            recorded[source.describe()] = check_digest(wheel, source.wheel_sha256, None, what)
            extract_zip(wheel, source.members, stage, progress, f"unpacking {source.package}")
        else:
            name = Path(urlparse(source.url).path).name or "download"
            archive = url_download(source, folder / name, progress)
            recorded[source.url] = sha = check_digest(archive, source.sha256, source.size, what)
            if not source.sha256:
                unpinned.append(f"{source.url} (sha256 {sha}, size {archive.stat().st_size})")
            if source.archive:
                extract_tar(archive, source.members, stage, progress, f"unpacking {name}")
            else:
                (stage / source.path).parent.mkdir(parents=True, exist_ok=True)
                archive.replace(stage / source.path)
        remove_tree(folder)  # wheels and archives are not needed once unpacked
    return recorded


def _stamp_staged(
    bundle: Bundle, stage: Path, progress: Progress, unpinned: list[str]
) -> dict[str, Any]:
    """Hash every staged file, hold it to the catalogue, and build the stamp."""
    hasher = _Hasher(progress, f"verifying {bundle.name}", bundle.size)
    files: dict[str, list[Any]] = {}
    dirs: dict[str, str] = {}
    for spec in bundle.files:
        if spec.is_dir:
            actual, size = _stamp_tree(bundle, spec, stage, hasher, files)
            dirs[spec.path] = actual
        else:
            actual, size = _stamp_file(bundle, spec.path, stage, hasher, files)
        _hold_to_catalogue(bundle, spec, actual, size, unpinned)
    return {
        "format": STAMP_FORMAT,
        "bundle": bundle.name,
        "installed": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "edged": __version__,
        "files": files,
        "dirs": dirs,
    }


def _stamp_file(
    bundle: Bundle, rel: str, stage: Path, hasher: _Hasher, files: dict[str, list[Any]]
) -> tuple[str, int]:
    """Record one staged file as [size, mtime_ns, sha256]; return (sha256, size)."""
    path = stage / rel
    if not path.is_file():
        raise ModelError(f"{bundle.name}: file {rel} was not produced")
    st = path.stat()
    files[rel] = [st.st_size, st.st_mtime_ns, hasher.sha256(path)]
    return files[rel][2], st.st_size


def _stamp_tree(
    bundle: Bundle, spec: FileSpec, stage: Path, hasher: _Hasher, files: dict[str, list[Any]]
) -> tuple[str, int]:
    """Record every file of a directory entry; return (tree digest, total size)."""
    root = stage / spec.path
    if not root.is_dir():
        raise ModelError(f"{bundle.name}: directory {spec.path} was not produced")
    entries: list[tuple[str, str]] = []
    total = 0
    for path in walk_files(root):
        sha, size = _stamp_file(bundle, path.relative_to(stage).as_posix(), stage, hasher, files)
        entries.append((path.relative_to(root).as_posix(), sha))
        total += size
    if spec.count is not None and len(entries) != spec.count:
        raise ModelError(
            f"{bundle.name}: {spec.path} holds {len(entries)} files, the catalogue says "
            f"{spec.count}"
        )
    return tree_digest(entries), total


def _hold_to_catalogue(
    bundle: Bundle, spec: FileSpec, actual: str, size: int, unpinned: list[str]
) -> None:
    """Raise on a mismatch with the catalogue; note what the catalogue does not pin."""
    mismatch = ""
    if spec.size is not None and size != spec.size:
        mismatch = f"has {size} bytes, the catalogue says {spec.size}"
    elif spec.sha256 and actual != spec.sha256:
        mismatch = f"has sha256 {actual}, the catalogue says {spec.sha256}"
    derived = spec.path in bundle.derived()
    if mismatch and derived:
        # a post-step's output can differ with local tool versions (protobuf serialisation);
        # its inputs were verified, so the local result is what gets recorded
        log.warning(
            "%s: %s %s (made here by a post-step; recorded as installed)",
            bundle.name, spec.path, mismatch,
        )  # fmt: skip
    elif mismatch:
        raise ModelError(f"{bundle.name}: {spec.path} {mismatch}")
    elif not spec.sha256 and not derived:
        unpinned.append(f"file {spec.path} (sha256 {actual}, size {size})")
