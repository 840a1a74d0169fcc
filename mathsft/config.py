"""Typed configs: YAML files plus dotted command-line overrides (``train.lr=2e-5``).

Every stage defines a pydantic model with ``extra="forbid"`` so a typo in a key is an error,
not a silently ignored setting. ``load_config`` merges file < overrides and validates;
``save_resolved`` writes what actually ran next to the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which key and why."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_override(item: str) -> dict[str, Any]:
    """``"train.lr=2e-5"`` -> ``{"train": {"lr": 2e-5}}`` (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from None
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads "2e-5" as a string
    nested: dict[str, Any] = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (update wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def build_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
    section: str | None = None,
) -> T:
    """Validate ``base < file < overrides`` into ``cls``.

    ``section`` picks one top-level key of the file (``train:``) for stage commands that read
    a shared experiment file; overrides may then be given with or without that prefix.
    """
    # start from the model's own defaults, so an override of one nested key (``train.lr``) keeps the
    # section's other defaults instead of rebuilding it from its class defaults
    data: dict[str, Any] = deep_merge(cls().model_dump(), base or {})
    source = "defaults"
    if path is not None:
        file_data = read_yaml(path)
        if section is not None:
            file_data = file_data.get(section, {}) or {}
        data = deep_merge(data, file_data)
        source = str(path)
    for item in overrides or []:
        parsed = parse_override(item)
        if section is not None and section in parsed and len(parsed) == 1:
            parsed = parsed[section]
        data = deep_merge(data, parsed)
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def build_stage_config(
    cls: type[T], path: str | Path | None, args: list[str], flags: dict[str, Any], section: str
) -> T:
    """The config of a stage command (``mathsft train``, ``mathsft rl``): ``path`` holds the stage's keys,
    or is an experiment file whose ``section`` (``train:``, ``rl:``) holds them; then the dotted ``args``,
    then the command's own ``flags`` (None: not given)."""
    overrides = [*args, *(f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None)]
    use = None
    if path is not None and Path(path).is_file():  # a missing file is build_config's error
        loaded = read_yaml(path)
        use = section if isinstance(loaded.get(section), dict) else None
    return build_config(cls, path, overrides, section=use)


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        # a whole-config check (no field) would echo the entire config as its input: its message says it all
        echo = e["type"] != "missing" and bool(e["loc"])
        lines.append(f"  {loc}: {msg} (got {e.get('input')!r})" if echo else f"  {loc}: {msg}")
    return "\n".join(lines)


def save_resolved(cfg: BaseModel, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the config that actually ran next to the run's outputs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path
