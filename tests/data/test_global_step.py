"""Global steps in three phases: summaries per shard, one decision, per-shard apply with counts."""

import pytest

from codelm.data import DataError, Document, run_pipeline
from codelm.data.steps import ExactDedup, NearDedup

from .helpers import doc


def three_phase(step, shards):
    summaries = [step.summarize(s) for s in shards]
    decisions = step.decide(summaries, lambda i: iter(shards[i]))
    outs, stats = [], []
    for shard, d, s in zip(shards, decisions, summaries, strict=True):
        out, st = run_pipeline([step.applier(d, s)], [Document(x.text, x.id) for x in shard])
        outs.append([x.id for x in out])
        stats.append(st)
    return outs, stats


def test_exact_dedup_keeps_the_smallest_id_whichever_shard_it_is_in():
    shards = [[doc("same", "z"), doc("other", "y")], [doc("same", "a"), doc("same", "m")]]
    outs, stats = three_phase(ExactDedup(), shards)
    assert outs == [["y"], ["a"]]
    assert [s["exact_dedup"].dropped["exact_duplicate"] for s in stats] == [1, 1]
    for s in stats:
        s.check()


def test_near_dedup_across_shards_matches_in_process(stdlib_docs):
    base = [d for d in stdlib_docs if len(d.text) > 3000][:6]
    forks = [Document(d.text + "\n# fork\n", "x-fork/" + d.id) for d in base[:3]]
    everything = base + forks
    in_process = {d.id for d in NearDedup()(iter([Document(d.text, d.id) for d in everything]))}
    outs, _ = three_phase(NearDedup(), [everything[::2], everything[1::2]])
    assert {i for o in outs for i in o} == in_process
    assert not any(i.startswith("x-fork/") for i in in_process)  # the larger id of each pair goes


def test_near_dedup_streaming_in_small_batches_and_spilling_sets_changes_nothing(stdlib_docs, monkeypatch):
    import codelm.data.lsh as lsh
    import codelm.data.steps.near_dedup as near

    base = [d for d in stdlib_docs if len(d.text) > 3000][:6]
    forks = [Document(d.text + "\n# fork\n", "x-fork/" + d.id) for d in base[:4]]
    shards = [(base + forks)[::2], (base + forks)[1::2]]
    reference, _ = three_phase(NearDedup(), shards)
    spilled = []
    monkeypatch.setattr(lsh, "SET_RAM_BYTES", 0)  # every candidate's set goes to the temporary file
    monkeypatch.setattr(near, "TEXT_BATCH_BYTES", 1)  # one document per hashing batch
    seal = lsh.SetStore.seal

    def counting_seal(store: lsh.SetStore) -> None:
        spilled.append(store.spilled_bytes)
        seal(store)

    monkeypatch.setattr(lsh.SetStore, "seal", counting_seal)
    outs, _ = three_phase(NearDedup(), shards)
    assert outs == reference and sum(len(o) for o in outs) == len(base)
    assert spilled and spilled[0] > 0


def test_apply_refuses_a_changed_shard():
    step = ExactDedup()
    summary = step.summarize([doc("a", "1")])
    [decision] = step.decide([summary], lambda i: iter(()))
    with pytest.raises(DataError, match="changed between summarize and apply"):
        list(step.applier(decision, summary)(iter([doc("a", "2")])))
