"""Near dedup on real code: copies with small edits go, distinct files stay, the kept copy is stable."""

import random
import re

from codelm.data import Document, run_pipeline
from codelm.data.lsh import jaccard
from codelm.data.minhash import MinHashConfig, MinHasher
from codelm.data.steps import NearDedup


def small_edits(text: str, seed: int) -> str:
    """What forks do to a file: a renamed local, a few changed lines, a new header comment."""
    rng = random.Random(seed)
    lines = text.splitlines()
    for i in rng.sample(range(len(lines)), k=max(1, len(lines) // 50)):
        lines[i] = lines[i] + "  # tweaked"
    names = sorted(set(re.findall(r"\b[a-z_][a-z0-9_]{3,}\b", text)))
    old = rng.choice(names)
    return "# Copyright (c) a fork\n" + re.sub(rf"\b{old}\b", old + "_x", "\n".join(lines))


def corpus(stdlib_docs):
    originals = [Document(d.text, d.id, d.repo, d.path, "python") for d in stdlib_docs[:30]]
    originals = [d for d in originals if len(d.text) > 2000][:20]
    near = [Document(small_edits(d.text, i), f"fork{i}/{d.path}") for i, d in enumerate(originals[:8])]
    exact = [Document(d.text, f"mirror/{d.path}") for d in originals[8:11]]
    return originals, near, exact


def test_the_edits_are_real_but_small(stdlib_docs):
    originals, near, _ = corpus(stdlib_docs)
    shingler = MinHasher().shingler
    for o, n in zip(originals, near, strict=False):
        a, b = shingler.shingle_sets([o.text, n.text])
        assert 0.7 <= jaccard(a, b) < 0.99


def ids(docs):
    return {d.id for d in docs}


def test_removes_near_and_exact_copies_and_keeps_distinct_files(stdlib_docs):
    originals, near, exact = corpus(stdlib_docs)
    step = NearDedup()
    out, stats = run_pipeline([step], originals + near + exact)
    kept = ids(out)
    stats.check()
    # fork i is a near copy of original i, mirror j an exact copy of original 8 + j
    copies = {o.id: [c.id] for o, c in zip(originals, near, strict=False)}
    copies.update({o.id: [c.id] for o, c in zip(originals[8:], exact, strict=False)})
    for original in originals:
        cluster = [original.id, *copies.get(original.id, [])]
        # exactly one file of each cluster survives, the one with the smallest id; distinct
        # stdlib modules are never near-duplicates of one another
        assert [i for i in cluster if i in kept] == [min(cluster)]
    assert len(kept) == len(originals)
    assert stats["near_dedup"].dropped == {"near_duplicate": len(near) + len(exact)}
    assert step.stats.counters["clusters"] == len(near) + len(exact)


def test_the_kept_copy_is_the_smallest_id_whatever_the_order(stdlib_docs):
    originals, near, exact = corpus(stdlib_docs)
    docs = originals + near + exact
    results = []
    for seed in range(3):
        shuffled = [Document(d.text, d.id) for d in docs]
        random.Random(seed).shuffle(shuffled)
        results.append(ids(NearDedup(MinHashConfig(verify=False))(iter(shuffled))))
    assert results[0] == results[1] == results[2]
    # the copy kept is the smallest id of its cluster: "fork3/..." < "stdlib/..."
    assert {f"fork{i}/{d.path}" for i, d in enumerate(originals[:8])} <= results[0]


def test_dropped_copies_point_to_the_kept_one(stdlib_docs):
    originals, near, _ = corpus(stdlib_docs)
    list(NearDedup(key=lambda d: (not d.id.startswith("stdlib/"), d.id))(iter(originals + near)))
    for i, fork in enumerate(near):
        assert fork.metadata["duplicate_of"] == originals[i].id


def test_empty_input():
    step = NearDedup()
    assert list(step(iter([]))) == [] and step.stats.docs_in == 0


def test_empty_and_tiny_documents_are_never_clustered():
    docs = [Document(t, i) for t, i in [("", "a"), ("", "b"), ("...", "c"), ("x", "d"), ("y", "e")]]
    assert len(list(NearDedup()(iter(docs)))) == 5


def test_distinct_files_are_not_merged_even_unverified(stdlib_docs):
    """The signatures alone (no exact-Jaccard check) do not merge distinct stdlib modules."""
    originals, _, _ = corpus(stdlib_docs)
    step = NearDedup(MinHashConfig(verify=False))
    assert ids(step(iter(originals))) == ids(originals)
    assert step.stats.counters["merged_pairs"] == 0
