"""MBPP+ (EvalPlus, Liu et al. 2023): sanitized MBPP problems with many more test inputs.

Each record has ``base_input`` (MBPP's own test inputs) and ``plus_input`` (EvalPlus's, a median
of about 100 per task), a canonical solution and a tolerance ``atol``. Expected outputs are not
in the file: EvalPlus computes them by running the canonical solution, and so does ``prepare``,
once per problem. The sample's check program (``mbpp_plus_check.py``, see its docstring for the
comparison rules, float tolerance and special oracles) then only runs the candidate and writes
its outputs as plain values; ``verify`` compares them with the expected ones in this process,
which the sample cannot reach, so no trick inside the sandbox can turn a wrong output into a pass
(an always-equal object cannot even be written). Without ``prepare`` (or where the outputs are too
large, Mbpp/255), the check program computes and compares them itself. Two checks per sample,
both reported:

* ``base``: the base inputs (EvalPlus's "base tests");
* ``plus``: base and plus inputs together ("base + extra tests", the MBPP+ headline number).

JSON cannot hold tuples, sets or complex numbers, so the inputs are rebuilt per task exactly as
EvalPlus's ``mbpp_deserialize_inputs`` does (``evalplus/data/mbpp.py``); the table below is that
function written as data. Task ids are EvalPlus's (``Mbpp/2``), so its samples files score as-is.

Prompt (base models): like MBPP, a docstring with the description and the first original assert
(the format of EvalPlus's v0.2.0 release; this snapshot's ``prompt`` lacks the assert, so a model
could not know the function's name). Where we differ from EvalPlus: one wall-clock limit per check
program (calibrated against the canonical solution) instead of a limit per input.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..execution import ExecutionPool
from ..generation import GenRequest, GenSettings
from ..program import ExecResult, Limits, MiB, Program, Status
from ..prompts import chat_task_prompt
from . import mbpp, mbpp_plus_check
from .base import Task, syntax_error_verdict
from .data import require_fields

log = logging.getLogger(__name__)
CHECK_SOURCE = Path(__file__).with_name("mbpp_plus_check.py")

# evalplus/eval/_special_oracle.py and unsafe_execute: entry point -> oracle of the check program
_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")
_SET_EQ = ("similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum")
_SET_EQ += ("intersection_array", "find_dissimilar", "Diff")
ORACLES = {
    "are_equivalent": "are_equivalent",
    "sum_div": "sum_div",
    "surface_Area": "surface_area",
    "digit_distance_nums": "digit_distance",
    **{name: "not_none" for name in _NOT_NONE},
    **{name: "set_eq" for name in _SET_EQ},
}


def _tuples(x: Any) -> Any:
    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x


# evalplus mbpp_deserialize_inputs: task number -> how one input (a list of arguments) is rebuilt
_RULES: dict[str, Any] = {
    "each_arg_tuple": lambda inp: [tuple(a) for a in inp],
    "nested_tuples": lambda inp: [[tuple(x) for x in a] for a in inp],
    "first_nested_tuples": lambda inp: [[tuple(x) for x in inp[0]], inp[1]],
    "second_tuple": lambda inp: [inp[0], tuple(inp[1])],
    "sets": lambda inp: [[set(x) if isinstance(x, list) and len(x) else {} for x in inp[0]]],
    "float_complex": lambda inp: (float(inp[0]), complex(inp[1])),
    "first_tuple": lambda inp: [tuple(inp[0]), inp[1]],
    "tuples_of_tuples": lambda inp: [tuple(tuple(x) for x in a) for a in inp],
    "mixed_tuples": lambda inp: [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])],
    "first_tuple_3": lambda inp: [tuple(inp[0]), inp[1], inp[2]],
    "dict_tuples": lambda inp: [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]],
    "complex": lambda inp: [complex(inp[0])],
    "all_tuples": _tuples,
}
_TASK_RULES = {
    **dict.fromkeys(
        (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740)
        + (744, 809),
        "each_arg_tuple",
    ),
    **dict.fromkeys((63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780), "nested_tuples"),
    **dict.fromkeys((75, 413, 444, 753), "first_nested_tuples"),
    **dict.fromkeys((106, 750), "second_tuple"),
    115: "sets",
    124: "float_complex",
    **dict.fromkeys((250, 405, 446, 617, 720, 763, 808), "first_tuple"),
    **dict.fromkeys((259, 401, 445), "tuples_of_tuples"),
    278: "mixed_tuples",
    307: "first_tuple_3",
    722: "dict_tuples",
    252: "complex",
    **dict.fromkeys((580, 615, 791), "all_tuples"),
}


def deserialize_inputs(task_id: str, inputs: list | dict) -> list:
    """Rebuild the tuples, sets and complex numbers JSON flattened (EvalPlus's rules)."""
    if inputs == {}:  # Mbpp/793's plus_input is an empty object: no extra inputs
        return []
    if not isinstance(inputs, list):
        raise ValueError(f"{task_id}: inputs must be a list, got {type(inputs).__name__}")
    rule = _TASK_RULES.get(int(task_id.rsplit("/", 1)[1]))
    return [_RULES[rule](inp) for inp in inputs] if rule else inputs


@dataclass(frozen=True)
class Problem:
    task_id: str
    text: str  # the description
    entry_point: str
    reference: str  # the record's prompt + canonical solution, as EvalPlus runs it
    canonical_solution: str
    example: str  # the first original assert, shown in the prompt
    atol: float
    base_input: list = field(repr=False, compare=False)
    plus_input: list = field(repr=False, compare=False)
    cases: Mapping[str, bytes] = field(repr=False, compare=False, default_factory=dict)  # check -> case.pkl
    expected: Mapping[str, list] = field(repr=False, compare=False, default_factory=dict)  # check -> outputs

    @property
    def prompt(self) -> str:
        return f'"""\n{self.text}\n{self.example}\n"""\n'

    @property
    def oracle(self) -> str | None:
        return ORACLES.get(self.entry_point)

    def case(self, inputs: list, **extra: Any) -> bytes:
        fields = {"entry_point": self.entry_point, "reference": self.reference, "inputs": inputs}
        fields |= {"atol": self.atol, "oracle": self.oracle, **extra}
        return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)

    def inputs(self, check: str) -> list:
        return self.base_input + self.plus_input if check == "plus" else self.base_input

    def restart(self, check: str) -> int | None:
        """Where the tolerance starts afresh: EvalPlus checks the plus inputs in a run of their own."""
        return len(self.base_input) if check == "plus" else None

    def with_cases(self, expected: list | None = None, times: list | None = None) -> Problem:
        """This problem's check programs' inputs packed; with the expected outputs of all inputs
        (known to this process only), the programs just report the candidate's outputs. ``times``
        (the reference's seconds per input) are what tasks with per-input limits derive them from."""
        mode = "outputs" if expected is not None else None
        cases = {
            check: self.case(
                self.inputs(check), mode=mode, restart=self.restart(check), **self.limits(check, times)
            )
            for check in ("plus", "base")
        }
        known = {"plus": expected, "base": expected[: len(self.base_input)]} if expected is not None else {}
        return dataclasses.replace(self, cases=cases, expected=known)

    def limits(self, check: str, times: list | None) -> dict:
        """Extra case fields for per-input time limits (MBPP+: none, one limit per program)."""
        return {}


class MbppPlusTask(Task):
    name = "mbpp-plus"
    title = "MBPP+"
    file_names = ("MbppPlus.jsonl", "MbppPlus.jsonl.gz")
    stops = mbpp.STOPS
    checks = ("plus", "base")

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        fields = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input")
        problems = []
        for r in records:
            require_fields(r, (*fields, "atol", "assertion"), origin)
            asserts = [line for line in r["assertion"].splitlines() if line.strip().startswith("assert")]
            problem = Problem(
                task_id=r["task_id"],
                text=r["prompt"].strip().strip("'\"").strip(),
                entry_point=r["entry_point"],
                reference=r["prompt"] + r["canonical_solution"],
                canonical_solution=r["canonical_solution"],
                example=asserts[0].strip() if asserts else "",
                atol=float(r["atol"] or 0),
                base_input=deserialize_inputs(r["task_id"], r["base_input"]),
                plus_input=deserialize_inputs(r["task_id"], r["plus_input"]),
            )
            problems.append(problem.with_cases())
        return problems

    def prepare(self, problems: list[Problem], pool: ExecutionPool) -> list[Problem]:
        """Run each canonical solution once to get the expected outputs every sample is checked
        against (EvalPlus's ground truth), so samples do not each run the reference again."""
        truth = [
            Program(
                source=_check_source(),
                filename="check.py",
                files={"case.pkl": p.case(p.inputs("plus"), mode="truth")},
                exit_ok=False,
                result_file=OUTPUTS,
            )
            for p in problems
        ]
        results = pool.map(truth, _TRUTH_LIMITS)
        prepared = []
        for problem, result in zip(problems, results, strict=True):
            if not result.passed or result.data is None:
                # e.g. Mbpp/255, whose outputs run to hundreds of MB: its check programs compute
                # them themselves, as EvalPlus's would (slower, same verdicts)
                log.info("%s: expected outputs not precomputed (%s)", problem.task_id, result.detail)
                prepared.append(problem)
                continue
            try:
                outputs, times = decode_truth(result.data)
            except ValueError as exc:  # e.g. an integer too long to pass around: compared in the sandbox
                log.info("%s: expected outputs not precomputed (%s)", problem.task_id, exc)
                prepared.append(problem)
                continue
            prepared.append(problem.with_cases(outputs, times))
        return prepared

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            tests = [problem.example] if problem.example else []
            message = {"role": "user", "content": chat_task_prompt(problem.text, tests)}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=problem.prompt)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        solution = problem.prompt + completion
        programs = {}
        for check, case in problem.cases.items():
            files = {"case.pkl": case, "solution.py": solution}
            compared_here: dict = {}
            if check in problem.expected:
                judge = functools.partial(
                    verify,
                    problem.expected[check],
                    problem.inputs(check),
                    problem,
                    restart=problem.restart(check),
                )
                compared_here = {"result_file": OUTPUTS, "verify": judge}
            programs[check] = Program(
                source=_check_source(), filename="check.py", files=files, exit_ok=False, **compared_here
            )
        return programs

    def reference(self, problem: Problem) -> str:
        return problem.canonical_solution

    def judge(self, result: ExecResult) -> ExecResult:
        return syntax_error_verdict(result)


OUTPUTS = "outputs.json"


def _decode(item: Any) -> Any:
    tag, *payload = item
    if tag in ("n", "b", "s"):
        return payload[0]
    if tag == "i":
        return int(payload[0], 16) if len(payload[0]) <= MAX_HEX_DIGITS else _too_long()
    if tag == "f":
        return float(payload[0])
    if tag == "c":
        return complex(float(payload[0]), float(payload[1]))
    if tag == "y":
        return bytes.fromhex(payload[0])
    if tag == "d":
        return {_decode(k): _decode(v) for k, v in payload[0]}
    items = [_decode(i) for i in payload[0]]
    kinds = {"l": list, "t": tuple, "S": set, "F": frozenset}
    if tag not in kinds:
        raise ValueError(f"unknown tag {tag!r}")
    return kinds[tag](items)


MAX_HEX_DIGITS = 1 << 22  # 16 Mbit integers: hex converts in linear time, so this only bounds memory


def _too_long() -> int:
    raise ValueError(f"an integer of more than {MAX_HEX_DIGITS} hex digits")


def decode_outputs(data: bytes | list) -> list:
    """The outputs a check program wrote (``mbpp_plus_check.encode``; the file, or its JSON read
    already), as plain Python values: JSON and builtin constructors only, so nothing the sample
    wrote can run here."""
    try:
        encoded = json.loads(data) if isinstance(data, bytes) else data
        if not isinstance(encoded, list):
            raise ValueError("not a list of outputs")
        return [_decode(item) for item in encoded]
    except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        raise ValueError(f"unreadable outputs: {exc}") from exc


def decode_truth(data: bytes) -> tuple[list, list[float]]:
    """The reference's outputs and its seconds per input, as the truth run wrote them."""
    try:
        truth = json.loads(data)
        times = [float(t) for t in truth["times"]]
        outputs = decode_outputs(truth["outputs"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"unreadable ground truth: {exc}") from exc
    if len(times) != len(outputs):
        raise ValueError("unreadable ground truth: one time per output expected")
    return outputs, times


def verify(
    expected: list, inputs: list, problem: Problem, result: ExecResult, restart: int | None = None
) -> ExecResult:
    """The verdict on a candidate's outputs, compared here with EvalPlus's rules."""
    try:
        outputs = decode_outputs(result.data or b"")
    except ValueError as exc:
        return dataclasses.replace(result, status=Status.FAILED, detail=str(exc)[:500])
    if len(outputs) != len(expected):
        detail = f"{len(outputs)} outputs for {len(expected)} inputs"
        return dataclasses.replace(result, status=Status.FAILED, detail=detail)
    atol, oracle = problem.atol, problem.oracle
    for index, (out, exp, inp) in enumerate(zip(outputs, expected, inputs, strict=True)):
        if index == restart:  # the plus inputs: EvalPlus's second run starts with the task's atol
            atol = problem.atol
        try:
            ok, atol = mbpp_plus_check.matches(out, exp, inp, atol, oracle)
        except (TypeError, ValueError, ArithmeticError) as exc:  # e.g. no numeric comparison possible
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = f"got {mbpp_plus_check._short(out)}, expected {mbpp_plus_check._short(exp)}"
        if not ok:
            return dataclasses.replace(result, status=Status.FAILED, detail=f"input #{index}: {reason}"[:500])
    return dataclasses.replace(result, data=None)


# The slowest reference runs take tens of seconds on a busy machine; Mbpp/630's expected outputs are
# ~13 MB as base64, Mbpp/255's too large to pass around (it is then killed at the output limit).
_TRUTH_LIMITS = Limits(timeout=600.0, keep_output_bytes=64 * MiB, max_output_bytes=64 * MiB)


@functools.lru_cache(maxsize=1)
def _check_source() -> str:
    return CHECK_SOURCE.read_text(encoding="utf-8")


TASK = MbppPlusTask()
