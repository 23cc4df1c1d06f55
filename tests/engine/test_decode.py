"""The decode loop's building blocks: the in-place growing KV cache and the refilling pool."""

import pytest
import torch
from transformers import DynamicCache

from codelm.engine import decode
from codelm.engine.decode import GrowingLayer

PROMPTS = [
    "def add(a, b):\n    return",
    "import os\n",
    "class Foo:\n    def __init__(self):\n        self.x = 1\n",
    "x = [",
    "for i in range(10):\n    print(",
    "# a comment\n",
]


def _steps(model, cache, ids, steps):
    """Logits of `steps` greedy steps of a single unpadded row, with `cache` as the KV cache."""
    kw = {decode._cache_kwarg(type(model)): cache}
    out = []
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids]), use_cache=True, **kw).logits[:, -1]
        for _ in range(steps):
            out.append(logits)
            logits = model(input_ids=logits.argmax(-1, keepdim=True), use_cache=True, **kw).logits[:, -1]
    return torch.cat(out)


@pytest.mark.parametrize("family", ["llama", "codegemma"])
def test_growing_cache_equals_transformers_dynamic_cache(tiny_engine, family):
    """The same logits as transformers' own cache, over more steps than the first buffer holds."""
    e = tiny_engine(family)
    ids = e.encode(PROMPTS[2])
    cache = decode.new_cache(e.model)
    assert any(isinstance(layer, GrowingLayer) for layer in cache.layers)
    ours = _steps(e.model, cache, ids, 300)
    theirs = _steps(e.model, DynamicCache(config=e.model.config), ids, 300)
    # the same kernels on the same shapes, so equal up to the order SDPA reduces strided inputs in
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert ours.argmax(-1).tolist() == theirs.argmax(-1).tolist()
    assert cache.get_seq_length() == len(ids) + 300


def test_growing_layer_writes_in_place_until_full():
    layer = GrowingLayer()
    k = torch.randn(2, 3, 5, 4)
    keys, _ = layer.update(k, k.clone())
    buffer = layer._kbuf
    assert keys.data_ptr() == buffer.data_ptr() and buffer.shape[2] == 5 + 256
    for step in range(256):  # fills the room exactly: the same buffer throughout
        new = torch.full((2, 3, 1, 4), float(step))
        keys, values = layer.update(new, new)
        assert layer._kbuf is buffer
    assert keys.shape == (2, 3, 261, 4) and torch.equal(keys[:, :, :5], k)
    assert torch.equal(keys[:, :, -1], torch.full((2, 3, 4), 255.0))
    keys, _ = layer.update(new, new)  # full: a larger buffer, the contents copied over
    assert layer._kbuf is not buffer and keys.shape[2] == 262 and torch.equal(keys[:, :, :5], k)


def test_growing_layer_select_and_outside_replacement():
    layer = GrowingLayer()
    k = torch.arange(3 * 2 * 4 * 2, dtype=torch.float32).view(3, 2, 4, 2)
    layer.update(k, k)
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, k[[2, 0]]) and layer.keys.data_ptr() == layer._kbuf.data_ptr()
    # `decode.select` trims left padding by slicing: the next update starts a fresh buffer from it
    layer.keys, layer.values = layer.keys[..., 1:, :], layer.values[..., 1:, :]
    one = torch.ones(2, 2, 1, 2)
    keys, values = layer.update(one, one)
    assert torch.equal(keys, torch.cat([k[[2, 0]][..., 1:, :], one], dim=2))
    assert torch.equal(values, keys)


def test_pool_equals_fixed_batches_and_keeps_rows_busy(tiny_engine, monkeypatch):
    """Rows join as others finish, at most max_rows at once, with the texts fixed batches give."""
    e = tiny_engine("llama")
    lengths = [3, 40, 5, 8, 30, 2]  # short rows finish early and make room
    requests = [
        e.completion_request(p, max_new_tokens=n, temperature=0.0, ignore_eos=True)
        for p, n in zip(PROMPTS, lengths, strict=True)
    ]
    rows = [e.build_rows(r)[1][0] for r in requests]
    sizes = []
    step = decode.choose_and_advance

    def counting(batch):
        sizes.append(len(batch.rows))
        yield from step(batch)

    monkeypatch.setattr(decode, "choose_and_advance", counting)
    texts = ["" for _ in rows]
    for i, piece in decode.generate_pool(e.model, rows, e.pad_id, max_rows=4):
        texts[i] += piece
    monkeypatch.setattr(decode, "choose_and_advance", step)
    assert max(sizes) == 4
    assert len(sizes) < sum(max(lengths[i : i + 4]) for i in range(0, len(lengths), 4))  # fewer steps
    assert [r.generated for r in rows] == lengths
    alone = [e.generate([r])[0].completions[0] for r in requests]
    assert [r.token_ids for r in rows] == [c.token_ids for c in alone]
    assert texts == [r.text for r in rows]


def test_engine_generate_pools_more_rows_than_its_batch(tiny_engine):
    e = tiny_engine("llama")
    reqs = [e.completion_request(p, max_new_tokens=6, temperature=0.0) for p in PROMPTS]
    small = type(e)(_loaded(e), max_batch_size=2)
    assert [r.completions[0].token_ids for r in small.generate(reqs)] == [
        r.completions[0].token_ids for r in e.generate(reqs)
    ]


def _loaded(e):
    from codelm.engine.loader import Loaded

    return Loaded(e.model, e.tokenizer, e.family, e.path)
