"""Continuous batching on a real tiny model: joins, equivalence, cancellation, deadlines, queue."""

import threading
import time

import pytest

from codelm.engine.scheduler import QueueFullError, Scheduler, length_groups

PROMPTS = ["import os\n", "def add(a, b):\n", "class Stack:\n    def __init__(self):\n", "x = [1, 2"]


@pytest.fixture
def scheduler(tiny_engine):
    s = Scheduler(tiny_engine("llama"), max_batch_size=8, max_queue=4).start()
    yield s
    s.close()


def collect(scheduler, request, **kw):
    events, done = [], threading.Event()

    def on_event(ev):
        events.append(ev)
        if ev.finish_reason:
            done.set()

    ticket = scheduler.submit(request, on_event, **kw)
    return ticket, events, done


def test_concurrent_requests_share_steps_and_match_offline_generation(tiny_engine, scheduler):
    e = tiny_engine("llama")
    reqs = [e.completion_request(p, max_new_tokens=24, temperature=0.0, ignore_eos=True) for p in PROMPTS]
    tickets = [collect(scheduler, r)[0] for r in reqs]
    for t in tickets:
        assert t.done.wait(60)
    assert scheduler.stats.max_rows > 1  # they were batched, not served one at a time
    offline = [r.completions[0].token_ids for r in e.generate(reqs)]
    assert [t.result().completions[0].token_ids for t in tickets] == offline


def test_late_request_joins_running_batch(tiny_engine, scheduler):
    e = tiny_engine("llama")
    long = e.completion_request(PROMPTS[0], max_new_tokens=400, temperature=0.0, ignore_eos=True)
    first, events, _ = collect(scheduler, long)
    deadline = time.monotonic() + 60
    while len(events) < 20 and time.monotonic() < deadline:  # the long one is decoding
        time.sleep(0.005)
    late = e.completion_request(PROMPTS[1], max_new_tokens=5, temperature=0.0, ignore_eos=True)
    second, _, _ = collect(scheduler, late)
    assert second.done.wait(60)
    assert not first.done.is_set()  # the late request finished while the long one still ran
    assert second.result().completions[0].token_ids == e.generate([late])[0].completions[0].token_ids
    first.cancel()
    assert first.done.wait(60)
    assert first.result().completions[0].finish_reason == "cancelled"


def test_streamed_events_concatenate_to_the_text(tiny_engine, scheduler):
    e = tiny_engine("seedcoder")
    s = Scheduler(e).start()
    try:
        req = e.completion_request(PROMPTS[2], max_new_tokens=20, temperature=0.7, seed=3, n=2)
        ticket, events, _ = collect(s, req)
        assert ticket.done.wait(60)
        result = ticket.result()
        for i in range(2):
            streamed = "".join(ev.text for ev in events if ev.index == i)
            assert streamed == result.completions[i].text
            assert [ev.finish_reason for ev in events if ev.index == i][-1] in ("stop", "length")
        assert [c.text for c in result.completions] == [c.text for c in e.generate([req])[0].completions]
    finally:
        s.close()


def test_deadline_ends_a_request_with_length(tiny_engine, scheduler):
    e = tiny_engine("llama")
    req = e.completion_request(PROMPTS[0], max_new_tokens=1000, temperature=0.0, ignore_eos=True)
    ticket, _, _ = collect(scheduler, req, timeout_s=0.05)
    assert ticket.done.wait(60)
    c = ticket.result().completions[0]
    assert c.finish_reason == "length" and c.completion_tokens < 1000


def test_queue_full_is_refused(tiny_engine):
    e = tiny_engine("llama")
    s = Scheduler(e, max_batch_size=1, max_queue=2)  # not started: nothing drains the queue
    req = e.completion_request("x", max_new_tokens=2)
    s.submit(req, lambda ev: None)
    s.submit(req, lambda ev: None)
    with pytest.raises(QueueFullError, match="busy"):
        s.submit(req, lambda ev: None)


def test_failing_callback_cancels_only_its_request(tiny_engine, scheduler):
    e = tiny_engine("llama")

    def boom(ev):
        raise RuntimeError("consumer bug")

    bad = scheduler.submit(e.completion_request("import os", max_new_tokens=50, ignore_eos=True), boom)
    good, _, _ = collect(scheduler, e.completion_request("x = 1", max_new_tokens=5, ignore_eos=True))
    assert good.done.wait(60) and bad.done.wait(60)
    assert good.result().completions[0].completion_tokens == 5


@pytest.mark.parametrize("family", ["codegen1", "codegemma", "stablecode", "seedcoder"])
def test_merge_into_running_batch_per_architecture(tiny_engine, family):
    e = tiny_engine(family)
    s = Scheduler(e).start()
    try:
        a = e.completion_request(PROMPTS[2], max_new_tokens=40, temperature=0.0, ignore_eos=True)
        b = e.completion_request(PROMPTS[3], max_new_tokens=10, temperature=0.0, ignore_eos=True)
        first, events, _ = collect(s, a)
        deadline = time.monotonic() + 60
        while len(events) < 5 and time.monotonic() < deadline:  # a is decoding
            time.sleep(0.002)
        assert not first.done.is_set()
        second, _, _ = collect(s, b)
        assert first.done.wait(60) and second.done.wait(60)
        assert s.stats.max_rows == 2
        for t, r in ((first, a), (second, b)):
            assert t.result().completions[0].token_ids == e.generate([r])[0].completions[0].token_ids
    finally:
        s.close()


def test_batch_never_exceeds_max_batch_size(tiny_engine):
    e = tiny_engine("llama")
    s = Scheduler(e, max_batch_size=2).start()
    try:
        reqs = [e.completion_request(p, max_new_tokens=6, ignore_eos=True) for p in PROMPTS * 2]
        tickets = [collect(s, r)[0] for r in reqs]
        big = collect(s, e.completion_request("y", max_new_tokens=3, n=3, temperature=0.5, ignore_eos=True))[
            0
        ]
        assert all(t.done.wait(60) for t in [*tickets, big])
        assert s.stats.max_rows == 3  # only the oversized request, alone
        assert len(big.result().completions) == 3
    finally:
        s.close()


def test_events_carry_logprobs(tiny_engine, scheduler):
    e = tiny_engine("llama")
    req = e.completion_request(PROMPTS[1], max_new_tokens=12, temperature=0.0, logprobs=2, ignore_eos=True)
    ticket, events, _ = collect(scheduler, req)
    assert ticket.done.wait(60)
    streamed = [lp for ev in events for lp in (ev.logprobs or [])]
    assert streamed == ticket.result().completions[0].logprobs and len(streamed) == 12


def test_length_groups_bound_padding_and_keep_every_row(tiny_engine):
    e = tiny_engine("llama")
    prompts = ["x", "def f():\n", "import os\n" * 3, "import os\n" * 3 + "y", "class A:\n" * 12]
    rows = [r for p in prompts for r in e.build_rows(e.completion_request(p, n=2, temperature=0.5))[1]]
    groups = length_groups(rows, slack=0.15)
    assert sorted(map(id, (r for g in groups for r in g))) == sorted(map(id, rows))
    for g in groups:
        lengths = [len(r.prompt_ids) for r in g]
        assert max(lengths) * len(g) <= 1.15 * sum(lengths)
    assert 1 < len(groups) < len(rows)  # the n samples of one prompt share a group; 12x apart do not
    assert len(length_groups(rows, slack=100)) == 1


def test_mixed_lengths_admitted_together_match_offline(tiny_engine):
    e = tiny_engine("llama")
    prompts = ["x", "import os\n" * 2, "class A:\n" * 10, "def add(a, b):\n" * 3]
    reqs = [e.completion_request(p, max_new_tokens=12, temperature=0.0, ignore_eos=True) for p in prompts]
    s = Scheduler(e)  # not started: everything is pending when the worker admits for the first time
    tickets = [collect(s, r)[0] for r in reqs]
    s.start()
    try:
        assert all(t.done.wait(60) for t in tickets)
        assert s.stats.max_rows == len(reqs)  # one admission, several prefill groups, one batch
        offline = [r.completions[0].token_ids for r in e.generate(reqs)]
        assert [t.result().completions[0].token_ids for t in tickets] == offline
    finally:
        s.close()
