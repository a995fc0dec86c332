"""The `edged` command: translate recordings, manage models, run the daemon."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import queue
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edged import __version__
from edged.config import Config, load_config, replace
from edged.errors import ConfigError, EdgedError
from edged.options import add_engine_options, apply_engine_options

if TYPE_CHECKING:
    from edged.engines import Prepared
    from edged.mt.router import TranslationPlan

log = logging.getLogger("edged")

_EPILOG = """\
examples:
  edged translate speech.wav --to en --tts out.wav     any WAV: any rate, mono or stereo
  edged translate - --from es --to en < raw16k.pcm      raw 16 kHz s16le mono on stdin
  edged translate talk.wav --to en --to de --speak de --tts de.wav
                                                        several targets, one spoken
  edged translate talk.wav --to en --serve              watch it on http://127.0.0.1:8080/
  edged models install default                          fetch and verify the default bundles
  edged models list                                     what the catalogue has and what is installed
  edged routes --to en                                  which pairs translate, by which route

Events are printed to stdout as JSON Lines; messages go to stderr.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged",
        description="Offline speech translation: speech in, transcripts, translations and "
        "synthesized speech out, all on the device.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file (default: built-in defaults, or $EDGED_CONFIG)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="installed model bundles (default: $EDGED_MODELS_DIR or ~/.local/share/edged/models)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    # -c and --models-dir work before or after the command (`edged run -c f.toml`), and the
    # command's --help lists them. SUPPRESS as default: absent after the command, the value
    # given before it stands.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="TOML config file (default: built-in defaults, or $EDGED_CONFIG)",
    )
    common.add_argument(
        "--models-dir",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="installed model bundles (default: $EDGED_MODELS_DIR or ~/.local/share/edged/models)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tr = sub.add_parser(
        "translate",
        parents=[common],
        help="translate a WAV file or raw PCM on stdin, printing events as JSON Lines",
        description="Recognise, translate and optionally speak a recording. Prints one JSON "
        "event per line (speech.start, asr.partial, asr.final, mt.interim, mt.final, "
        "tts.start, tts.end, error) to stdout as it goes.",
        epilog=examples(
            "edged translate speech.wav --to en --tts out.wav",
            "edged translate - --from es --to en < raw16k.pcm",
            "edged translate talk.wav --to en --to de --speak de --tts de.wav",
            "edged translate talk.wav --to en --realtime --no-interim",
            "edged translate talk.wav --conversation en es --tts spoken.wav",
        ),
    )
    tr.add_argument(
        "input",
        help="WAV file or FIFO (any rate, mono or stereo, PCM or float; streamed, so any "
        "length), or - for raw 16 kHz mono s16le on stdin",
    )
    add_engine_options(tr, targets_default="from config: en")
    tr.add_argument(
        "--speak",
        metavar="LANG",
        help="which target --tts speaks (default: the first --to)",
    )
    tr.add_argument(
        "--tts",
        type=Path,
        metavar="OUT.wav",
        help="write synthesized speech of the final translations to this WAV file "
        "(default: no speech; `edged run` plays it on the speaker)",
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
    tr.add_argument(
        "--conversation",
        nargs="+",
        metavar="LANG",
        help="two people, two (or more) languages: each utterance is translated into the "
        "others and spoken in the listener's language (default: off; [conversation] in the "
        "config)",
    )
    tr.add_argument(
        "--serve",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="ADDR",
        help="show the live page on http://ADDR (default 127.0.0.1:8080) while translating, "
        "paced in real time unless --no-realtime, and keep serving after the end until "
        "Ctrl-C or SIGTERM",
    )

    models = sub.add_parser(
        "models",
        parents=[common],
        help="list, install and verify model bundles",
        epilog=examples("edged models list", "edged models install default", "edged models verify"),
    )
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser(
        "list",
        help="catalogue bundles and groups, with install state",
        epilog=examples(
            "edged models list", "edged --models-dir /var/lib/edged/models models list"
        ),
    )
    ins = msub.add_parser(
        "install",
        help="download, assemble and verify bundles or groups",
        epilog=examples("edged models install default", "edged models install opus-mt --force"),
    )
    ins.add_argument("names", nargs="+", metavar="NAME", help="bundle or group, e.g. default")
    ins.add_argument("--force", action="store_true", help="reinstall even if present")
    ver = msub.add_parser(
        "verify",
        help="check installed bundles against their checksums",
        epilog=examples("edged models verify", "edged models verify silero-vad whisper-base"),
    )
    ver.add_argument("names", nargs="*", metavar="NAME", help="default: every installed bundle")

    routes = sub.add_parser(
        "routes",
        parents=[common],
        help="which source->target pairs the installed engines translate, and by which route",
        description="List every language pair the configured engines (mt.engines, "
        "mt.ct2_bundles, the installed Apertium pairs, Whisper's speech->English for "
        "asr.languages) can translate and the route each takes: the one `edged translate` "
        "and the daemon use. With --from/--to, only those pairs, and the ones without a "
        "route with what would provide one.",
        epilog=examples("edged routes --from fr --to en --to de", "edged routes --to de --json"),
    )
    add_engine_options(routes, targets_default="every language reached")
    routes.add_argument(
        "--json", action="store_true", help="one JSON object per pair on stdout (default: a table)"
    )

    sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon: microphone, speaker, MQTT (what the systemd service starts)",
        description="Capture the microphone over ALSA, translate, speak on the speaker, "
        "publish events to MQTT and obey commands on <prefix>/<device_id>/cmd. Configured by "
        "the TOML file (-c); SIGTERM stops after finishing the current utterance, SIGHUP "
        "reloads the config. Exit 78 on a bad config.",
        epilog=examples(
            "edged run -c /etc/edged/edged.toml", "edged run --models-dir /var/lib/edged/models"
        ),
    )
    sub.add_parser(
        "schema",
        help="print the JSON Schema of the events",
        epilog=examples("edged schema > events.schema.json"),
    )

    from edged.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="measure latency, throughput, memory and quality on recordings",
        description="Feed a recording (--set bundled, realspeech or conversation, or your "
        "own) through the pipeline paced in real time and write bench.json, bench.md and "
        "plots; --compare naive,offline adds the VAD-then-transcribe pipeline and the "
        "offline Whisper baseline side by side. Needs pip install 'edged[bench]'.",
        epilog=examples(
            "edged bench --set realspeech --compare offline",
            "edged bench --audio talk.wav --manifest talk.json --threads 4",
        ),
    )
    add_bench_arguments(bench)
    for each in _parsers(parser):  # commands added anywhere show their defaults too
        each.formatter_class = HelpFormatter
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default unless it already names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or text == argparse.SUPPRESS:
            return text
        default = action.default
        if default is argparse.SUPPRESS:
            return text
        if isinstance(default, bool) or action.nargs == 0:
            shown = "on" if default else "off"
        elif default is None:
            shown = "none"
        else:
            shown = str(default).replace("%", "%%")
        return f"{text} (default: {shown})"


def examples(*lines: str) -> str:
    """A command's --help epilog: one example command per line."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every (sub)command parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _parsers(child)
    return found


def command_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command that runs something, by its words: () is `edged` itself, ("models",
    "list") is `edged models list`. A parser with subcommands is not one."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not path or not subcommands:
        found[path] = parser
    for action in subcommands:
        for name, child in action.choices.items():
            found |= command_parsers(child, (*path, name))
    return found


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
        if args.command == "routes":
            return _routes(args)
        if args.command == "run":
            from edged.service import run_daemon

            if args.models_dir:  # the daemon re-reads its config on SIGHUP: pass it down
                os.environ["EDGED_MODELS_DIR"] = str(args.models_dir)
            return run_daemon(config_path(args))
        if args.command == "bench":
            require_bench_packages()
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


BENCH_PACKAGES = ("jiwer", "sacrebleu", "matplotlib")
"""What `edged bench` needs beyond the service's dependencies: the `bench` extra."""


def require_bench_packages() -> None:
    """EdgedError naming the extra if a benchmark package is missing: found now, not after
    minutes of measuring (a service installed with `pip install .` lacks them)."""
    missing = []
    for name in BENCH_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise EdgedError(
            f"edged bench needs {', '.join(missing)}, not installed: pip install 'edged[bench]'"
        )


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
    # --serve is for watching: real time unless asked otherwise.
    realtime = args.realtime if args.realtime is not None else bool(args.serve)
    config = replace(config, "audio", realtime=realtime)
    config = apply_engine_options(config, args)
    if args.conversation:
        config = replace(config, "conversation", enabled=True, languages=tuple(args.conversation))
    if args.speak:
        if args.speak not in config.mt.targets:
            raise ConfigError(
                f"--speak {args.speak}: not one of the targets {', '.join(config.mt.targets)}"
            )
        if args.tts is None:
            # translate never plays sound: a file run next to a speaker would hear itself,
            # and a board without one would fail late. The daemon (edged run) plays.
            raise ConfigError(
                f"--speak {args.speak}: speech goes to a WAV file here; add --tts FILE "
                "(edged run plays it on the speaker)"
            )
        config = replace(config, "tts", speak=args.speak)
    config = replace(config, "tts", enabled=args.tts is not None, output=str(args.tts or ""))
    if args.no_interim:
        config = replace(config, "publish", interim=False)
        config = replace(config, "mt", interim=False)
    prepared = prepare(config)  # validates everything before any model loads
    if args.serve:
        return _translate_and_serve(prepared, args.serve)
    return run_file(prepared)


def _translate_and_serve(prepared: Prepared, listen: str) -> int:
    """`translate --serve`: the live page shows the recording's events, and stays up after
    the end until Ctrl-C or SIGTERM (exit 0)."""
    from edged.publish.web import WebServer
    from edged.runner import run_file

    c = prepared.config
    web = WebServer(listen, device=c.device_id, key="--serve")
    web.start()  # a bad or busy address fails here, before any model loads
    try:
        web.set_state(
            {
                "state": "online",
                "languages": list(prepared.languages),
                "targets": list(c.mt.targets),
                "speak": prepared.speak,
                "listening": True,
                "conversation": list(prepared.conversation) or None,
            }
        )
        print(f"edged: live page on {web.url}", file=sys.stderr, flush=True)
        run_file(prepared, extra_publishers=[web])
        web.set_state({"listening": False})
        print(
            f"edged: translation done; still serving {web.url} until Ctrl-C or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_stop()
    finally:
        web.set_state({"state": "offline"})
        web.close()
    return 0


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM."""
    stops: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in a signal handler
    previous = {
        signum: signal.signal(signum, lambda n, _f: stops.put(n))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        stops.get()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


def _routes(args: argparse.Namespace) -> int:
    from edged import store
    from edged.engines import make_router
    from edged.langs import validate_lang

    config = apply_engine_options(load_cli_config(args), args)
    models_dir = Path(config.models_dir) if config.models_dir else store.default_models_dir()
    catalogue = store.load_catalogue()
    languages = tuple(validate_lang(code, "--from") for code in config.asr.languages)
    targets = [validate_lang(code, "--to") for code in args.targets] if args.targets else None
    sources = languages if args.src else None
    bundles = {
        name: store.bundle_path(catalogue, models_dir, name) for name in config.mt.ct2_bundles
    }
    router = make_router(config, languages, catalogue, bundles, models_dir)
    plans = router.routes(sources, targets)
    missing = []
    if sources is not None or targets is not None:
        served = {(plan.src, plan.tgt) for plan in plans}
        wanted = router.routes()  # every source any engine reads, for a --to without --from
        for src in sources or sorted({plan.src for plan in wanted} | set(languages)):
            for tgt in targets or sorted({plan.tgt for plan in wanted}):
                if src != tgt and (src, tgt) not in served:
                    missing.append(router.missing_pair(src, tgt))
    if args.json:
        for plan in plans:
            print(json.dumps(_route_json(plan), ensure_ascii=False))
        for absent in missing:
            print(json.dumps(absent.to_json() | {"engine": None}, ensure_ascii=False))
        return 0
    rows = [(f"{p.src} -> {p.tgt}", p.engine, _route_text(p)) for p in plans]
    rows += [(f"{m.src} -> {m.tgt}", "none", f"no route: {m.hint}") for m in missing]
    if not rows:
        print("no routes: no translation engine is installed (see `edged models list`)")
        return 0
    width = [max(len(row[i]) for row in rows) for i in (0, 1)]
    print(f"{'PAIR':<{width[0]}}  {'ENGINE':<{width[1]}}  ROUTE")
    for pair, engine, route in rows:
        print(f"{pair:<{width[0]}}  {engine:<{width[1]}}  {route}")
    return 0


def _route_text(plan: TranslationPlan) -> str:
    if plan.uses_whisper:
        text = plan.text_plan.path if plan.text_plan else "not translated"
        return f"{plan.path} (speech; partials: {text})"
    return plan.path


def _route_json(plan: TranslationPlan) -> dict[str, object]:
    hops = [{"engine": h.engine, "src": h.src, "tgt": h.tgt} for h in plan.hops]
    text = plan.text_plan.engine if plan.text_plan else None
    partials = text if plan.uses_whisper else plan.engine
    return {
        "src": plan.src,
        "tgt": plan.tgt,
        "engine": plan.engine,
        "hops": hops,
        "partials": partials,
    }
