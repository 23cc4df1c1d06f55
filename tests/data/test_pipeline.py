"""The pipeline model: counted steps, filters with reasons, plain generators, exclusion files."""

import json
from collections.abc import Iterator

from codelm.data import CountedStep, Document, Filter, JsonlWriter, PipelineStats, run_pipeline

from .helpers import doc


class NoTodo(Filter):
    def filter(self, d: Document) -> bool | str:
        if "TODO" in d.text:
            return "has_todo"
        return len(d.text) > 3 or False  # False: dropped with the step's own name as reason


def upper(docs: Iterator[Document]) -> Iterator[Document]:
    for d in docs:
        d.text = d.text.upper()
        yield d


def drop_odd(docs):
    for i, d in enumerate(docs):
        if i % 2 == 0:
            yield d


def split_lines(docs):
    for d in docs:
        for j, line in enumerate(d.text.splitlines()):
            yield Document(line, f"{d.id}:{j}")


DOCS = [doc("x = 1", "a"), doc("# TODO", "b"), doc("y", "c"), doc("z = 2\nw = 3", "d")]


def fresh():
    return [Document(d.text, d.id) for d in DOCS]


def test_a_step_is_testable_on_its_own():
    out = list(NoTodo()(iter(fresh())))
    assert [d.id for d in out] == ["a", "d"]


def test_filter_counts_reasons_and_conserves():
    f = NoTodo()
    list(f(iter(fresh())))
    assert f.stats.docs_in == 4 and f.stats.kept == 2
    assert f.stats.dropped == {"has_todo": 1, "no_todo": 1}
    f.stats.check()


def test_run_pipeline_counts_plain_generators_too():
    out, stats = run_pipeline([upper, NoTodo(), split_lines, drop_odd, NoTodo()], fresh())
    assert [d.text for d in out] == ["X = 1", "W = 3"]
    stats.check()
    assert list(stats.steps) == ["upper", "no_todo", "split_lines", "drop_odd", "no_todo#2"]
    assert stats["drop_odd"].dropped == {"unspecified": 1}
    assert stats["split_lines"].created == 1 and stats["split_lines"].kept == 3
    # stats merge across shards like any other
    merged = PipelineStats.from_json(stats.to_json()).merge(stats)
    merged.check()
    assert merged["upper"].docs_in == 8


def test_stats_are_reset_for_each_run():
    f = NoTodo()
    for _ in range(2):
        out, stats = run_pipeline([f], fresh())
        list(out)
        assert stats["no_todo"].docs_in == 4


def test_counted_step_named_after_function():
    assert CountedStep(drop_odd).name == "drop_odd"


def test_dropped_documents_are_written_with_their_reason(tmp_path):
    path = tmp_path / "dropped.jsonl"
    out, stats = run_pipeline([NoTodo(exclusion_writer=JsonlWriter(path))], fresh())
    assert len(list(out)) == 2
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(r["id"], r["metadata"]["drop_reason"], r["metadata"]["dropped_by"]) for r in rows} == {
        ("b", "has_todo", "no_todo"),
        ("c", "no_todo", "no_todo"),
    }
