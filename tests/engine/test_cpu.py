"""Decode on CPUs: bf16 with native bf16 (dtype "auto", prepacked linears, parity with fp32), and fp32
linears whose products split over the threads."""

import pytest
import torch

from codelm.engine import Engine, cpu, decode
from codelm.engine.cpu import (
    AUTO_BF16_MIN_PARAMS,
    PackedLinear,
    RowSplitLinear,
    cpu_flags,
    native_bf16,
    pack_linears,
    split_linears,
)
from codelm.engine.llama_step import LlamaStep
from codelm.engine.loader import Loaded, checkpoint_params, load_checkpoint, resolve_dtype
from codelm.errors import CheckpointError

needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
CPU = torch.device("cpu")
PROMPTS = ["import os\n\n\ndef walk(root):\n", "def add(a, b):\n    return a + b\n\n\nclass Stack:\n"]


def test_auto_dtype_is_bf16_only_for_large_models_on_native_bf16_cpus():
    assert resolve_dtype("auto", CPU, AUTO_BF16_MIN_PARAMS - 1) == torch.float32
    assert resolve_dtype(None, CPU, None) == torch.float32  # size unknown (pickled weights)
    big = torch.bfloat16 if native_bf16() else torch.float32
    assert resolve_dtype("auto", CPU, AUTO_BF16_MIN_PARAMS) == big
    assert resolve_dtype(None, CPU, 10**9) == big
    assert resolve_dtype("fp32", CPU, 10**9) == torch.float32  # a named dtype always wins
    assert resolve_dtype("bf16", CPU, 1) == torch.bfloat16
    with pytest.raises(CheckpointError, match="unknown dtype 'int3' \\(auto, float32"):
        resolve_dtype("int3", CPU)


def test_native_bf16_follows_the_cpu_flags():
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        assert not native_bf16()


def test_checkpoint_params_reads_the_safetensors_headers(tiny_checkpoint, tmp_path):
    path = tiny_checkpoint("llama")
    loaded = load_checkpoint(str(path))
    assert checkpoint_params(path) == sum(p.numel() for p in loaded.model.parameters())
    assert checkpoint_params(tmp_path) is None


def test_tiny_model_stays_fp32_and_unpacked_by_default(tiny_checkpoint):
    model = load_checkpoint(str(tiny_checkpoint("llama"))).model
    assert next(model.parameters()).dtype == torch.float32
    assert not any(isinstance(m, PackedLinear) for m in model.modules())


@needs_bf16
@pytest.mark.parametrize("bias", [False, True])
def test_packed_linear_equals_linear(bias):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 80, bias=bias).to(torch.bfloat16)
    packed = PackedLinear(linear)
    assert (packed.in_features, packed.out_features) == (96, 80)
    for shape in [(1, 96), (1, 1, 96), (3, 7, 96)]:
        x = torch.randn(*shape).to(torch.bfloat16)
        with torch.inference_mode():
            want, got = linear(x).float(), packed(x).float()
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2 * want.abs().max().item())


@needs_bf16
def test_pack_linears_replaces_only_bf16_linears():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8).to(torch.bfloat16))
    assert pack_linears(model) == 1
    assert type(model[0]) is torch.nn.Linear and isinstance(model[1], PackedLinear)


@pytest.fixture(scope="module")
def engines(tiny_checkpoint):
    path = str(tiny_checkpoint("llama"))
    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX)")
    return Engine.from_pretrained(path, dtype="float32"), Engine.from_pretrained(path, dtype="bfloat16")


def _logits(engine: Engine, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return engine.model(torch.tensor([ids]), use_cache=False).logits[0].float()


def test_bf16_engine_packs_its_linears_unless_told_not_to(engines, tiny_checkpoint):
    _, bf16 = engines
    packed = [m for m in bf16.model.modules() if isinstance(m, PackedLinear)]
    plain = [m for m in bf16.model.modules() if type(m) is torch.nn.Linear]
    assert packed and not plain
    assert bf16.vocab_size == engines[0].vocab_size  # read from the packed head
    # q/k/v and gate/up stacked into one packed product each, and decode steps by engine.llama_step
    assert any(isinstance(m, cpu.FusedLinear) for m in bf16.model.modules())
    assert isinstance(bf16.model.codelm_step, LlamaStep)
    unpacked = load_checkpoint(str(tiny_checkpoint("llama")), dtype="bfloat16", pack=False).model
    assert not any(isinstance(m, PackedLinear) for m in unpacked.modules())
    rl = Engine(Loaded(unpacked, bf16.tokenizer, bf16.family, bf16.path))  # a live policy stays trainable
    assert not any(isinstance(m, PackedLinear) for m in rl.model.modules())


def test_bf16_logits_track_fp32_and_its_greedy_choices_are_fp32_near_argmaxes(engines):
    fp32, bf16 = engines
    for prompt in PROMPTS:
        out = bf16.complete(prompt, max_new_tokens=16, temperature=0.0, ignore_eos=True).completions[0]
        assert out.completion_tokens == 16
        ids = fp32.encode(prompt) + out.token_ids
        want, got = _logits(fp32, ids), _logits(bf16, ids)
        scale = want.abs().max().item()
        # bf16 keeps 8 significant bits: measured worst error on this model is ~1% of the logit scale
        tol = 0.05 * scale
        assert (got - want).abs().max().item() <= tol
        # every token bf16 chose (through its KV cache) is, under fp32, within the error of the best
        steps = want[len(ids) - len(out.token_ids) - 1 : -1]
        chosen = steps.gather(1, torch.tensor(out.token_ids)[:, None])[:, 0]
        assert bool((chosen >= steps.max(-1).values - 2 * tol).all())


def test_bf16_batched_decode_runs_every_row_to_length(engines):
    _, bf16 = engines
    reqs = [bf16.completion_request(p, max_new_tokens=10, temperature=0.0, ignore_eos=True) for p in PROMPTS]
    for result in bf16.generate(reqs):  # left-padded batch of two prompt lengths
        assert result.completions[0].completion_tokens == 10
    sampled = bf16.complete(PROMPTS[0], max_new_tokens=8, temperature=0.8, seed=3, n=2)
    again = bf16.complete(PROMPTS[0], max_new_tokens=8, temperature=0.8, seed=3, n=2)
    assert [c.token_ids for c in sampled.completions] == [c.token_ids for c in again.completions]


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("bias", [False, True])
def test_row_split_linear_equals_linear(bias, two_threads):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 80, bias=bias)
    split = RowSplitLinear(linear)
    assert split.weight is linear.weight and (split.in_features, split.out_features) == (96, 80)
    for shape in [(1, 96), (1, 1, 96), (3, 96), (3, 7, 96), (2, 300, 96)]:
        x = torch.randn(*shape)
        with torch.inference_mode():
            want, got = linear(x), split(x)
        assert got.shape == want.shape
        # the same dot products, in another kernel's summation order
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_row_split_linear_takes_the_most_blocks_that_divide_its_rows():
    before = torch.get_num_threads()
    try:
        split = RowSplitLinear(torch.nn.Linear(8, 80))
        for threads, blocks in [(1, 1), (2, 2), (3, 2), (6, 5), (8, 8)]:
            torch.set_num_threads(threads)
            assert split.blocks() == blocks
            x = torch.randn(3, 8)
            with torch.inference_mode():
                want = torch.nn.functional.linear(x, split.weight, split.bias)
                torch.testing.assert_close(split(x), want, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(before)


def test_row_split_linear_falls_back_where_it_cannot_split(two_threads):
    odd = torch.nn.Linear(8, 7)  # 7 output rows do not split into 2 blocks
    x = torch.randn(2, 8, requires_grad=True)
    with torch.inference_mode():
        torch.testing.assert_close(RowSplitLinear(odd)(x.detach()), odd(x.detach()))
    linear = torch.nn.Linear(8, 8)
    RowSplitLinear(linear)(x).sum().backward()  # with grad on it is F.linear, so gradients flow
    assert linear.weight.grad is not None and x.grad is not None


def test_split_linears_replaces_only_fp32_linears():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8).to(torch.bfloat16))
    assert split_linears(model) == 1
    assert isinstance(model[0], RowSplitLinear) and type(model[1]) is torch.nn.Linear


def test_fp32_models_of_16m_parameters_load_with_split_linears(tiny_checkpoint, monkeypatch, two_threads):
    path = str(tiny_checkpoint("llama"))
    plain = load_checkpoint(path).model  # the tiny model is far below the size where splitting pays
    assert not any(isinstance(m, RowSplitLinear) for m in plain.modules())
    monkeypatch.setattr(cpu, "SPLIT_MIN_PARAMS", 0)
    split = load_checkpoint(path).model
    assert not any(type(m) is torch.nn.Linear for m in split.modules())
    assert not any(isinstance(m, RowSplitLinear) for m in load_checkpoint(path, pack=False).model.modules())
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        torch.testing.assert_close(split(ids).logits, plain(ids).logits, rtol=1e-4, atol=1e-4)


# --- bf16 on the CPU: the KV cache in fp32 (cpu.attend_over_fp32_cache) ---


@pytest.fixture(scope="module")
def bf16_llama(tiny_checkpoint):
    """fp32 and bf16 engines of the tiny Llama (bf16 runs on any CPU; native bf16 only makes it fast)."""
    path = str(tiny_checkpoint("llama"))
    return Engine.from_pretrained(path, dtype="float32"), Engine.from_pretrained(path, dtype="bfloat16")


def _first_layer_keys(engine: Engine, prompt: str) -> torch.Tensor:
    row = engine.build_rows(engine.completion_request(prompt, max_new_tokens=1))[1][0]
    return decode.prefill(engine.model, [row], engine.pad_id).cache.layers[0].keys


def test_bf16_models_on_the_cpu_keep_their_kv_cache_in_fp32(bf16_llama):
    fp32, bf16 = bf16_llama
    assert cpu.cache_dtype(bf16.model) == torch.float32
    assert bf16.model.config._attn_implementation == cpu.FP32_CACHE_ATTENTION
    keys = _first_layer_keys(bf16, PROMPTS[0])
    assert keys.dtype == torch.float32 and keys.shape[-2] == len(bf16.encode(PROMPTS[0]))
    # fp32 models keep transformers' SDPA and a cache of their own dtype
    assert cpu.cache_dtype(fp32.model) is None and fp32.model.config._attn_implementation == "sdpa"
    assert _first_layer_keys(fp32, PROMPTS[0]).dtype == torch.float32


def _assert_near_fp32_greedy(fp32: Engine, engine: Engine, prompt: str, token_ids: list[int]) -> None:
    """Every token `engine` chose greedily after `prompt` is, under the fp32 model, within the error
    bf16 makes of the best one (as in the bf16 test above: ~1% of the logit scale measured)."""
    ids = fp32.encode(prompt) + token_ids
    want = _logits(fp32, ids)
    tol = 0.05 * want.abs().max().item()
    assert (_logits(engine, ids) - want).abs().max().item() <= tol
    steps = want[len(ids) - len(token_ids) - 1 : -1]
    chosen = steps.gather(1, torch.tensor(token_ids)[:, None])[:, 0]
    assert bool((chosen >= steps.max(-1).values - 2 * tol).all())


def test_fp32_cache_decode_tracks_fp32_as_closely_as_a_bf16_cache(bf16_llama, tiny_checkpoint):
    """Greedy steps through the fp32 cache meet the bound a bf16 cache meets."""
    fp32, bf16 = bf16_llama
    plain = Engine.from_pretrained(str(tiny_checkpoint("llama")), dtype="bfloat16")
    plain.model.set_attn_implementation("sdpa")  # the cache stays bf16
    assert cpu.cache_dtype(plain.model) is None
    assert _first_layer_keys(plain, PROMPTS[0]).dtype == torch.bfloat16
    for prompt in PROMPTS:
        for engine in (bf16, plain):
            out = engine.complete(prompt, max_new_tokens=16, temperature=0.0, ignore_eos=True).completions[0]
            assert out.completion_tokens == 16
            _assert_near_fp32_greedy(fp32, engine, prompt, out.token_ids)


def test_fp32_cache_serves_padded_batches_merges_and_dropped_rows(bf16_llama, monkeypatch):
    """Left padding, rows finishing at different steps and a pool merging waiting rows into the
    running batch (two rows at a time), all over the fp32 cache: every row runs to its length and
    its greedy tokens meet the fp32 bound (padding changes bf16's rounding, so not the batch-1 tokens)."""
    fp32, bf16 = bf16_llama
    monkeypatch.setattr(bf16, "max_batch_size", 2)
    lengths = [3, 9, 5, 12, 7]
    prompts = [PROMPTS[i % 2] * (1 + i) for i in range(len(lengths))]
    reqs = [
        bf16.completion_request(p, max_new_tokens=n, temperature=0.0, ignore_eos=True)
        for p, n in zip(prompts, lengths, strict=True)
    ]
    results = bf16.generate(reqs)
    assert [r.completions[0].completion_tokens for r in results] == lengths
    for prompt, result in zip(prompts, results, strict=True):
        _assert_near_fp32_greedy(fp32, bf16, prompt, result.completions[0].token_ids)


@pytest.mark.parametrize("family", ["codegen1", "codegemma", "stablecode", "seedcoder"])
def test_every_family_decodes_in_bf16_with_or_without_the_fp32_cache(family, tiny_checkpoint):
    """Families whose attention goes through transformers' attention interface (all four in
    transformers 5.25) switch to the fp32 cache, any other would keep its own, and all decode."""
    engine = Engine.from_pretrained(str(tiny_checkpoint(family)), dtype="bfloat16")
    switched = cpu.cache_dtype(engine.model) is not None
    assert switched == engine.model._can_set_attn_implementation()
    out = engine.complete("def add(a, b):\n", max_new_tokens=6, temperature=0.0, ignore_eos=True)
    assert out.completions[0].completion_tokens == 6
