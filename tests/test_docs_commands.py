"""Every command line shown in the READMEs and docs parses with the app's real parser: its flags exist, its
required flags are there, a --config name is a bundled config, and every --set key names a field of the command's
config with a value of its type. Docs that drift from the CLI fail here."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from omnidiffusion.core.config import apply_override, config_names, load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "apps").glob("*/README.md")])
APPS = ("vision", "text", "audio", "molecules", "timeseries", "purification", "multimodal")
COMMAND = re.compile(r"^\s*(?:torchrun\s+(?:--\S+\s+)*-m\s+\S+\s+|)(omnidiffusion-(" + "|".join(APPS) + r"))\s")


def fenced_lines(text: str) -> list[str]:
    """The lines inside ```bash / ```sh / ``` blocks, continuation backslashes joined, comments dropped."""
    out, fence, pending = [], None, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:] if fence is None else None  # the block's language while inside one
            continue
        if fence not in ("", "bash", "sh", "console", "shell"):
            continue
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        out.append(line)
    return out


def usage_token(token: str) -> str:
    """Usage notation to one concrete argument: optional brackets dropped, the first of `a|b` alternatives."""
    return token.lstrip("[").rstrip("]").split("|")[0]


def doc_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in fenced_lines(doc.read_text()):
            m = COMMAND.match(line)
            if not m:
                continue
            tokens = shlex.split(line[m.end(1) :], comments=True)
            for i, token in enumerate(tokens):  # one command: stop at a pipe, a chain or a redirection
                if token in ("&&", "||", "|", ";", ">", ">>", "2>", "&"):
                    tokens = tokens[:i]
                    break
            tokens = [usage_token(t) for t in tokens if t.strip("[].")]
            found.append((f"{doc.relative_to(ROOT)}: {line.strip()[:90]}", m.group(2), tokens))
    return found


COMMANDS = doc_commands()


def test_the_docs_show_commands_of_every_app():
    shown = {app for _, app, _ in COMMANDS}
    assert shown == set(APPS), f"no command line found in the docs for {set(APPS) - shown}"


@pytest.mark.parametrize("where,app,tokens", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(where, app, tokens):
    cli = importlib.import_module(f"omnidiffusion.{app}.cli").cli
    if not tokens or tokens[0] in ("-h", "--help"):
        return
    try:
        args = cli.parser.parse_args(tokens)
    except SystemExit as e:  # argparse printed the reason
        pytest.fail(f"{where}: does not parse (exit {e.code})")
    config_cls, _ = cli.commands[args.command]
    if str(getattr(args, "checkpoint", None) or "").startswith("runs/"):  # written by `train`: it holds a config
        assert args.config is None, f"{where}: --config beside a trained --checkpoint is refused by the CLI"
    if args.config is not None and not args.config.endswith(".toml"):  # a bundled name: it must exist
        names = config_names(cli.package)
        assert args.config in names, f"{where}: --config {args.config}: not a bundled config ({names})"
        config = load_config(config_cls, args.config, package=cli.package)
    else:
        config = config_cls()
    for override in args.overrides:
        try:
            config = apply_override(config, override)
        except ValueError as e:
            pytest.fail(f"{where}: --set {override}: {e}")
