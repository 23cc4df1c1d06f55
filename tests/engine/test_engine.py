"""The engine on real tiny checkpoints of every family: generate, infill, chat, stops, streaming."""

import shutil

import pytest

from codelm.engine import Engine, Request, SamplingParams
from codelm.engine.decode import Row
from codelm.engine.text import IncrementalDecoder, StopMatcher
from codelm.errors import CheckpointError, RequestError, UnsupportedFeatureError
from codelm.models import FAMILY_NAMES, get_family
from codelm.models.formats import render_fim

PROMPT = "import os\n\n\ndef walk(root):\n"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_complete_infill_chat_per_family(tiny_engine, family):
    e = tiny_engine(family)
    r = e.complete(PROMPT, max_new_tokens=12, temperature=0.0)
    c = r.completions[0]
    assert r.prompt_tokens == len(e.encode(PROMPT)) and 1 <= c.completion_tokens <= 12
    assert c.finish_reason in ("stop", "length")
    for s in get_family(family).sentinel_strings:
        assert s not in c.text
    if e.family.supports_fim:
        r = e.infill("def add(a, b):\n    return ", "\n", max_new_tokens=8, temperature=0.0)
        assert r.request.kind == "infill"
        assert r.request.prompt == render_fim(e.family, "def add(a, b):\n    return ", "\n")
        assert all(s not in r.text for s in e.family.sentinel_strings)
    else:
        with pytest.raises(UnsupportedFeatureError, match="does not support fill-in-the-middle"):
            e.infill("a", "b")
    if e.family.chat:
        r = e.chat([{"role": "user", "content": "Write a quick sort."}], max_new_tokens=8, temperature=0.0)
        assert r.completions[0].completion_tokens >= 1
        chat_stops = e.family.chat.stop_tokens
        assert all(s not in r.text for s in chat_stops)


@pytest.mark.parametrize("family", ["codegemma", "seedcoder"])
def test_chat_prompt_equals_hf_apply_chat_template(tiny_engine, family):
    e = tiny_engine(family)
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "sort a list"},
    ]
    req = e.chat_request(msgs)
    assert req.prompt == e.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def test_bos_added_once_by_family_rule(tiny_engine):
    gem = tiny_engine("codegemma")
    bos = gem.tokenizer.bos_token_id
    assert gem.encode("x = 1")[0] == bos
    chat_ids = gem.encode(gem.chat_request([{"role": "user", "content": "hi"}]).prompt)
    assert chat_ids[0] == bos and chat_ids[1] != bos
    sc = tiny_engine("stablecode")
    assert sc.encode("x = 1") == sc.tokenizer("x = 1", add_special_tokens=False)["input_ids"]


def test_seeded_sampling_is_deterministic_and_n_samples(tiny_engine):
    e = tiny_engine("llama")
    kw = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 0.9, "top_k": 50, "n": 3, "seed": 7}
    a = [c.text for c in e.complete(PROMPT, **kw).completions]
    b = [c.text for c in e.complete(PROMPT, **kw).completions]
    assert a == b and len(a) == 3
    assert len(set(a)) > 1  # each sample has its own stream
    other = [c.text for c in e.complete(PROMPT, **{**kw, "seed": 8}).completions]
    assert other != a


def test_seeded_sample_independent_of_batch_company(tiny_engine):
    e = tiny_engine("llama")
    req = e.completion_request(PROMPT, max_new_tokens=10, temperature=0.8, seed=3)
    alone = e.generate([req])[0].text
    other = e.completion_request("x = [", max_new_tokens=4, temperature=0.8, seed=11)
    assert e.generate([other, req])[1].text == alone


def test_batched_greedy_equals_single(tiny_engine):
    e = tiny_engine("llama")
    prompts = [PROMPT, "x = 1\n", "class Foo:\n    def __init__(self):\n        self.x = 1\n"]
    reqs = [e.completion_request(p, max_new_tokens=8, temperature=0.0) for p in prompts]
    batched = [r.completions[0].token_ids for r in e.generate(reqs)]
    single = [e.generate([r])[0].completions[0].token_ids for r in reqs]
    assert batched == single


def test_stops_at_stop_token_id(tiny_engine):
    e = tiny_engine("llama")
    free = e.complete(PROMPT, max_new_tokens=12, temperature=0.0).completions[0]
    ids = free.token_ids
    k = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    c = e.complete(PROMPT, max_new_tokens=12, temperature=0.0, stop_token_ids=[ids[k]]).completions[0]
    assert c.token_ids == ids[:k] and c.finish_reason == "stop" and c.completion_tokens == k + 1
    assert c.text == e.tokenizer.decode(ids[:k])


def test_stop_string_truncates_and_reports_stop(tiny_engine):
    e = tiny_engine("llama")
    free = e.complete(PROMPT, max_new_tokens=24, temperature=0.0).completions[0].text
    assert len(free) > 6
    stop = free[3:6]
    c = e.complete(PROMPT, max_new_tokens=24, temperature=0.0, stop=[stop]).completions[0]
    assert c.text == free[: free.index(stop)] and c.finish_reason == "stop"


def test_leaked_sentinels_are_cut_after_decoding(tiny_engine):
    """A model that spells a sentinel with ordinary tokens still never shows it (belt and braces)."""
    e = tiny_engine("codegemma")
    req = e.infill_request("a", "b", max_new_tokens=4)
    row = Row([1], 4, frozenset(), None, IncrementalDecoder(e.tokenizer), StopMatcher([]))
    row.text, row.finish_reason = "x = 1<|file_separator|>test_x.py\nmore", "length"
    done = e.finish(req, row)
    assert done.text == "x = 1" and done.finish_reason == "stop"


def test_codegen1_completion_gets_truncate_before_pattern(tiny_engine):
    e = tiny_engine("codegen1")
    req = e.completion_request("x", max_new_tokens=4)
    row = Row([1], 4, frozenset(), None, IncrementalDecoder(e.tokenizer), StopMatcher([]))
    row.text, row.finish_reason = "    return 1\n\n\n# test\nprint(f())\n", "length"
    assert e.finish(req, row).text == "    return 1"


def test_streaming_equals_generate(tiny_engine):
    e = tiny_engine("seedcoder")
    req = e.completion_request(PROMPT, max_new_tokens=16, temperature=0.7, seed=5)
    chunks = list(e.stream(req))
    assert chunks[-1].finish_reason in ("stop", "length") and chunks[-1].completion_tokens >= 1
    assert "".join(c.text for c in chunks) == e.generate([req])[0].text
    with pytest.raises(RequestError, match="n=1"):
        list(e.stream(e.completion_request(PROMPT, n=2)))


def test_repetition_penalty_changes_greedy_output(tiny_engine):
    e = tiny_engine("codegemma")  # the tiny Gemma repeats itself greedily
    plain = e.complete("import os", max_new_tokens=12, temperature=0.0).completions[0].token_ids
    assert len(set(plain)) < len(plain)
    pen = e.complete("import os", max_new_tokens=12, temperature=0.0, repetition_penalty=100.0)
    assert pen.completions[0].token_ids != plain


def test_prompt_longer_than_context_window(tiny_engine):
    e = tiny_engine("llama")
    with pytest.raises(RequestError, match=r"context window of 1024 tokens"):
        e.complete("x = 1\n" * 2000, max_new_tokens=4)


def test_max_new_tokens_clamped_to_context(tiny_engine):
    e = tiny_engine("llama")
    per_line = len(e.encode("x = 1\n" * 100)) / 100
    reps = int((e.context_window - 20) / per_line)
    while e.context_window - len(e.encode("x = 1\n" * reps)) < 1:
        reps -= 1
    room = e.context_window - len(e.encode("x = 1\n" * reps))
    assert 0 < room < 50
    r = e.complete("x = 1\n" * reps, max_new_tokens=500, temperature=0.0)
    assert r.completions[0].completion_tokens <= room


def test_empty_prompt_rejected(tiny_engine):
    with pytest.raises(RequestError, match="empty"):
        tiny_engine("stablecode").complete("")


def test_missing_checkpoint_and_unknown_family(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        Engine.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(Exception, match="unknown model family 'gpt5'"):
        Engine.from_pretrained(str(tiny_checkpoint("llama")), family="gpt5")


def test_pickled_weights_refused_unless_opted_in(tiny_checkpoint, tmp_path):
    import torch
    from safetensors.torch import load_file

    d = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint("llama"), d)
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pickled weights.*--allow-pickle"):
        Engine.from_pretrained(str(d))
    e = Engine.from_pretrained(str(d), allow_pickle=True)
    assert e.complete("x", max_new_tokens=2, temperature=0.0).completions[0].completion_tokens >= 1


def test_request_object_api(tiny_engine):
    e = tiny_engine("stablecode")
    out = e.generate([Request("def f():", SamplingParams(max_new_tokens=3))])
    assert out[0].completions[0].completion_tokens <= 3


def test_hub_id_that_cannot_be_fetched_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        CheckpointError, match="could not load 'nobody-here/no-such-model' from the Hugging Face Hub"
    ):
        Engine.from_pretrained("nobody-here/no-such-model")


def test_codegen1_stream_equals_generate(tiny_engine):
    e = tiny_engine("codegen1")
    for seed in range(3):
        req = e.completion_request("def f(x):\n", max_new_tokens=40, temperature=1.0, seed=seed)
        streamed = "".join(c.text for c in e.stream(req))
        assert streamed == e.generate([req])[0].text


def test_logprobs_match_a_direct_forward_pass(tiny_engine):
    import torch

    e = tiny_engine("llama")
    c = e.complete(PROMPT, max_new_tokens=6, temperature=0.0, logprobs=3, ignore_eos=True).completions[0]
    assert len(c.logprobs) == len(c.token_ids) == 6
    ids = e.encode(PROMPT) + c.token_ids
    with torch.inference_mode():
        logp = torch.log_softmax(e.model(torch.tensor([ids])).logits[0].float(), dim=-1)
    n = len(ids) - len(c.token_ids)
    for i, entry in enumerate(c.logprobs):
        assert entry.token_id == c.token_ids[i]
        assert entry.logprob == pytest.approx(float(logp[n - 1 + i, entry.token_id]), abs=1e-4)
        assert len(entry.top) == 3 and entry.top[0][0] == entry.token_id  # greedy picks the top token
        assert [lp for _, lp in entry.top] == sorted((lp for _, lp in entry.top), reverse=True)
    assert e.complete(PROMPT, max_new_tokens=2).completions[0].logprobs is None
    with pytest.raises(RequestError, match="logprobs"):
        e.complete(PROMPT, logprobs=21)
