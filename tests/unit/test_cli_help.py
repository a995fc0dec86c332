"""`edged --help` and every command's --help: each option with its default, examples, and the
README's command list in agreement (issue 12, point 4). Generic: a command or option added
anywhere in the parser is checked without touching this file."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest
from conftest import REPO

from edged.cli import build_parser, command_parsers

ROOT = build_parser()
COMMANDS = command_parsers(ROOT)
_OPTION = re.compile(r"^--?[A-Za-z][\w-]*$")
_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def name(path: tuple[str, ...]) -> str:
    return " ".join(("edged", *path))


def chain(path: tuple[str, ...]) -> list[argparse.ArgumentParser]:
    """The parsers `edged <path>` goes through, root first."""
    parsers, node = [ROOT], ROOT
    for word in path:
        (sub,) = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        node = sub.choices[word]
        parsers.append(node)
    return parsers


def options(path: tuple[str, ...]) -> list[argparse.Action]:
    """The options of a command: its own and its parents' (not --help), without the global
    ones a subcommand repeats (-c, --models-dir: the root line lists them)."""
    parsers = chain(path)[1:] if path else [ROOT]
    root_flags = {flag for a in ROOT._actions for flag in a.option_strings}
    found: dict[str, argparse.Action] = {}
    for parser in parsers:
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            if path and set(action.option_strings) <= root_flags:
                continue
            found.setdefault(action.option_strings[-1], action)
    return list(found.values())


def readme_commands() -> dict[tuple[str, ...], set[str]]:
    """The README's command list: command words -> the option flags written on its line."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Commands\n", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    lines: list[str] = []
    for line in block.splitlines():
        if line.startswith("edged"):
            lines.append(line)
        elif line.strip():
            lines[-1] += " " + line.strip()
    listed: dict[tuple[str, ...], set[str]] = {}
    for line in lines:
        tokens = [t.strip("[]{}|.") for t in line.split()[1:]]
        words: list[str] = []
        for token in tokens:
            if not _WORD.match(token):
                break
            words.append(token)
        path = tuple(words)
        assert path not in listed, f"README lists `{name(path)}` twice"
        listed[path] = {t for t in tokens if _OPTION.match(t)}
    return listed


@pytest.mark.parametrize("path", list(COMMANDS), ids=name)
def test_every_option_shows_its_default_and_the_command_has_examples(path) -> None:
    parser = chain(path)[-1]
    help_text = parser.format_help()
    assert "examples:\n  edged" in help_text, f"`{name(path)} --help` has no examples"
    formatter = parser._get_formatter()
    for action in options(path) + [a for a in parser._actions if a.option_strings]:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        shown = formatter._expand_help(action) if action.help else ""
        assert "default" in shown, f"`{name(path)} --help`: {action.option_strings} has no default"


def test_the_readme_command_list_matches_the_parser() -> None:
    listed = readme_commands()
    assert sorted(listed) == sorted(COMMANDS), "README ## Commands and `edged --help` differ"
    for path in COMMANDS:
        wanted = options(path)
        written = listed[path]
        for action in wanted:
            assert set(action.option_strings) & written, (
                f"README: `{name(path)}` does not list {'/'.join(action.option_strings)}"
            )
        known = {flag for action in wanted for flag in action.option_strings}
        assert written <= known, f"README: `{name(path)}` lists unknown {written - known}"


def test_run_help_shows_the_config_option() -> None:
    """Defect 11 of issue 10, through the real command."""
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "-c FILE, --config FILE" in proc.stdout
    assert "examples:" in proc.stdout
