"""MBPP+ (EvalPlus, Liu et al. 2023): sanitized MBPP problems with many more test inputs.

Each record has ``base_input`` (MBPP's own test inputs) and ``plus_input`` (EvalPlus's, a median
of about 100 per task), a canonical solution and a tolerance ``atol``. Expected outputs are not
in the file: EvalPlus computes them by running the canonical solution, and so does ``prepare``,
once per problem. The sample's check program (``mbpp_plus_check.py``, see its docstring for the
comparison rules, float tolerance and special oracles) then only runs the candidate and writes
its outputs as plain values; ``verify`` compares them with the expected ones in this process,
which the sample cannot reach, so no trick inside the sandbox can turn a wrong output into a pass
(an always-equal object cannot even be written). Large outputs go both ways as SHA-256 digests of
their canonical bytes (``Digest``; why that is safe: ``mbpp_plus_check``); a digest that differs
leaves the verdict ``undecided`` and the pool runs the sample's fallback program, which computes
the expected outputs in the sandbox and compares there. Without ``prepare`` (or where the outputs
cost more to digest than to compute, Mbpp/255, or are no plain values), the check program computes
and compares them itself. The ground truth is kept across runs (``store.TruthCache``), as EvalPlus
keeps its own. Two checks per sample, both reported:

* ``base``: the base inputs (EvalPlus's "base tests");
* ``plus``: base and plus inputs together ("base + extra tests", the MBPP+ headline number).

The plus program runs the base inputs first, so its outputs settle both verdicts (``verify`` with
``settles``); the base program runs on its own only when the plus run left no outputs to judge.
Time limits are EvalPlus's (``untrusted_check``): each input gets ``max(1 s, 4 x`` the reference's
time on it``)`` inside the check program, a run ``min(60 s, the sum of its limits) + 2 s``.

JSON cannot hold tuples, sets or complex numbers, so the inputs are rebuilt per task exactly as
EvalPlus's ``mbpp_deserialize_inputs`` does (``evalplus/data/mbpp.py``); the table below is that
function written as data. Task ids are EvalPlus's (``Mbpp/2``), so its samples files score as-is.

Prompt (base models): like MBPP, a docstring with the description and the first original assert
(the format of EvalPlus's v0.2.0 release; this snapshot's ``prompt`` lacks the assert, so a model
could not know the function's name).
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
from ..store import TruthCache
from . import mbpp, mbpp_plus_check
from .base import Task, syntax_error_verdict
from .data import require_fields

log = logging.getLogger(__name__)
CHECK_SOURCE = Path(__file__).with_name("mbpp_plus_check.py")
# evalplus 0.3.1 untrusted_check, for MBPP+ and HumanEval+ alike: each input gets max(1 s, 4 x the
# canonical solution's time on it); a run (base or plus inputs) min(60 s, the sum of its limits) + 1,
# and 1 more to join the process
MIN_TIME_LIMIT = 1.0  # evalplus.config.DEFAULT_MIN_TIME_LIMIT
GT_TIME_LIMIT_FACTOR = 4.0  # evalplus.config.DEFAULT_GT_TIME_LIMIT_FACTOR
# where the check program times the reference itself: per-input limits max(floor, factor x its time)
LIMIT_RULE = (MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR)
RUN_LIMIT = 60.0

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
    time_limits: Mapping[str, list[float]] = field(repr=False, compare=False, default_factory=dict)
    times: list[float] = field(repr=False, compare=False, default_factory=list)  # the reference's, per input
    # check -> case.pkl comparing in the sandbox, for a candidate whose digests differ (``verify``)
    fallback_cases: Mapping[str, bytes] = field(repr=False, compare=False, default_factory=dict)

    @property
    def prompt(self) -> str:
        return f'"""\n{self.text}\n{self.example}\n"""\n'

    @property
    def oracle(self) -> str | None:
        return ORACLES.get(self.entry_point)

    def case(self, inputs: list, **extra: Any) -> bytes:
        """A check program's case.pkl. A candidate's own outputs (``mode="outputs"``) need no
        reference, so its case holds none: the sample cannot run it to forge its outputs."""
        fields = {"entry_point": self.entry_point, "inputs": inputs, "atol": self.atol, "oracle": self.oracle}
        if extra.get("mode") != "outputs":
            fields["reference"] = self.reference
        return pickle.dumps(fields | extra, protocol=pickle.HIGHEST_PROTOCOL)

    def inputs(self, check: str) -> list:
        return self.base_input + self.plus_input if check == "plus" else self.base_input

    def reference_seconds(self, check: str) -> float:
        """The reference's time on this check's inputs (0 without ground-truth times)."""
        return sum(self.times[: len(self.inputs(check))])

    def restart(self, check: str) -> int | None:
        """Where the tolerance starts afresh: EvalPlus checks the plus inputs in a run of their own."""
        return len(self.base_input) if check == "plus" else None

    def with_cases(self, expected: list | None = None, times: list | None = None) -> Problem:
        """This problem's check programs' inputs packed; with the expected outputs of all inputs
        (known to this process only; large ones as ``Digest``), the programs just report the
        candidate's outputs, and where digests are expected, the programs comparing in the sandbox
        are kept as their fallback. ``times`` (the reference's seconds per input, required with
        ``expected``) give EvalPlus's per-input limits."""
        checks = ("plus", "base")
        per_input = input_limits(times) if times is not None else None
        limits = {check: per_input[: len(self.inputs(check))] for check in checks} if per_input else {}

        def compared_here(check: str) -> bytes:  # the case of a program comparing in the sandbox
            timing = {"time_limits": limits[check]} if limits else {"limit_rule": LIMIT_RULE}
            return self.case(self.inputs(check), restart=self.restart(check), **timing)

        if expected is None:
            cases = {check: compared_here(check) for check in checks}
            return dataclasses.replace(
                self, cases=cases, expected={}, time_limits=limits, times=list(times or ())
            )
        if times is None or len(times) != len(expected):
            raise ValueError(f"{self.task_id}: expected outputs need the reference's time on each input")
        known = {"plus": expected, "base": expected[: len(self.base_input)]}
        digests = {check: [i for i, e in enumerate(known[check]) if type(e) is Digest] for check in checks}
        cases = {
            check: self.case(
                self.inputs(check),
                mode="outputs",
                restart=self.restart(check),
                digests=digests[check],
                time_limits=limits[check],
            )
            for check in checks
        }
        fallback = {check: compared_here(check) for check in checks if digests[check]}
        return dataclasses.replace(
            self, cases=cases, expected=known, time_limits=limits, times=list(times), fallback_cases=fallback
        )

    def runs(self, check: str) -> list[list[float]]:
        """The per-input limits of each of EvalPlus's runs (base, plus) that this check stands for."""
        limits = self.time_limits.get(check, [])
        cut = len(self.base_input)
        return [limits[:cut], limits[cut:]] if check == "plus" else [limits]


def reference_allowance(problem: Problem, check: str) -> float:
    """Wall-clock seconds added for a check program that runs the reference before the candidate:
    4x the reference's time on the check's inputs, at least 10 s."""
    return max(10.0, 4.0 * problem.reference_seconds(check))


def input_limits(times: list[float]) -> list[float]:
    """EvalPlus's per-input time limits from the ground truth's seconds per input."""
    return [max(MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR * t) for t in times]


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
        """The expected outputs and the reference's time on every input (EvalPlus's ground truth),
        computed once per problem and kept in the ``TruthCache`` for later runs, so samples do not
        each run the reference again."""
        cache = TruthCache.default()
        cases = [p.case(p.inputs("plus"), mode="truth", max_bytes=_TRUTH_BYTES) for p in problems]
        keys = [cache.key(self.name, _check_source(), case) for case in cases]
        found = {i: data for i, key in enumerate(keys) if (data := cache.get(key)) is not None}
        todo = [i for i in range(len(problems)) if i not in found]
        truth = [
            Program(
                source=_check_source(),
                filename="check.py",
                files={"case.pkl": cases[i]},
                exit_ok=False,
                result_file=OUTPUTS,
            )
            for i in todo
        ]
        log.info("%s: ground truth of %d problems cached, %d to compute", self.name, len(found), len(todo))
        for i, result in zip(todo, pool.map(truth, _TRUTH_LIMITS), strict=True):
            if result.passed and result.data is not None:
                found[i] = result.data
            else:  # e.g. Mbpp/255, whose outputs run to hundreds of MB
                found[i] = json.dumps({"unavailable": result.detail[:500] or result.status.value}).encode()
            if result.status in (Status.PASSED, Status.FAILED):  # not a timeout or lost worker: for good
                cache.put(keys[i], found[i])
        return [_with_truth(problem, found[i]) for i, problem in enumerate(problems)]

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
            options: dict = {}  # the Program's own fields: verify, fallback, cost
            if check in problem.expected:
                judge = functools.partial(
                    verify,
                    problem.expected[check],
                    problem.inputs(check),
                    problem,
                    restart=problem.restart(check),
                    settles={"base": len(problem.base_input)} if check == "plus" else None,
                )
                options = {"result_file": OUTPUTS, "verify": judge}
                if check in problem.fallback_cases:  # where the digests differ: compare in the sandbox
                    fallback_files = {"case.pkl": problem.fallback_cases[check], "solution.py": solution}
                    options["fallback"] = Program(
                        source=_check_source(), filename="check.py", files=fallback_files, exit_ok=False
                    )
            # the reference's time (twice where it runs in the sandbox too, before the candidate):
            # the pool starts the longest programs first
            options["cost"] = problem.reference_seconds(check) * (1 if check in problem.expected else 2)
            programs[check] = Program(
                source=_check_source(), filename="check.py", files=files, exit_ok=False, **options
            )
        return programs

    def timed(self, program: Program, problem: Any, check: str, calibrated: float) -> Program:
        """The check's limit; a fallback, which runs the reference too, gets more for that
        (``reference_allowance``): the candidate's own limits stay EvalPlus's."""
        timed = super().timed(program, problem, check, calibrated)
        if timed.fallback is None:
            return timed
        timeout = timed.timeout + reference_allowance(problem, check)
        return dataclasses.replace(timed, fallback=dataclasses.replace(timed.fallback, timeout=timeout))

    def needs_calibration(self, problem: Problem) -> bool:
        return not problem.time_limits  # prepare timed the canonical solution on every input

    def check_timeout(self, problem: Any, check: str, calibrated: float) -> float:
        runs = [run for run in problem.runs(check) if run]
        if not runs:  # no ground-truth times (the check program times the reference itself)
            return calibrated
        limit = sum(min(RUN_LIMIT, sum(run)) + 2.0 for run in runs)
        if check not in problem.expected:  # compared in the sandbox: the reference runs there too
            limit += reference_allowance(problem, check)
        return max(calibrated, limit)

    def settled_by(self, problem: Problem) -> dict[str, str]:
        """The base inputs are the first of the plus check's: its outputs settle both verdicts
        (the base program runs on its own only when the plus run left no outputs to judge)."""
        return {"base": "plus"} if "plus" in problem.expected else {}

    def reference(self, problem: Problem) -> str:
        return problem.canonical_solution

    def judge(self, result: ExecResult) -> ExecResult:
        return syntax_error_verdict(result)


OUTPUTS = "outputs.json"


@dataclass(frozen=True)
class Digest:
    """A large output as the SHA-256 of its canonical bytes (``mbpp_plus_check.canonical``; None:
    the candidate's output has none, not being a plain value); ``floats``: the expected output is
    a float or a list of floats (EvalPlus's tolerance becomes 1e-6 after it)."""

    sha256: str | None
    floats: bool = False


_KINDS = {"l": list, "t": tuple, "S": set, "F": frozenset}
_FLAT = {"s": str, "f": float, "b": bool, "i": int}  # mbpp_plus_check._FLAT: JSON holds them exactly


def _decode(item: Any) -> Any:
    tag, *payload = item
    if len(tag) == 2:  # a flat container: one JSON array whose items must all be of the one type
        container, kind = _KINDS[tag[0]], _FLAT[tag[1]]
        items = payload[0]
        if type(items) is not list or not set(map(type, items)) <= {kind}:
            raise ValueError(f"a {tag!r} container holds other items")
        return items if container is list else container(items)
    if tag in ("n", "b", "s"):
        return payload[0]
    if tag == "#":
        sha = payload[0]
        if sha is not None and not (type(sha) is str and len(sha) == 64 and set(sha) <= _HEX):
            raise ValueError("a digest is not 64 hex digits")
        return Digest(sha, bool(payload[1]) if len(payload) > 1 else False)
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
    if tag not in _KINDS:
        raise ValueError(f"unknown tag {tag!r}")
    return _KINDS[tag](items)


_HEX = frozenset("0123456789abcdef")
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


def _with_truth(problem: Problem, data: bytes) -> Problem:
    """``problem`` with its ground truth. Without its outputs (not plain values, too large to pass
    around, cheaper to compute again than to digest) its check programs compute them in the
    sandbox, as EvalPlus's would (same verdicts), under the per-input limits of the reference's
    times; without those either (the reference's run failed), under limits they time themselves."""
    try:
        outputs, times = decode_truth(data)
        if len(times) != len(problem.inputs("plus")):
            raise ValueError(f"{len(times)} times for {len(problem.inputs('plus'))} inputs")
    except ValueError as exc:
        log.info("%s: no ground truth (%s)", problem.task_id, exc)
        return problem
    return problem.with_cases(outputs, times)


def decode_truth(data: bytes) -> tuple[list | None, list[float]]:
    """The reference's outputs (None: they are compared in the sandbox) and its seconds per input,
    as the truth run wrote them."""
    try:
        truth = json.loads(data)
        if "unavailable" in truth:
            raise ValueError(f"the reference's run: {truth['unavailable']}")
        times = [float(t) for t in truth["times"]]
        if truth["outputs"] is None:
            log.info("expected outputs compared in the sandbox: %s", truth.get("why"))
            return None, times
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"unreadable ground truth: {exc}") from exc
    try:
        outputs = decode_outputs(truth["outputs"])
    except ValueError as exc:  # e.g. an integer too long to pass around: compared in the sandbox
        log.info("expected outputs compared in the sandbox: %s", exc)
        return None, times
    if len(times) != len(outputs):
        raise ValueError("unreadable ground truth: one time per output expected")
    return outputs, times


def decode_run(data: bytes) -> tuple[list, str | None]:
    """A candidate's outputs (``mbpp_plus_check.write_outputs``) and why its run stopped before
    the last input (None: it answered every input)."""
    try:
        run = json.loads(data)
        if not isinstance(run, dict):
            raise ValueError("not an object")
        error = run.get("error")
        if error is not None and not isinstance(error, str):
            raise ValueError("its error is not text")
        return decode_outputs(run["outputs"]), error
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise ValueError(f"unreadable outputs: {exc}") from exc


# first_failure: only a comparison in the sandbox can tell
UNDECIDED = "its digest differs from the expected one's"


def first_failure(
    outputs: list, error: str | None, expected: list, inputs: list, problem: Problem, restart: int | None
) -> tuple[int, str] | None:
    """The first input whose output fails EvalPlus's rules (or is missing) and why; None: all pass.
    The reason is ``UNDECIDED`` where an expected digest differs from the output's first."""
    atol, oracle = problem.atol, problem.oracle
    if oracle is None and error is None and outputs == expected:  # in C; digests equal field by field
        if not any(type(e) is Digest for e in expected):
            return None
    for index, (out, exp, inp) in enumerate(zip(outputs, expected, inputs)):  # noqa: B905 (outputs may stop early)
        if index == restart:  # the plus inputs: EvalPlus's second run starts with the task's atol
            atol = problem.atol
        if type(exp) is Digest:
            if type(out) is not Digest or out.sha256 is None or out.sha256 != exp.sha256:
                return index, UNDECIDED
            if atol == 0 and exp.floats:  # as matches() does after an exact match
                atol = 1e-6
            continue
        if type(out) is Digest:  # written where a value was expected: not the check program's doing
            return index, f"input #{index}: a digest where the output was expected"
        try:
            ok, atol = mbpp_plus_check.matches(out, exp, inp, atol, oracle)
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # e.g. not comparable
            return index, f"input #{index}: {type(exc).__name__}: {exc}"[:500]
        if not ok:
            reason = f"got {mbpp_plus_check._short(out)}, expected {mbpp_plus_check._short(exp)}"
            return index, f"input #{index}: {reason}"[:500]
    if len(outputs) < len(expected):
        return len(outputs), error or f"{len(outputs)} outputs for {len(expected)} inputs"
    if len(outputs) > len(expected):
        return len(expected), f"{len(outputs)} outputs for {len(expected)} inputs"
    return None


def verify(
    expected: list,
    inputs: list,
    problem: Problem,
    result: ExecResult,
    restart: int | None = None,
    settles: Mapping[str, int] | None = None,
) -> ExecResult:
    """The verdict on a candidate's outputs, compared here with EvalPlus's rules. ``settles``:
    other checks whose inputs are the first ``n`` of these ({check: n}), judged on the same
    outputs (``ExecResult.settles``), as EvalPlus's own run of just those inputs would be. Where a
    digest differs before any output fails, the result is ``undecided``: the pool runs the
    program's fallback, which compares in the sandbox (the checks settled before it stand)."""
    try:
        outputs, error = decode_run(result.data or b"")
    except ValueError as exc:  # settles nothing: the other checks run on their own
        return dataclasses.replace(result, status=Status.FAILED, detail=str(exc)[:500], data=None)
    failure = first_failure(outputs, error, expected, inputs, problem, restart)
    passed = dataclasses.replace(result, data=None)
    undecided = failure is not None and failure[1] == UNDECIDED
    also = {
        check: passed
        if failure is None or failure[0] >= count
        else dataclasses.replace(passed, status=Status.FAILED, detail=failure[1])
        for check, count in (settles or {}).items()
        if not undecided or failure[0] >= count
    }
    if failure is None:
        return dataclasses.replace(passed, settles=also)
    if undecided:
        detail = f"input #{failure[0]}: {UNDECIDED}; no comparison in the sandbox to settle it"
        return dataclasses.replace(passed, status=Status.ERROR, detail=detail, settles=also, undecided=True)
    return dataclasses.replace(passed, status=Status.FAILED, detail=failure[1], settles=also)


# The slowest reference runs take tens of seconds on a busy machine; Mbpp/630's expected outputs are
# ~13 MB as base64, Mbpp/255's too large to pass around (its truth run stops at _TRUTH_BYTES).
_TRUTH_LIMITS = Limits(timeout=600.0, keep_output_bytes=64 * MiB, max_output_bytes=64 * MiB)
_TRUTH_BYTES = (
    60 * MiB
)  # the truth run stops past this much output (HumanEval/15 and /130 would write ~150 MB)


@functools.lru_cache(maxsize=1)
def _check_source() -> str:
    return CHECK_SOURCE.read_text(encoding="utf-8")


TASK = MbppPlusTask()
