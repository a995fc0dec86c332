"""Command-line options that choose engines and languages, shared by `edged translate` and
`edged bench`: one spelling, one way of applying them to the config."""

from __future__ import annotations

import argparse

from edged.config import ASR_ENGINES, MT_ENGINES, Config, replace


def add_engine_options(parser: argparse.ArgumentParser, targets_default: str) -> None:
    """--from, --to, --asr and --mt; `targets_default` is what --to's help says."""
    parser.add_argument(
        "--from",
        dest="src",
        action="append",
        metavar="LANG",
        help="source language candidates (repeat; default from config: en es de fr)",
    )
    parser.add_argument(
        "--to",
        dest="targets",
        action="append",
        metavar="LANG",
        help=f"target language (repeat for several; default: {targets_default})",
    )
    parser.add_argument(
        "--asr", choices=ASR_ENGINES, help="recognizer engine (default from config: whisper)"
    )
    parser.add_argument(
        "--mt",
        action="append",
        choices=MT_ENGINES,
        metavar="ENGINE",
        help="translation engines in order of preference (repeat; "
        "default from config: ct2 apertium whisper)",
    )


def apply_engine_options(config: Config, args: argparse.Namespace) -> Config:
    """The config with whatever of --from/--to/--asr/--mt was given."""
    if args.src:
        config = replace(config, "asr", languages=tuple(args.src))
    if args.asr:
        config = replace(config, "asr", engine=args.asr)
    if args.mt:
        config = replace(config, "mt", engines=tuple(args.mt))
    if args.targets:
        config = replace(config, "mt", targets=tuple(args.targets))
    return config
