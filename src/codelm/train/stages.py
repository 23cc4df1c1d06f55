"""The stages: which source and which objective each one hands to the one training loop.

    pretrain  packed shard documents, FIM on the fly; causal LM (long context = pretrain with a longer
              seq_len and a new rope_theta, continued from a checkpoint)
    sft       packed chat conversations; causal LM on assistant tokens only
    dpo       preference pairs; DPO against a frozen reference (a model, or log-probs computed once)
    rl        completions sampled from the policy each step, scored by executing tests (train/rl.py)

Each stage may also carry held-out rows of the same kind (train/heldout.py), scored with its objective.
Everything else (optimizer, schedule, accumulation, checkpoints, metrics) is the loop's, shared.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from codelm.models.registry import Family
from codelm.train.chat import ChatEncoder, DPOSource, SFTSource, file_sha256
from codelm.train.config import TrainConfig
from codelm.train.fim import FimTransform
from codelm.train.heldout import HeldOut, make_heldout
from codelm.train.objectives import DPO, CausalLM
from codelm.train.packing import IGNORE, Row, collate
from codelm.train.sources import PretrainSource, Source


@dataclass
class Stage:
    source: Source
    objective: Any  # CausalLM, DPO, or the rl stage's GRPOLoss
    heldout: HeldOut | None = None  # rows never trained on, for the held-out loss (train/heldout.py)
    # run -> produce(): a stage whose data depends on the current weights (rl) makes each step's data
    # itself, in the training thread; the others are read ahead by the loop's prefetcher
    producer: Callable[[Any], Callable[[], Any]] | None = None
    close: Callable[[], None] | None = None  # releases what the stage holds (the rl sandbox pool)
    settings: Any = None  # the producer's settings (rl)
    reference: torch.nn.Module | None = None  # a frozen reference the producer uses (rl with KL)

    def units(self, rows: list[Row]) -> int:
        """Loss units in `rows`: target tokens, or preference pairs."""
        if isinstance(self.objective, DPO):
            return len(rows) // 2
        return int(sum((r.labels[1:] != IGNORE).sum() for r in rows))


def _pretrain_source(
    cfg: TrainConfig,
    shards: list[str],
    fim: tuple[float, float | None, float],
    tokenizer: Any,
    family: Family,
    seed: int,
    shuffle: bool = True,
) -> Any:
    """Rows packed from shard documents with FIM applied on the fly (pretraining, and SFT's replay)."""
    from codelm.train.shards import ShardReader

    reader = ShardReader(shards)
    reader.check_tokenizer(tokenizer)
    transform = FimTransform(family, tokenizer, *fim, max_tokens=cfg.batch.seq_len)
    spec = family.tokenizer
    bos = tokenizer.convert_tokens_to_ids(spec.bos) if spec.add_bos else None
    eos = tokenizer.convert_tokens_to_ids(spec.eos)
    return PretrainSource(
        reader, cfg.batch.seq_len, transform, bos_id=bos, eos_id=eos, seed=seed, shuffle=shuffle
    )


def _with_replay(cfg: TrainConfig, source: Any, tokenizer: Any, family: Family) -> Any:
    """The stage's rows with `replay_fraction` of pretraining rows mixed in (train/replay.py: SFT, and
    pretraining on narrow data); the replayed rows are shuffled from a buffer of 1,024, as
    pretraining's, with their own seed."""
    from codelm.train.replay import Replay
    from codelm.train.row_shuffle import RowShuffle

    data, seed = cfg.data, cfg.run.seed + 1
    fim = (data.replay_fim_rate, data.replay_fim_spm_rate, data.replay_fim_line_rate)
    rows = _pretrain_source(cfg, data.replay_shards, fim, tokenizer, family, seed)
    return Replay(source, RowShuffle(rows, 1024, seed), data.replay_fraction)


def build_stage(
    cfg: TrainConfig, tokenizer: Any, family: Family, model: torch.nn.Module, device: torch.device
) -> Stage:
    """Source and objective for `cfg.stage`. Call before the model is wrapped for distribution."""
    seed, seq_len, mode = cfg.run.seed, cfg.batch.seq_len, cfg.model.packed_attention
    if cfg.stage == "pretrain":
        data = cfg.data
        fim = (data.fim_rate, data.fim_spm_rate, data.fim_line_rate)
        source = _pretrain_source(cfg, data.shards, fim, tokenizer, family, seed, data.shuffle)
        if cfg.data.row_shuffle:
            from codelm.train.row_shuffle import RowShuffle

            source = RowShuffle(source, cfg.data.row_shuffle, seed)
        if cfg.data.replay_fraction:
            source = _with_replay(cfg, source, tokenizer, family)
        objective = CausalLM(mode)
        return Stage(source, objective, make_heldout(cfg, tokenizer, family, objective))
    if cfg.stage == "rl":
        from codelm.train.rl import build_rl_stage

        return build_rl_stage(cfg, tokenizer, family, model, device)
    encoder = ChatEncoder(tokenizer, family)
    if cfg.stage == "sft":
        source = SFTSource(
            cfg.data.data, encoder, seq_len, packing=cfg.data.packing, seed=seed, shuffle=cfg.data.shuffle
        )
        if cfg.data.replay_fraction:
            source = _with_replay(cfg, source, tokenizer, family)
        objective = CausalLM(mode)
        return Stage(source, objective, make_heldout(cfg, tokenizer, family, objective))
    dpo = DPOSource(cfg.data.data, encoder, seq_len, seed=seed, shuffle=cfg.data.shuffle)
    if cfg.data.reference_model:
        reference = AutoModelForCausalLM.from_pretrained(cfg.data.reference_model, dtype=torch.float32)
    else:
        reference = copy.deepcopy(model)  # the starting weights, frozen
    reference.requires_grad_(False).eval().to(device)
    objective = DPO(cfg.data.beta, reference, mode, cfg.data.nll_weight)
    heldout = make_heldout(cfg, tokenizer, family, objective)  # while the reference is still here
    if cfg.data.reference == "precomputed":
        pad = tokenizer.convert_tokens_to_ids(family.tokenizer.pad)
        dpo.refs = precomputed_reference(cfg, dpo, objective, pad, device)
        objective.reference = None  # frees the copy: the log-probs ride along with the rows
    return Stage(dpo, objective, heldout)


def precomputed_reference(
    cfg: TrainConfig, source: DPOSource, objective: DPO, pad_id: int, device: torch.device
) -> np.ndarray:
    """Reference log-probs [pairs, 2], cached in OUT/dpo_reference.json so a resume reuses them."""
    cache = Path(cfg.run.out_dir) / "dpo_reference.json"
    key = {
        "data_sha256": file_sha256(source.path),
        "reference": cfg.data.reference_model or cfg.model.init_from,
        "seq_len": cfg.batch.seq_len,
        "pairs": len(source.pairs),
    }
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved["key"] == key:
            return np.asarray(saved["logps"], dtype=np.float64)
    rows = [row for pair in source.pairs for row in pair]
    out = []
    step = 2 * cfg.batch.micro_batch_size
    for i in range(0, len(rows), step):
        batch = collate(rows[i : i + step], pad_id).to(device)
        with torch.no_grad():
            out.append(objective.sequence_logprobs(objective.reference, batch).double().cpu())
    logps = torch.cat(out).view(-1, 2).numpy()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")  # several processes may write
    tmp.write_text(json.dumps({"key": key, "logps": logps.tolist()}))
    tmp.replace(cache)
    return logps
