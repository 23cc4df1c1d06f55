"""Checkpoints that resume exactly, and the final plain HF checkpoint.

A checkpoint is `OUT/checkpoints/step-00000040/`: accelerate's `save_state` (model, optimizer, the
registered LR scheduler, and every process's RNG states: python, numpy, torch, CUDA; sharded the way
FSDP or DeepSpeed shard them), plus `trainer_state.json` (step, tokens seen, the data source's
position) and `meta.json` (the resolved config and the data lineage). It is written to a temporary
directory and renamed, so a run killed mid-save leaves the previous checkpoint intact; `latest` names
the newest one. Resuming restores all of it, so a killed and resumed CPU run reproduces the loss curve
of an uninterrupted one.

The final output, `OUT/final/`, is a plain HF checkpoint: `model.safetensors`, `config.json`,
`generation_config.json`, the tokenizer with its chat template, and `meta.json`. It loads with
`AutoModelForCausalLM.from_pretrained` and `codelm.engine.Engine.from_pretrained`.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from codelm.errors import CodelmError
from codelm.models.registry import Family
from codelm.models.tokenizer import save_tokenizer

# Run-level fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = {
    "save_every",
    "keep_checkpoints",
    "log_every",
    "threads",
    "compile",  # like threads: how the same math runs (bit-exact resume needs the same setting)
    "tensorboard",
    "plot",
    "max_steps",
    "eval_every",
    "eval_rows",
    "peak_tflops",
}
# Stage-section fields that only choose what is measured, never what is trained.
EVAL_ONLY = {"heldout_shards", "heldout"}


def check_resume_config(saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to resume under a config that differs beyond run-level bookkeeping."""
    diffs = []
    for section, values in now.items():
        old = saved.get(section)
        if not isinstance(values, dict):
            if old != values:
                diffs.append(f"{section}: {old!r} -> {values!r}")
            continue
        for key, value in values.items():
            free = key in EVAL_ONLY or (section == "run" and key in RESUMABLE_CHANGES)
            if (old or {}).get(key) != value and not free:
                diffs.append(f"{section}.{key}: {(old or {}).get(key)!r} -> {value!r}")
    if diffs:
        raise CodelmError("cannot resume with a different config: " + "; ".join(diffs))


def run_meta(
    cfg: Any, stage: Any, family: Any, model: Any, step: int, tokens: int, world: int
) -> dict[str, Any]:
    """meta.json: the resolved config, the data lineage and where the run stands."""
    import accelerate
    import transformers

    from codelm import __version__

    return {
        "codelm": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage": cfg.stage,
        "step": step,
        "tokens_seen": tokens,
        "world_size": world,
        "model": {
            "family": family.name,
            "architecture": type(model).__name__,
            "size": cfg.model.size,
            "init_from": cfg.model.init_from,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "data": stage.source.lineage(),
        "config": cfg.to_dict(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
        },
    }


def checkpoints_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def save_checkpoint(
    accelerator: Any, out_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any], keep: int
) -> Path:
    """Write checkpoint `step` atomically (every process must call this) and prune old ones."""
    root = checkpoints_dir(out_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(tmp / "trainer_state.json", state)
        _write_json(tmp / "meta.json", meta)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        (root / "latest.tmp").write_text(final.name + "\n")
        os.replace(root / "latest.tmp", root / "latest")
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under `out_dir`, or None."""
    root = checkpoints_dir(out_dir)
    pointer = root / "latest"
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / "trainer_state.json").is_file():
            return path
    found = sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(accelerator: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore accelerate's state from `path`; returns (trainer_state, meta)."""
    if not (path / "trainer_state.json").is_file():
        raise CodelmError(f"{path} is not a complete training checkpoint")
    accelerator.load_state(str(path))
    state = json.loads((path / "trainer_state.json").read_text())
    meta = json.loads((path / "meta.json").read_text())
    return state, meta


def export_final(
    accelerator: Any,
    model: Any,
    tokenizer: Any,
    family: Family,
    out: Path,
    meta: dict[str, Any],
    context: int,
) -> Path:
    """Save the trained model as a plain HF checkpoint directory (every process must call this)."""
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        unwrapped.save_pretrained(str(out), state_dict=state_dict, safe_serialization=True)
        save_tokenizer(tokenizer, family, out, context)
        _write_json(out / "meta.json", meta)
    accelerator.wait_for_everyone()
    return out
