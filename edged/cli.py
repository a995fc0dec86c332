"""The `edged` command: translate recordings, manage models, run the daemon."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from edged import __version__
from edged.config import Config, load_config, replace
from edged.errors import ConfigError, EdgedError
from edged.options import add_engine_options, apply_engine_options

log = logging.getLogger("edged")

_EPILOG = """\
examples:
  edged translate speech.wav --to en --tts out.wav     any WAV: any rate, mono or stereo
  edged translate - --from es --to en < raw16k.pcm      raw 16 kHz s16le mono on stdin
  edged translate talk.wav --to en --to de --speak de   several targets, one spoken
  edged models install default                          fetch and verify the default bundles
  edged models list                                     what the catalogue has and what is installed

Events are printed to stdout as JSON Lines; messages go to stderr.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged",
        description="Offline speech translation: speech in, transcripts, translations and "
        "synthesized speech out, all on the device.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help="TOML config file (default: built-in defaults, or $EDGED_CONFIG)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="installed model bundles (default: $EDGED_MODELS_DIR or ~/.local/share/edged/models)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    # -c and --models-dir work before or after the command (`edged run -c f.toml`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common.add_argument(
        "--models-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tr = sub.add_parser(
        "translate",
        parents=[common],
        help="translate a WAV file or raw PCM on stdin, printing events as JSON Lines",
        description="Recognise, translate and optionally speak a recording. Prints one JSON "
        "event per line (speech.start, asr.partial, asr.final, mt.interim, mt.final, "
        "tts.start, tts.end, error) to stdout as it goes.",
    )
    tr.add_argument(
        "input",
        help="WAV file (any rate, mono or stereo, PCM or float), or - for "
        "raw 16 kHz mono s16le on stdin",
    )
    add_engine_options(tr, targets_default="from config: en")
    tr.add_argument("--speak", metavar="LANG", help="which target to speak (default: the first)")
    tr.add_argument(
        "--tts",
        type=Path,
        metavar="OUT.wav",
        help="write synthesized speech of the final translations to this WAV file",
    )
    tr.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pace the input as a microphone would deliver it (default: off for "
        "files, as fast as possible)",
    )
    tr.add_argument(
        "--no-interim", action="store_true", help="only finals: no asr.partial or mt.interim events"
    )

    models = sub.add_parser(
        "models", parents=[common], help="list, install and verify model bundles"
    )
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("list", help="catalogue bundles and groups, with install state")
    ins = msub.add_parser("install", help="download, assemble and verify bundles or groups")
    ins.add_argument("names", nargs="+", metavar="NAME", help="bundle or group, e.g. default")
    ins.add_argument("--force", action="store_true", help="reinstall even if present")
    ver = msub.add_parser("verify", help="check installed bundles against their checksums")
    ver.add_argument("names", nargs="*", metavar="NAME", help="default: every installed bundle")

    sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon: microphone, speaker, MQTT (what the systemd service starts)",
        description="Capture the microphone over ALSA, translate, speak on the speaker, "
        "publish events to MQTT and obey commands on <prefix>/<device_id>/cmd. Configured by "
        "the TOML file (-c); SIGTERM stops after finishing the current utterance, SIGHUP "
        "reloads the config. Exit 78 on a bad config.",
    )
    sub.add_parser("schema", help="print the JSON Schema of the events")

    from edged.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="measure latency, throughput, memory and quality on recordings",
        description="Feed a recording (--set bundled, realspeech or conversation, or your "
        "own) through the pipeline paced in real time and write bench.json, bench.md and "
        "plots; --compare naive,offline adds the VAD-then-transcribe pipeline and the "
        "offline Whisper baseline side by side.",
    )
    add_bench_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose
        else logging.INFO
        if args.command == "run"
        else logging.WARNING,
        format="edged: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "translate":
            return _translate(args)
        if args.command == "models":
            return _models(args)
        if args.command == "run":
            from edged.service import run_daemon

            if args.models_dir:  # the daemon re-reads its config on SIGHUP: pass it down
                os.environ["EDGED_MODELS_DIR"] = str(args.models_dir)
            return run_daemon(config_path(args))
        if args.command == "bench":
            from edged.bench import run as run_bench

            return run_bench(args, load_cli_config(args))
        if args.command == "schema":
            from edged.events import json_schema

            print(json.dumps(json_schema(), indent=2))
            return 0
    except EdgedError as exc:
        print(f"edged: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edged: interrupted", file=sys.stderr)
        return 130
    return 2


def config_path(args: argparse.Namespace) -> Path | None:
    """-c, else $EDGED_CONFIG, else None (the built-in defaults)."""
    if args.config:
        return Path(args.config)
    return Path(os.environ["EDGED_CONFIG"]) if os.environ.get("EDGED_CONFIG") else None


def load_cli_config(args: argparse.Namespace) -> Config:
    """The config file (if any) with the global command-line overrides applied."""
    config = load_config(config_path(args))
    if args.models_dir:
        config = replace(config, "", models_dir=str(args.models_dir))
    return config


def _translate(args: argparse.Namespace) -> int:
    from edged.engines import prepare
    from edged.runner import run_file

    config = load_cli_config(args)
    if args.input == "-":
        config = replace(config, "audio", source="stdin", path="")
    else:
        config = replace(config, "audio", source="wav", path=args.input)
    config = replace(config, "audio", realtime=bool(args.realtime))
    config = apply_engine_options(config, args)
    if args.speak:
        if args.speak not in config.mt.targets:
            raise ConfigError(
                f"--speak {args.speak}: not one of the targets {', '.join(config.mt.targets)}"
            )
        config = replace(config, "tts", speak=args.speak)
    config = replace(config, "tts", enabled=args.tts is not None, output=str(args.tts or ""))
    if args.no_interim:
        config = replace(config, "publish", interim=False)
        config = replace(config, "mt", interim=False)
    prepared = prepare(config)  # validates everything before any model loads
    return run_file(prepared)


def _models(args: argparse.Namespace) -> int:
    from edged import store

    config = load_cli_config(args)
    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    catalogue = store.load_catalogue()
    if args.models_command == "list":
        return store.print_list(catalogue, models_dir)
    if args.models_command == "install":
        store.install(catalogue, args.names, models_dir, force=args.force)
        return 0
    problems = store.verify(catalogue, args.names, models_dir)
    for problem in problems:
        print(f"edged: {problem}", file=sys.stderr)
    return 1 if problems else 0
