"""What the figures were measured on and with: the machine, the packages, the installed
model bundles and the settings of the run."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from edged.config import Config

_PACKAGES = (
    "edged",
    "numpy",
    "ctranslate2",
    "sherpa-onnx",
    "onnxruntime",
    "tokenizers",
    "soxr",
    "jiwer",
    "sacrebleu",
    "matplotlib",
    "faster-whisper",
)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "arch": platform.machine(),
        "memory_mb": _meminfo_mb(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {},
    }
    for name in _PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["packages"][name] = None
    if shutil.which("dpkg-query"):
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "apertium-eng-spa"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["packages"]["apertium-eng-spa"] = proc.stdout.strip() or None
    info["git"] = _git_commit()
    return info


def _cpu_model() -> str:
    try:
        model = Path("/proc/device-tree/model").read_text(encoding="ascii", errors="replace")
        board = model.strip("\0\n ")
    except OSError:
        board = ""
    cpu = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                cpu = value.strip()
                break
    except OSError:
        pass
    return ", ".join(p for p in (board, cpu or platform.processor()) if p) or "unknown"


def _meminfo_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists() or not shutil.which("git"):
        return None
    proc = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


def bundle_info(config: Config) -> dict[str, Any]:
    """The installed model bundles the config uses: size, install date, sources."""
    from edged.engines import prepare

    prepared = prepare(config)
    out = {}
    for name, path in prepared.bundles.items():
        entry: dict[str, Any] = {"path": str(path)}
        try:
            stamp = json.loads((path / ".edged-stamp.json").read_text(encoding="utf-8"))
            entry["size_mb"] = round(sum(f[0] for f in stamp.get("files", {}).values()) / 2**20, 1)
            entry["installed"] = stamp.get("installed")
            entry["sources"] = sorted(stamp.get("sources", {}))
        except (OSError, ValueError):
            pass
        out[name] = entry
    out["translation_plans"] = {f"{p.src}->{p.tgt}": p.engine for p in prepared.plans}
    return out


def settings_info(config: Config, threads: int, realtime: bool = True) -> dict[str, Any]:
    """The settings a run used (threads, engines, languages, VAD, pacing)."""
    c = config
    return {
        "threads": threads,
        "asr_threads": c.asr.threads,
        "mt_threads": c.mt.threads,
        "tts_threads": c.tts.threads,
        "asr_engine": c.asr.engine,
        "asr_bundle": c.asr.whisper.bundle if c.asr.engine == "whisper" else c.asr.sherpa.bundle,
        "whisper": dataclasses.asdict(c.asr.whisper) if c.asr.engine == "whisper" else None,
        "languages": list(c.asr.languages),
        "targets": list(c.mt.targets),
        "mt_engines": list(c.mt.engines),
        "speak": (c.tts.speak or c.mt.targets[0]) if c.tts.enabled else None,
        "vad": dataclasses.asdict(c.vad),
        "interim_interval": c.mt.interim_interval,
        "gate_tail": c.playback.gate_tail,
        "realtime": realtime,
    }
