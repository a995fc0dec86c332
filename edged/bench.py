"""`edged bench`: how fast and how faithful the real pipeline is on a set of recordings.

The recording is fed paced in real time, as a microphone would deliver it, through the
pipeline that `edged translate` and the daemon run (runner.build_pipeline). A publisher
records every event with the monotonic time it arrived; a wrapper around the source records
when each chunk of audio reached the pipeline and the process CPU clock then. bench_metrics
turns those into latencies, flicker, throughput and quality against the manifest;
bench_report writes the JSON, the Markdown table and the plots.

`--compare` also runs the naive alternative with the same configuration: the VAD cuts
utterances and each is recognised in one pass after it ends (no partials, no interim
translation). Each run loads its engines in a fresh process, so its memory and CPU figures
are its own."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edged.asr import Hypothesis, HypothesisKind, Recognizer
from edged.audio import AudioChunk
from edged.config import Config, replace
from edged.errors import ConfigError, EdgedError
from edged.events import Event, TtsStart
from edged.options import add_engine_options, apply_engine_options

log = logging.getLogger(__name__)

MODES = ("streaming", "naive")
DEFAULT_TARGETS = ("en", "es")
DEFAULT_THREADS = 2  # this machine; a Raspberry Pi 4/5 has 4 cores: --threads 4
BENCH_FORMAT = 1
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
)


# --- what a run records --------------------------------------------------------------------


class Recorder:
    """A Publisher keeping every event with the monotonic time it was received; it also
    tells the capture sink which utterance the synthesized audio belongs to."""

    def __init__(self) -> None:
        self.received: list[tuple[float, Event]] = []
        self.speaking = 0  # utterance of the last tts.start (the TTS stage plays it next)
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        rx = time.monotonic()
        with self._lock:
            if isinstance(event, TtsStart):
                self.speaking = event.utt
            self.received.append((rx, event))

    def close(self) -> None:
        pass


class CaptureSink:
    """An AudioSink keeping the synthesized speech of each utterance (nothing is played)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.audio: dict[int, list[np.ndarray]] = {}
        self.sample_rate = 0

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.audio.setdefault(self._recorder.speaking, []).append(np.asarray(samples, np.float32))

    def close(self) -> None:
        pass


class TimedSource:
    """Wraps an AudioSource and notes, per chunk, its end sample, its arrival (monotonic)
    and the process CPU time at that moment."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ends: list[int] = []
        self.arrivals: list[float] = []
        self.cpu: list[float] = []

    def chunks(self) -> Iterator[AudioChunk]:
        for chunk in self.inner.chunks():
            self.ends.append(chunk.end)
            self.arrivals.append(chunk.arrival)
            self.cpu.append(time.process_time())
            yield chunk

    def close(self) -> None:
        self.inner.close()


class SegmentRecognizer:
    """The naive recognizer: holds each VAD segment's audio and decodes it once, after the
    segment has ended; partials are never produced.

    For Whisper the naive run also sets asr.whisper.partials = false, so the single pass
    is not preceded by a wasted partial decode; the wrapper keeps any engine (sherpa too)
    from publishing partials.
    """

    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self._parts: list[np.ndarray] = []
        self._t0 = 0.0

    def begin(self, t0: float) -> None:
        self._t0 = t0
        self._parts = []

    def accept(self, samples: np.ndarray) -> list[Hypothesis]:
        self._parts.append(np.array(samples, dtype=np.float32))
        return []

    def end(self) -> list[Hypothesis]:
        self.inner.begin(self._t0)
        hyps = self.inner.accept(np.concatenate(self._parts)) if self._parts else []
        hyps = hyps + self.inner.end()
        self._parts = []
        return [h for h in hyps if h.kind is HypothesisKind.FINAL]

    def set_languages(self, candidates: tuple[str, ...]) -> None:
        self.inner.set_languages(candidates)


@dataclass
class RunRecord:
    """Everything one run measured, before analysis."""

    mode: str
    received: list[tuple[float, Event]]
    ends: list[int]
    arrivals: list[float]
    cpu: list[float]
    stats: dict[str, Any]
    counts: dict[str, int]
    errors: list[str]
    load_s: float
    wall_s: float
    cpu_s: float
    ended: float  # monotonic time the pipeline finished
    memory: dict[str, Any]
    tts_rate: int = 0
    tts_audio: dict[int, np.ndarray] = field(default_factory=dict)
    heard: dict[int, str] = field(default_factory=dict)  # synthesized speech, transcribed


# --- memory ---------------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers the run only."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- one run --------------------------------------------------------------------------------


def run_mode(
    config: Config,
    mode: str,
    audio: Path,
    *,
    back_transcribe: bool = True,
    tail_silence: float = 1.0,
) -> RunRecord:
    """Load fresh engines, feed `audio` paced in real time through the pipeline in `mode`
    ("streaming" or "naive"), and transcribe the synthesized speech back."""
    from edged.audio.wav import WavSource
    from edged.engines import prepare
    from edged.runner import build_pipeline

    if mode == "naive":
        config = replace(config, "mt", interim=False)
        config = replace(
            config, "asr", whisper=dataclasses.replace(config.asr.whisper, partials=False)
        )
    prepared = prepare(config)  # fresh translators per run: a closed router is not reused
    started = time.monotonic()
    engines = prepared.load()
    load_s = time.monotonic() - started
    load_peak_kb = _status_kb("VmHWM") or _maxrss_kb()
    if mode == "naive":
        engines = dataclasses.replace(engines, recognizer=SegmentRecognizer(engines.recognizer))
    source = TimedSource(WavSource(audio, realtime=True, tail_silence=tail_silence))
    recorder = Recorder()
    sink = CaptureSink(recorder) if config.tts.enabled else None
    # --gate-tail reproduces the daemon's half-duplex muting as if the sink were a speaker.
    half_duplex = config.playback.gate_tail > 0
    pipeline = build_pipeline(prepared, engines, source, sink, [recorder], half_duplex=half_duplex)
    rss_start_kb = _status_kb("VmRSS")
    hwm_reset = _reset_peak_rss()
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        pipeline.run()
    except BaseException:
        pipeline.abort()
        engines.close()
        raise
    ended = time.monotonic()
    cpu_s, wall_s = time.process_time() - cpu0, ended - wall0
    peak_kb = _status_kb("VmHWM") if hwm_reset else None
    memory = {
        "peak_rss_mb": round((peak_kb or _maxrss_kb()) / 1024, 1),
        "method": "VmHWM reset before the run" if peak_kb else "ru_maxrss (process lifetime)",
        "rss_start_mb": round((rss_start_kb or 0) / 1024, 1),
        "load_peak_rss_mb": round(load_peak_kb / 1024, 1),
    }
    stats = pipeline.stats
    record = RunRecord(
        mode=mode,
        received=list(recorder.received),
        ends=source.ends,
        arrivals=source.arrivals,
        cpu=source.cpu,
        stats={
            "frames_in": stats.frames_in,
            "frames_dropped": stats.frames_dropped,
            "frames_gated": stats.frames_gated,
            "utterances": stats.utterances,
            "stage_seconds": dict(stats.stage_seconds),
            "audio_seconds": stats.audio_seconds,
        },
        counts=dict(pipeline.bus.counts),
        errors=[str(e) for e in pipeline.errors],
        load_s=load_s,
        wall_s=wall_s,
        cpu_s=cpu_s,
        ended=ended,
        memory=memory,
    )
    try:
        if sink is not None and sink.audio:
            record.tts_rate = sink.sample_rate
            record.tts_audio = {utt: np.concatenate(parts) for utt, parts in sink.audio.items()}
            if back_transcribe:
                speak = config.tts.speak or config.mt.targets[0]
                record.heard = transcribe_back(
                    engines.recognizer, record.tts_audio, sink.sample_rate, speak
                )
    finally:
        engines.close()
    return record


def run_isolated(config: Config, mode: str, audio: Path) -> RunRecord:
    """run_mode in a fresh process, so each run's memory and CPU figures are its own (a
    second run in the same process would start with the first one's heap)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_child_run, config, mode, audio, logging.getLogger().level).result()


def _child_run(config: Config, mode: str, audio: Path, log_level: int) -> RunRecord:
    logging.basicConfig(
        level=log_level, format="edged: %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return run_mode(config, mode, audio)


def transcribe_back(
    recognizer: Recognizer, audio: dict[int, np.ndarray], rate: int, lang: str
) -> dict[int, str]:
    """Recognize each utterance's synthesized speech with the run's own recognizer."""
    from edged.audio.convert import to_pipeline_format

    try:
        recognizer.set_languages((lang,))
    except ConfigError as exc:
        log.warning("synthesized speech not transcribed back: %s", exc)
        return {}
    heard = {}
    for utt, samples in sorted(audio.items()):
        pcm = to_pipeline_format(samples, rate)
        recognizer.begin(0.0)
        hyps = recognizer.accept(pcm) + recognizer.end()
        heard[utt] = " ".join(h.text for h in hyps if h.kind is HypothesisKind.FINAL).strip()
    return heard


# --- analysis of a run ----------------------------------------------------------------------


def analyse(record: RunRecord, manifest: Any, targets: tuple[str, ...]) -> dict[str, Any]:
    """Every figure of one run, JSON-ready."""
    from edged.bench_metrics import (
        Received,
        Timeline,
        busy_intervals,
        flicker_by_utt,
        per_utterance,
        quality,
        sentence_chrf,
        silence_cpu,
        summarise,
        utterance_texts,
        word_errors,
    )

    received = [Received(rx, e) for rx, e in record.received]
    timeline = Timeline(record.ends, record.arrivals, record.cpu)
    results = per_utterance(received, manifest, timeline, targets)
    texts = utterance_texts(received)
    keys = ["first_partial", "first_text", "final", *[f"mt.{t}" for t in targets], "tts"]
    latency = {k: summarise(r.latency_ms.get(k) for r in results) for k in keys}
    event_lat = {k: summarise(r.event_lat_ms.get(k) for r in results) for k in keys[2:]}
    flickers = list(flicker_by_utt(received).values())
    audio_s = record.stats["audio_seconds"] or timeline.duration
    stage_s = record.stats["stage_seconds"]
    rtf = {k: round(v / audio_s, 4) for k, v in sorted(stage_s.items())}
    rtf["pipeline"] = round(sum(stage_s.values()) / audio_s, 4)
    by_id = {u.id: u for u in manifest.utterances}
    spoken_utts = {e.utt: e.text for _, e in record.received if isinstance(e, TtsStart)}
    tts_pairs = [
        (spoken_utts[u], record.heard.get(u, ""))
        for u in sorted(record.tts_audio)
        if u in spoken_utts
    ]
    utterances = []
    for r in results:
        row = r.to_dict()
        group = [x for x in results if x.id in r.group]
        row["wer"] = word_errors([(" ".join(x.reference for x in group), r.final)]).get("wer")
        row["chrf"] = {
            t: sentence_chrf(r.translations.get(t, ""), by_id[r.id].references(t))
            for t in targets
            if r.language != t
        }
        row["heard"] = " ".join(record.heard.get(u, "") for u in r.utts if u in record.heard)
        utterances.append(row)
    pipeline_utts = sorted({n for r in results for n in r.utts})
    return {
        "mode": record.mode,
        "latency_ms": latency,
        "event_lat_ms": event_lat,
        "flicker": {
            "pipeline_utterances_with_partials": len(flickers),
            "partials": sum(f.partials for f in flickers),
            "chars_retracted": sum(f.chars for f in flickers),
            "chars_per_utterance": round(sum(f.chars for f in flickers) / len(flickers), 2)
            if flickers
            else None,
            "rewrites": sum(f.retractions for f in flickers),
            "stable_chars_retracted": sum(f.stable_chars for f in flickers),
            "final_chars_retracted": sum(f.final_chars for f in flickers),
        },
        "throughput": {
            "audio_s": round(audio_s, 3),
            "wall_s": round(record.wall_s, 3),
            "drain_s": round(record.ended - record.arrivals[-1], 3),
            "stage_s": {k: round(v, 3) for k, v in sorted(stage_s.items())},
            "rtf": rtf,
            "cpu_s": round(record.cpu_s, 3),
            "cpu_per_audio_s": round(record.cpu_s / audio_s, 4),
        },
        "load_s": round(record.load_s, 3),
        "memory": record.memory,
        "silence": silence_cpu(manifest, timeline, busy_intervals(received, results, timeline)),
        "frames": {k: record.stats[k] for k in ("frames_in", "frames_dropped", "frames_gated")},
        "segmentation": {
            "pipeline_utterances": len(pipeline_utts),
            "manifest_utterances": len(results),
            "missed": [r.id for r in results if not r.final],
            "split": [r.id for r in results if len(r.utts) > 1],
            "merged": [list(r.group) for r in results if len(r.group) > 1 and r.id == r.group[0]],
        },
        "quality": {
            **quality(results, manifest, targets, texts),
            "tts_back": word_errors(tts_pairs),
        },
        "events": record.counts,
        "errors": record.errors,
        "utterances": utterances,
    }


# --- machine and settings -------------------------------------------------------------------


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
    repo = Path(__file__).resolve().parent.parent
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


def settings_info(config: Config, threads: int) -> dict[str, Any]:
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
        "realtime": True,
    }


# --- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by `edged bench` and tools/bench.py)."""
    parser.add_argument(
        "--audio",
        type=Path,
        metavar="WAV",
        help="your own recording (default: the bundled set, generated)",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="JSON",
        help="utterances of --audio: id, language, text, translations, t0, t1",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-out"),
        metavar="DIR",
        help="where the JSON, table and plots go (default: bench-out)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help="engine threads, like the board's cores (default 2; a Pi: 4): "
        "asr.threads=N, mt.threads=tts.threads=N/2",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the naive alternative (VAD-cut, no partials) and report both side by side",
    )
    add_engine_options(parser, targets_default=" ".join(DEFAULT_TARGETS))
    parser.add_argument("--no-tts", action="store_true", help="no speech synthesis")
    parser.add_argument(
        "--gate-tail",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds the microphone stays muted after the device spoke "
        "(default 0: the recording never contains the device's voice; the "
        "daemon's playback.gate_tail reproduces its half-duplex losses)",
    )
    parser.add_argument(
        "--clips",
        type=Path,
        metavar="DIR",
        help="speech clips for the bundled set (default: ../shared/data/speech)",
    )


def bench_config(config: Config, args: argparse.Namespace, audio: Path) -> Config:
    """The config a benchmark run uses: the file's, with the command line applied."""
    threads = args.threads
    if not 1 <= threads <= 16:
        raise ConfigError(f"--threads {threads}: allowed 1 to 16")
    config = replace(config, "audio", source="wav", path=str(audio), realtime=True)
    config = replace(config, "asr", threads=threads)
    config = replace(config, "mt", threads=max(1, threads // 2), targets=DEFAULT_TARGETS)
    config = replace(
        config, "tts", threads=max(1, threads // 2), enabled=not args.no_tts, output=""
    )
    config = replace(config, "playback", gate_tail=args.gate_tail)
    return apply_engine_options(config, args)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the benchmark as the command line asks; writes the report, prints the table."""
    from edged import store
    from edged.bench_report import write_report
    from edged.bench_set import DEFAULT_SPEECH_DIR, build_set, load_manifest

    out: Path = args.out
    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    languages = tuple(args.src) if args.src else config.asr.languages
    if args.audio or args.manifest:
        if not args.manifest:
            raise ConfigError("--audio needs --manifest (where each utterance starts and ends)")
        manifest = load_manifest(args.manifest)
        audio = args.audio or manifest.audio
        if audio is None:
            raise ConfigError(f"{args.manifest}: names no audio; pass --audio WAV")
        set_info: dict[str, Any] = {
            "name": "user",
            "audio": str(audio),
            "manifest": str(args.manifest),
        }
    else:
        built = build_set(
            out / "set", args.clips or DEFAULT_SPEECH_DIR, models_dir, languages=languages
        )
        manifest, audio = built.manifest, built.audio
        set_info = {"name": "bundled", "audio": str(audio), "manifest": str(built.manifest_path)}
    config = bench_config(config, args, audio)
    targets = config.mt.targets
    from edged.audio.wav import WavSource

    duration = WavSource(audio).duration  # reads and checks the file before any model loads
    set_info.update(
        duration_s=round(duration, 3),
        utterances=len(manifest.utterances),
        speech_s=round(sum(u.t1 - u.t0 for u in manifest.utterances), 3),
        languages=sorted({u.language for u in manifest.utterances}),
    )
    report: dict[str, Any] = {
        "edged_bench": BENCH_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["edged", "bench", *sys.argv[2:]])
        if sys.argv[1:2] == ["bench"]
        else " ".join(sys.argv),
        "machine": machine_info(),
        "settings": settings_info(config, args.threads),
        "models": bundle_info(config),
        "set": set_info,
        "runs": {},
    }
    report["settings"]["process_per_run"] = True  # see run_isolated
    records = {}
    for mode in MODES if args.compare else MODES[:1]:
        print(
            f"edged bench: {mode} run, {duration:.1f} s of audio paced in real time ...",
            file=sys.stderr,
            flush=True,
        )
        record = run_isolated(config, mode, audio)
        records[mode] = record
        report["runs"][mode] = analyse(record, manifest, targets)
        for message in record.errors:
            print(f"edged bench: {mode}: {message}", file=sys.stderr)
    paths = write_report(report, records, manifest, audio, out)
    print((out / "bench.md").read_text(encoding="utf-8"))
    for path in paths:
        print(f"edged bench: wrote {path}", file=sys.stderr)
    return 1 if any(r.errors for r in records.values()) else 0


def main(argv: list[str] | None = None) -> int:
    """tools/bench.py: the benchmark without the rest of the `edged` command."""
    from edged.cli import load_cli_config

    parser = argparse.ArgumentParser(
        prog="bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, help="TOML config file")
    parser.add_argument("--models-dir", type=Path, help="installed model bundles")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="edged: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args, load_cli_config(args))
    except EdgedError as exc:
        print(f"edged: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edged: interrupted", file=sys.stderr)
        return 130
