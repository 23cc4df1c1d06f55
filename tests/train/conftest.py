"""Training fixtures: shards of tokenized stdlib code, toy SFT and DPO files, and a config builder.

Every training test runs a tiny model for a few steps on one CPU thread with a fixed seed, so losses
are reproducible and can be compared against values stored in the test files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STDLIB_BYTES = 120_000
HELDOUT_BYTES = 30_000  # the stdlib files after the training ones: held-out shards


@pytest.fixture(scope="session")
def tokenizer_of(tiny_checkpoint):
    """tokenizer_of(family) -> the tiny checkpoint's tokenizer (cached)."""
    from transformers import AutoTokenizer

    cache: dict = {}

    def get(family: str):
        if family not in cache:
            cache[family] = AutoTokenizer.from_pretrained(tiny_checkpoint(family))
        return cache[family]

    return get


@pytest.fixture(scope="session")
def shards_of(tmp_path_factory, tokenizer_of):
    """shards_of(family) -> a shard directory of stdlib sources tokenized with that family's tokenizer;
    shards_of(family, heldout=True) -> the next stdlib files, never in the training shards."""
    from codelm.models.tiny import stdlib_sources
    from codelm.train.shards import tokenizer_info, write_shards

    root = tmp_path_factory.mktemp("shards")
    built: dict[tuple[str, bool], Path] = {}

    def get(family: str, heldout: bool = False) -> Path:
        if (family, heldout) not in built:
            tok = tokenizer_of(family)
            texts = list(stdlib_sources(STDLIB_BYTES))
            if heldout:  # the files after the training ones, up to HELDOUT_BYTES
                rest, texts = list(stdlib_sources(10 * STDLIB_BYTES))[len(texts) :], []
                while sum(map(len, texts)) < HELDOUT_BYTES:
                    texts.append(rest.pop(0))
            docs = tok(texts, add_special_tokens=False, verbose=False)["input_ids"]
            built[family, heldout] = write_shards(
                docs,
                root / (family + "-heldout" * heldout),
                vocab_size=len(tok),
                tokens_per_shard=8_000,
                tokenizer=tokenizer_info(tok, family),
                lineage={"source": "python stdlib", "max_bytes": STDLIB_BYTES, "heldout": heldout},
            )
        return built[family, heldout]

    return get


@pytest.fixture(scope="session")
def pretrain_run(tmp_path_factory, tiny_checkpoint, shards_of):
    """A FIM pretraining run of a new tiny Llama, shared by the stage and output tests."""
    from codelm.train.config import load_config
    from codelm.train.loop import train

    out = tmp_path_factory.mktemp("pretrain") / "run"
    cfg = load_config(
        None,
        [
            "stage=pretrain",
            "model.family=llama",
            f"model.tokenizer={tiny_checkpoint('llama')}",
            f"pretrain.shards=[{shards_of('llama')}]",
            "pretrain.fim_rate=0.5",
            "pretrain.fim_spm_rate=0.5",
            "batch.seq_len=64",
            "batch.micro_batch_size=2",
            "batch.global_batch_size=4",
            "optim.lr=1.0e-2",
            "optim.warmup_steps=1",
            "run.max_steps=6",
            "run.save_every=3",
            f"run.out_dir={out}",
            "run.threads=1",
            "run.device=cpu",
        ],
    )
    return train(cfg)


def _sft_records(numbers: range = range(48)) -> list[dict]:
    out = []
    for n in numbers:
        code = f"def f{n}(x):\n    return x + {n}\n"
        out.append(
            {
                "messages": [
                    {"role": "user", "content": f"Write f{n} adding {n}."},
                    {"role": "assistant", "content": code},
                ]
            }
        )
    return out


def _dpo_records(numbers: range = range(32)) -> list[dict]:
    # Separable: the chosen reply is always tidy code, the rejected one always shouting noise.
    out = []
    for n in numbers:
        out.append(
            {
                "prompt": f"Return {n} from a function.",
                "chosen": f"def f():\n    return {n}\n",
                "rejected": "!!! ??? !!! ??? !!!",
            }
        )
    return out


@pytest.fixture(scope="session")
def chat_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    files = {
        "sft": _sft_records(),
        "dpo": _dpo_records(),
        "sft_heldout": _sft_records(range(100, 112)),  # other numbers: never trained on
        "dpo_heldout": _dpo_records(range(100, 108)),
    }
    for name, records in files.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return {name: root / f"{name}.jsonl" for name in files}


@pytest.fixture
def make_config(tmp_path):
    """make_config(stage, *overrides) -> TrainConfig with small, deterministic CPU settings."""
    from codelm.train.config import load_config

    def build(stage: str, *overrides: str, out: Path | None = None):
        base = [
            f"stage={stage}",
            "batch.seq_len=64",
            "batch.micro_batch_size=2",
            "batch.global_batch_size=4",
            "optim.lr=1.0e-2",
            "optim.warmup_steps=1",
            "run.max_steps=6",
            f"run.out_dir={out or tmp_path / 'run'}",
            "run.threads=1",
            "run.device=cpu",
            "run.plot=false",
            "run.tensorboard=false",
        ]
        return load_config(None, [*base, *overrides])

    return build


def losses(out_dir: Path) -> list[float]:
    """The loss curve a run logged (records with a training loss: not the held-out one of step 0)."""
    from codelm.train.metrics import read_metrics

    return [r["loss"] for r in read_metrics(Path(out_dir) / "metrics.jsonl") if "loss" in r]


@pytest.fixture
def read_losses():
    return losses


@pytest.fixture
def launch_ddp(tmp_path):
    """launch_ddp(cfg, timeout) -> the finished `accelerate launch` of `cfg` in two CPU processes (gloo,
    the shipped ddp-cpu.yaml), on a free port: another test session on this machine may hold a fixed one."""
    import os
    import socket
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[2]

    def launch(cfg, timeout: float) -> subprocess.CompletedProcess:
        path = tmp_path / "ddp.yaml"
        path.write_text(yaml.safe_dump(cfg.to_dict()))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo / "src")}
        cmd = [
            str(Path(sys.executable).with_name("accelerate")),
            "launch",
            "--config_file",
            str(repo / "configs/train/accelerate/ddp-cpu.yaml"),
            "--main_process_port",
            str(port),
            "-m",
            "codelm.train.cli",
            str(path),
        ]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

    return launch
