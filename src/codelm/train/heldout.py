"""Held-out loss during training: a fixed set of rows the model never trains on, scored now and then.

    pretrain: {shards: [train/], heldout_shards: [heldout/]}     # or sft.heldout / dpo.heldout: a JSONL
    run: {eval_every: 50, eval_rows: 64}

The held-out rows are the first `run.eval_rows` rows (DPO: pairs) of the held-out data, cut exactly as
training rows are (same `seq_len`, BOS/EOS and packing) but in file order, without FIM and without
wrapping into a second pass, so the pretraining figure is the plain next-token loss that perplexity
is made of (exp of it, in nats per token). They are built once, before training; scoring them runs
the stage's own objective under `no_grad` with the model in eval mode, on the training threads and
precision, and touches neither the training source nor any RNG, so exact resume stays exact
(tests/train/test_resume.py). DPO's reference log-probs for them are computed once, up front.

Each process scores an equal share of the rows (so sharded models make the same number of forward
calls everywhere) and the sums are reduced: the figure does not depend on the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from codelm.errors import CodelmError
from codelm.train.objectives import DPO, CausalLM
from codelm.train.packing import Batch, Row, collate


@dataclass
class HeldOut:
    """The held-out rows, global and in order; a unit is a row, or a DPO pair of rows."""

    rows: list[Row]
    rows_per_unit: int  # 1, or 2 for DPO pairs

    def batches(self, rank: int, world: int, micro_units: int, pad_id: int) -> list[Batch]:
        """This process's equal share of the units, as micro-batches of `micro_units` units."""
        per = len(self.rows) // self.rows_per_unit // world
        if per == 0:
            raise CodelmError(f"the held-out data has fewer units than the {world} processes")
        rpu = self.rows_per_unit
        mine = self.rows[rank * per * rpu : (rank + 1) * per * rpu]
        step = micro_units * rpu
        return [collate(mine[i : i + step], pad_id) for i in range(0, len(mine), step)]


def first_units(source: Any, n: int) -> list[Row]:
    """Up to `n` units from the start of `source`, within its first pass (no unit wraps around)."""
    rows: list[Row] = []
    for _ in range(n):
        unit = source.next_units(1)
        state = source.state_dict()
        if state["epoch"] > 0 and (state["pos"] or state.get("offset", 0)):
            break  # this unit took data from a second pass; the end of the data was reached
        rows.extend(unit)
        if state["epoch"] > 0:
            break
    if not rows:
        raise CodelmError("the held-out data is too short for one row")
    return rows


def heldout_rows(cfg: Any, tokenizer: Any, family: Any) -> list[Row] | None:
    """The stage's held-out rows (pairs as two rows), or None when it has no held-out data."""
    seq_len, n = cfg.batch.seq_len, cfg.run.eval_rows
    if cfg.stage == "pretrain":
        if not cfg.data.heldout_shards:
            return None
        from codelm.train.fim import FimTransform
        from codelm.train.shards import ShardReader
        from codelm.train.sources import PretrainSource

        reader = ShardReader(cfg.data.heldout_shards)
        reader.check_tokenizer(tokenizer)
        if True in reader.fim_applied:
            raise CodelmError("pretrain.heldout_shards must be plain documents, not FIM-applied ones")
        spec = family.tokenizer
        bos = tokenizer.convert_tokens_to_ids(spec.bos) if spec.add_bos else None
        eos = tokenizer.convert_tokens_to_ids(spec.eos)
        plain = FimTransform(family, tokenizer, 0.0, None, max_tokens=seq_len)
        source = PretrainSource(reader, seq_len, plain, bos_id=bos, eos_id=eos, shuffle=False)
        return first_units(source, n)
    if not cfg.data.heldout:
        return None
    from codelm.train.chat import ChatEncoder, DPOSource, SFTSource

    encoder = ChatEncoder(tokenizer, family)
    if cfg.stage == "sft":
        source = SFTSource(
            cfg.data.heldout, encoder, seq_len, packing=cfg.data.packing, seed=0, shuffle=False
        )
    else:
        source = DPOSource(cfg.data.heldout, encoder, seq_len, seed=0, shuffle=False)
    return first_units(source, n)


def reference_logprobs(objective: DPO, rows: list[Row], micro_pairs: int, pad_id: int) -> list[Row]:
    """DPO held-out rows carrying the frozen reference's log-probs, computed once."""
    device = next(objective.reference.parameters()).device
    out: list[Row] = []
    for i in range(0, len(rows), 2 * micro_pairs):
        chunk = rows[i : i + 2 * micro_pairs]
        with torch.no_grad():
            logps = objective.sequence_logprobs(objective.reference, collate(chunk, pad_id).to(device))
        out.extend(
            Row(r.ids, r.labels, r.segments, float(v)) for r, v in zip(chunk, logps.tolist(), strict=True)
        )
    return out


def make_heldout(cfg: Any, tokenizer: Any, family: Any, objective: CausalLM | DPO) -> HeldOut | None:
    """The stage's held-out set (DPO rows with their reference log-probs), or None without one.

    Call while a DPO objective still holds its reference model (before `reference: precomputed`
    frees it)."""
    rows = heldout_rows(cfg, tokenizer, family)
    if rows is None:
        return None
    if isinstance(objective, DPO):
        if objective.reference is not None:  # frozen: scoring it once saves a forward per evaluation
            pad = tokenizer.convert_tokens_to_ids(family.tokenizer.pad)
            rows = reference_logprobs(objective, rows, cfg.batch.micro_batch_size, pad)
        return HeldOut(rows, 2)
    return HeldOut(rows, 1)


def score(
    model: torch.nn.Module, objective: CausalLM | DPO, batches: list[Batch], device: torch.device
) -> dict[str, torch.Tensor]:
    """Sums over this process's held-out batches: {"loss", **the objective's metrics, "units"}.

    The model is put in eval mode and back in the mode it was in."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    # no RNG is drawn in eval mode; fork_rng makes that a guarantee for exact resume, not a hope
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for batch in batches:
            loss, extra = objective(model, batch.to(device))
            units = torch.tensor(float(objective.units(batch)), dtype=torch.float64, device=loss.device)
            for k, v in {"loss": loss, **extra, "units": units}.items():
                sums[k] = sums.get(k, 0) + v.detach().double()
    model.train(was_training)
    return sums
