"""Benchmark loading: the real files of shared/data, and the formats on small files made here."""

import gzip
import json
from collections import Counter

import pytest

from codelm.data import DataError
from codelm.data.benchmarks import load_benchmark_file, load_benchmarks


def test_real_benchmark_files(benchmark_dir):
    tasks = load_benchmarks(benchmark_dir)
    counts = Counter(t.benchmark for t in tasks)
    assert counts["humaneval"] == 164 and counts["mbpp-plus"] == 399 and counts["mtpb"] == 115
    assert counts["mbpp"] == 974 + 427  # mbpp.jsonl and sanitized-mbpp.json: same problems, merged later
    for lang in ("cpp", "go", "java", "js", "python", "rust"):
        assert counts[f"humaneval-x-{lang}"] == 164
    he0 = next(t for t in tasks if t.task_id == "humaneval/HumanEval/0")
    assert "def has_close_elements" in he0.texts[0] and "return False" in he0.texts[0]
    assert all(t.texts for t in tasks)


def test_formats_and_gzip(tmp_path):
    he = {"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "  return 1\n"}
    with gzip.open(tmp_path / "HumanEval.jsonl.gz", "wt") as f:
        f.write(json.dumps(he))
    mbpp = [{"task_id": 2, "prompt": "Do x.", "code": "x = 1"}]
    (tmp_path / "sanitized-mbpp.json").write_text(json.dumps(mbpp))
    mtpb = {"id": "1", "prompts": ["Assign {A}.", "Print it."]}
    (tmp_path / "mtpb.jsonl").write_text(json.dumps(mtpb) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")
    tasks = load_benchmarks(tmp_path)
    assert [(t.benchmark, t.task_id, t.texts) for t in tasks] == [
        ("humaneval", "humaneval/HumanEval/0", ("def f():\n  return 1\n",)),
        ("mtpb", "mtpb/1", ("Assign {A}.\nPrint it.",)),
        ("mbpp", "mbpp/2", ("Do x.", "x = 1")),
    ]


def test_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_benchmarks(tmp_path / "nope")
    with pytest.raises(DataError, match="no benchmark files"):
        load_benchmarks(tmp_path)
    (tmp_path / "MbppPlus.jsonl").write_text(json.dumps({"task_id": "Mbpp/2", "prompt": "p"}) + "\n")
    with pytest.raises(DataError, match="lacks field"):
        load_benchmark_file(tmp_path / "MbppPlus.jsonl")
    with pytest.raises(DataError, match="not a known benchmark file"):
        load_benchmark_file(tmp_path / "other.jsonl")
