"""CRUXEval (Gu et al. 2024): 800 short Python functions; predict an output or an input.

* ``cruxeval-o`` (output prediction): given ``f`` and an input, the model completes
  ``assert f(<input>) == ??``; the prediction passes if ``assert <output> == <prediction>`` holds.
* ``cruxeval-i`` (input prediction): given ``f`` and an output, the model completes
  ``assert f(??) == <output>`` with a call ``f(...)``; it passes if ``assert <output> == f(...)``.

Prompts are the published ones (facebookresearch/cruxeval ``prompts.py``): the direct prompts
(two worked examples, answer in ``[ANSWER]`` tags) for ``cruxeval-o``/``cruxeval-i``, the chain of
thought prompts (``[THOUGHT]`` first) for ``cruxeval-o-cot``/``cruxeval-i-cot``. Generation stops at
``[/ANSWER]`` (their ``stop_words``). Post-processing is theirs (``inference/tasks/*_prediction.py``):
CoT keeps what follows ``[ANSWER]``; output prediction keeps what follows ``==``; input prediction
keeps what precedes ``==`` and follows ``assert``.

Scoring is theirs (``evaluation/utils_general.py``): the program ``f"{code}\\nassert {output} ==
{prediction}"`` is ``exec``'d (human-eval style: empty globals, 3 s); an output prediction that
contains ``f(<input>)`` (calling the function instead of predicting) and an input prediction with no
``f(`` fail without running. The canonical self-test runs ``assert f(<input>) == <output>``, which
checks the data itself (800/800 here) and calibrates the timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..generation import GenRequest, GenSettings
from ..program import Program
from .base import Task
from .data import HubDataset, require_fields

TIMEOUT = 3.0  # seconds, CRUXEval's check_correctness(code, 3)
STOPS = ("[/ANSWER]",)

_OUTPUT_INTRO = (
    "You are given a Python function and an assertion containing an input to the function. Complete "
    "the assertion with a literal (no unsimplified expressions, no function calls) containing the "
    "output when executing the provided code on the given input, even if the function is incorrect "
    "or incomplete. Do NOT output any extra information."
)
_DIRECT_OUTPUT = (
    _OUTPUT_INTRO + " Provide the full assertion with the correct output in [ANSWER] and [/ANSWER] "
    "tags, following the examples.\n\n"
    "[PYTHON]\ndef f(n):\n    return n\nassert f(17) == ??\n[/PYTHON]\n"
    "[ANSWER]\nassert f(17) == 17\n[/ANSWER]\n\n"
    '[PYTHON]\ndef f(s):\n    return s + "a"\nassert f("x9j") == ??\n[/PYTHON]\n'
    '[ANSWER]\nassert f("x9j") == "x9ja"\n[/ANSWER]\n\n'
    "[PYTHON]\n{code}\nassert f({input}) == ??\n[/PYTHON]\n[ANSWER]\n"
)
_COT_OUTPUT = (
    _OUTPUT_INTRO + " Execute the program step by step before arriving at an answer, and provide the "
    "full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples."
    "\n\n"
    '[PYTHON]\ndef f(s):\n    s = s + s\n    return "b" + s + "a"\nassert f("hi") == ??\n[/PYTHON]\n'
    "[THOUGHT]\nLet's execute the code step by step:\n\n"
    "1. The function f is defined, which takes a single argument s.\n"
    '2. The function is called with the argument "hi", so within the function, s is initially "hi".\n'
    '3. Inside the function, s is concatenated with itself, so s becomes "hihi".\n'
    '4. The function then returns a new string that starts with "b", followed by the value of s '
    '(which is now "hihi"), and ends with "a".\n'
    '5. The return value of the function is therefore "bhihia".\n[/THOUGHT]\n'
    '[ANSWER]\nassert f("hi") == "bhihia"\n[/ANSWER]\n\n'
    "[PYTHON]\n{code}\nassert f({input}) == ??\n[/PYTHON]\n[THOUGHT]\n"
)
_DIRECT_INPUT = (
    "You will be given a function f and an output in the form f(??) == output. Find any input such "
    "that executing f on the input leads to the given output. There may be multiple answers, but you "
    "should only output one. In [ANSWER] and [/ANSWER] tags, complete the assertion with one such "
    "input that will produce the output when executing the function.\n\n"
    "[PYTHON]\ndef f(my_list):\n    count = 0\n    for i in my_list:\n        if len(i) % 2 == 0:\n"
    "            count += 1\n    return count\nassert f(??) == 3\n[/PYTHON]\n"
    '[ANSWER]\nassert f(["mq", "px", "zy"]) == 3\n[/ANSWER]\n\n'
    '[PYTHON]\ndef f(s1, s2):\n    return s1 + s2\nassert f(??) == "banana"\n[/PYTHON]\n'
    '[ANSWER]\nassert f("ba", "nana") == "banana"\n[/ANSWER]\n\n'
    "[PYTHON]\n{code}\nassert f(??) == {output}\n[/PYTHON]\n[ANSWER]\n"
)
_COT_INPUT = (
    "You will be given a function f and an output in the form f(??) == output. Your task is to find "
    "any input such that executing f on the input leads to the given output. There may be multiple "
    "answers, but only output one. First, think step by step. You MUST surround the answer with "
    "[ANSWER] and [/ANSWER] tags. Express your answer as a passing assertion containing the input and "
    "the given output.\n\n"
    "[PYTHON]\ndef f(x):\n    return x + 1\nassert f(??) == 17\n[/PYTHON]\n"
    "[THOUGHT]\nTo find an input such that executing f on the input leads to the given output, we "
    "can work backwards from the given assertion. We know that f(??) == 17. \n\n"
    "Since the function f(x) returns x + 1, for f(??) to be equal to 17, the value of ?? should be "
    "16. \n[/THOUGHT]\n[ANSWER]\nassert f(16) == 17\n[/ANSWER]\n\n"
    "[PYTHON]\n{code}\nassert f(??) == {output}\n[/PYTHON]\n[THOUGHT]\n"
)
_TEMPLATES = {
    ("output", False): _DIRECT_OUTPUT,
    ("output", True): _COT_OUTPUT,
    ("input", False): _DIRECT_INPUT,
    ("input", True): _COT_INPUT,
}


@dataclass(frozen=True)
class Problem:
    task_id: str  # the record's id, sample_0 ... sample_799
    code: str
    input: str  # Python source of the arguments, e.g. "(1, ), (1, ), (1, 2)"
    output: str  # Python source of the return value


def postprocess(text: str, mode: str, cot: bool) -> str:
    """The prediction in ``text``, as CRUXEval's ``postprocess_generation`` extracts it (the
    ``[ANSWER]`` search also applies to direct prompts here, for chat replies that repeat the tag)."""
    if "[ANSWER]" in text:
        text = text.split("[ANSWER]")[1]
    text = text.split("[/ANSWER]")[0].strip()
    if "==" in text:
        text = text.split("==")[1 if mode == "output" else 0].strip()
    if mode == "input" and "assert" in text:
        text = text.split("assert")[1].strip()
    return text.strip()


class CruxEvalTask(Task):
    file_names = ("cruxeval.jsonl",)
    hub = HubDataset("cruxeval-org/cruxeval")
    stops = STOPS
    timeout_floor = TIMEOUT

    def __init__(self, mode: str, cot: bool) -> None:
        self.mode, self.cot = mode, cot
        letter = mode[0]
        self.name = f"cruxeval-{letter}" + ("-cot" if cot else "")
        self.title = f"CRUXEval-{letter.upper()}" + (" (CoT)" if cot else "")
        self.max_new_tokens = 1024 if cot else 128

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for r in records:
            require_fields(r, ("id", "code", "input", "output"), origin)
            problems.append(Problem(r["id"], r["code"], r["input"], r["output"]))
        return problems

    def prompt(self, problem: Problem) -> str:
        return _TEMPLATES[self.mode, self.cot].format(
            code=problem.code, input=problem.input, output=problem.output
        )

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        prompt = self.prompt(problem)
        if settings.mode == "chat":  # the instructions without the opened answer/thought tag
            message = {"role": "user", "content": prompt.rsplit("[/PYTHON]\n", 1)[0] + "[/PYTHON]\n"}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=prompt)

    def clean(self, problem: Problem, text: str, mode: str) -> str:
        return postprocess(text, self.mode, self.cot)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        prediction = completion.strip()
        if self.mode == "input" and "f(" not in prediction:
            return {"main": _failing("an input prediction must call f(...)")}
        if self.mode == "output" and f"f({problem.input})" in prediction:
            return {"main": _failing("an output prediction must not call f on the input")}
        return {"main": _program(f"{problem.code}\nassert {problem.output} == {prediction}")}

    def reference(self, problem: Problem) -> str:
        return problem.output if self.mode == "output" else f"f({problem.input})"

    def reference_programs(self, problem: Problem) -> dict[str, Program]:
        """``assert f(input) == output``: checks the record itself, whichever the mode."""
        return {"main": _program(f"{problem.code}\nassert f({problem.input}) == {problem.output}")}


def _program(source: str) -> Program:
    return Program(source=source, filename="check.py", run_name=None, exit_ok=False)


def _failing(reason: str) -> Program:
    """A program that fails with ``reason`` (CRUXEval scores these False without running)."""
    return _program(f"raise AssertionError({reason!r})")


OUTPUT = CruxEvalTask("output", cot=False)
INPUT = CruxEvalTask("input", cot=False)
OUTPUT_COT = CruxEvalTask("output", cot=True)
INPUT_COT = CruxEvalTask("input", cot=True)
