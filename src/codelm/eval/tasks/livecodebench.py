"""LiveCodeBench (Jain et al. 2024), code generation: contest problems from LeetCode, AtCoder and
Codeforces, each with its release date, checked on public and private tests.

Data: the ``code_generation_lite`` format (LiveCodeBench/LiveCodeBench ``benchmarks/
code_generation.py``): one JSON record per problem with ``question_title``, ``question_content``,
``platform``, ``question_id`` (our task id), ``contest_id``, ``contest_date``, ``starter_code``,
``difficulty``, ``public_test_cases`` (JSON text), ``private_test_cases`` (JSON text, or in the
real files base64 of zlib of a pickle of that JSON text) and ``metadata`` (JSON text; ``func_name``
for LeetCode). Read from a local file (``--data livecodebench=FILE`` or ``livecodebench.jsonl`` in
``--data-dir``), from a clone of the hub repository (a directory holding its ``test.jsonl``,
``test2.jsonl``, ...: the files of ``release_v6`` in it are read), or, for users who are online,
from the hub (``livecodebench/code_generation_lite``: ``release_v6``'s files, 1055 problems from May
2023 to April 2025, downloaded with ``huggingface_hub``; the hub's loading script is not run).
``--release-window START:END`` keeps the problems whose contest falls in those days, the point of
the benchmark: score a model only on problems published after its training cut-off.

Unpickling untrusted data runs code (a pickle can name any callable), so the private tests are read
by an unpickler that refuses every global: only the opcodes of plain builtin values (strings,
numbers, lists, dicts) remain, and the result must be the JSON text. Decompression is capped.

Prompts are LiveCodeBench's (``prompts/code_generation.py``). Chat: its generic question template
(with ``starter_code``: "You will use the following starter code ..."; without: "Read the inputs from
stdin ..."), after its system message, which goes into the user turn as LiveCodeBench does for
models without a system role (so every family's template accepts it); the code is the reply's
fenced block (``extract_code``). Base models: its ``GenericBase`` prompt, one worked example (a
LeetCode one with starter code, a Codeforces one without) then the question, stopped at ``###``.

Scoring follows ``evaluation/testing_util.py``: every test (public, then private) must pass. Problems
with ``func_name`` are call-based (``Solution().<func_name>(*args)`` with each input line's JSON
value; the return value, a tuple taken as a list, must equal the output's JSON value); the others
read stdin and write stdout, equal to the expected output line by line after stripping, a line
also matching when both parse as the same list of decimal numbers (``1.50`` = ``1.5``; no epsilon,
as LiveCodeBench). The sandboxed check program (``livecodebench_check.py``) only runs the candidate
and reports its outputs; the expected outputs never enter the sandbox and ``verify`` compares them
here. Per-test limit: LiveCodeBench's 6 s (``--timeout-floor`` sets it), whole program
``(limit + 1) x tests + 5`` s as its global timeout. Where we differ: each test runs in a fresh
fork (LiveCodeBench reuses one process and one ``Solution`` instance); stdin programs run as scripts
rather than wrapped in a function; nested tuples returned compare as lists (JSON); an output over
32 MiB is an error. No reference solutions are published: nothing to calibrate or self-test.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError
from codelm.jsonl import read_records

from ..generation import GenRequest, GenSettings
from ..program import ExecResult, Program, Status
from ..prompts import cut_at_stops
from .base import Task, syntax_error_verdict
from .data import HubDataset, Source, require_fields

HUB_ID = "livecodebench/code_generation_lite"
VERSION = "release_v6"
HUB_FILES = ("test.jsonl", *(f"test{i}.jsonl" for i in range(2, 7)))  # release_vN: the first N
TEST_TIMEOUT = 6.0  # seconds per test, LiveCodeBench's --timeout default
MAX_DECOMPRESSED = 1 << 30
CHECK_SOURCE = Path(__file__).with_name("livecodebench_check.py")
EXAMPLES = Path(__file__).with_name("livecodebench_examples.json")
OUTPUTS = "outputs.json"
_FIELDS = ("question_content", "platform", "question_id", "contest_date", "starter_code", "difficulty")
_FIELDS += ("public_test_cases", "private_test_cases", "metadata")
SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem specification) and "
    "will generate a correct Python program that matches the specification and passes all tests."
)
WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your "
    "code within delimiters."
)
WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
    "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the "
    "python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)
# ERRATA.md of LiveCodeBench: problems no program can pass here (kept, as upstream scores them)
ERRATA = {
    **dict.fromkeys(("abc337_e", "abc355_e"), "interactive"),
    **dict.fromkeys(("abc350_c", "arc189_a", "most-frequent-ids"), "erroneous tests"),
    "apply-operations-to-make-string-empty": "erroneous tests",
}


@dataclass(frozen=True)
class Problem:
    task_id: str  # question_id
    title: str
    content: str
    platform: str
    contest_date: date
    starter_code: str
    difficulty: str
    fn_name: str | None  # call-based (LeetCode) when set, else stdin/stdout
    inputs: tuple[str, ...] = field(repr=False, compare=False)
    outputs: tuple[str, ...] = field(repr=False, compare=False)

    @property
    def entry_point(self) -> str | None:  # what extract_code looks for in a chat reply
        return self.fn_name

    @functools.cached_property
    def tests_file(self) -> str:
        mode = "call" if self.fn_name else "stdin"
        return json.dumps({"mode": mode, "fn_name": self.fn_name, "inputs": list(self.inputs)})


class _PlainUnpickler(pickle.Unpickler):
    """Builtin values only: every global a pickle names (the way to run code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def decode_tests(value: Any) -> list[dict]:
    """Test cases from JSON text, or base64(zlib(pickle(JSON text))) as the real files hold them."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise ValueError(f"test cases must be text, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass  # the encoded form
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(value.encode(), validate=True), MAX_DECOMPRESSED)
        if inflater.unconsumed_tail:
            raise ValueError(f"over {MAX_DECOMPRESSED} bytes once decompressed")
        text = _PlainUnpickler(io.BytesIO(data)).load()
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"undecodable test cases ({type(exc).__name__}: {exc})") from None
    if not isinstance(text, str):
        raise ValueError(f"encoded test cases must hold JSON text, got {type(text).__name__}")
    return json.loads(text)


def _problem(r: dict, origin: str) -> Problem:
    require_fields(r, _FIELDS, origin)
    qid = str(r["question_id"])
    tests = [*decode_tests(r["public_test_cases"]), *decode_tests(r["private_test_cases"])]
    if not tests or not all(isinstance(t, dict) for t in tests):
        raise ValueError(f"{qid}: no test cases")
    inputs, outputs = tuple(t["input"] for t in tests), tuple(t["output"] for t in tests)
    if not all(isinstance(x, str) for x in inputs + outputs):
        raise ValueError(f"{qid}: test inputs and outputs must be strings")
    metadata = r["metadata"] if isinstance(r["metadata"], dict) else json.loads(r["metadata"] or "{}")
    fn_name = metadata.get("func_name")
    if fn_name:  # call-based: every input line and output is a JSON value
        for text in (*(line for x in inputs for line in x.split("\n")), *outputs):
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{qid}: call-based test value {_short(text)} is not JSON ({exc})") from None
    try:
        released = datetime.fromisoformat(str(r["contest_date"])).date()
    except ValueError:
        raise ValueError(f"{qid}: contest_date {r['contest_date']!r} is not an ISO date") from None
    return Problem(
        qid,
        r.get("question_title", ""),
        r["question_content"],
        r["platform"],
        released,
        r["starter_code"] or "",
        r["difficulty"],
        fn_name or None,
        inputs,
        outputs,
    )


def lines_match(expected: str, actual: str) -> tuple[bool, str]:
    """LiveCodeBench's stdout comparison (``grade_stdio``); the reason when they differ."""
    want = [line.strip() for line in expected.strip().split("\n")]
    got = [line.strip() for line in actual.strip().split("\n")]
    if len(want) != len(got):
        return False, f"{len(got)} lines, expected {len(want)}"
    for number, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b and (_decimals(a) is None or _decimals(a) != _decimals(b)):
            return False, f"line {number + 1}: {_short(a)} != {_short(b)}"
    return True, ""


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None


def values_match(expected: str, actual: str) -> tuple[bool, str]:
    """LiveCodeBench's call-based comparison: the JSON values are equal (``==``)."""
    try:
        got = json.loads(actual, parse_int=_integer)
    except (ValueError, RecursionError) as exc:
        return False, f"return value is not JSON ({type(exc).__name__})"
    want = json.loads(expected, parse_int=_integer)
    return (True, "") if got == want else (False, f"returned {_short(actual)}, expected {_short(expected)}")


def _integer(text: str) -> int | Decimal:
    return int(text) if len(text) < 4000 else Decimal(text)  # past int()'s digit limit


def _short(text: str, size: int = 80) -> str:
    return repr(text if len(text) <= size else text[: size // 2] + "..." + text[-size // 2 :])


def verify(problem: Problem, limit: float, result: ExecResult) -> ExecResult:
    """The verdict on what the check program reports, decided here (the sandbox has no expected
    output): every test ran in time, without error, with the expected output."""
    try:
        tests = json.loads(result.data or b"")["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
            raise TypeError("tests is not a list of objects")
    except (ValueError, TypeError, KeyError) as exc:
        return dataclasses.replace(result, status=Status.FAILED, detail=f"unreadable outputs: {exc}"[:500])
    compare = values_match if problem.fn_name else lines_match
    for number, expected in enumerate(problem.outputs):
        test = tests[number] if number < len(tests) else {"status": "missing"}
        status, output = test.get("status"), test.get("output")
        if status == "timeout":
            detail = f"test #{number}: time limit ({limit:g} s) exceeded"
            return dataclasses.replace(result, status=Status.TIMEOUT, detail=detail, data=None)
        if status != "ok" or not isinstance(output, str):
            why = str(test.get("stderr") or "").strip().splitlines()[-1:] or [f"status {status!r}"]
            detail = f"test #{number}: runtime error: {why[0]}"[:500]
            return dataclasses.replace(result, status=Status.FAILED, detail=detail, data=None)
        ok, why = compare(expected, output)
        if not ok:
            detail = f"test #{number}: wrong answer: {why}"[:500]
            return dataclasses.replace(result, status=Status.FAILED, detail=detail, data=None)
    if len(tests) != len(problem.outputs):
        return dataclasses.replace(result, status=Status.FAILED, detail="more results than tests", data=None)
    return dataclasses.replace(result, data=None)


class LiveCodeBenchTask(Task):
    name = "livecodebench"
    title = f"LiveCodeBench (code generation, {VERSION})"
    file_names = ("livecodebench.jsonl", "livecodebench.jsonl.gz", "test.jsonl")
    hub = HubDataset(HUB_ID, config=VERSION)
    stops = ("###",)  # LiveCodeBench's --stop default, for base models
    max_new_tokens = 2000  # LiveCodeBench's --max_tokens default
    timeout_floor = TEST_TIMEOUT  # per test here: see ``timed``
    preload = ("bisect", "datetime", "json", "operator", "statistics")  # the check program's prelude
    dated = True

    def load(self, source: Source) -> list[Problem]:
        if source.hub is not None and source.hub.id == HUB_ID:
            paths, origin = _download(source.hub.config or VERSION), str(source)
        elif source.path is not None and source.path.name == "test.jsonl":  # a clone of the hub repo
            paths = [source.path.with_name(n) for n in HUB_FILES if source.path.with_name(n).exists()]
            origin = f"{source.path.parent} ({', '.join(p.name for p in paths)})"
        else:
            return super().load(source)
        return self.from_records([r for path in paths for r in read_records(path)], origin)

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        return [_problem(r, origin) for r in records]

    def released(self, problem: Problem) -> date:
        return problem.contest_date

    def notes(self, problems: list[Problem]) -> list[str]:
        known = [f"{p.task_id} ({ERRATA[p.task_id]})" for p in problems if p.task_id in ERRATA]
        return [f"unsolvable as published (LiveCodeBench ERRATA.md): {', '.join(known)}"] if known else []

    def breakdown(self, problems: list[Problem]) -> dict[str, dict[str, str]]:
        """pass@k per difficulty and per platform, as LiveCodeBench's leaderboard reports them."""
        return {
            "difficulty": {p.task_id: p.difficulty for p in problems},
            "platform": {p.task_id: p.platform for p in problems},
        }

    def question(self, problem: Problem) -> str:
        """LiveCodeBench's generic question template (chat models)."""
        text = f"### Question:\n{problem.content}\n\n"
        if problem.starter_code:
            text += f"### Format: {WITH_STARTER}\n```python\n{problem.starter_code}\n```\n\n"
        else:
            text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
        return text + "### Answer: (use the provided format with backticks)\n\n"

    def base_prompt(self, problem: Problem) -> str:
        """LiveCodeBench's ``GenericBase`` prompt: one worked example, then the question."""
        examples = _examples()
        example = examples["with_starter_code" if problem.starter_code else "without_starter_code"]
        shots = [example, {"question": problem.content, "sample_code": problem.starter_code, "answer": ""}]
        text = ""
        for shot in shots:
            text += f"### Question\n{shot['question']}\n\n"
            if problem.starter_code:
                text += f"### Starter Code\n{shot['sample_code']}\n\n"
            text += f"### Answer\n\n{shot['answer']}" + ("\n\n" if shot["answer"] else "")
        return text

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": f"{SYSTEM}\n\n{self.question(problem)}"}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=self.base_prompt(problem))

    def clean(self, problem: Problem, text: str, mode: str) -> str:
        if mode == "chat":
            return super().clean(problem, text, mode)
        code = cut_at_stops(text, self.stops).strip()  # GenericBase: the stopped text, stripped
        return code + "\n" if code else ""

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        files = {"tests.json": problem.tests_file, "solution.py": completion, "limits.json": "{}"}
        program = Program(
            source=_check_source(), filename="check.py", files=files, exit_ok=False, result_file=OUTPUTS
        )
        return {"main": program}

    def needs_calibration(self, problem: Problem) -> bool:
        return False  # no reference solution: the limits are LiveCodeBench's

    def check_timeout(self, problem: Problem, check: str, calibrated: float) -> float:
        """LiveCodeBench's global timeout, ``(per-test limit + 1) x tests + 5``."""
        return (calibrated + 1) * len(problem.inputs) + 5

    def timed(self, program: Program, problem: Problem, check: str, calibrated: float) -> Program:
        """``calibrated`` (the floor: 6 s or ``--timeout-floor``) is the per-test limit the check
        program enforces; the program as a whole gets ``check_timeout``."""
        files = {**program.files, "limits.json": json.dumps({"test_timeout": calibrated})}
        return dataclasses.replace(
            program,
            files=files,
            timeout=self.check_timeout(problem, check, calibrated),
            verify=functools.partial(verify, problem, calibrated),
        )

    def reference(self, problem: Problem) -> str:
        raise CodelmError("LiveCodeBench publishes no reference solutions")

    def candidate_source(self, problem: Problem, completion: str) -> str:
        return completion

    def judge(self, result: ExecResult) -> ExecResult:
        return syntax_error_verdict(result)


def _download(version: str) -> list[Path]:
    """The hub files of ``version`` (``release_vN``: the first N files), cached by huggingface_hub."""
    count = int(version.removeprefix("release_v")) if version.removeprefix("release_v").isdigit() else 0
    if not 1 <= count <= len(HUB_FILES):
        raise CodelmError(
            f"livecodebench: unknown version {version!r} (release_v1 ... release_v{len(HUB_FILES)})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return [Path(hf_hub_download(HUB_ID, name, repo_type="dataset")) for name in HUB_FILES[:count]]
    except Exception as exc:  # offline, moved, gated: any failure becomes one clear line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CodelmError(
            f"cannot download {HUB_ID} ({version}) from the hub ({type(exc).__name__}: {first}); "
            "give a local file with --data-dir DIR or --data livecodebench=PATH"
        ) from exc


@functools.lru_cache(maxsize=1)
def _examples() -> dict:
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _check_source() -> str:
    return CHECK_SOURCE.read_text(encoding="utf-8")


TASK = LiveCodeBenchTask()
