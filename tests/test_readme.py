"""The README tells the truth: its Python code runs as written, and every `pftlite` command it
shows (code blocks and inline) is accepted by the CLI as written, names datasets that are
registered, built-in models that exist and files that are in the repository.

Running every command would take many minutes (the commands themselves are tested in
test_cli / test_phonons / test_tune / test_kappa_cli); here each one is resolved by click down
to its subcommand's option parser, which rejects unknown options, wrong option forms (e.g.
`--dim 2 2 2` unquoted) and missing arguments.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pftlite.cli import main
from pftlite.datasets import registry as datasets
from pftlite.potentials.files import builtin_models

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: usage templates in tables (placeholders, brackets), not commands
_TEMPLATE = re.compile(r"\[|\b(MODEL|DATA|STRUCTURES?|REFERENCE|REF|RUN|LR|N|B)\b|\.\.\.")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.DOTALL)


def _commands() -> list[str]:
    cmds = []
    for block in _blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("pftlite"):
                    cmds.append(part)
    for inline in re.findall(r"`(pftlite [^`]+)`", README):
        if not _TEMPLATE.search(inline) and len(inline.split()) > 2:  # not a bare command name
            cmds.append(inline.strip())
    return sorted(set(cmds))


COMMANDS = _commands()


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert blocks, "the README shows the Python API"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


def test_readme_has_commands():
    assert "pftlite tune" in COMMANDS
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_is_accepted_as_written(command):
    args = shlex.split(command)[1:]
    with main.make_context("pftlite", list(args), resilient_parsing=False) as ctx:
        name, cmd, rest = main.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        try:
            sub = cmd.make_context(name, rest, parent=ctx)
        except click.UsageError as exc:
            pytest.fail(f"README command rejected: {command!r}: {exc}")
    for key, value in sub.params.items():
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if not isinstance(v, str):
                continue
            if re.fullmatch(r"(mdr|mlearn|phonopy|phono3py|kappa|nequix)/\S+", v):
                known = v in datasets.DATASETS or any(k.startswith(v + "/") for k in datasets.DATASETS)
                assert known, f"{command!r}: {key}={v!r} is not a registered dataset"
            if v.startswith(("data/", "bench/")):
                assert (ROOT / v).exists(), f"{command!r}: {v} is not in the repository"
    model = sub.params.get("model") or (sub.params.get("args") or (None,))[0]
    if isinstance(model, str) and model.startswith("si-") and "." not in model:
        assert model in builtin_models(), f"{command!r}: no built-in model {model!r}"
