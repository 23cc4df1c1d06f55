"""The final output is a plain HF checkpoint: transformers and codelm's Engine load it and generate."""

from __future__ import annotations

import json

from transformers import AutoModelForCausalLM, AutoTokenizer


def test_final_is_a_plain_hf_checkpoint(pretrain_run):
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "meta.json"):
        assert (pretrain_run / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(pretrain_run)
    tok = AutoTokenizer.from_pretrained(pretrain_run)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok.chat_template  # the family's chat template travels with the tokenizer
    gen = json.loads((pretrain_run / "generation_config.json").read_text())
    assert tok.eos_token_id in gen["eos_token_id"]
    meta = json.loads((pretrain_run / "meta.json").read_text())
    assert meta["stage"] == "pretrain" and meta["step"] == 6
    assert meta["config"]["pretrain"]["fim_rate"] == 0.5
    assert meta["data"]["indexes"][0]["lineage"]["source"] == "python stdlib"
    assert meta["data"]["position"]["epoch"] == 0


def test_engine_loads_and_generates(pretrain_run):
    from codelm.engine import Engine

    engine = Engine.from_pretrained(str(pretrain_run))
    assert engine.family.name == "llama"
    result = engine.complete("def add(a, b):\n", max_new_tokens=8, temperature=0)
    assert result.completions[0].completion_tokens > 0
    infill = engine.infill("def add(a, b):\n    return ", "\n", max_new_tokens=4, temperature=0)
    assert infill.completions[0].completion_tokens > 0


def test_run_directory_layout(pretrain_run):
    run = pretrain_run.parent
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert ckpts == ["step-00000003", "step-00000006"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    state = json.loads((run / "checkpoints" / "step-00000006" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["tokens_seen"] == 6 * 4 * 64
    lines = (run / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    for key in ("loss", "lr", "tokens_per_s", "mfu", "grad_norm", "tokens"):
        assert key in record
