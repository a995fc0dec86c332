"""Installing catalogue bundles into a models directory, atomically and verified.

Each bundle is assembled in a work directory inside the models directory, checked against
the catalogue (and, for what the catalogue does not pin, against the first-use record),
stamped, and renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edged import __version__
from edged.errors import ModelError
from edged.store.catalogue import Bundle, Catalogue, FileSpec, PypiSource
from edged.store.check import Hasher, check_bundle, tree_digest
from edged.store.fetch import (
    MB,
    Progress,
    StderrProgress,
    check_digest,
    extract_tar,
    extract_zip,
    pip_download,
    prune,
    remove_tree,
    run_step,
    url_download,
    walk_files,
)
from edged.store.layout import LOCK, STAMP, STAMP_FORMAT, WORK_PREFIX
from edged.store.trust import FirstUseRecord

log = logging.getLogger(__name__)


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
        first_use = FirstUseRecord(models_dir)
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
                _install_bundle(bundle, models_dir, progress, first_use)
                first_use.commit()
            except (ModelError, OSError) as exc:
                first_use.discard()
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


def _install_bundle(
    bundle: Bundle, models_dir: Path, progress: Progress, first_use: FirstUseRecord
) -> None:
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
        downloads = work / "downloads"
        sources = _fetch_sources(bundle, stage, downloads, progress, first_use, unpinned)
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
                "%s: trusted on first use, the catalogue has no sha256 for: %s; recorded in %s "
                "(a later download that differs is refused); pin them in %s",
                bundle.name, "; ".join(unpinned), first_use.path, bundle.origin,
            )  # fmt: skip
        (stage / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")
        target = models_dir / bundle.name
        if target.exists():
            target.rename(work / "replaced")
        stage.rename(target)
    finally:
        remove_tree(work)


def _fetch_sources(
    bundle: Bundle,
    stage: Path,
    downloads: Path,
    progress: Progress,
    first_use: FirstUseRecord,
    unpinned: list[str],
) -> dict[str, str]:
    """Fetch and unpack every source into `stage`; return {source: sha256} for the stamp.

    A download the catalogue pins is held to the catalogue; any other to the first-use
    record of this models directory (and noted in `unpinned` when it is seen first).
    """
    recorded: dict[str, str] = {}
    for index, source in enumerate(bundle.sources):
        folder = downloads / str(index)
        what = f"{bundle.name}: {source.describe()}"
        if isinstance(source, PypiSource):
            path = pip_download(source, folder, progress)
            key, pinned_sha, size = f"{source.describe()}: {path.name}", source.wheel_sha256, None
        else:
            name = Path(urlparse(source.url).path).name or "download"
            path = url_download(source, folder / name, progress)
            key, pinned_sha, size = source.url, source.sha256, source.size
        recorded[key] = sha = check_digest(path, pinned_sha, size, what)
        if not pinned_sha:
            first_use.check(key, sha, path.stat().st_size, bundle.name, bundle.origin)
            unpinned.append(f"{key} (sha256 {sha}, size {path.stat().st_size})")
        if isinstance(source, PypiSource):
            extract_zip(path, source.members, stage, progress, f"unpacking {source.package}")
        else:
            archive = path
            if source.archive == "zip":
                extract_zip(archive, source.members, stage, progress, f"unpacking {name}")
            elif source.archive:
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
    hasher = Hasher(progress, f"verifying {bundle.name}", bundle.size)
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
    bundle: Bundle, rel: str, stage: Path, hasher: Hasher, files: dict[str, list[Any]]
) -> tuple[str, int]:
    """Record one staged file as [size, mtime_ns, sha256]; return (sha256, size)."""
    path = stage / rel
    if not path.is_file():
        raise ModelError(f"{bundle.name}: file {rel} was not produced")
    st = path.stat()
    files[rel] = [st.st_size, st.st_mtime_ns, hasher.sha256(path)]
    return files[rel][2], st.st_size


def _stamp_tree(
    bundle: Bundle, spec: FileSpec, stage: Path, hasher: Hasher, files: dict[str, list[Any]]
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
