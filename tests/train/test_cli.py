"""`codelm train` argument wiring: flags, --set, --print-config, errors as CodelmError."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from codelm.errors import CodelmError
from codelm.train.cli import add_train_args, main, train_from_args

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_train_args(p)
    return p.parse_args(list(argv))


def test_print_config_applies_overrides(capsys):
    args = parse(
        str(CONFIGS / "sft.yaml"), "--set", "optim.lr=2e-4", "--set", "run.max_steps=7", "--print-config"
    )
    assert train_from_args(args) is None
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 2e-4 and printed["run"]["max_steps"] == 7 and printed["stage"] == "sft"


def test_train_from_args_runs_and_prints_the_checkpoint(tiny_checkpoint, chat_files, tmp_path, capsys):
    args = parse(
        str(CONFIGS / "sft.yaml"),
        "--set",
        f"model.init_from={tiny_checkpoint('llama')}",
        "--set",
        f"sft.data={chat_files['sft']}",
        "--set",
        f"run.out_dir={tmp_path}",
        "--set",
        "run.max_steps=2",
        "--set",
        "run.device=cpu",
        "--set",
        "run.threads=1",
    )
    final = train_from_args(args)
    assert capsys.readouterr().out.strip() == str(final)
    assert (final / "model.safetensors").is_file()


def test_errors_are_codelm_errors(tmp_path, capsys):
    with pytest.raises(CodelmError, match="does not exist"):
        train_from_args(parse(str(tmp_path / "missing.yaml")))
    assert main([str(tmp_path / "missing.yaml")]) == 1
    assert "codelm: error:" in capsys.readouterr().err
