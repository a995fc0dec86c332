"""Checking installed bundles: the cheap load-time check and the full re-hash of `verify`.

Loaders call `bundle_path`, which stats every file and re-hashes only those whose size or
mtime changed since the stamp, so a corrupt bundle is caught cheaply at load time; `verify`
re-hashes everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.errors import ModelError
from edged.store.catalogue import Bundle, Catalogue, FileSpec
from edged.store.fetch import Progress, StderrProgress, sha256_file, walk_files
from edged.store.layout import STAMP, read_stamp

MAX_PROBLEMS = 10  # per bundle


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


def check_bundle(
    bundle: Bundle, models_dir: Path, full: bool = False, progress: Progress | None = None
) -> list[Problem]:
    """What is wrong with an installed bundle. Cheap by default (stat, re-hash only files whose
    size/mtime differ from the stamp); `full` re-hashes every file."""
    bundle_dir = models_dir / bundle.name
    if not bundle_dir.is_dir():
        return [Problem(bundle.name, "", "not installed", missing=True)]
    stamp = read_stamp(bundle_dir)
    if stamp is None:
        return [Problem(bundle.name, STAMP, "install stamp missing or unreadable (interrupted?)")]
    hasher = Hasher(progress, f"verifying {bundle.name}", bundle.size) if full else None
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


class Hasher:
    """Full hashing with one progress phase across all files of a bundle."""

    def __init__(self, progress: Progress | None, label: str, total: int | None) -> None:
        self.progress = progress
        self.label = label
        self.total = total
        self.done = 0

    def sha256(self, path: Path) -> str:
        """The file's sha256, counted into the phase's progress."""
        sha = sha256_file(path, self.progress, self.label, self.done, self.total)
        self.done += path.stat().st_size
        return sha


def _check_file(
    spec: FileSpec,
    bundle_dir: Path,
    stamp: dict[str, Any],
    hasher: Hasher | None,
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
    spec: FileSpec, bundle_dir: Path, stamp: dict[str, Any], hasher: Hasher | None
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
    path: Path, record: list[Any], catalogue_size: int | None, hasher: Hasher | None
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
