"""LiveCodeBench on a fixture in the exact ``code_generation_lite`` format (no copy of the data is
reachable here): private tests encoded as the real files hold them, stdin/stdout and call-based
problems, release dates. Correct, wrong, timing-out and hostile solutions are scored through
``--samples``; a tiny real model runs the plumbing; the release window, prompts, safe decoding and
the hub-clone layout are checked on their own."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from datetime import date

import pytest

from codelm.config import ConfigError
from codelm.errors import CodelmError
from codelm.eval import cli
from codelm.eval.generation import GenSettings
from codelm.eval.tasks import get_task, livecodebench
from codelm.eval.tasks.data import Source
from codelm.eval.window import ReleaseWindow

from ..conftest import assert_no_strays
from ..test_cli import parse


def encode(tests: list[dict]) -> str:
    """Private tests as the real files hold them: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def case(inp: str, out: str, kind: str = "stdin") -> dict:
    return {"input": inp, "output": out, "testtype": kind}


def record(qid, date_, public, private, *, starter="", func=None, platform="atcoder", level="easy") -> dict:
    return {
        "question_title": qid,
        "question_content": f"Problem {qid}.",
        "platform": platform,
        "question_id": qid,
        "contest_id": qid.split("_")[0],
        "contest_date": f"{date_}T00:00:00",
        "starter_code": starter,
        "difficulty": level,
        "public_test_cases": json.dumps(public),
        "private_test_cases": encode(private),
        "metadata": json.dumps({"func_name": func} if func else {}),
    }


TWO_SUM = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        "
FIXTURE = [
    # stdin/stdout: the sum of N integers (the slow test is #2, a private one)
    record(
        "abc001_a",
        "2023-06-10",
        [case("3\n1 2 3\n", "6\n")],
        [case("1\n5\n", "5\n"), case("4\n10 20 30 40\n", "100\n")],
    ),
    # stdin/stdout with decimals and several lines: the mean, then the count
    record(
        "abc002_b",
        "2024-02-03",
        [case("2\n2 3\n", "2.5000000000\n2\n")],
        [case("3\n1 1 2\n", "1.333\n3\n")],
        level="medium",
    ),
    # call-based (LeetCode)
    record(
        "3000",
        "2024-08-15",
        [case("[2,7,11,15]\n9", "[0, 1]", "functional")],
        [case("[3,2,4]\n6", "[1, 2]", "functional"), case("[3,3]\n6", "[0, 1]", "functional")],
        starter=TWO_SUM,
        func="twoSum",
        platform="leetcode",
        level="medium",
    ),
    record(
        "3001",
        "2025-01-20",
        [case('"abba"', "true", "functional")],
        [case('"abc"', "false", "functional"), case('"x"', "true", "functional")],
        starter="class Solution:\n    def isPalindrome(self, s: str) -> bool:\n        ",
        func="isPalindrome",
        platform="leetcode",
        level="hard",
    ),
]

SUM = "n = int(input())\nprint(sum(map(int, input().split())))\n"
TWO_SUM_OK = (
    "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n                return [seen[target - x], i]\n"
    "            seen[x] = i\n"
)
# (task_id, completion, expected status, a word of the expected detail)
CASES = {
    # correct solutions, in the ways real ones are written
    "sum": ("abc001_a", SUM, "passed", None),
    "sum-main-guard-exit": (
        "abc001_a",
        "import sys\ndef main():\n    data = sys.stdin.buffer.read().split()\n"
        "    sys.stdout.write(str(sum(map(int, data[1:]))) + '\\n')\n    sys.exit(0)\n"
        "if __name__ == '__main__':\n    main()\n",
        "passed",
        None,
    ),
    "sum-open0-prelude": (
        "abc001_a",
        "a = list(map(int, open(0).read().split()))\nprint(reduce(add, a[1:]))\n",
        "passed",
        None,
    ),
    "mean-decimals": (
        "abc002_b",
        "n = int(input()); a = list(map(int, input().split()))\n"
        "print(f'{sum(a)/n:.1f}' if n == 2 else '1.333')\nprint(n)\n",
        "passed",
        None,
    ),
    "two-sum": ("3000", TWO_SUM_OK, "passed", None),
    "two-sum-tuple": (
        "3000",
        TWO_SUM_OK.replace("[seen[target - x], i]", "seen[target - x], i"),
        "passed",
        None,
    ),
    "palindrome-function": ("3001", "def isPalindrome(s):\n    return s == s[::-1]\n", "passed", None),
    "palindrome-with-tests": (
        "3001",
        "class Solution:\n    def isPalindrome(self, s):\n        return s == s[::-1]\n"
        "if __name__ == '__main__':\n    raise SystemExit('test code must not run')\n",
        "passed",
        None,
    ),
    # wrong ones
    "sum-public-only": ("abc001_a", "print(6)\n", "failed", "test #1: wrong answer"),
    "mean-wrong-decimal": (
        "abc002_b",
        "input(); input()\nprint('2.6')\nprint(2)\n",
        "failed",
        "test #0: wrong answer",
    ),
    "mean-missing-line": ("abc002_b", "input(); input()\nprint('2.5')\n", "failed", "1 lines, expected 2"),
    "two-sum-wrong": (
        "3000",
        "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n",
        "failed",
        "test #1",
    ),
    "two-sum-set": (
        "3000",
        TWO_SUM_OK.replace("[seen[target - x], i]", "{seen[target - x], i}"),
        "failed",
        "test #0: runtime error",
    ),
    "wrong-name": (
        "3001",
        "class Solution:\n    def isPal(self, s):\n        return True\n",
        "failed",
        "runtime error",
    ),
    "raises": ("abc001_a", "raise ValueError('boom')\n", "failed", "ValueError: boom"),
    "syntax": ("abc001_a", "def (:\n", "syntax_error", "SyntaxError"),
    # too slow: forever, ignoring signals, or only on private test #2 (1 s per test here)
    "forever": ("abc001_a", "while True:\n    pass\n", "timeout", "test #0: time limit (1 s)"),
    "ignores-signals": (
        "3000",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "class Solution:\n    def twoSum(self, nums, target):\n        while True:\n            pass\n",
        "timeout",
        "test #0",
    ),
    "slow-on-private": (
        "abc001_a",
        "import time\nn = int(input())\nif n == 4:\n    time.sleep(3)\n"
        "print(sum(map(int, input().split())))\n",
        "timeout",
        "test #2: time limit",
    ),
    # hostile: a fake verdict, forged result files, early exits, reading the tests, the harness
    "fake-verdict": (
        "abc001_a",
        "import json\nprint('passed')\nprint(json.dumps({'status': 'passed', 'tests': 'all'}))\n"
        "open('outputs.json', 'w').write(json.dumps({'tests': [{'status': 'ok', 'output': '6'}] * 3}))\n",
        "failed",
        "wrong answer",
    ),
    "exit-early": ("abc001_a", "import sys\nsys.exit(0)\nprint(6)\n", "failed", "wrong answer"),
    "os-exit-early": ("3000", "import os\nos._exit(0)\n", "failed", "return value is not JSON"),
    "exit-in-call": (
        "3001",
        "class Solution:\n    def isPalindrome(self, s):\n        raise SystemExit(0)\n",
        "failed",
        "runtime error",
    ),
    "always-equal": (
        "3001",
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "class Solution:\n    def isPalindrome(self, s):\n        return Anything()\n",
        "failed",
        "runtime error",
    ),
    "reads-the-tests": (
        "abc001_a",
        "import os\nfor name in sorted(os.listdir('.')):\n"
        "    print(name, open(name, errors='replace').read()[:200] if os.path.isfile(name) else '')\n",
        "failed",
        "wrong answer",
    ),
    "kills-the-harness": (
        "abc001_a",
        "import os, signal\nfor pid in (os.getppid(), 1):\n"
        "    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):\n"
        "        try:\n            os.kill(pid, sig)\n        except OSError:\n            pass\n"
        "open('outputs.json', 'w').write('{\"tests\": []}')\nprint(7)\n",
        "failed",
        "wrong answer",
    ),
    "kills-the-harness-then-solves": (  # the harness is its namespace's init: it survives
        "abc001_a",
        "import os, signal\nfor sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):\n"
        "    os.kill(1, sig)\n" + SUM,
        "passed",
        None,
    ),
    "late-daemon": (
        "abc001_a",
        "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1.5)\n"
        "    n = int(input()); print(sum(map(int, input().split())), flush=True)\n"
        "    open('outputs.json', 'w').write('{\"tests\": []}')\n    os._exit(0)\n",
        "failed",
        "wrong answer",
    ),
}


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lcb") / "livecodebench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in FIXTURE), encoding="utf-8")
    return path


def score(samples: list[dict], fixture_file, out, *flags: str) -> dict:
    path = out.parent / f"{out.name}-samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    argv = ["--samples", str(path), "--tasks", "livecodebench", "--data", f"livecodebench={fixture_file}"]
    argv += ["--allow-code-execution", "--no-progress", "--timeout-floor", "1", "--output", str(out), *flags]
    return cli.eval_from_args(parse(*argv))


def test_loads_the_lite_format(fixture_file):
    task = get_task("livecodebench")
    problems = task.load(Source(path=fixture_file))
    assert [p.task_id for p in problems] == ["abc001_a", "abc002_b", "3000", "3001"]
    first, call = problems[0], problems[2]
    assert first.inputs == ("3\n1 2 3\n", "1\n5\n", "4\n10 20 30 40\n") and first.fn_name is None
    assert call.fn_name == "twoSum" and call.outputs == ("[0, 1]", "[1, 2]", "[0, 1]")
    assert task.released(call) == date(2024, 8, 15)
    # the expected outputs never enter the sandbox: only inputs travel with the program
    files = task.programs(first, SUM)["main"].files
    assert "100" not in "".join(files.values()) and "10 20 30 40" in files["tests.json"]


def test_every_verdict_through_samples(fixture_file, tmp_path, info):
    if not info.get("pid_namespace"):
        pytest.skip(f"needs per-sample PID namespaces for the harness to outlive its candidates: {info}")
    samples = [{"task_id": qid, "completion": code} for qid, code, _, _ in CASES.values()]
    summary = score(samples, fixture_file, tmp_path / "run")
    scored = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    by_completion = {(r["task_id"], r["completion"]): r for r in scored}
    wrong = {}
    for name, (qid, code, status, word) in CASES.items():
        r = by_completion[qid, code]
        if r["status"] != status or (word and word not in (r["error"] or "")):
            wrong[name] = (r["status"], r["error"])
    assert not wrong, wrong
    entry = summary["livecodebench"]
    statuses = [s for _, _, s, _ in CASES.values()]
    assert entry["counts"] == {s: statuses.count(s) for s in sorted(set(statuses))}
    # pass@1 is the unbiased estimate averaged over problems (n differs per problem here)
    per_problem = {}
    for qid, _, status, _ in CASES.values():
        per_problem.setdefault(qid, []).append(status == "passed")
    expected = sum(sum(v) / len(v) for v in per_problem.values()) / len(per_problem)
    assert entry["pass@1"] == pytest.approx(expected)
    # and by difficulty and platform, as LiveCodeBench's leaderboard reports them
    facets = {r["question_id"]: (r["difficulty"], r["platform"]) for r in FIXTURE}
    for index, facet in enumerate(("difficulty", "platform")):
        labels = {qid: f[index] for qid, f in facets.items()}
        for label in set(labels.values()):
            rates = [sum(v) / len(v) for qid, v in per_problem.items() if labels[qid] == label]
            assert entry[f"by_{facet}"][label]["pass@1"] == pytest.approx(sum(rates) / len(rates)), facet
    assert set(entry["by_difficulty"]) == {"easy", "medium", "hard"}
    assert_no_strays()


def test_pass_at_k_and_release_window(fixture_file, tmp_path):
    samples = [  # two samples per problem: 3000 1 of 2, 3001 2 of 2; the others are outside the window
        {"task_id": "3000", "completion": TWO_SUM_OK},
        {
            "task_id": "3000",
            "completion": "class Solution:\n    def twoSum(self, n, t):\n        return []\n",
        },
        {"task_id": "3001", "completion": "def isPalindrome(s):\n    return s == s[::-1]\n"},
        {"task_id": "3001", "completion": "isPalindrome = lambda s: s[::-1] == s\n"},
        {"task_id": "abc001_a", "completion": "print(1)\n"},
        {"task_id": "abc002_b", "completion": SUM},
    ]
    out = tmp_path / "window"
    window = "2024-02-04:2025-01-20"  # both ends are days included
    summary = score(samples, fixture_file, out, "--release-window", window, "--k", "1,2")
    entry = summary["livecodebench"]
    assert entry["problems"] == 2 and entry["samples"] == 4 and entry["release_window"] == window
    assert entry["pass@1"] == pytest.approx(0.75) and entry["pass@2"] == pytest.approx(1.0)
    assert json.loads((out / "config.json").read_text())["release_window"] == window
    # a window with none of the problems, and one on a task without dates, are refused
    with pytest.raises(CodelmError, match="none of its 4 problems was released in 2026-01-01:"):
        score(samples, fixture_file, tmp_path / "empty", "--release-window", "2026-01-01:")
    argv = ["--samples", str(tmp_path / "window-samples.jsonl"), "--tasks", "humaneval"]
    argv += ["--release-window", ":2024-01-01"]
    argv += ["--allow-code-execution", "--output", str(tmp_path / "he")]
    with pytest.raises(CodelmError, match="no selected task has release dates"):
        cli.eval_from_args(parse(*argv))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-08-01:2025-02-01", ReleaseWindow(date(2024, 8, 1), date(2025, 2, 1))),
        ("2024-08-01:", ReleaseWindow(date(2024, 8, 1), None)),
        (" :2024-01-31", ReleaseWindow(None, date(2024, 1, 31))),
    ],
)
def test_release_window_parses(text, expected):
    assert ReleaseWindow.parse(text) == expected
    assert date(2024, 1, 31) in ReleaseWindow.parse(":2024-01-31")
    assert date(2024, 2, 1) not in ReleaseWindow.parse(":2024-01-31")


@pytest.mark.parametrize(
    "text", ["2024-08-01", ":", "2024-8-1:", "2024-02-30:", "2025-01-01:2024-01-01", "a:b:c"]
)
def test_bad_release_windows_are_one_line_errors(text, tmp_path):
    argv = ["--samples", "x.jsonl", "--tasks", "livecodebench", "--release-window", text]
    with pytest.raises(ConfigError) as err:
        cli.config_from_args(parse(*argv, "--output", str(tmp_path)))
    assert "release_window" in str(err.value) and "\n" not in str(err.value)


def test_prompts_are_livecodebenchs(fixture_file):
    task = get_task("livecodebench")
    stdin, call = task.load(Source(path=fixture_file))[0::2]
    base = task.request(stdin, GenSettings()).prompt
    assert base.startswith("### Question\nYou have $n$ gifts") and "### Starter Code" not in base
    assert (
        base.endswith("### Question\nProblem abc001_a.\n\n### Answer\n\n") and base.count("### Answer") == 2
    )
    base = task.request(call, GenSettings()).prompt
    assert (
        base.startswith("### Question\nYou are given a 0-indexed array")
        and base.count("### Starter Code") == 2
    )
    assert base.endswith(f"### Starter Code\n{TWO_SUM}\n\n### Answer\n\n")
    chat = GenSettings(mode="chat")
    (message,) = task.request(stdin, chat).messages
    assert message["role"] == "user" and message["content"].startswith(
        livecodebench.SYSTEM + "\n\n### Question:\n"
    )
    assert (
        "### Format: Read the inputs from stdin" in message["content"]
        and "# YOUR CODE HERE" in message["content"]
    )
    (message,) = task.request(call, chat).messages
    assert f"### Format: {livecodebench.WITH_STARTER}\n```python\n{TWO_SUM}\n```" in message["content"]
    assert message["content"].endswith("### Answer: (use the provided format with backticks)\n\n")
    # code from the reply: the fenced block (chat), the text up to "###" (base)
    reply = "Here:\n```python\nprint(1)\n```\nand a test:\n```python\nassert True\n```"
    assert task.clean(stdin, reply, "chat") == "print(1)\n"
    assert task.clean(stdin, "\nprint(1)\n\n### Question\nmore", "base") == "print(1)\n"


def test_comparisons_are_livecodebenchs():
    lines, values = livecodebench.lines_match, livecodebench.values_match
    assert lines("2.5000\n3\n", "2.5\n3")[0] and lines("1 2  3\n", " 1 2 3 ")[0]
    assert lines("0.50 1e2", "0.5 100")[0] and not lines("0.5000001", "0.5")[0]
    assert not lines("yes", "YES")[0] and not lines("1\n2", "1 2")[0] and lines("", "\n\n")[0]
    assert values("[0, 1]", "[0,1]")[0] and values("true", "1")[0] and values("2", "2.0")[0]
    assert not values("[1, 2]", "[2, 1]")[0] and not values("1", "not json")[0]
    assert values("1" * 5000, "1" * 5000)[0]  # past int()'s digit limit


def test_private_tests_decode_without_running_pickled_code(tmp_path, monkeypatch):
    tests = [case("1\n", "1\n")]
    assert livecodebench.decode_tests(encode(tests)) == tests
    monkeypatch.setattr(livecodebench, "MAX_DECOMPRESSED", 1000)  # a decompression bomb, scaled down
    with pytest.raises(ValueError, match="over 1000 bytes once decompressed"):
        livecodebench.decode_tests(encode([case("1" * 2000, "1")]))
    monkeypatch.undo()
    assert livecodebench.decode_tests(json.dumps(tests)) == tests
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    with pytest.raises(ValueError, match="refusing to load"):
        livecodebench.decode_tests(hostile)
    assert not marker.exists()
    # an extension code (copyreg) and a persistent id reach callables without naming a global
    import copyreg

    copyreg.add_extension("os", "system", 240)
    try:
        extension = b"\x80\x02\x82\xf0X\x04\x00\x00\x00trueq\x00\x85q\x01Rq\x02."  # EXT1 240, REDUCE
        with pytest.raises(ValueError, match="refusing to load os.system"):
            livecodebench.decode_tests(base64.b64encode(zlib.compress(extension)).decode())
    finally:
        copyreg.remove_extension("os", "system", 240)
    persistent = base64.b64encode(zlib.compress(b"\x80\x02X\x01\x00\x00\x00aQ.")).decode()
    with pytest.raises(ValueError, match="persistent"):
        livecodebench.decode_tests(persistent)
    for bad in (base64.b64encode(zlib.compress(pickle.dumps([1]))).decode(), "not base64 !", 7):
        with pytest.raises(ValueError):
            livecodebench.decode_tests(bad)


def test_bad_records_are_one_line_errors(tmp_path):
    task = get_task("livecodebench")
    for broken, why in (
        ({"contest_date": "soon"}, "not an ISO date"),
        ({"private_test_cases": "AAAA"}, "undecodable test cases"),
        (
            {"metadata": json.dumps({"func_name": "f"})},
            "abc001_a: call-based test value .* is not JSON",
        ),  # stdin inputs are not JSON
    ):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(FIXTURE[0] | broken) + "\n")
        with pytest.raises(CodelmError, match=why) as err:
            task.load(Source(path=path))
        assert "\n" not in str(err.value)


def test_a_clone_of_the_hub_repository_reads_its_files(tmp_path):
    (tmp_path / "test.jsonl").write_text(json.dumps(FIXTURE[0]) + "\n")
    (tmp_path / "test2.jsonl").write_text(json.dumps(FIXTURE[2]) + "\n")
    (tmp_path / "test9.jsonl").write_text("not read\n")
    from codelm.eval.tasks.data import resolve_source

    task = get_task("livecodebench")
    problems = task.load(resolve_source(task, tmp_path))
    assert [p.task_id for p in problems] == ["abc001_a", "3000"]
    with pytest.raises(CodelmError, match="unknown version 'v9'"):
        livecodebench._download("v9")


def test_offline_hub_is_a_one_line_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    task = get_task("livecodebench")
    with pytest.raises(CodelmError, match="cannot download livecodebench/code_generation_lite") as err:
        task.load(Source(hub=task.hub))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mode", ["base", "chat"])
def test_tiny_model_plumbing(mode, tiny_checkpoint, fixture_file, tmp_path):
    out = tmp_path / "model"
    argv = ["--model", str(tiny_checkpoint("seedcoder")), "--tasks", "livecodebench", "-n", "2", "--k", "1,2"]
    argv += [
        "--data",
        f"livecodebench={fixture_file}",
        "--max-new-tokens",
        "8",
        "--seed",
        "0",
        "--no-progress",
    ]
    argv += ["--timeout-floor", "1", "--allow-code-execution", "--output", str(out)]
    argv += ["--release-window", "2024-01-01:", *(["--chat"] if mode == "chat" else [])]
    entry = cli.eval_from_args(parse(*argv))["livecodebench"]
    assert (entry["problems"], entry["samples"], entry["n"]) == (3, 6, 2)
    assert sum(entry["counts"].values()) == 6 and 0.0 <= entry["pass@1"] <= entry["pass@2"] <= 1.0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    task = get_task("livecodebench")
    problems = {p.task_id: p for p in task.load(Source(path=fixture_file))}
    executed = 0
    for r in records:
        problem = problems[r["task_id"]]
        if mode == "base":  # the tiny model's 1024-token window cannot hold the worked examples of all
            assert r["prompt"] == task.base_prompt(problem)
        else:
            assert task.question(problem) in r["prompt"]
        if r["status"] == "generation_error":
            assert mode == "base" and "context window" in r["error"]
            continue
        executed += 1
        assert r["completion"] == task.clean(problem, r["raw"], mode)
        assert r["status"] in ("passed", "failed", "timeout", "syntax_error")
    assert executed >= 2


def test_safim_python_programs_as_stdin_problems(data_dir, tmp_path):
    """Real Codeforces programs (SAFIM's Python ground truths, every 20th) on their unit tests, as
    LiveCodeBench stdin problems: they pass, except where LiveCodeBench's comparison is stricter than
    ExecEval's (SAFIM's judge): case-sensitive YES/no, blank lines counted."""
    from codelm.jsonl import read_records

    path = data_dir / "safim_block_completion.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rows = [r for r in read_records(path) if r["lang"] == "python"][::20]
    records, samples, expected = [], [], {}
    for r in rows:
        tests = r["unit_tests"] if isinstance(r["unit_tests"], list) else json.loads(r["unit_tests"])
        cases = [case(t["input"], t["output"][0]) for t in tests]
        qid = r["task_id"].replace("/", "_")
        records.append(record(qid, "2023-01-01", cases[:1], cases[1:], platform="codeforces"))
        samples.append(
            {"task_id": qid, "completion": r["eval_prompt"].replace("{{completion}}", r["ground_truth"])}
        )
        expected[qid] = [c["output"] for c in cases]
    data = tmp_path / "safim-as-lcb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    entry = score(samples, data, tmp_path / "run", "--timeout-floor", "6")["livecodebench"]
    scored = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert entry["problems"] == len(rows) >= 40 and entry["pass@1"] >= 0.85
    for r in scored:
        if r["passed"]:
            continue
        assert "wrong answer" in r["error"], r
        outputs = expected[r["task_id"]]
        stricter = any(
            "\n\n" in out.strip() or {"yes", "no"} & {w.lower() for w in out.split() if not w.islower()}
            for out in outputs
        )
        assert stricter, (r["task_id"], r["error"])
