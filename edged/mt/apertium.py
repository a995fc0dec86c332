"""Apertium, Debian's rule-based translator: the fallback for pairs without a neural model.

Each direction runs as one long-lived pipeline in null-flush mode: a request is the text in
Apertium's stream format followed by a NUL byte, and the pipeline answers with the
translation followed by a NUL, keeping its dictionaries loaded between requests.

Why not `apertium -z eng-spa`: that wrapper puts the text deformatter (`apertium-destxt`) and
a gawk filter in front of the pipeline; the deformatter drops NUL bytes and gawk buffers
until it sees more input, so answers never come back. We start the mode's own programs
(`apertium-wblank-mode -z MODE` prints the pipeline with `-z` on each) as a chain of child
processes and do the deformatter's small job ourselves: escape the stream format's reserved
characters and end the text with a superblank `[]` (without a blank after it, `lt-proc`
holds back the final full stop until more input arrives).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from edged.errors import EngineError, ModelError
from edged.langs import from_apertium

log = logging.getLogger(__name__)

DEFAULT_MODES_DIR = Path("/usr/share/apertium/modes")

_MODE_NAME = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")  # variants (spa-eng_US) are skipped
# Reserved in Apertium's stream format; the deformatter backslash-escapes them.
_RESERVED = frozenset("\\[]^$/<>@{}*#~")
_WHITESPACE = re.compile(r"\s+")
_SETTLE_S = 1.0  # how long an empty answer waits to tell a dying pipeline from a real one
_READ_CHUNK = 65536
_STDERR_TAIL = 400
_STDERR_KEEP = 1 << 20


def escape(text: str) -> str:
    """Text as an Apertium stream: blanks collapsed, reserved characters escaped, NULs dropped.

    A transcript is one line: newlines and tabs become spaces rather than superblanks.
    """
    flat = _WHITESPACE.sub(" ", text.replace("\0", " ")).strip()
    return "".join("\\" + ch if ch in _RESERVED else ch for ch in flat)


def unescape(stream: str) -> str:
    """Plain text from an Apertium output stream: escapes resolved, superblanks' brackets
    dropped (their content is format, kept as is), blanks collapsed."""
    out: list[str] = []
    chars = iter(stream)
    for ch in chars:
        if ch == "\\":
            out.append(next(chars, ""))
        elif ch not in "[]":
            out.append(ch)
    return _WHITESPACE.sub(" ", "".join(out)).strip()


class _PipelineDied(Exception):
    """The pipeline closed its output or its input: it exited."""


class _PipelineTimeout(Exception):
    """The pipeline did not answer in time."""


class _Pipeline:
    """One running direction: the mode's programs, each our child, in one process group.

    We start the stages ourselves rather than through `bash -c`: a shell keeps the last
    stage's output open while any stage lives, so a dead middle stage would show up as a
    hang instead of an end of file, and only direct children can be polled.
    """

    def __init__(self, mode: str, stages: list[list[str]]) -> None:
        self.mode = mode
        # a file, not a pipe: nobody has to drain it, and its tail explains a failure
        self._stderr: IO[bytes] = tempfile.TemporaryFile(prefix=f"edged-apertium-{mode}-")  # noqa: SIM115
        env = dict(os.environ, LC_ALL="C.UTF-8")  # lttoolbox classifies letters by locale
        self.stages: list[subprocess.Popen[bytes]] = []
        upstream: IO[bytes] | None = None
        try:
            for argv in stages:
                stage = subprocess.Popen(
                    argv,
                    stdin=upstream if upstream is not None else subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    env=env,
                    # one process group, led by the first stage: a kill reaches every stage
                    process_group=self.stages[0].pid if self.stages else 0,
                )
                if upstream is not None:
                    upstream.close()  # now only the next stage holds it
                upstream = stage.stdout
                self.stages.append(stage)
        except OSError as exc:
            self.kill()
            raise ModelError(f"apertium {mode}: cannot start {argv[0]}: {exc}") from exc
        first, last = self.stages[0], self.stages[-1]
        assert first.stdin is not None and last.stdout is not None
        self._stdin = first.stdin.fileno()
        self._stdout = last.stdout.fileno()
        os.set_blocking(self._stdin, False)
        os.set_blocking(self._stdout, False)
        self._pending = b""  # bytes read past the last answer's NUL

    @property
    def pgid(self) -> int:
        return self.stages[0].pid

    def alive(self) -> bool:
        """True while every stage runs (poll() also reaps a stage that exited)."""
        return all(stage.poll() is None for stage in self.stages)

    def request(self, payload: bytes, timeout: float) -> bytes:
        """Send one NUL-terminated request and return the answer without its NUL."""
        deadline = time.monotonic() + timeout
        outgoing = memoryview(payload + b"\0")
        with selectors.DefaultSelector() as selector:
            selector.register(self._stdout, selectors.EVENT_READ)
            selector.register(self._stdin, selectors.EVENT_WRITE)
            # write and read interleaved: a long text must not fill the pipes both ways
            while b"\0" not in self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _PipelineTimeout
                for key, _ in selector.select(remaining):
                    if key.fd == self._stdin:
                        try:
                            sent = os.write(self._stdin, outgoing)
                        except BrokenPipeError:
                            raise _PipelineDied from None
                        outgoing = outgoing[sent:]
                        if not outgoing:
                            selector.unregister(self._stdin)
                    else:
                        chunk = os.read(self._stdout, _READ_CHUNK)
                        if not chunk:
                            raise _PipelineDied
                        self._pending += chunk
        answer, _, self._pending = self._pending.partition(b"\0")
        # a stage that dies makes the ones after it flush a NUL at end of input: an empty
        # answer that is not one
        if not self.alive() or (not answer.strip() and self._ends_within(_SETTLE_S)):
            raise _PipelineDied
        return answer

    def _ends_within(self, seconds: float) -> bool:
        """Whether the last stage exits within `seconds`. An empty answer may be the NUL the
        stages after a dying one flush at end of input, read before the dead stage is
        reapable (the kernel closes its pipes before it becomes a zombie)."""
        try:
            self.stages[-1].wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_tail(self) -> str:
        """The end of what the pipeline wrote to stderr, for error messages."""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            return self._stderr.read().decode("utf-8", "replace").strip()
        return ""

    def trim_stderr(self) -> None:
        """Forget old warnings: a daemon's pipeline lives for weeks."""
        with contextlib.suppress(OSError, ValueError):
            if os.fstat(self._stderr.fileno()).st_size > _STDERR_KEEP:
                # the children share this file description, so they write from 0 again too
                self._stderr.seek(0)
                self._stderr.truncate()

    def kill(self) -> None:
        """Stop every stage now."""
        if self.stages:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
        self._reap(timeout=5.0)

    def end_input(self) -> None:
        """Close the first stage's input: the stages exit on their own, one after another."""
        with contextlib.suppress(OSError):
            self.stages[0].stdin.close()  # type: ignore[union-attr]

    def close(self, timeout: float = 2.0) -> None:
        """End the input so the stages exit on their own; kill them if they do not."""
        self.end_input()
        deadline = time.monotonic() + timeout
        try:
            for stage in self.stages:
                stage.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap(timeout=0.0)

    def _reap(self, timeout: float) -> None:
        for stage in self.stages:
            with contextlib.suppress(subprocess.TimeoutExpired):
                stage.wait(timeout)
            for stream in (stage.stdin, stage.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        with contextlib.suppress(OSError):
            self._stderr.close()


class ApertiumTranslator:
    """Translator over the Apertium pairs installed in `modes_dir`, one process per direction.

    Processes start on first use (or in load()) and live until close(). A pipeline that
    dies is restarted and the request retried once; one that does not answer within
    `timeout` seconds is killed (restarted on the next request) and the request fails with
    EngineError. Unknown words come back as they were written (`mark_unknown` keeps
    Apertium's `*`, `@` and `#` marks instead). Safe to call from several threads.
    """

    def __init__(
        self,
        modes_dir: Path = DEFAULT_MODES_DIR,
        *,
        timeout: float = 10.0,
        mark_unknown: bool = False,
    ) -> None:
        self.modes_dir = Path(modes_dir)
        self.timeout = timeout
        self.mark_unknown = mark_unknown
        self._modes = discover_modes(self.modes_dir)
        self._pipelines: dict[str, _Pipeline] = {}
        self._locks = {mode: threading.Lock() for mode in set(self._modes.values())}

    def pairs(self) -> set[tuple[str, str]]:
        """The (src, tgt) pairs of the installed modes, in edged's language codes."""
        return set(self._modes)

    def mode(self, src: str, tgt: str) -> str:
        """The Apertium mode serving (src, tgt), e.g. `spa-eng`."""
        try:
            return self._modes[(src, tgt)]
        except KeyError:
            installed = ", ".join(sorted(set(self._modes.values()))) or "none"
            raise EngineError(
                f"apertium has no {src}->{tgt} pair in {self.modes_dir} (installed: {installed});"
                f" install the Debian package apertium-<src>-<tgt>"
            ) from None

    def load(self, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        """Start the pipelines for `pairs` (default: all) now, so the first request is fast."""
        wanted = self._modes.keys() if pairs is None else pairs
        for src, tgt in wanted:
            mode = self.mode(src, tgt)
            with self._locks[mode]:
                self._running(mode)

    def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one transcript; blank text gives "" without a round trip."""
        mode = self.mode(src, tgt)
        payload = escape(text)
        if not payload:
            return ""
        data = (payload + "[]").encode("utf-8")
        with self._locks[mode]:
            try:
                answer = self._ask(mode, data)
            except _PipelineDied:
                log.warning("apertium %s exited; restarting it", mode)
                self._discard(mode)
                try:
                    answer = self._ask(mode, data)
                except _PipelineDied:
                    tail = self._discard(mode)
                    raise EngineError(
                        f"apertium {mode} exits on this input even after a restart: "
                        f"{tail or 'no message'}"
                    ) from None
        return unescape(answer.decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop every pipeline; translate() after close() starts them again. Every input is
        closed first, so the pipelines wind down together (exit waits for the slowest, not
        the sum)."""
        stopping = []
        for mode in list(self._pipelines):
            with self._locks[mode]:
                pipeline = self._pipelines.pop(mode, None)
                if pipeline is not None:
                    pipeline.end_input()
                    stopping.append(pipeline)
        for pipeline in stopping:
            pipeline.close()

    def __enter__(self) -> ApertiumTranslator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pid(self, src: str, tgt: str) -> int | None:
        """Process-group id of the running pipeline for (src, tgt), None if not running."""
        pipeline = self._pipelines.get(self.mode(src, tgt))
        return pipeline.pgid if pipeline is not None and pipeline.alive() else None

    def _ask(self, mode: str, data: bytes) -> bytes:
        pipeline = self._running(mode)
        try:
            answer = pipeline.request(data, self.timeout)
        except _PipelineTimeout:
            tail = self._discard(mode)
            raise EngineError(
                f"apertium {mode} gave no answer within {self.timeout:g} s; killed it, the next "
                f"request restarts it{': ' + tail if tail else ''}"
            ) from None
        pipeline.trim_stderr()
        return answer

    def _running(self, mode: str) -> _Pipeline:
        """The live pipeline for `mode`, started (and proven with a first request) if needed."""
        pipeline = self._pipelines.get(mode)
        if pipeline is not None and pipeline.alive():
            return pipeline
        if pipeline is not None:
            self._discard(mode)
        started = time.monotonic()
        pipeline = _Pipeline(mode, self._stages(mode))
        self._pipelines[mode] = pipeline
        try:
            # dictionaries load on the first request: pay it now and prove the pipeline works
            pipeline.request(b".[]", self.timeout)
        except (_PipelineDied, _PipelineTimeout):
            tail = self._discard(mode)
            raise ModelError(
                f"apertium {mode} ({self.modes_dir / (mode + '.mode')}) does not start: "
                f"{tail or 'no answer'}; reinstall its Debian package"
            ) from None
        log.info("apertium %s started in %.0f ms", mode, (time.monotonic() - started) * 1000)
        return pipeline

    def _discard(self, mode: str) -> str:
        """Kill the pipeline of `mode` and return the end of its stderr."""
        pipeline = self._pipelines.pop(mode, None)
        if pipeline is None:
            return ""
        tail = pipeline.stderr_tail()
        pipeline.kill()
        return tail

    def _stages(self, mode: str) -> list[list[str]]:
        """The mode's programs with `-z` on each, as argument lists."""
        command = self._command(mode)
        try:
            return split_pipeline(command, generation="-g" if self.mark_unknown else "-n")
        except ValueError as exc:
            raise ModelError(f"apertium mode {mode}: {exc}") from exc

    def _command(self, mode: str) -> str:
        mode_file = self.modes_dir / f"{mode}.mode"
        try:
            result = subprocess.run(
                ["apertium-wblank-mode", "-z", str(mode_file)],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=True,
            )
        except FileNotFoundError:
            raise ModelError(
                "apertium-wblank-mode not found: install the Debian package apertium (>= 3.8)"
            ) from None
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise ModelError(f"cannot read apertium mode {mode_file}: {exc}") from exc
        return result.stdout.strip()


def split_pipeline(command: str, generation: str, tagger: str = "") -> list[list[str]]:
    """Split a mode's shell pipeline into argument lists.

    Modes use `$1` for the generator's flag (`-g` marks unknown words, `-n` does not) and
    `$2` for extra tagger flags; anything beyond quoting and `|` is refused.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|;&<>()")
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            stages.append([])
        elif token and token[0] in "|;&<>()":
            raise ValueError(f"unsupported shell syntax {token!r} in {command!r}")
        elif token in ("$1", "$2"):
            value = generation if token == "$1" else tagger
            stages[-1].extend([value] if value else [])
        else:
            stages[-1].append(token)
    if any(not argv for argv in stages):
        raise ValueError(f"empty stage in {command!r}")
    return stages


def discover_modes(modes_dir: Path) -> dict[tuple[str, str], str]:
    """Map (src, tgt) in edged's codes to the Apertium mode name serving it.

    Where two modes serve one pair (an old `en-es` beside `eng-spa`), the three-letter one
    wins; variant modes (`spa-eng_US`) and unknown languages are skipped.
    """
    if not modes_dir.is_dir():
        return {}
    modes: dict[tuple[str, str], str] = {}
    names = sorted(p.stem for p in modes_dir.glob("*.mode"))
    for name in sorted(names, key=lambda n: (len(n) == 7, n)):  # 3-letter pairs last: they win
        match = _MODE_NAME.match(name)
        if not match:
            continue
        for src in from_apertium(match.group(1)):
            for tgt in from_apertium(match.group(2), target=True):
                if src != tgt:
                    modes[(src, tgt)] = name
    return modes


# Debian (bookworm) packages of Apertium pairs, for the hints of pairs no route serves:
# package -> (language, language, directions), languages as in the package name, directions
# "both" or the one mode it installs. The one-way packages were checked against their file
# lists (`dpkg -c`: apertium-es-ro installs only ro-es); the two-way ones installed here
# (eng-spa, fr-es, es-pt, spa-cat, spa-ita, eng-cat, en-gl) ship both modes, and the rest
# are taken to as well. Transitional dummy packages (apertium-en-es, ...) are left out.
_BOTH = "both"
DEBIAN_PACKAGES: dict[str, tuple[str, str, str]] = {
    "apertium-afr-nld": ("afr", "nld", _BOTH),
    "apertium-arg-cat": ("arg", "cat", _BOTH),
    "apertium-bel-rus": ("bel", "rus", _BOTH),
    "apertium-br-fr": ("br", "fr", "br-fr"),
    "apertium-cat-ita": ("cat", "ita", _BOTH),
    "apertium-cat-srd": ("cat", "srd", _BOTH),
    "apertium-dan-nor": ("dan", "nor", _BOTH),
    "apertium-en-gl": ("en", "gl", _BOTH),
    "apertium-eng-cat": ("eng", "cat", _BOTH),
    "apertium-eng-spa": ("eng", "spa", _BOTH),
    "apertium-eo-ca": ("eo", "ca", "ca-eo"),
    "apertium-eo-en": ("eo", "en", _BOTH),
    "apertium-eo-es": ("eo", "es", "es-eo"),
    "apertium-eo-fr": ("eo", "fr", "fr-eo"),
    "apertium-es-gl": ("es", "gl", _BOTH),
    "apertium-es-pt": ("es", "pt", _BOTH),
    "apertium-es-ro": ("es", "ro", "ro-es"),
    "apertium-eu-en": ("eu", "en", "eu-en"),
    "apertium-eu-es": ("eu", "es", "eu-es"),
    "apertium-fr-es": ("fr", "es", _BOTH),
    "apertium-fra-cat": ("fra", "cat", _BOTH),
    "apertium-hbs-eng": ("hbs", "eng", _BOTH),
    "apertium-hbs-mkd": ("hbs", "mkd", _BOTH),
    "apertium-hbs-slv": ("hbs", "slv", _BOTH),
    "apertium-ind-zlm": ("ind", "zlm", _BOTH),
    "apertium-isl-eng": ("isl", "eng", "isl-eng"),
    "apertium-isl-swe": ("isl", "swe", _BOTH),
    "apertium-mkd-bul": ("mkd", "bul", _BOTH),
    "apertium-mkd-eng": ("mkd", "eng", "mkd-eng"),
    "apertium-nno-nob": ("nno", "nob", _BOTH),
    "apertium-oc-ca": ("oc", "ca", _BOTH),
    "apertium-oc-es": ("oc", "es", _BOTH),
    "apertium-oci-fra": ("oci", "fra", _BOTH),
    "apertium-por-cat": ("por", "cat", _BOTH),
    "apertium-pt-gl": ("pt", "gl", _BOTH),
    "apertium-rus-ukr": ("rus", "ukr", _BOTH),
    "apertium-spa-arg": ("spa", "arg", _BOTH),
    "apertium-spa-ast": ("spa", "ast", _BOTH),
    "apertium-spa-cat": ("spa", "cat", _BOTH),
    "apertium-spa-ita": ("spa", "ita", _BOTH),
    "apertium-srd-ita": ("srd", "ita", _BOTH),
    "apertium-swe-dan": ("swe", "dan", _BOTH),
    "apertium-swe-nor": ("swe", "nor", _BOTH),
    "apertium-urd-hin": ("urd", "hin", _BOTH),
}


def package_pairs() -> dict[str, frozenset[tuple[str, str]]]:
    """The (src, tgt) pairs, in edged's codes, each Debian Apertium package would install."""
    found: dict[str, frozenset[tuple[str, str]]] = {}
    for package, (first, second, directions) in DEBIAN_PACKAGES.items():
        if directions == _BOTH:
            modes = [(first, second), (second, first)]
        else:
            src_code, tgt_code = directions.split("-")
            modes = [(src_code, tgt_code)]
        pairs = {
            (src, tgt)
            for a, b in modes
            for src in from_apertium(a)
            for tgt in from_apertium(b, target=True)
            if src != tgt
        }
        found[package] = frozenset(pairs)
    return found
