"""Training: tokenizers, model init, the one training loop and its stages (pretrain/FIM, SFT, DPO).

Entry points (wired into the `codelm` CLI):

    codelm tokenizer train --family llama --input src/ --vocab-size 32000 --out tok/
    codelm train configs/train/pretrain-fim.yaml [--resume] [--set optim.lr=1e-3 ...]

From Python: `codelm.train.loop.train(config)` with a `codelm.train.config.TrainConfig`
(`load_config(path, overrides)`). Importing this package imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_config", "tokenizer_train_from_args", "train", "train_from_args"]


def __getattr__(name: str) -> Any:  # lazy: `import codelm.train` must stay cheap for the CLI
    if name == "load_config":
        from codelm.train.config import load_config

        return load_config
    if name == "train":
        from codelm.train.loop import train

        return train
    if name == "train_from_args":
        from codelm.train.cli import train_from_args

        return train_from_args
    if name == "tokenizer_train_from_args":
        from codelm.train.cli import tokenizer_train_from_args

        return tokenizer_train_from_args
    raise AttributeError(f"module 'codelm.train' has no attribute {name!r}")
