"""Chat evaluation of a reasoning model: code comes from the answer, never from the thinking.

End to end on a scripted tiny model (`script_tokens`): the reply thinks in a fenced block that
defines the entry point, then answers with another. Only the answer's code may be executed, so the
run passes with a right answer after wrong thinking, which taking the first defining block of the
raw reply would fail.
"""

from __future__ import annotations

from codelm.eval.backends.engine import EngineBackend
from codelm.eval.generation import GenSettings
from codelm.eval.prompts import extract_code
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.tasks import humaneval
from codelm.models.tiny import script_tokens

WRONG = "def f(x):\n    return 0\n"
RIGHT = "def f(x):\n    return x\n"


def _reply(thought_code: str, answer_code: str) -> str:
    return (
        f"<think>\nFirst try:\n```python\n{thought_code}```\nNo, fix it.\n</think>\n\n"
        f"```python\n{answer_code}```"
    )


def test_extract_code_takes_the_answer_never_the_thinking():
    assert extract_code(_reply(WRONG, RIGHT), "f") == RIGHT
    assert extract_code(_reply(RIGHT, WRONG), "f") == WRONG
    # thinking cut off by the token limit: there is no answer, so there is no code
    assert extract_code("<think>\n```python\n" + RIGHT + "```\nand then", "f") == ""
    assert extract_code("```python\n" + RIGHT + "```", "f") == RIGHT  # no thinking: as before


def test_humaneval_chat_mode_scores_the_answer(humaneval_path, tiny_engine, tmp_path):
    """Wrong code in the thinking, right code in the answer: passes only if the answer is what runs
    (the thinking's block comes first and defines the entry point too, so taking it would fail)."""
    problem = humaneval.load_problems(humaneval_path)["HumanEval/0"]
    right = problem.prompt + problem.canonical_solution
    wrong = problem.prompt + "    return False\n"
    engine = tiny_engine("llama")
    tok = engine.tokenizer
    ids = tok(_reply(wrong, right), add_special_tokens=False)["input_ids"]
    handle = script_tokens(engine.model, [*ids, tok.eos_token_id])
    try:
        options = EvalOptions(
            tasks=("humaneval",),
            output=tmp_path,
            settings=GenSettings(mode="chat", max_new_tokens=len(ids) + 8),
            ks=(1,),
            limit=1,
            data_dir=humaneval_path.parent,
            allow_code_execution=True,
            progress=False,
        )
        summary = run_eval(options, EngineBackend(engine))
    finally:
        handle.remove()
    assert summary["humaneval"]["counts"] == {"passed": 1}
