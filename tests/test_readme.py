"""README's commands exist: every ``mathsft <command>`` it names, every ``--option`` and ``key=value`` its
examples pass.

A user copies commands from README first; one that ``mathsft --help`` does not know fails on first contact.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer.main

from mathsft.cli import app
from mathsft.config import build_config
from mathsft.evaluation.config import EvalConfig
from mathsft.experiments.config import ExperimentConfig
from mathsft.rl.config import RLConfig
from mathsft.traces.config import TracesConfig
from mathsft.training.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"

# `mathsft eval`, `mathsft data prepare / show / check-contamination`, `python -m mathsft train`, torchrun's `-m mathsft train`
_COMMAND = re.compile(r"(?:^|[\s`(])mathsft ([a-z][a-z-]*)((?: (?:/ )?[a-z][a-z-]*)*)")


def _root() -> click.Group:
    return typer.main.get_command(app)


def _code_lines(text: str) -> list[str]:
    """Lines of the bash blocks (continuations joined) and the inline code spans of the prose."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return lines + re.findall(r"`([^`]+)`", prose)


def _named_commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, words after it) for every `mathsft <command> ...` in code."""
    found = []
    for line in _code_lines(text):
        for match in _COMMAND.finditer(line.split("#")[0]):
            found.append((match.group(1), match.group(2).replace("/", " ").split()))
    return found


def test_readme_names_commands_at_all() -> None:
    named = {command for command, _ in _named_commands(README.read_text())}
    assert {"run", "eval", "train", "rl", "traces", "compare", "data"} <= named


@pytest.mark.parametrize("command,words", _named_commands(README.read_text()))
def test_every_command_readme_names_exists(command: str, words: list[str]) -> None:
    root = _root()
    assert command in root.commands, f"README names `mathsft {command}`, which `mathsft --help` does not list"
    group = root.commands[command]
    if isinstance(group, click.Group):
        for sub in words:
            assert sub in group.commands, f"README names `mathsft {command} {sub}`, not in its --help"


def _options_by_command(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in _code_lines(text):
        code = line.split(" # ")[0]
        match = _COMMAND.search(code)
        if match is None or match.group(1) == "data":
            continue
        pairs += [(match.group(1), opt) for opt in re.findall(r"\s(--[a-z][a-z-]*)", code[match.end(1) :])]
    return sorted(set(pairs))


@pytest.mark.parametrize("command,option", _options_by_command(README.read_text()))
def test_every_option_readme_passes_is_in_the_commands_help(command: str, option: str) -> None:
    params = _root().commands[command].params
    assert any(option in p.opts for p in params), f"README passes `mathsft {command} {option}`, unknown to it"


CONFIGS = {
    "eval": EvalConfig,
    "train": TrainConfig,
    "rl": RLConfig,
    "traces": TracesConfig,
    "run": ExperimentConfig,
}


def _overrides_by_line(text: str) -> list[tuple[str, list[str]]]:
    """(command, its ``key=value`` overrides) for each README example that passes any."""
    found = []
    for line in _code_lines(text):
        code = line.split(" # ")[0]
        match = _COMMAND.search(code)
        if match is None or match.group(1) not in CONFIGS:
            continue
        # a ``--option NAME=VALUE`` (``--suite gsm8k=PATH``) is the option's value, not an override
        args = re.sub(r"--[a-z][a-z-]*\s+\S+=\S+", "", code[match.end(1) :])
        overrides = re.findall(r"(?<=\s)([a-z_][a-z_.]*=\S+)", args)
        if overrides:
            found.append((match.group(1), overrides))
    return found


def test_readme_passes_overrides_at_all() -> None:
    assert {command for command, _ in _overrides_by_line(README.read_text())} >= {
        "eval",
        "train",
        "rl",
        "run",
    }


@pytest.mark.parametrize("command,overrides", _overrides_by_line(README.read_text()))
def test_every_override_readme_passes_is_a_valid_config_key(command: str, overrides: list[str]) -> None:
    build_config(CONFIGS[command], None, overrides)  # unknown keys and bad values raise ConfigError


def test_the_checks_catch_a_command_that_does_not_exist() -> None:
    named = _named_commands("```bash\nmathsft finetune --out x\n```\n")
    assert named == [("finetune", [])]
    assert "finetune" not in _root().commands
    assert _overrides_by_line("`mathsft train ... lr=2e-5 learning_rate=1`") == [
        ("train", ["lr=2e-5", "learning_rate=1"])
    ]
    assert _overrides_by_line("`mathsft eval --suite gsm8k=data/t.jsonl calculator=true`") == [
        ("eval", ["calculator=true"])
    ]
    with pytest.raises(ValueError, match="learning_rate"):
        build_config(TrainConfig, None, ["learning_rate=1"])


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)}


def test_readme_links_into_benchmarks_land_on_a_section() -> None:
    links = re.findall(r"\]\(BENCHMARKS\.md#([^)]+)\)", README.read_text())
    assert len(links) >= 7  # one per headline claim of the results table
    missing = set(links) - _anchors(README.parent / "BENCHMARKS.md")
    assert not missing, f"README links to BENCHMARKS.md sections that do not exist: {sorted(missing)}"


def test_slug_matches_githubs_anchors() -> None:
    assert _slug("GSM8K: the one-hour recipe") == "gsm8k-the-one-hour-recipe"
    assert _slug("The RL stage (`mathsft/rl/`)") == "the-rl-stage-mathsftrl"
