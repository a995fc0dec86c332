"""`edged bench` on the command line: which set, which runs, and the report.

The set's recording is generated (or yours is read), the streaming pipeline is run on it
(live.py) and, with --compare, the naive pipeline and the offline decode (offline.py);
analysis.py turns each run into figures and report.py writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edged.config import Config, replace
from edged.errors import ConfigError
from edged.options import add_engine_options, apply_engine_options

SETS = ("bundled", "realspeech", "conversation")
COMPARISONS = ("naive", "offline")
DEFAULT_TARGETS = ("en", "es")
DEFAULT_THREADS = 2  # this machine; a Raspberry Pi 4/5 has 4 cores: --threads 4
BENCH_FORMAT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (`edged bench`)."""
    parser.add_argument(
        "--set",
        choices=SETS,
        default="bundled",
        help="the recording: bundled (default: 11 short utterances, about a minute), "
        "realspeech (the real-speech development set, ~14 minutes, 8 languages), "
        "conversation (alternating en/es turns, for language-ID accuracy)",
    )
    parser.add_argument(
        "--audio", type=Path, metavar="WAV", help="your own recording (instead of --set)"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="JSON",
        help="utterances of --audio: id, language, text, translations, t0, t1",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N clips (realspeech) or turns (conversation): a quick run",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="feed the audio as fast as the pipeline takes it, not paced in real time: "
        "WER and CPU figures are valid, latencies are not reported",
    )
    parser.add_argument(
        "--compare",
        nargs="?",
        const="naive",
        default="",
        metavar="naive,offline",
        help="also run alternatives on the same utterances: naive (VAD-cut, one decode per "
        "utterance, no partials; the default of a bare --compare) and/or offline "
        "(faster-whisper, beam 5, 30 s window, language given: the accuracy baseline)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="play the set over and over for at least MINUTES and report resident memory "
        "at each minute (does RSS plateau?)",
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
        help="the board's cores (default 2; a Pi: 4): asr.threads=mt.threads=N/2, "
        "tts.threads=N (the stages mostly run one at a time, and speech after the final; "
        "Whisper decodes fastest on one thread)",
    )
    add_engine_options(parser, targets_default=" ".join(DEFAULT_TARGETS))
    # The shared engine options may define --conversation (issue 9); then theirs is used.
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(
            "--conversation",
            nargs="+",
            metavar="LANG",
            help="the conversation's languages (as --from A --from B, targets A B)",
        )
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
        help="speech clips of the bundled and conversation sets (default: ../shared/data/speech)",
    )
    parser.add_argument(
        "--realspeech",
        type=Path,
        metavar="DIR",
        help="the real-speech clips and manifest.tsv (default: ../shared/data/realspeech)",
    )


def comparisons(value: str) -> tuple[str, ...]:
    """--compare's list ("naive,offline") checked against COMPARISONS."""
    chosen = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [c for c in chosen if c not in COMPARISONS]
    if unknown:
        raise ConfigError(
            f"--compare {value}: unknown {', '.join(unknown)} (allowed: {', '.join(COMPARISONS)})"
        )
    return chosen


def bench_config(config: Config, args: argparse.Namespace, audio: Path) -> Config:
    """The config a benchmark run uses: the file's, with the command line applied."""
    threads = args.threads
    if not 1 <= threads <= 16:
        raise ConfigError(f"--threads {threads}: allowed 1 to 16")
    config = replace(config, "audio", source="wav", path=str(audio), realtime=not args.fast)
    half = max(1, threads // 2)  # each stage's share (see --threads)
    config = replace(config, "asr", threads=half)
    config = replace(config, "mt", threads=half, targets=DEFAULT_TARGETS)
    config = replace(config, "tts", threads=threads, enabled=not args.no_tts, output="")
    config = replace(config, "playback", gate_tail=args.gate_tail)
    config = apply_engine_options(config, args)
    pair = getattr(args, "conversation", None)
    if pair:
        if len(pair) < 2:
            raise ConfigError(f"--conversation {' '.join(pair)}: name two or more languages")
        config = replace(config, "asr", languages=tuple(pair))
        config = replace(config, "mt", targets=tuple(pair))
        if hasattr(config, "conversation"):
            config = replace(config, "conversation", enabled=True, languages=tuple(pair))
    return config


@dataclass(frozen=True)
class BenchSet:
    """The recording a benchmark runs on, its manifest, and what to say about it."""

    name: str
    audio: Path
    manifest: Any  # manifest.Manifest
    info: dict[str, Any]


def choose_set(args: argparse.Namespace, config: Config) -> BenchSet:
    """Generate the set --set names (or read --audio/--manifest) into OUT/set."""
    from edged import store
    from edged.bench import sets
    from edged.bench.manifest import load_manifest

    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    languages = tuple(args.src) if args.src else None
    if getattr(args, "conversation", None):
        languages = tuple(args.conversation)
    out = args.out / "set"
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be 1 or more")
    if args.audio or args.manifest:
        if not args.manifest:
            raise ConfigError("--audio needs --manifest (where each utterance starts and ends)")
        if args.limit:
            raise ConfigError("--limit works on --set realspeech or conversation, not --manifest")
        manifest = load_manifest(args.manifest)
        audio = args.audio or manifest.audio
        if audio is None:
            raise ConfigError(f"{args.manifest}: names no audio; pass --audio WAV")
        return BenchSet("user", audio, manifest, {"manifest": str(args.manifest)})
    catalogue = store.load_catalogue()
    if args.set == "bundled":
        if args.limit:
            raise ConfigError("--limit works on --set realspeech or conversation")
        built = sets.build_set(
            out,
            args.clips or sets.DEFAULT_SPEECH_DIR,
            models_dir,
            languages=languages or config.asr.languages,
        )
    elif args.set == "realspeech":
        vad = store.bundle_path(catalogue, models_dir, config.vad.bundle) / "silero_vad.onnx"
        if config.asr.engine != "whisper" and not languages:
            languages = config.asr.languages  # a streaming model knows its own languages
        built = sets.build_realspeech(
            out, args.realspeech or sets.DEFAULT_REALSPEECH_DIR, vad, languages, args.limit
        )
    else:
        from edged.bench.conversation import LANGUAGES, build_conversation

        if languages and set(languages) != set(LANGUAGES):
            raise ConfigError(
                f"the conversation set is {' and '.join(LANGUAGES)}: pass --from en --from es "
                f"(not {' '.join(languages)}), or your own --audio/--manifest"
            )
        whisper = store.bundle_path(catalogue, models_dir, config.asr.whisper.bundle)
        built = build_conversation(
            out,
            args.realspeech or sets.DEFAULT_REALSPEECH_DIR,
            args.clips or sets.DEFAULT_SPEECH_DIR,
            whisper,
            args.threads,
            args.limit,
        )
    return BenchSet(args.set, built.audio, built.manifest, {"manifest": str(built.manifest_path)})


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the benchmark as the command line asks; writes the report, prints the table."""
    from edged.bench.analysis import analyse
    from edged.bench.live import LoopSource, RunPlan, run_isolated
    from edged.bench.machine import bundle_info, machine_info, settings_info
    from edged.bench.manifest import repeated
    from edged.bench.metrics import offline_comparison
    from edged.bench.report import write_report

    wanted = comparisons(args.compare)
    if args.soak is not None and args.soak <= 0:
        raise ConfigError(f"--soak {args.soak}: minutes must be more than 0")
    chosen = choose_set(args, config)
    languages = sorted({u.language for u in chosen.manifest.utterances})
    if not args.src and not getattr(args, "conversation", None):
        # the recognizer is told the set's languages, as a user would configure it
        config = replace(config, "asr", languages=tuple(languages))
    config = bench_config(config, args, chosen.audio)
    targets = config.mt.targets
    duration = LoopSource(chosen.audio).duration  # reads and checks the file before any model
    repeats = math.ceil(args.soak * 60 / duration) if args.soak else 1
    manifest = repeated(chosen.manifest, duration, repeats)
    set_info = {
        "name": chosen.name,
        "audio": str(chosen.audio),
        **chosen.info,
        "duration_s": round(duration, 3),
        "repeats": repeats,
        "utterances": len(chosen.manifest.utterances),
        "speech_s": round(sum(u.t1 - u.t0 for u in chosen.manifest.utterances), 3),
        "languages": languages,
    }
    report: dict[str, Any] = {
        "edged_bench": BENCH_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["edged", "bench", *sys.argv[2:]])
        if sys.argv[1:2] == ["bench"]
        else " ".join(sys.argv),
        "machine": machine_info(),
        "settings": {
            **settings_info(config, args.threads, realtime=not args.fast),
            "process_per_run": True,  # see live.run_isolated
        },
        "models": bundle_info(config),
        "set": set_info,
        "runs": {},
    }
    records = {}
    pace = "as fast as it goes" if args.fast else "paced in real time"
    for mode in ("streaming", *(m for m in wanted if m == "naive")):
        print(
            f"edged bench: {mode} run, {duration * repeats:.1f} s of audio {pace} ...",
            file=sys.stderr,
            flush=True,
        )
        plan = RunPlan(mode=mode, realtime=not args.fast, repeats=repeats)
        record = run_isolated(config, chosen.audio, plan)
        records[mode] = record
        report["runs"][mode] = analyse(record, manifest, targets)
        for message in record.errors:
            print(f"edged bench: {mode}: {message}", file=sys.stderr)
    if "offline" in wanted:
        report["offline"] = _offline(args, config, chosen)
        streaming = report["runs"]["streaming"]["quality"]["asr"]
        report["offline"]["comparison"] = offline_comparison(
            chosen.manifest, streaming, report["offline"]["texts"]
        )
    paths = write_report(report, records, manifest, chosen.audio, args.out)
    print((args.out / "bench.md").read_text(encoding="utf-8"))
    for path in paths:
        print(f"edged bench: wrote {path}", file=sys.stderr)
    return 1 if any(r.errors for r in records.values()) else 0


def _offline(args: argparse.Namespace, config: Config, chosen: BenchSet) -> dict[str, Any]:
    """The offline baseline's texts and cost (the base set once, even in a soak)."""
    from edged import store
    from edged.bench.offline import decode_isolated

    if config.asr.engine != "whisper":
        raise ConfigError("--compare offline decodes with Whisper: use it with --asr whisper")
    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    model_dir = store.bundle_path(store.load_catalogue(), models_dir, config.asr.whisper.bundle)
    print("edged bench: offline decode (beam 5, 30 s window) ...", file=sys.stderr, flush=True)
    record = decode_isolated(
        chosen.manifest, chosen.audio, model_dir, args.threads, config.asr.whisper.compute_type
    )
    return {
        "settings": record.settings,
        "load_s": record.load_s,
        "decode_s": record.decode_s,
        "cpu_s": record.cpu_s,
        "audio_s": record.audio_s,
        "texts": record.texts,
    }
