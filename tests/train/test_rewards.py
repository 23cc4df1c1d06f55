"""Rewards of the rl stage in the sandbox (asserts, stdin/stdout, doctest; all-or-nothing and
fraction), the format reward, a pluggable reward, and the advantage / loss arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codelm.errors import CodelmError
from codelm.train.rewards import Scorer, format_reward, split_reasoning
from codelm.train.rl_data import Problem
from codelm.train.rl_objective import (
    GRPOLoss,
    RLBatch,
    RLSettings,
    Sample,
    advantages,
    loss_weights,
    overlong_penalty,
    rollout_fields,
)

ADD = Problem(
    "add",
    "def add(a, b):\n",
    "asserts",
    {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 5"]},
)
ECHO = Problem(
    "sum",
    "# read two ints, print their sum\n",
    "stdio",
    {"stdio": [{"input": "1 2\n", "output": "3"}, {"input": "5 5\n", "output": "10"}]},
)
MODULE = 'def double(x):\n    """Twice x.\n\n    >>> double(2)\n    4\n    """\n    return x * 2\n'
DOCTEST = Problem(
    "doctest/0/double",
    "Write a Python function `double(x)` that: Twice x.",
    "doctest",
    {"module": MODULE, "name": "double", "reference": MODULE.rstrip("\n")},
)


@pytest.fixture(scope="module")
def scorers():
    made = {
        kind: Scorer(kind, 0.5, "completion", workers=2, timeout=5.0, allow_code_execution=True)
        for kind in ("pass", "fraction")
    }
    yield made
    for s in made.values():
        s.close()


def rewards(scorer: Scorer, problems, completions) -> list[float]:
    return [s.reward for s in scorer.score(problems, completions)]


def test_asserts_all_or_nothing_and_fraction(scorers):
    good, partial = "    return a + b\n", "    return a + b if a else 6\n"
    assert rewards(scorers["pass"], [ADD, ADD], [good, partial]) == [1.0, 0.0]
    assert rewards(scorers["fraction"], [ADD, ADD], [good, partial]) == pytest.approx([1.0, 2 / 3])


def test_exiting_before_the_asserts_earns_nothing(scorers):
    hacks = ["    return 0\nimport sys; sys.exit(0)\n", "    return 0\nraise SystemExit\n"]
    assert rewards(scorers["pass"], [ADD, ADD], hacks) == [0.0, 0.0]


def test_stdio_problems(scorers):
    good = "a, b = map(int, input().split())\nprint(a + b)\n"
    half = "a, b = map(int, input().split())\nprint(3)\n"
    assert rewards(scorers["pass"], [ECHO, ECHO], [good, half]) == [1.0, 0.0]
    assert rewards(scorers["fraction"], [ECHO, ECHO], [good, half]) == [1.0, 0.5]


def test_doctest_problems_from_a_corpus(scorers):
    """derive.doctest_problems' records: the reference's doctest runs against the candidate."""
    from codelm.eval.execution import ExecutionPool
    from codelm.recipes.derive import doctest_problems

    with ExecutionPool(1, allow_code_execution=True) as pool:
        derived = doctest_problems([MODULE], pool=pool)
    assert len(derived) == 1
    problem = Problem(derived[0]["task_id"], derived[0]["prompt"], "doctest", derived[0])
    assert problem.style == DOCTEST.style and problem.tests == ["double"]
    assert rewards(scorers["pass"], [problem] * 2, ["    return x * 2\n", "    return x + 3\n"]) == [1.0, 0.0]


def test_references_are_checked(scorers):
    good = Problem(
        "a", ADD.prompt, "asserts", {"tests": ADD.record["tests"], "reference": "    return a + b\n"}
    )
    bad = Problem(
        "b", ADD.prompt, "asserts", {"tests": ADD.record["tests"], "reference": "    return a - b\n"}
    )
    assert scorers["pass"].check_references([good, bad, ECHO]) == [True, False, None]


def test_format_reward_and_reasoning_split():
    assert format_reward("<think>add them</think>\n```python\nprint(1)\n```") == 1.0
    assert format_reward("<think>add them</think>   ") == 0.0  # no answer
    assert format_reward("print(1)") == 0.0
    assert format_reward("<think>a</think><think>b</think>x") == 0.0
    assert split_reasoning("<think>plan</think>code") == ("plan", "code")
    assert split_reasoning("code") == (None, "code")


def test_format_reward_is_added_and_code_comes_from_the_answer(scorers):
    body = "    return a + b\n"
    scored = scorers["pass"].score([ADD, ADD], [f"<think>    return 0\n</think>{body}", body])
    assert [(s.reward, s.passed, s.format) for s in scored] == [(1.5, 1.0, 1.0), (1.0, 1.0, 0.0)]


def test_pluggable_reward(tmp_path, monkeypatch):
    (tmp_path / "my_reward.py").write_text(
        "def length(problem, completion):\n    return len(completion) / 10\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = Scorer("my_reward:length", 0.0, "completion", workers=1, timeout=1.0, allow_code_execution=False)
    scored = scorer.score([ADD], ["x" * 5])
    assert scored[0].reward == 0.5 and math.isnan(scored[0].passed) and scorer.pool is None
    with pytest.raises(CodelmError, match="rl.reward"):
        Scorer("my_reward:nothing", 0.0, "completion", workers=1, timeout=1.0, allow_code_execution=False)


def test_group_advantages():
    r = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    grpo = advantages(r, 4, scale=True)
    assert grpo[:4] == pytest.approx([1.5, -0.5, -0.5, -0.5], rel=1e-3)  # (r - 0.25) / 0.5
    assert grpo[4:] == pytest.approx([0, 0, 0, 0])
    assert advantages(r, 4, scale=False)[:4] == pytest.approx([0.75, -0.25, -0.25, -0.25])  # Dr. GRPO


def test_overlong_penalty_is_dapo_eq_13():
    got = overlong_penalty(np.array([10, 12, 14, 16]), max_len=16, buffer=4, penalty=1.0)
    assert got == pytest.approx([0.0, 0.0, -0.5, -1.0])
    assert overlong_penalty(np.array([16]), 16, 0, 1.0) == pytest.approx([0.0])


def settings(**kw) -> RLSettings:
    base = dict(
        group=2,
        prompts_per_step=2,
        max_new_tokens=4,
        temperature=1.0,
        top_p=1.0,
        prompt_format="completion",
        epochs=1,
        kl=False,
        loss_norm="token",
        scale_rewards=True,
        filter_equal_groups=False,
        overlong_buffer=0,
        overlong_penalty=1.0,
        mask_truncated=False,
        generation_batch=8,
        seed=0,
    )
    return RLSettings(**{**base, **kw})


def test_filtering_and_truncation_masks():
    rollout = [
        Sample([1], [2, 3], 1.0, 1.0, False),
        Sample([1], [2, 3, 4, 5], 0.0, 0.0, True),
        Sample([1], [2], 1.0, 1.0, False),
        Sample([1], [2], 1.0, 1.0, False),
    ]
    _, keep, stats = rollout_fields(rollout, settings())
    assert keep.tolist() == [1, 1, 1, 1] and stats["equal_groups"] == 0.5
    _, keep, stats = rollout_fields(rollout, settings(filter_equal_groups=True, mask_truncated=True))
    assert keep.tolist() == [1, 0, 0, 0] and stats["trained_share"] == 0.25
    assert stats["reward_mean"] == 0.75 and stats["pass_rate"] == 0.75 and stats["completion_len"] == 2.0


def test_clipped_objective_counts_clipped_tokens():
    """A tiny real model; old log-probs shifted so the ratio leaves the clip range one way or the
    other: only the side where clipping binds (ratio high with A > 0, low with A < 0) is counted."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from codelm.train.packing import collate
    from codelm.train.rl_objective import per_token, rows_of

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    samples = [Sample([1, 2], [3, 4], 1.0, 1.0, False), Sample([1, 2], [5, 6], 0.0, 0.0, False)]
    rows = collate(rows_of(samples), 0)
    loss = GRPOLoss(0.2, 0.28, 0.0, "positions")
    base = RLBatch(rows, torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]), None, None)
    value, metrics = loss(model, base)
    assert float(value.detach()) == pytest.approx(0.0, abs=1e-6)  # ratio 1: -(A) summed over tokens cancels
    assert float(metrics["clip_fraction"]) == 0.0
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=rows.input_ids).logits, -1)
    # old = current - 1: ratio e > 1.28 on every token; clipped only where A > 0 (the first row)
    targets = torch.nn.functional.pad(rows.labels[:, 1:], (0, 1), value=-100)
    current = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    old = per_token(rows, [[0.0, 0.0]] * 2)
    old[targets != -100] = (current - 1.0)[targets != -100]
    _, metrics = loss(model, RLBatch(rows, base.advantages, base.token_weight, old, None))
    assert float(metrics["clip_fraction"]) == 2.0


def test_loss_normalisations():
    """Per-token losses of 1 on completions of 1 and 3 tokens (the second filtered out in the
    last case): token level averages tokens, sequence level completions, constant divides by L."""
    lengths = np.array([1.0, 3.0])

    def loss(keep, norm):
        w, units = loss_weights(np.array(keep, dtype=float), lengths, norm, max_len=4)
        return float((w * lengths).sum()) / units

    assert loss([1, 1], "token") == 1.0  # 4 tokens / 4
    assert loss([1, 1], "sequence") == 1.0  # (1/1 + 3/3) / 2
    assert loss([1, 1], "constant") == pytest.approx((1 + 3) / 4 / 2)  # Dr. GRPO: / (L x completions)
    w, units = loss_weights(np.array([1.0, 0.0]), lengths, "token", 4)
    assert w.tolist() == [1.0, 0.0] and units == 1.0
