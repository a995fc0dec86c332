"""Every runtime dependency installs on Raspberry Pi OS 64-bit (aarch64, CPython 3.11):
as a wheel, or as a named source build with its Debian build packages. Runs
tools/aarch64_wheels.py against PyPI (pip reads wheel metadata only, not whole wheels)."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from conftest import REPO

TOOL = REPO / "tools" / "aarch64_wheels.py"


def test_runtime_dependencies_resolve_to_aarch64_wheels() -> None:
    run = subprocess.run(
        [sys.executable, str(TOOL)], capture_output=True, text=True, timeout=240, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:-1]}
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(lines) == set(dependencies)
    alsa = lines["pyalsaaudio>=0.10"]
    assert "BUILDS FROM SOURCE" in alsa and "libasound2-dev gcc python3-dev" in alsa
    for requirement, line in lines.items():
        if requirement != "pyalsaaudio>=0.10":
            assert " wheel " in line and ("aarch64" in line or "-none-any.whl" in line), line


def test_onnxruntime_is_not_a_runtime_dependency() -> None:
    """sherpa-onnx bundles its own onnxruntime; edged imports onnxruntime only for the
    benchmark's version report, and onnxruntime 1.17 has no manylinux2014 aarch64 wheel."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("onnxruntime") for d in project["dependencies"])
    assert any(d.startswith("onnxruntime") for d in project["optional-dependencies"]["bench"])


def test_an_unreachable_index_is_one_clear_failure(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"  # nothing listens on the discard port
    run = subprocess.run(
        [sys.executable, str(TOOL)], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 2
    assert "cannot reach the package index" in run.stderr and "Traceback" not in run.stderr
