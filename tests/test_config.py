from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mathsft.config import ConfigError, StrictModel, build_config, parse_override, save_resolved


class Train(StrictModel):
    lr: float = 1e-5
    steps: int = 10
    schedule: str = "cosine"


class Experiment(StrictModel):
    name: str = "x"
    train: Train = Train()


def test_override_values_are_typed() -> None:
    assert parse_override("train.lr=2e-5") == {"train": {"lr": 2e-5}}
    assert parse_override("train.steps=12") == {"train": {"steps": 12}}
    assert parse_override("name=run a") == {"name": "run a"}
    assert parse_override("--train.schedule=linear") == {"train": {"schedule": "linear"}}


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: base\ntrain:\n  lr: 1.0e-4\n  steps: 5\n")
    cfg = build_config(Experiment, path, ["train.lr=2e-5"])
    assert cfg.name == "base" and cfg.train.lr == 2e-5 and cfg.train.steps == 5


def test_section_accepts_prefixed_and_bare_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 7\n")
    cfg = build_config(Train, path, ["train.lr=3e-5", "schedule=linear"], section="train")
    assert (cfg.steps, cfg.lr, cfg.schedule) == (7, 3e-5, "linear")


def test_typo_and_bad_type_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key"):
        build_config(Experiment, None, ["train.lrr=1"])
    with pytest.raises(ConfigError, match=r"train\.steps"):
        build_config(Experiment, None, ["train.steps=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        build_config(Experiment, None, ["train.lr"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        build_config(Experiment, bad)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = build_config(Experiment, None, ["train.steps=3"])
    path = save_resolved(cfg, tmp_path / "run")
    assert Experiment.model_validate(yaml.safe_load(path.read_text())) == cfg
