"""Check that edged's runtime dependencies install on Raspberry Pi OS 64-bit from wheels.

Raspberry Pi OS 64-bit (Bookworm) is aarch64 with CPython 3.11 and glibc 2.36, so a wheel
tagged cp311 (or abi3/py3) and manylinux_2_17 ... manylinux_2_36 aarch64 installs there.
pip resolves the dependencies of pyproject.toml for that platform with
`pip install --dry-run --report`, which reads the wheels' metadata files from the index
(PEP 658) instead of downloading the wheels; pip's HTTP cache keeps reruns fast. A
dependency without such a wheel must build from source on the Pi: it is named, with the
Debian packages its build needs.

Exit status: 0 when every runtime dependency is a wheel or a known source build, 1 when a
dependency has neither a wheel nor known build packages, 2 when PyPI cannot be reached.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
ABI = "cp311"
# manylinux_2_17 (= manylinux2014) up to Bookworm's glibc 2.36
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)] + ["manylinux2014_aarch64"]
# Dependencies known to have no aarch64 wheel on PyPI, with the Debian packages their build
# needs on the Pi (pip builds them from the sdist).
SOURCE_BUILDS = {"pyalsaaudio": ("libasound2-dev", "gcc", "python3-dev")}
_NETWORK = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Network is unreachable|"
    r"Temporary failure in name resolution|ConnectTimeout|Read timed out|ProxyError|SSLError|"
    r"Max retries exceeded"
)
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


class NetworkError(Exception):
    """PyPI (or the configured index) did not answer."""


def runtime_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The requirement strings of [project] dependencies."""
    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])


def requirement_name(requirement: str) -> str:
    """The normalised project name of a requirement string (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    if not name:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--retries", "1"]
    result = subprocess.run(
        [*command, "--timeout", "20", *args], capture_output=True, text=True, check=False
    )
    if result.returncode and _NETWORK.search(result.stderr):
        line = next((x for x in result.stderr.splitlines() if _NETWORK.search(x)), "")
        raise NetworkError(line.strip()[:300])
    return result


def resolve_wheels(requirements: list[str]) -> tuple[list[dict], list[str]]:
    """(the wheels pip would install on the Pi, the requirements with no wheel there)."""
    remaining = list(requirements)
    no_wheel: list[str] = []
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory(prefix="edged-aarch64-") as tmp:
        report = Path(tmp) / "report.json"
        while remaining:
            result = _pip(
                "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                "--only-binary=:all:", *platform_args, "--python-version", PYTHON_VERSION,
                "--implementation", "cp", "--abi", ABI, "--target", str(Path(tmp) / "t"),
                *remaining,
            )  # fmt: skip
            if result.returncode == 0:
                return json.loads(report.read_text(encoding="utf-8"))["install"], no_wheel
            missing = _NOT_FOUND.search(result.stderr)
            if not missing:
                raise RuntimeError(f"pip failed: {result.stderr.strip()[-500:]}")
            name = requirement_name(missing.group(1))
            direct = [r for r in remaining if requirement_name(r) == name]
            if not direct:  # a dependency of a dependency: report it as that package's problem
                raise RuntimeError(f"{missing.group(1)} (needed by {remaining}) has no wheel")
            no_wheel += direct
            remaining = [r for r in remaining if r not in direct]
    return [], no_wheel


def sdist_version(requirement: str) -> str:
    """The newest source release on the index ("" if there is none)."""
    result = _pip("index", "versions", "--no-binary=:all:", requirement_name(requirement))
    found = re.search(r"Available versions: ([^,\s]+)", result.stdout)
    return found.group(1) if found else ""


def main() -> int:
    requirements = runtime_dependencies()
    print(
        f"edged runtime dependencies on Raspberry Pi OS 64-bit "
        f"(aarch64, CPython {PYTHON_VERSION}, manylinux up to glibc 2.36):"
    )
    try:
        wheels, no_wheel = resolve_wheels(requirements)
        sdists = {r: sdist_version(r) for r in no_wheel}
    except NetworkError as exc:
        print(
            f"aarch64 wheel check: cannot reach the package index ({exc}); it needs PyPI "
            f"(pip's configured index): check the network or proxy and run it again",
            file=sys.stderr,
        )
        return 2
    by_name = {requirement_name(w["metadata"]["name"]): w for w in wheels}
    direct = {requirement_name(r) for r in requirements}
    status = 0
    for requirement in requirements:
        name = requirement_name(requirement)
        if name in by_name:
            print(
                f"  {requirement:<20} wheel  {by_name[name]['download_info']['url'].split('/')[-1]}"
            )
            continue
        build = SOURCE_BUILDS.get(name)
        source = f"sdist {sdists[requirement]}" if sdists.get(requirement) else "no sdist either"
        if build and sdists.get(requirement):
            print(
                f"  {requirement:<20} BUILDS FROM SOURCE ({source}): needs "
                f"`apt-get install {' '.join(build)}` on the Pi"
            )
        else:
            print(f"  {requirement:<20} NO aarch64 WHEEL ({source}); build packages unknown")
            status = 1
    pulled = sorted(f"{w['metadata']['name']} {w['metadata']['version']}" for w in wheels
                    if requirement_name(w["metadata"]["name"]) not in direct)  # fmt: skip
    print(f"  pulled in, all wheels: {', '.join(pulled) or 'none'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
