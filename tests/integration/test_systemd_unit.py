"""The shipped systemd unit and its sysusers snippet, checked by systemd's own tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edged.errors import ConfigError

UNIT = REPO / "systemd" / "edged.service"
SYSUSERS = REPO / "systemd" / "edged.sysusers.conf"
INSTALLED_EDGED = "/opt/edged/.venv/bin/edged"


def systemd_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install systemd's tools (`apt install systemd`)")
    return path


def unit_settings() -> dict[str, list[str]]:
    """KEY -> values (systemd allows repeated keys), comments and sections ignored."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def verifiable_copy(directory: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's `edged`.

    `systemd-analyze verify` insists that the ExecStart binary exists. A fake --root does not
    work (verify then also wants /bin/kill and systemd's own targets inside that root), so
    the copy, named edged.service like the original, swaps in the venv's real entry point.
    """
    edged = Path(sys.executable).parent / "edged"
    if not edged.is_file():
        pytest.fail(f"{edged} missing: install the package (`pip install -e .`)")
    text = UNIT.read_text()
    assert INSTALLED_EDGED in text
    copy = directory / "edged.service"
    copy.write_text(text.replace(INSTALLED_EDGED, str(edged)))
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", str(verifiable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 even for unknown keys and only warns: any output is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_unit_exposure_stays_low(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            systemd_tool("systemd-analyze"),
            "security",
            "--offline=yes",
            "--threshold=30",  # exposure 3.0 of 10 at most; it is 1.9 now
            "--no-pager",
            str(verifiable_copy(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_unit_matches_what_the_daemon_does() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [f"{INSTALLED_EDGED} run --config /etc/edged/edged.toml"]
    assert unit["RestartPreventExitStatus"] == [str(ConfigError.exit_code)]
    assert unit["Restart"] == ["on-failure"]
    assert "EDGED_MODELS_DIR=/var/lib/edged/models" in unit["Environment"]
    assert re.fullmatch(r"mqtt-password:/etc/edged/\S+", unit["LoadCredential"][0])
    assert unit["User"] == ["edged"] and unit["SupplementaryGroups"] == ["audio"]
    assert unit["DeviceAllow"] == ["char-alsa rw"] and unit["DevicePolicy"] == ["closed"]
    assert "AF_UNIX" in unit["RestrictAddressFamilies"][0]  # sd_notify needs it


def test_sysusers_snippet_creates_the_user_in_group_audio(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [systemd_tool("systemd-sysusers"), "--dry-run", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Creating user 'edged'" in result.stdout + result.stderr
