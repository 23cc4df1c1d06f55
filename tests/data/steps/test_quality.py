"""Quality steps: annotate, drop a percentile (two passes) or below a threshold (streaming)."""

import numpy as np
import pytest

from codelm.data import DataError, Document, run_pipeline
from codelm.data.steps import QualityFilter, QualityScorer


def docs_of(stdlib_docs, n=20):
    return [Document(d.text, d.id, language="python") for d in stdlib_docs[:n]]


def test_scorer_annotates_and_keeps_everything(stdlib_docs):
    out, stats = run_pipeline([QualityScorer(batch_size=7)], docs_of(stdlib_docs))
    docs = list(out)
    assert len(docs) == 20 and stats["quality_scorer"].kept == 20
    assert all(0 <= d.metadata["quality"] <= 10 for d in docs)


def test_percentile_drops_exactly_the_lowest(stdlib_docs):
    scored = list(QualityScorer()(iter(docs_of(stdlib_docs))))
    scores = {d.id: d.metadata["quality"] for d in scored}
    out, stats = run_pipeline([QualityFilter(0.25)], docs_of(stdlib_docs))
    kept = list(out)
    stats.check()
    assert stats["quality_filter"].dropped == {"low_quality": 5} and len(kept) == 15
    ranked = sorted(scores, key=lambda i: (scores[i], i))
    assert {d.id for d in kept} == set(ranked[5:])
    assert [d.id for d in kept] == [d.id for d in scored if d.id in set(ranked[5:])]  # order kept
    assert stats["quality_filter"].counters["scored"] == 20


def test_per_shard_in_process_vs_global(stdlib_docs):
    docs = docs_of(stdlib_docs)
    step = QualityFilter(0.5)
    s0, s1 = step.summarize(docs[:10]), step.summarize(docs[10:])
    d0, d1 = step.decide([s0, s1], lambda i: iter(()))
    assert len(d0["drop"]) + len(d1["drop"]) == 10  # the global cut: 10 of 20, wherever they sit
    everything = np.concatenate([s0["scores"], s1["scores"]])
    cut = np.sort(everything)[10]
    assert all(s0["scores"][i] <= cut for i in d0["drop"]) and all(s1["scores"][i] <= cut for i in d1["drop"])


def test_threshold_streams(stdlib_docs):
    step = QualityFilter(threshold=5.0)
    assert not step.is_global
    out, stats = run_pipeline([step], docs_of(stdlib_docs))
    kept = list(out)
    assert all(d.metadata["quality"] >= 5.0 for d in kept)
    assert stats["quality_filter"].kept + stats["quality_filter"].dropped["low_quality"] == 20


def test_bad_settings():
    with pytest.raises(DataError, match="drop_fraction"):
        QualityFilter(1.5)
    with pytest.raises(DataError, match="heuristic"):
        list(QualityFilter(0.1, scorer="no/such/model.json")(iter([Document("x = 1", "a")])))
