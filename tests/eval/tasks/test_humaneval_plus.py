"""HumanEval+: the tasks load EvalPlus's v0.1.10 files, and codelm's base/plus verdicts equal
evalplus 0.3.1's (run as users run it: ``python -m evalplus.evaluate``) on the canonical solutions
and deliberately wrong ones: off by one, the wrong type, a float nudged within and beyond the
tolerance, an exception on edge inputs, slow but correct, and over the per-input time limit. The
default tier checks a fixed subset of problems; ``-m slow`` all 164. The one known disagreement,
HumanEval/32, is asserted as such (docs/eval.md, "HumanEval+")."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from codelm.eval.tasks import humaneval_plus

from ..conftest import load_task, score_canonical

# quick ground truth, and between them: ints, strings, lists, floats with atol (2), the find_zero
# oracle (32), tuples (8), booleans (0), exceptions on empty inputs (12: None for [])
SUBSET = ("HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/8", "HumanEval/12", "HumanEval/32")
SUBSET += ("HumanEval/53", "HumanEval/101")

MUTATE = {  # module-level code appended after the canonical solution: it wraps the entry point
    "off_by_one": "out + 1 if type(out) is int else out[:-1] if isinstance(out, (str, list)) and out "
    "else (not out) if isinstance(out, bool) else out + 1e-3 if isinstance(out, float) else out",
    "wrong_type": "float(out) if type(out) is int else tuple(out) if isinstance(out, list) "
    "else int(out) if isinstance(out, bool) else str(out)",
    "nudged_in_tolerance": "out + 1e-9 if isinstance(out, float) else out",
    "edge_exception": "_edge(args, out)",
    "slow_correct": "_sleep(0.0005, out)",
    "too_slow": "_sleep(2.5 if not _calls else 0, out)",
}
PRELUDE = """
import time as _time
_calls = []
def _edge(args, out):
    if any(a in (0, "", [], ()) for a in args if isinstance(a, (int, str, list, tuple))):
        raise ValueError("edge input")
    return out
def _sleep(seconds, out):
    _time.sleep(seconds)
    _calls.append(1)
    return out
"""


def variants(problem) -> dict[str, str]:
    """The completions checked for ``problem``: its canonical solution and the wrong ones."""
    out = {"canonical": problem.canonical_solution}
    for name, expression in MUTATE.items():
        wrapper = (
            f"{PRELUDE}\n_original = {problem.entry_point}\n"
            f"def {problem.entry_point}(*args):\n    out = _original(*args)\n    return {expression}\n"
        )
        out[name] = problem.canonical_solution + "\n" + wrapper
    return out


def evalplus_verdicts(data_file, samples: list[dict], tmp_path) -> list[tuple[bool, bool]]:
    """(base, plus) per sample from ``python -m evalplus.evaluate``; plus as EvalPlus counts it
    for HumanEval+: base and plus both pass. The ground truth is computed afresh (empty cache)."""
    samples_file = tmp_path / "evalplus_samples.jsonl"
    samples_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    env = os.environ | {"HUMANEVAL_OVERRIDE_PATH": str(data_file), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "evalplus.evaluate", "--dataset", "humaneval"]
    argv += ["--samples", str(samples_file), "--parallel", "2", "--i_just_wanna_run"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "evalplus_samples_eval_results.json").read_text())["eval"]
    seen: dict[str, int] = {}
    verdicts = []
    for s in samples:
        r = results[s["task_id"]][seen.setdefault(s["task_id"], 0)]
        seen[s["task_id"]] += 1
        verdicts.append((r["base_status"] == "pass", r["base_status"] == r["plus_status"] == "pass"))
    return verdicts


def codelm_verdicts(data_dir, samples: list[dict], tmp_path) -> list[tuple[bool, bool, str]]:
    from codelm.eval.backends.samples import SamplesBackend
    from codelm.eval.runner import EvalOptions, run_eval

    samples_file = tmp_path / "codelm_samples.jsonl"
    samples_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    options = EvalOptions(
        tasks=("humaneval-plus",),
        output=tmp_path / "run",
        data={"humaneval-plus": str(data_dir)},
        allow_code_execution=True,
        progress=False,
        require_all=True,
    )
    run_eval(options, SamplesBackend(samples_file))
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    by_key = {(r["task_id"], r["index"]): r for r in records}
    seen: dict[str, int] = {}
    verdicts = []
    for s in samples:
        r = by_key[s["task_id"], seen.setdefault(s["task_id"], 0)]
        seen[s["task_id"]] += 1
        checks = r["checks"]
        detail = f"base {checks['base']['detail']} / plus {checks['plus']['detail']}"
        verdicts.append((checks["base"]["status"] == "passed", checks["plus"]["status"] == "passed", detail))
    return verdicts


def both(records: list[dict], samples: list[dict], data_dir, tmp_path) -> tuple[list, list]:
    """evalplus's and codelm's verdicts on ``samples``, over a data file of ``records``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "HumanEvalPlus.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return evalplus_verdicts(data, samples, tmp_path), codelm_verdicts(data, samples, tmp_path)


def check_parity(data_dir, tmp_path, task_ids: tuple[str, ...] | None) -> None:
    if importlib.util.find_spec("evalplus") is None:
        pytest.skip("evalplus is not installed (pip install 'codelm[bench]')")
    task, problems = load_task("humaneval-plus", data_dir)
    problems = [p for p in problems if task_ids is None or p.task_id in task_ids]
    with gzip.open(data_dir / "HumanEvalPlus.jsonl.gz", "rt") as f:
        records = {
            r["task_id"]: r for r in map(json.loads, f) if task_ids is None or r["task_id"] in task_ids
        }
    samples, labels = [], []
    for problem in problems:
        for name, completion in variants(problem).items():
            samples.append({"task_id": problem.task_id, "completion": completion})
            labels.append((problem.task_id, name))
    theirs, ours = both(list(records.values()), samples, data_dir, tmp_path / "all")
    differ = []
    for i, ((task_id, name), verdict, (our_base, our_plus, detail)) in enumerate(
        zip(labels, theirs, ours, strict=True)
    ):
        if task_id == "HumanEval/32":  # evalplus 0.3.1 fails every solution of find_zero (docs/eval.md)
            assert verdict == (False, False), (task_id, name)
            if name in ("canonical", "slow_correct", "too_slow", "wrong_type"):  # the oracle's verdicts
                expected = name in ("canonical", "slow_correct")
                assert (our_base, our_plus) == (expected, expected), (task_id, name, detail)
        elif verdict != (our_base, our_plus):
            differ.append(i)
    if differ:  # a time limit met by one harness and not the other: run those samples once more
        again = [samples[i] for i in differ]
        ids = {s["task_id"] for s in again}
        theirs2, ours2 = both([records[t] for t in sorted(ids)], again, data_dir, tmp_path / "again")
        # where evalplus failed its own canonical solution, the machine's load met its time limits:
        # its failures of other correct variants there are the same noise (docs/eval.md)
        noisy = {
            t for (t, n), v in zip(labels, theirs, strict=True) if n == "canonical" and v != (True, True)
        }
        stable = [
            (labels[i], theirs[i], ours[i], theirs2[j], ours2[j])
            for j, i in enumerate(differ)
            if theirs2[j] == theirs[i]
            and ours2[j][:2] == ours[i][:2]
            and theirs[i] != ours[i][:2]
            and not (labels[i][0] in noisy and ours[i][:2] == (True, True))
        ]
        assert not stable, f"verdicts differ from evalplus's in two runs: {stable}"
    # the variants do what they are named for: the canonical ones pass (but for a time limit met on a
    # loaded machine), too_slow fails
    verdict = dict(zip(labels, ours, strict=True))
    for problem in problems:
        if problem.task_id != "HumanEval/32":
            base, plus, detail = verdict[problem.task_id, "canonical"]
            assert (base, plus) == (True, True) or "time limit" in detail, (problem.task_id, detail)
            assert verdict[problem.task_id, "too_slow"][:2] == (False, False)
            assert "time limit" in verdict[problem.task_id, "too_slow"][2]


def test_verdicts_equal_evalplus_on_a_subset(data_dir, tmp_path):
    check_parity(data_dir, tmp_path, SUBSET)


@pytest.mark.slow
def test_verdicts_equal_evalplus_on_all_164(data_dir, tmp_path, full_sweep):
    check_parity(data_dir, tmp_path, None)


def test_problems_and_time_limits(data_dir):
    task, problems = load_task("humaneval-plus", data_dir)
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    assert sum(len(p.plus_input) for p in problems) == 122_683
    assert problems[32].oracle == "find_zero" and problems[32].atol == 1e-4 and problems[0].oracle is None
    limited = problems[0].with_cases([True] * 10_000, [0.0001] * 7 + [0.5] + [0.0] * 9_992)
    assert limited.time_limits["base"] == [1.0] * 7
    assert limited.time_limits["plus"][7] == 2.0
    # EvalPlus: each run (base, plus) gets min(60, the sum of its limits) + 1, and 1 more to join
    assert task.check_timeout(limited, "base", calibrated=3.0) == 9.0
    assert task.check_timeout(limited, "plus", calibrated=3.0) == 9.0 + 62.0
    assert task.check_timeout(problems[0], "plus", calibrated=3.0) == 3.0  # no ground-truth times
    mini, small = load_task("humaneval-plus-mini", data_dir)
    assert len(small) == 164 and sum(len(p.plus_input) for p in small) == 1_107


def test_canonical_mini_passes(data_dir, tmp_path):
    entry = score_canonical("humaneval-plus-mini", data_dir, tmp_path, limit=20)
    assert entry["counts"] == {"passed": 20} and entry["base"]["counts"] == {"passed": 20}
    assert "timeouts" not in entry  # the ground-truth run timed the canonical solutions: no calibration


def test_huge_integers_leave_the_sandbox():
    """HumanEval/139's outputs have ~250,000 digits: hex both ways, no decimal conversion limit."""
    from codelm.eval.tasks import mbpp_plus, mbpp_plus_check

    huge = -(7**300_000)
    encoded = json.dumps([mbpp_plus_check.encode(huge), mbpp_plus_check.encode([1, huge])]).encode()
    assert mbpp_plus.decode_outputs(encoded) == [huge, [1, huge]]
    assert mbpp_plus_check._short(huge).startswith("<an int of")
    with pytest.raises(ValueError, match="hex digits"):
        mbpp_plus.decode_outputs(json.dumps([["i", "f" * (mbpp_plus.MAX_HEX_DIGITS + 1)]]).encode())


def test_the_hub_copy_without_inputs_is_refused_clearly(tmp_path):
    from codelm.errors import CodelmError
    from codelm.eval.tasks.data import Source

    origin = tmp_path / "HumanEvalPlus-OriginFmt.jsonl"
    origin.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "", "test": ""}) + "\n")
    with pytest.raises(CodelmError, match="no EvalPlus inputs.*humanevalplus_release"):
        humaneval_plus.TASK.load(Source(path=origin))
