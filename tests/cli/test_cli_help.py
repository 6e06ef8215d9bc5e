"""``onnxgate --help`` and ``--version`` as a newcomer reads them, and the whole parser tree:
every flag of every subcommand says what it does and what it defaults to."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator

from gateway.cli import build_parser

MARKUP = re.compile(r"``|:(mod|class|func|data|meth|attr):`")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60
    )


def _parsers(
    parser: argparse.ArgumentParser, path: str = "onnxgate"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_version_names_the_installed_release() -> None:
    done = _cli("--version")
    assert done.returncode == 0
    assert re.fullmatch(r"onnxgate \d+\.\d+\.\d+\S*\n", done.stdout)


def test_top_level_help_is_plain_text() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    assert not MARKUP.search(done.stdout), done.stdout
    assert "--version" in done.stdout and "models" in done.stdout


def test_every_flag_of_every_subcommand_has_help_and_its_default() -> None:
    problems = []
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 40
    for path, parser in parsers:
        text = parser.format_help()
        if MARKUP.search(text):
            problems.append(f"{path}: reST markup in help")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.option_strings:
                continue  # positionals: named in the usage line; the test is about flags
            name = "/".join(action.option_strings)
            if not action.help or action.help == argparse.SUPPRESS:
                problems.append(f"{path} {name}: no help text")
                continue
            if action.option_strings and action.nargs != 0 and not action.required:
                shown = parser._get_formatter()._get_help_string(action) or ""
                if "default" not in shown:
                    problems.append(f"{path} {name}: help does not show its default")
    assert not problems, "\n".join(problems)
