"""Decontamination: benchmark solutions inside training files are found; boilerplate is not evidence."""

import pytest

from codelm.data import run_pipeline
from codelm.data.benchmarks import BenchmarkTask, load_benchmarks
from codelm.data.steps import DecontamConfig, Decontaminate, NgramIndex

from ..helpers import doc


@pytest.fixture(scope="module")
def real_index(benchmark_dir):
    return NgramIndex(load_benchmarks(benchmark_dir))


def test_benchmark_solutions_are_caught(real_index, benchmark_dir, stdlib_docs):
    wanted = ("humaneval/HumanEval/0", "mbpp/11", "humaneval-x-cpp/CPP/10")
    tasks = {t.task_id: t for t in load_benchmarks(benchmark_dir) if t.task_id in wanted}
    he, mbpp, cpp = (tasks[i] for i in wanted)
    wrapped_he = "import math\n\n# utils copied from somewhere\n" + he.texts[0] + "\n\nprint('done')\n"
    docs = [
        doc(wrapped_he, "he.py"),
        doc("# my solution\n" + mbpp.texts[1].replace("\r\n", "\n"), "mbpp.py"),
        doc(cpp.texts[0] + "\nint main() { return 0; }\n", "x.cpp", "cpp"),
        *stdlib_docs[:40],
    ]
    out, stats = run_pipeline([Decontaminate(real_index)], docs)
    kept = {d.id for d in out}
    stats.check()
    dropped = stats["decontaminate"].dropped
    assert {"he.py", "mbpp.py", "x.cpp"}.isdisjoint(kept)
    assert dropped["contaminated:humaneval"] == 1  # HumanEval and HumanEval-X Python tie: sorted name first
    assert dropped["contaminated:mbpp"] == 1
    assert dropped["contaminated:humaneval-x-cpp"] == 1
    assert docs[0].metadata["contamination"]["humaneval"] > 10
    assert len(kept) >= 38  # real stdlib code is (almost always) clean


def test_boilerplate_shared_by_many_tasks_is_ignored(real_index):
    # HumanEval-X C++ prompts open with include lines like these: exactly 10 words
    header = "#include<stdio.h>\n#include<vector>\n#include<math.h>\nusing namespace std;\n"
    code = header + "int twice(int x) { return 2 * x; }\n"
    assert real_index.matches_many([code]) == [{}]
    assert real_index.ignored > 0


def test_uninformative_ngrams_are_ignored():
    solution = "def checksum(data, mod, offset):\n    total = sum(data) + offset\n    return total % mod"
    task = BenchmarkTask("toy", "toy/1", ("print(0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j)", solution))
    index = NgramIndex([task])
    assert index.matches_many(["x = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"]) == [{}]
    assert index.matches_many(["# copied\n" + solution])[0]["toy"] == 3


def test_config_options():
    task = BenchmarkTask("toy", "toy/1", ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda",))
    text = "Alpha  beta, gamma; delta epsilon zeta eta theta iota kappa"
    assert NgramIndex([task]).matches_many([text])[0] == {"toy": 1}
    assert NgramIndex([task], DecontamConfig(lowercase=False)).matches_many([text])[0] == {}
    strict = Decontaminate(NgramIndex([task], DecontamConfig(min_matches=2)))
    assert len(list(strict(iter([doc(text, "a")])))) == 1  # one shared n-gram is not enough
    with pytest.raises(Exception, match="DecontamConfig"):
        DecontamConfig(ngram=0)


def test_empty_index_keeps_everything():
    step = Decontaminate(NgramIndex([]))
    assert len(list(step(iter([doc("x = 1", "a")])))) == 1
