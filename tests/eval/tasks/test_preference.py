"""The preference task on a tiny real checkpoint: its log-probabilities are the DPO stage's own (the
reference log-probs training precomputes, same run), a few real DPO steps raise accuracy, margin and
reward margin over the starting checkpoint, resume rescores nothing, and the refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from codelm.errors import CodelmError, UnsupportedFeatureError
from codelm.eval.backends.engine import EngineBackend
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.tasks import get_task
from codelm.eval.tasks.data import Source

# (instruction word, operator the prompt asks for, the operator derive.py's mutation puts instead)
OPERATIONS = [
    ("add", "+", "-"),
    ("subtract", "-", "+"),
    ("multiply by", "*", "//"),
    ("is less than", "<", ">="),
    ("is greater than", ">", "<="),
]


def pair(n: int) -> dict:
    """Pairs shaped like the tiny recipe's derived ones: the asked-for function and a copy with one
    operator swapped (same length, so a preference is about the operator, not the length)."""
    word, good, bad = OPERATIONS[n % len(OPERATIONS)]
    k = n // len(OPERATIONS) + 2
    body = "returns whether x" if good in "<>" else "returns x"
    return {
        "prompt": f"Write a Python function `f{n}(x)` that {body} {word} {k}.",
        "chosen": f"def f{n}(x):\n    return x {good} {k}\n",
        "rejected": f"def f{n}(x):\n    return x {bad} {k}\n",
    }


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(pair(n)) + "\n" for n in range(40)))
    return path


@pytest.fixture(scope="module")
def dpo_run(tiny_checkpoint, pairs_file, tmp_path_factory):
    """A tiny Llama and the checkpoint ten DPO steps on the pairs made of it (reference log-probs
    precomputed by the training code, in OUT/dpo_reference.json)."""
    from codelm.train.config import load_config
    from codelm.train.loop import train

    start = tiny_checkpoint("llama")
    out = tmp_path_factory.mktemp("dpo") / "run"
    cfg = load_config(
        None,
        [
            "stage=dpo",
            f"model.init_from={start}",
            f"dpo.data={pairs_file}",
            "dpo.beta=0.1",
            "dpo.reference=precomputed",
            "batch.seq_len=256",  # no pair is cut: its log-probs are the whole replies'
            "batch.micro_batch_size=4",
            "batch.global_batch_size=8",
            "optim.lr=1.0e-3",
            "optim.warmup_steps=1",
            "run.max_steps=10",
            f"run.out_dir={out}",
            "run.threads=1",
            "run.device=cpu",
            "run.plot=false",
            "run.tensorboard=false",
        ],
    )
    return start, train(cfg), out / "dpo_reference.json", pairs_file


@pytest.fixture(scope="module")
def start_backend(tiny_checkpoint):
    return EngineBackend.from_pretrained(str(tiny_checkpoint("llama")))


def preference(tmp_path: Path, backend, name: str, data: Path, **options) -> dict:
    opts = EvalOptions(
        tasks=("preference",), output=tmp_path / name, data={"preference": str(data)}, progress=False
    )
    return run_eval(dataclasses.replace(opts, **options), backend)["preference"]


def test_log_probs_are_the_dpo_stages(dpo_run, start_backend, tmp_path):
    """The starting checkpoint's scores equal the reference log-probs DPO training computed for it
    (its own rendering, masks and sums), pair by pair."""
    _, _, cache, pairs = dpo_run
    trained = json.loads(cache.read_text())["logps"]
    entry = preference(tmp_path, start_backend, "start", pairs)
    scores = [json.loads(line) for line in (tmp_path / "start" / "scores.jsonl").read_text().splitlines()]
    ours = {r["task_id"]: -r["nll"] for r in scores}
    assert len(ours) == 2 * len(trained) == 2 * entry["pairs"] == 80
    for number, (chosen, rejected) in enumerate(trained, start=1):
        assert ours[f"{number}/chosen"] == pytest.approx(chosen, rel=1e-5, abs=1e-4)
        assert ours[f"{number}/rejected"] == pytest.approx(rejected, rel=1e-5, abs=1e-4)
    margins = [c - r for c, r in trained]
    assert entry["margin"] == pytest.approx(sum(margins) / len(margins), rel=1e-5, abs=1e-4)
    assert entry["accuracy"] == sum(m > 0 for m in margins) / len(margins)
    assert all(r["tokens"] > 0 for r in scores)


def test_dpo_steps_raise_accuracy_and_margin(dpo_run, start_backend, tmp_path):
    start, final, _, pairs = dpo_run
    trained = EngineBackend.from_pretrained(str(final))
    before = preference(tmp_path, start_backend, "before", pairs, reference_model=start)
    after = preference(tmp_path, trained, "after", pairs, reference_model=start)
    # measured here: accuracy 0.425 -> 0.85, margin 0.0008 -> 1.26 nats, reward margin 0 -> 0.126
    assert after["accuracy"] >= before["accuracy"] + 0.2, (before, after)
    assert after["margin"] > before["margin"] + 0.5
    assert before["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # the policy is its reference
    assert before["reward_accuracy"] == 0.0  # no pair has a positive reward then
    assert after["reward_margin"] > 0.05 and after["reward_accuracy"] > 0.6
    # the same reference scores: the reward margin is beta x the change in margin
    assert after["reward_margin"] == pytest.approx(0.1 * (after["margin"] - before["margin"]), rel=1e-4)
    assert after["beta"] == 0.1 and after["reference_model"] == str(start)
    report = (tmp_path / "after" / "report.md").read_text()
    assert "| preference | - | 40 |" in report and "reward margin with beta 0.1" in report
    twice = preference(tmp_path, trained, "beta", pairs, reference_model=start, dpo_beta=0.2)
    assert twice["reward_margin"] == pytest.approx(2 * after["reward_margin"], rel=1e-6)


class Counting:
    """The engine backend, counting the replies it is asked to score."""

    def __init__(self, backend):
        self.inner, self.scored = backend, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score_replies(self, replies):
        self.scored += len(replies)
        return self.inner.score_replies(replies)


def test_resume_rescores_nothing(start_backend, pairs_file, tmp_path):
    backend = Counting(start_backend)
    first = preference(tmp_path, backend, "run", pairs_file, limit=5)
    assert backend.scored == 10
    journal = tmp_path / "run" / "scores.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 10
    again = preference(tmp_path, backend, "run", pairs_file, limit=5, resume=True)
    assert again == first and backend.scored == 10
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:7])  # killed mid-line: pair 5 redone
    again = preference(tmp_path, backend, "run", pairs_file, limit=5, resume=True)
    assert again == first and backend.scored == 12
    again = preference(tmp_path, backend, "run", pairs_file, limit=5, resume=True)  # the journal is whole
    assert again == first and backend.scored == 12


def test_string_and_message_records(start_backend, tmp_path):
    """DPO's record shapes: messages for the prompt and replies score as their strings do."""
    plain = {"prompt": "Say hi.", "chosen": "hi", "rejected": "no"}
    chat = {
        "task_id": "m",
        "prompt": [{"role": "user", "content": "Say hi."}],
        "chosen": [{"role": "assistant", "content": "hi"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps(plain) + "\n" + json.dumps(chat) + "\n")
    preference(tmp_path, start_backend, "shapes", data)
    scores = {
        r["task_id"]: r["nll"]
        for r in map(json.loads, (tmp_path / "shapes" / "scores.jsonl").read_text().splitlines())
    }
    assert scores["1/chosen"] == pytest.approx(scores["m/chosen"], rel=1e-6)
    assert scores["1/rejected"] == pytest.approx(scores["m/rejected"], rel=1e-6)


def test_plain_text_pairs_score_as_dpo_renders_them(start_backend, tmp_path):
    """`"chat": false` pairs (self-play infills): the same rows as the DPO stage's, not the chat
    format's (which the same strings get without the key)."""
    import torch

    from codelm.train.chat import ChatEncoder, DPOSource
    from codelm.train.objectives import DPO
    from codelm.train.packing import collate

    plain = {"prompt": "def f(x):\n", "chosen": "    return (x)\n", "rejected": "    return (x\n"}
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        json.dumps({**plain, "chat": False}) + "\n" + json.dumps({**plain, "task_id": "c"}) + "\n"
    )
    preference(tmp_path, start_backend, "plain", data)
    nll = {
        r["task_id"]: r["nll"]
        for r in map(json.loads, (tmp_path / "plain" / "scores.jsonl").read_text().splitlines())
    }
    encoder = ChatEncoder(start_backend.tokenizer, start_backend.engine.family)
    rows = DPOSource(str(data), encoder, 256, seed=0, shuffle=False).next_units(1)
    with torch.inference_mode():
        chosen, rejected = (
            DPO(0.1, None).sequence_logprobs(start_backend.engine.model, collate(rows, 0)).tolist()
        )
    assert nll["1/chosen"] == pytest.approx(-chosen, rel=1e-5, abs=1e-4)
    assert nll["1/rejected"] == pytest.approx(-rejected, rel=1e-5, abs=1e-4)
    assert abs(nll["1/chosen"] - nll["c/chosen"]) > 1e-3  # the chat format is another text
    data.write_text(json.dumps({**plain, "chat": 1}) + "\n")
    with pytest.raises(CodelmError, match="record 1: a preference record's 'chat' must be true or false"):
        preference(tmp_path, start_backend, "bad", data)


def test_refusals(start_backend, pairs_file, tiny_checkpoint, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "1", "completion": "x"}) + "\n")
    with pytest.raises(UnsupportedFeatureError, match="samples file cannot score texts"):
        preference(tmp_path, SamplesBackend(samples), "a", pairs_file)
    from codelm.eval.backends.openai import OpenAIBackend

    endpoint = OpenAIBackend("http://127.0.0.1:9", "m")
    assert "use --model" in endpoint.supports("loglikelihood")
    with pytest.raises(UnsupportedFeatureError, match="endpoint cannot score texts"):
        endpoint.score_replies([("a", "b")])
    with pytest.raises(CodelmError, match="--data preference=PATH"):
        run_eval(EvalOptions(tasks=("preference",), output=tmp_path / "b"), start_backend)
    with pytest.raises(CodelmError, match="reference model .* does not exist"):
        preference(tmp_path, start_backend, "c", pairs_file, reference_model=tmp_path / "nowhere")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "x = 1"}\n')
    with pytest.raises(CodelmError, match="no selected task uses one"):
        run_eval(
            EvalOptions(
                tasks=("perplexity",),
                output=tmp_path / "d",
                data={"perplexity": str(docs)},
                reference_model=tiny_checkpoint("llama"),
            ),
            start_backend,
        )
    with pytest.raises(ValueError, match="dpo_beta must be positive"):
        EvalOptions(tasks=("preference",), output=tmp_path / "e", dpo_beta=0)
    for tag in "abcde":
        assert not (tmp_path / tag).exists()  # refused before any work
    bad = tmp_path / "bad.jsonl"
    for text, match in [
        ('{"prompt": "p", "chosen": "c"}\n', "record 1 needs prompt, chosen and rejected"),
        ('{"id": 1, "prompt": "p", "chosen": "c", "rejected": "r"}\n' * 2, "ids repeat"),
    ]:
        bad.write_text(text)
        with pytest.raises(CodelmError, match=match):
            get_task("preference").load(Source(path=bad))


def test_reference_with_another_tokenizer_is_refused(start_backend, pairs_file, tiny_checkpoint, tmp_path):
    other = tiny_checkpoint("codegen1")
    with pytest.raises(CodelmError, match="another tokenizer"):
        preference(tmp_path, start_backend, "f", pairs_file, limit=1, reference_model=other)


def test_command_line(tiny_checkpoint, pairs_file, tmp_path):
    from codelm.eval.cli import main

    model = str(tiny_checkpoint("llama"))
    flags = ["--model", model, "--tasks", "preference", "--data", f"preference={pairs_file}", "--limit", "2"]
    flags += [
        "--reference-model",
        model,
        "--dpo-beta",
        "0.3",
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(flags) == 0
    entry = json.loads((tmp_path / "out" / "summary.json").read_text())["preference"]
    assert entry["pairs"] == 2 and entry["beta"] == 0.3 and entry["reference_model"] == model
    assert main([*flags[:-3], "--dpo-beta", "0", "--output", str(tmp_path / "bad")]) == 1  # one-line error
