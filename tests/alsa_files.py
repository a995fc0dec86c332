"""ALSA without a sound card: an asoundrc of `type file` PCMs for tests.

A capture PCM reads raw interleaved frames from `infile`; a playback PCM writes what it is
given to `file`. Both sit on the `null` plugin, which is not paced by a clock: reads and
writes complete at once, and a capture device never ends. After the end of `infile` the
data is NOT reliably silence (alsa-lib 1.2.8: in non-blocking mode, or with more than four
periods, reads repeat stale ring-buffer contents), so write the trailing silence a test
needs into the file and read no further than the file.

alsa-lib is pointed at the file with ALSA_CONFIG_PATH (colon-separated, the system
alsa.conf first so `null` and friends are defined). HOME/.asoundrc works for a fresh
process too, but inside one process alsa-lib only reloads its configuration when the list of
top-level files or their mtimes change: a new ALSA_CONFIG_PATH forces that reload, a new HOME
does not. So tests can switch configurations in-process (monkeypatch.setenv) and
subprocesses inherit the same variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
CAPTURE = "edged_capture"
PLAYBACK = "edged_playback"


@dataclass
class AlsaFiles:
    """An asoundrc with one capture and one playback file device, plus the variables to use it."""

    config: Path
    infile: Path  # raw frames the capture device reads
    outfile: Path  # raw frames the playback device writes
    capture: str = CAPTURE
    playback: str = PLAYBACK
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for alsa-lib (in-process via monkeypatch, or for a subprocess)."""
        return {"ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{self.config}"}


def capture_pcm(infile: Path) -> str:
    """Body of a capture PCM that reads `infile` (it must exist when the PCM is opened)."""
    # `file` is mandatory for the plugin even for capture; what was captured goes nowhere.
    return (
        '{\n    type file\n    slave.pcm "null"\n    file "/dev/null"\n'
        f'    infile "{infile}"\n    format "raw"\n}}'
    )


def playback_pcm(outfile: Path) -> str:
    """Body of a playback PCM that writes raw frames to `outfile`.

    Every open of the PCM starts a file: with `truncate false` alsa-lib never overwrites,
    the first open writes `outfile`, the next `outfile.0001`, `outfile.0002`, ... (the
    default, truncate true, would keep only the last play). See `played`.
    """
    return (
        '{\n    type file\n    slave.pcm "null"\n'
        f'    file "{outfile}"\n    format "raw"\n    truncate false\n}}'
    )


def write_asoundrc(directory: Path, extra: dict[str, str] | None = None) -> AlsaFiles:
    """Write `asoundrc` in `directory` with edged_capture/edged_playback and `extra` PCMs."""
    directory.mkdir(parents=True, exist_ok=True)
    files = AlsaFiles(
        config=directory / "asoundrc",
        infile=directory / "capture.raw",
        outfile=directory / "playback.raw",
        extra=dict(extra or {}),
    )
    pcms = {files.capture: capture_pcm(files.infile), files.playback: playback_pcm(files.outfile)}
    pcms.update(files.extra)
    files.config.write_text("".join(f"pcm.{name} {body}\n" for name, body in pcms.items()))
    return files


def write_raw(path: Path, samples: np.ndarray) -> Path:
    """Float samples, (frames,) or (frames, channels), as raw interleaved S16_LE.

    The file appears atomically (written aside, then renamed): a capture device opened
    while it is being written would read a short file.
    """
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(pcm.tobytes())
    partial.replace(path)
    return path


def read_raw(path: Path, channels: int = 1) -> np.ndarray:
    """Raw interleaved S16_LE as float (frames, channels) (or (frames,) for mono)."""
    pcm = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    return pcm.reshape(-1, channels) if channels > 1 else pcm


def played(files: AlsaFiles) -> list[Path]:
    """The playback device's files in the order they were written (one per PCM open)."""
    first = [files.outfile] if files.outfile.exists() else []
    return first + sorted(files.outfile.parent.glob(files.outfile.name + ".[0-9][0-9][0-9][0-9]"))


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin."""
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window))
    return float(np.argmax(spectrum) * rate / len(samples))
