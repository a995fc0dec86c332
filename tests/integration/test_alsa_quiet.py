"""Without a sound card, each capture retry used to print alsa-lib's own lines on stderr
(issue 10, defect 10): they go to the debug log now; the error itself is still one line."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

_OPEN_MISSING = """
from edged.audio.alsa import AlsaCaptureDevice, CaptureRequest
from edged.errors import AudioError
try:
    AlsaCaptureDevice(CaptureRequest("hw:7,0", 16000, 1, 512, 4, "S16_LE"))
except AudioError as exc:
    print(exc)
"""


def test_a_missing_card_is_one_error_and_no_alsa_lib_lines() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _OPEN_MISSING],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert "hw:7,0" in proc.stdout
    assert "ALSA lib" not in proc.stderr, proc.stderr
