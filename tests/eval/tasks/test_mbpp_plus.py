"""MBPP+: EvalPlus's input deserialization, its comparison rules (float tolerance, special oracles)
in the check program, base and plus verdicts, and the canonical solutions passing both."""

from __future__ import annotations

import json
import re

import pytest

from codelm.eval.execution import ExecutionPool
from codelm.eval.program import Status
from codelm.eval.tasks import mbpp_plus_check as check
from codelm.eval.tasks.mbpp_plus import Digest, decode_outputs

from ..conftest import assert_all_pass, assert_no_strays, load_task, score_canonical, score_samples


@pytest.fixture(scope="module")
def loaded(data_dir):
    task, problems = load_task("mbpp-plus", data_dir)
    return task, {p.task_id: p for p in problems}


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(2, allow_code_execution=True) as p:
        yield p
    assert_no_strays()


def test_inputs_are_deserialized_as_evalplus_does(loaded):
    _, problems = loaded
    assert len(problems) == 399
    assert all(isinstance(arg, tuple) for inp in problems["Mbpp/2"].base_input for arg in inp)
    assert all(isinstance(s, (set, dict)) for inp in problems["Mbpp/115"].plus_input for s in inp[0])
    assert isinstance(problems["Mbpp/124"].base_input[0][1], complex)
    assert isinstance(problems["Mbpp/252"].base_input[0][0], complex)
    assert problems["Mbpp/793"].plus_input == []  # an empty JSON object upstream
    assert problems["Mbpp/2"].prompt.startswith('"""\nWrite a function to find the shared elements')
    assert "assert similar_elements(" in problems["Mbpp/2"].prompt


def test_float_tolerance_follows_numpy_allclose():
    assert check.allclose(1.0, 1.0 + 1e-7, atol=1e-6)
    assert not check.allclose(1.0, 1.1, atol=1e-6)
    assert check.allclose([1.0, (2.0, 3.0)], [1.0, (2.0, 3.0 + 1e-9)], atol=1e-6)
    assert not check.allclose([1.0], [1.0, 2.0], atol=1e-6)
    assert not check.allclose(float("nan"), float("nan"), atol=1e-6)
    assert check.allclose(float("inf"), float("inf"), atol=1e-6)
    assert check.allclose(1 + 1j, 1 + 1.0000001j, atol=1e-6)
    with pytest.raises(TypeError):
        check.allclose("a", 1.0, atol=1e-6)
    assert check.is_floats([1.0, 2.0]) and not check.is_floats([]) and not check.is_floats([1, 2.0])


def test_matches_applies_evalplus_rules():
    # exact, then tolerance with the same type only; 1e-6 becomes sticky once a float is expected
    assert check.matches(3, 3, (), 0, None) == (True, 0)
    assert check.matches(0.1 + 0.2, 0.3, (), 0, None) == (True, 1e-6)
    assert check.matches(1, 1.0000001, (), 0, None)[0] is False  # int vs float: type differs
    assert check.matches([4, 5], (5, 4), (), 0, "set_eq")[0]
    assert check.matches(re.match("a", "a"), True, (), 0, "not_none")[0]
    assert not check.matches(None, True, (), 0, "not_none")[0]
    assert check.matches(0, 7, (), 0, "sum_div")[0] and check.matches("x", 1, (), 0, "are_equivalent")[0]


def run_checks(task, pool, problem, completion):
    programs = task.programs(problem, completion)
    return dict(zip(programs, [task.judge(r) for r in pool.map(programs.values())], strict=True))


def test_base_and_plus_verdicts(loaded, pool):
    task, problems = loaded
    problem = problems["Mbpp/3"]
    verdicts = run_checks(task, pool, problem, problem.canonical_solution)
    assert {c: r.status for c, r in verdicts.items()} == {"plus": Status.PASSED, "base": Status.PASSED}
    # right on the base inputs only: passes MBPP's tests, fails EvalPlus's extra ones
    base_only = problem.canonical_solution + (
        "\n_real = is_not_prime\ndef is_not_prime(*a):\n"
        f"    return _real(*a) if list(a) in {problem.base_input!r} else None\n"
    )
    verdicts = run_checks(task, pool, problem, base_only)
    assert verdicts["base"].status is Status.PASSED and verdicts["plus"].status is Status.FAILED
    assert "expected" in verdicts["plus"].detail
    verdicts = run_checks(task, pool, problem, "def is_not_prime(n:\n")
    assert {r.status for r in verdicts.values()} == {Status.SYNTAX_ERROR}
    verdicts = run_checks(task, pool, problem, "def something_else(n):\n    return 1\n")
    assert "defines no 'is_not_prime'" in verdicts["base"].detail


def test_tolerance_of_the_task_is_applied(loaded, pool):
    task, problems = loaded
    problem = problems["Mbpp/82"]  # volume_sphere, atol 1e-4
    close = "import math\ndef volume_sphere(r):\n  return (4./3.) * math.pi * (r**3) + 0.00005\n"
    far = "import math\ndef volume_sphere(r):\n  return (4./3.) * math.pi * (r**3) + 0.01\n"
    assert all(r.passed for r in run_checks(task, pool, problem, close).values())
    assert not any(r.passed for r in run_checks(task, pool, problem, far).values())


def test_expected_outputs_are_computed_once_per_problem(loaded, pool):
    task, problems = loaded
    subset = [problems["Mbpp/2"], problems["Mbpp/82"]]
    prepared = task.prepare(subset, pool)
    for before, after in zip(subset, prepared, strict=True):
        assert after.cases["plus"] != before.cases["plus"]  # now carries the expected outputs
        verdicts = run_checks(task, pool, after, after.canonical_solution)
        assert all(r.passed for r in verdicts.values())


def test_canonical_first_problems_pass_base_and_plus(data_dir, tmp_path):
    entry = score_canonical("mbpp-plus", data_dir, tmp_path, limit=40)
    assert entry["problems"] == 40 and "base" in entry
    assert_all_pass(entry, checks=("base",))


@pytest.mark.slow
def test_canonical_all_pass_base_and_plus(data_dir, tmp_path, full_sweep):
    entry = score_canonical("mbpp-plus", data_dir, tmp_path)
    assert entry["problems"] == 399
    assert_all_pass(entry, checks=("base",))


def test_outputs_are_compared_outside_the_sandbox(loaded, pool):
    task, problems = loaded
    problem = task.prepare([problems["Mbpp/3"]], pool)[0]
    assert problem.expected and all("expected" not in c for c in map(repr, problem.cases.values()))
    programs = task.programs(problem, problem.canonical_solution)
    assert all(p.verify is not None for p in programs.values())
    # an object that equals everything passes any comparison made next to it; here it cannot
    # even leave the sandbox, and a subclass of a plain type that overrides equality neither
    always_equal = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def is_not_prime(n):\n    return Anything()\n"
    )
    bool_like = "class B(int):\n    def __eq__(self, other):\n        return True\n"
    bool_like += "def is_not_prime(n):\n    return B(0)\n"
    for completion in (always_equal, bool_like):
        verdicts = run_checks(task, pool, problem, completion)
        assert {r.status for r in verdicts.values()} == {Status.FAILED}, verdicts
        assert "cannot be compared outside the sandbox" in verdicts["plus"].detail
    # a forged outputs file without running the check is no pass either
    forged = "import os\nopen('outputs.json', 'w').write('[]')\nos._exit(0)\n"
    assert not any(r.passed for r in run_checks(task, pool, problem, forged).values())
    wrong = "def is_not_prime(n):\n    return n % 2 == 0\n"
    verdicts = run_checks(task, pool, problem, wrong)
    assert verdicts["plus"].status is Status.FAILED and "expected" in verdicts["plus"].detail


def test_output_encoding_round_trips_plain_values_only():
    values = [
        None,
        True,
        3,
        10**50,
        -0.0,
        float("inf"),
        1 + 2j,
        "é",
        b"\x00",
        [1, (2, {3})],
        {"a": frozenset()},
    ]
    decoded = decode_outputs(json.dumps([check.encode(v) for v in values]).encode())
    assert decoded == values and [type(v) for v in decoded] == [type(v) for v in values]
    with pytest.raises(TypeError):
        check.encode(object())
    with pytest.raises(ValueError):
        decode_outputs(b'[["?", 1]]')


def test_flat_containers_leave_the_sandbox_as_plain_json_arrays():
    values = [[0.5, float("nan")], ("a", "b"), {1, 2}, frozenset({True}), [1, 2.0], [2**70, 1], [[1], [2]]]
    encoded = [check.encode(v) for v in values]
    assert [e[0] for e in encoded] == ["lf", "ts", "Si", "Fb", "l", "l", "l"]  # mixed, huge ints: tagged
    decoded = decode_outputs(json.dumps(encoded).encode())
    assert [type(v) for v in decoded] == [type(v) for v in values]
    assert decoded[0][0] == 0.5 and decoded[0][1] != decoded[0][1] and decoded[1:] == values[1:]
    # the parent checks every item's type: a forged flat list cannot smuggle another kind in
    for forged in (b'[["lf", [1, 2.0]]]', b'[["li", [true]]]', b'[["ls", "ab"]]', b'[["lx", []]]'):
        with pytest.raises(ValueError):
            decode_outputs(forged)


def test_one_run_settles_base_and_plus(loaded, pool):
    """The plus program's outputs judge the base inputs (its first ones) too; a run that leaves no
    outputs settles nothing, and the runner then runs the base program on its own."""
    task, problems = loaded
    problem = task.prepare([problems["Mbpp/3"]], pool)[0]
    assert task.settled_by(problem) == {"base": "plus"}
    base = problem.base_input
    wrap = f"\n_real = is_not_prime\ndef is_not_prime(*a):\n    if list(a) not in {base!r}:\n        {{}}\n"
    wrap += "    return _real(*a)\n"
    cases = {
        "canonical": ("", Status.PASSED, Status.PASSED),
        "raises on a plus input": (wrap.format("raise ValueError('plus')"), Status.PASSED, Status.FAILED),
        "wrong on a plus input": (wrap.format("return None"), Status.PASSED, Status.FAILED),
        "raises on every input": (
            "\ndef is_not_prime(n):\n    raise ValueError('all')\n",
            Status.FAILED,
            None,
        ),
    }
    for name, (extra, base_status, plus_status) in cases.items():
        program = task.programs(problem, problem.canonical_solution + extra)["plus"]
        result = task.judge(pool.map([program])[0])
        assert result.settles["base"].status is base_status, (name, result.settles["base"].detail)
        assert result.status is (plus_status or Status.FAILED), (name, result.detail)
        if name == "raises on a plus input":  # the candidate's exception is the reason given
            assert "ValueError: plus" in result.detail and result.settles["base"].detail == ""
    crash = wrap.format("import os; os._exit(0)")
    result = pool.map([task.programs(problem, problem.canonical_solution + crash)["plus"]])[0]
    assert result.status is Status.FAILED and result.settles == {}


def test_the_base_program_runs_when_the_plus_run_settles_nothing(data_dir, tmp_path):
    task, problems = load_task("mbpp-plus", data_dir)
    problem = problems[0]  # Mbpp/2
    crash = (
        f"\n_real = {problem.entry_point}\ndef {problem.entry_point}(*a):\n"
        f"    if list(a) not in {problem.base_input!r}:\n        import os; os._exit(0)\n"
        "    return _real(*a)\n"
    )
    records = [
        {"task_id": problem.task_id, "completion": problem.canonical_solution + crash},
        {"task_id": problem.task_id, "completion": problem.canonical_solution},
    ]
    entry, scored = score_samples("mbpp-plus", records, data_dir, tmp_path, limit=1)
    verdicts = [(r["checks"]["base"]["status"], r["checks"]["plus"]["status"]) for r in scored]
    assert verdicts == [("passed", "failed"), ("passed", "passed")]
    runs = [json.loads(line) for line in (tmp_path / "run" / "executions.jsonl").read_text().splitlines()]
    # the crashed sample's base verdict has its own (short) run; the canonical's came with its plus run
    runtime = {(r["index"], r["check"]): r["runtime"] for r in runs}
    assert runtime[1, "base"] == runtime[1, "plus"] and runtime[0, "base"] != runtime[0, "plus"]


def test_ground_truth_is_cached_across_runs(loaded, pool, tmp_path, monkeypatch):
    from codelm.eval.store import TruthCache

    task, problems = loaded
    # 255: ~1.4 GB of outputs, digested or compared in the sandbox (whichever its truth run found
    # cheaper); either way the reference's times give its per-input limits
    subset = [problems["Mbpp/2"], problems["Mbpp/255"]]
    monkeypatch.setenv("CODELM_EVAL_CACHE", str(tmp_path / "cache"))
    first = task.prepare(subset, pool)
    assert first[0].expected and len(list((tmp_path / "cache").iterdir())) == 2
    assert all(p.time_limits and not task.needs_calibration(p) for p in first)

    class NoPool:  # a warm cache runs nothing
        def map(self, programs, limits=None):
            assert not list(programs), "the cached ground truth was computed again"
            return []

    again = task.prepare(subset, NoPool())
    for before, after in zip(first, again, strict=True):
        assert after.expected == before.expected and after.time_limits == before.time_limits
    monkeypatch.setenv("CODELM_EVAL_CACHE", "off")
    assert TruthCache.default().root is None
    key = TruthCache.key("t", "a", b"b")
    assert key.startswith("t-") and key != TruthCache.key("t", "ab") and key == TruthCache.key("t", "a", b"b")


def _made_up(task_id: str, solution: str, base_input: list, plus_input: list, f_of_3: str) -> dict:
    """An MBPP+ record of a one-argument function ``f`` (its example: ``f(3) == f_of_3``)."""
    return {
        "task_id": task_id,
        "prompt": '"""\nWrite a function f.\n"""\n',
        "entry_point": "f",
        "canonical_solution": solution,
        "base_input": base_input,
        "plus_input": plus_input,
        "atol": 0,
        "assertion": f"assert f(3) == {f_of_3}\n",
    }


def test_large_outputs_are_compared_by_digest_and_a_differing_digest_by_the_fallback(pool, monkeypatch):
    """Outputs past DIGEST_BYTES leave the sandbox as the SHA-256 of their canonical bytes; equal
    digests pass, and where they differ (equal values of other types, or wrong ones) the comparison
    in the sandbox decides, with EvalPlus's rules; the checks settled before that input stand."""
    import dataclasses

    from codelm.eval.tasks.mbpp_plus import TASK as task

    monkeypatch.setenv("CODELM_EVAL_CACHE", "off")
    record = _made_up(
        "Mbpp/9001", "def f(n):\n    return list(range(n))\n", [[3], [5000]], [[6000], [4]], "[0, 1, 2]"
    )
    problem = task.prepare(task.parse([record], "test"), pool)[0]
    assert [type(e) for e in problem.expected["plus"]] == [list, Digest, Digest, list]
    # the candidate's case holds no reference to run; the fallback's, comparing in the sandbox, does
    assert (
        b"list(range(n))" not in problem.cases["plus"] and b"list(range(n))" in problem.fallback_cases["plus"]
    )

    def plus(completion: str, fallback: bool = True):
        program = task.timed(task.programs(problem, completion)["plus"], problem, "plus", 3.0)
        assert program.fallback is not None and program.fallback.timeout >= program.timeout + 10
        return task.judge(pool.map([program if fallback else dataclasses.replace(program, fallback=None)])[0])

    canonical = plus(record["canonical_solution"], fallback=False)  # equal digests: no fallback needed
    assert canonical.status is Status.PASSED and canonical.settles["base"].passed
    floats = "def f(n):\n    return [float(i) for i in range(n)]\n"  # == the ints, other bytes
    undecided = plus(floats, fallback=False)
    assert undecided.undecided and undecided.status is Status.ERROR and "digest" in undecided.detail
    assert undecided.settles == {}  # the digest differs on a base input: nothing settled
    assert plus(floats).status is Status.PASSED
    wrong = "def f(n):\n    return list(range(n if n < 5500 else n - 1))\n"  # right on the base inputs
    result = plus(wrong)
    assert result.status is Status.FAILED and "expected" in result.detail
    assert result.settles["base"].passed  # from the first run, before the differing digest
    not_plain = "def f(n):\n    class L(list):\n        pass\n    return L(range(n))\n"
    assert plus(not_plain).status is Status.PASSED  # no digest, then == as EvalPlus compares


def test_truth_digests_only_where_equal_bytes_mean_equal_values():
    big = list(range(5000))
    tag, sha, floats = check.truth_digest(big, None)
    assert (tag, floats) == ("#", 0) and sha == check.digest(list(range(5000)))
    assert check.truth_digest([0.5] * 5000, None)[2] == 1  # a list of floats: the tolerance follows
    assert check.truth_digest(big[:10], None) is None  # small: compared as values
    assert check.truth_digest(big, "set_eq") is None  # an oracle compares otherwise
    assert check.truth_digest([float("nan")] * 5000, None) is None  # NaN equals nothing
    assert check.truth_digest(set(big), None) is None  # iteration order differs between processes
    assert check.truth_digest([b"x"] * 5000, None) is None  # an array would marshal as bytes too
    assert check.digest(object()) is None and check.digest(1) != check.digest(1.0)
    assert decode_outputs(json.dumps([["#", sha, 1], ["#", None]]).encode()) == [
        Digest(sha, True),
        Digest(None),
    ]
    with pytest.raises(ValueError):
        decode_outputs(b'[["#", "not hex"]]')


def test_programs_cost_the_references_time_twice_where_it_runs_in_the_sandbox(pool, monkeypatch):
    """The pool starts the costliest programs first: a check program costs the reference's time on
    its inputs, and twice that where the expected outputs cannot leave the sandbox (Mbpp/255, or a
    Counter here: no plain value), since the reference then runs there too, before the candidate."""
    from codelm.eval.tasks.mbpp_plus import TASK as task

    monkeypatch.setenv("CODELM_EVAL_CACHE", "off")
    record = _made_up("Mbpp/9002", "def f(n):\n    return sum(range(n))\n", [[10], [20000]], [[30000]], "3")
    counted = record | {
        "task_id": "Mbpp/9003",
        "canonical_solution": "import collections\ndef f(n):\n    return collections.Counter(range(n))\n",
    }
    plain, compared_here = task.prepare(task.parse([record, counted], "test"), pool)
    assert plain.expected and not compared_here.expected and len(compared_here.times) == 3
    for problem, runs in ((plain, 1), (compared_here, 2)):
        programs = task.programs(problem, problem.canonical_solution)
        assert programs["plus"].cost == pytest.approx(runs * sum(problem.times)) and programs["plus"].cost > 0
        assert programs["base"].cost == pytest.approx(runs * sum(problem.times[:2]))
