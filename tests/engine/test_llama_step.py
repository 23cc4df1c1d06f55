"""The hand-written Llama/Gemma decode step (engine.llama_step) and the stacked projections it reads
(engine.cpu.fuse_projections) against transformers' own forward, on small random Llamas in fp32."""

import pytest
import torch
from transformers import GemmaConfig, GemmaForCausalLM, LlamaConfig, LlamaForCausalLM

from codelm.engine import llama_step
from codelm.engine.cpu import FusedLinear, LinearPart, fuse_projections
from codelm.engine.decode import run_prompts
from codelm.engine.loader import load_checkpoint

SHAPE = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    head_dim=16,
    max_position_embeddings=128,
)


def _llama(kv_heads: int, bias: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE, num_key_value_heads=kv_heads, attention_bias=bias, mlp_bias=bias)
    return LlamaForCausalLM(config).eval()


def _gemma(kv_heads: int) -> GemmaForCausalLM:
    """CodeGemma's architecture: (1 + weight) norms in fp32, embeddings scaled by sqrt(hidden), GELU."""
    torch.manual_seed(0)
    model = GemmaForCausalLM(GemmaConfig(**SHAPE, num_key_value_heads=kv_heads)).eval()
    with torch.no_grad():  # Gemma's norms start at weight 0 (a scale of 1): make them matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.5)
    return model


def _prefill(model, prompts: list[list[int]]):
    cache, mask, padded, next_pos, logits = run_prompts(model, prompts, pad_id=0)
    return cache, (mask if padded else None), next_pos, logits


def _decode_both(model, prompts: list[list[int]], steps: int) -> float:
    """Greedy steps through transformers' forward and through `LlamaStep`, each on its own cache,
    fed the same tokens; the largest logit difference relative to the logits' scale."""
    step = llama_step.LlamaStep(model)
    hf_cache, mask, pos, logits = _prefill(model, prompts)
    our_cache, *_ = _prefill(model, prompts)
    worst = 0.0
    for _ in range(steps):
        token = logits.argmax(-1, keepdim=True)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=-1)
        with torch.inference_mode():
            kwargs = {"attention_mask": mask, "position_ids": pos, "use_cache": True, "cache": hf_cache}
            out = model(input_ids=token, **kwargs)
            logits = out.logits[:, -1, :]
            ours = step(token, pos, our_cache, mask)
        worst = max(worst, ((ours - logits).abs().max() / logits.abs().max()).item())
        pos = pos + 1
    return worst


PROMPTS = [[5, 17, 33, 2, 9, 41, 8], [7, 3, 60]]  # two lengths: a left-padded batch


@pytest.mark.parametrize("build", [_llama, _gemma], ids=["llama", "gemma"])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])  # multi-head, grouped, multi-query attention
@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS[:1]], ids=["padded", "one-row"])
def test_llama_step_matches_transformers_forward(build, kv_heads, prompts):
    model = build(kv_heads)
    assert llama_step.supports(model)
    # fp32 throughout: the two differ only in the order of a few float operations
    assert _decode_both(model, prompts, steps=6) < 1e-5


def test_llama_step_reads_stacked_projections_and_biases():
    model = _llama(2, bias=True)
    reference = _llama(2, bias=True)
    assert fuse_projections(model) == 4  # q/k/v and gate/up in each of 2 layers
    attn = model.model.layers[0].self_attn
    assert isinstance(attn.fused_q_k_v, FusedLinear) and isinstance(attn.k_proj, LinearPart)
    assert isinstance(model.model.layers[1].mlp.fused_gate_up, FusedLinear)
    assert _decode_both(model, PROMPTS, steps=6) < 1e-5
    # transformers' own forward through the parts gives the unfused model's logits
    ids = torch.tensor([PROMPTS[0]])
    with torch.inference_mode():
        want, got = reference(ids).logits, model(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_a_part_called_on_another_input_recomputes():
    torch.manual_seed(0)
    linears = [torch.nn.Linear(8, n) for n in (4, 6, 2)]
    fused = FusedLinear(linears)
    parts = [LinearPart(fused, i) for i in range(3)]
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(parts[0](a), linears[0](a), atol=1e-6)
        assert torch.allclose(parts[1](b), linears[1](b), atol=1e-6)  # not a's cached result
        assert torch.allclose(parts[2](b), linears[2](b), atol=1e-6)
        assert torch.allclose(parts[0](b), linears[0](b), atol=1e-6)
        assert fused._input is None and fused._outputs == ()  # every part taken: nothing held
        assert torch.allclose(parts[2](a), linears[2](a), atol=1e-6)


def test_supports_only_plain_llamas(tiny_checkpoint):
    assert llama_step.supports(_llama(4))
    assert llama_step.supports(_gemma(1))
    assert not llama_step.supports(load_checkpoint(str(tiny_checkpoint("codegen1"))).model)
    assert not llama_step.supports(load_checkpoint(str(tiny_checkpoint("stablecode"))).model)
    model = _llama(4)
    model.config.pretraining_tp = 2  # sliced projections: transformers' forward only
    assert not llama_step.supports(model)
    model = _llama(4)
    model.config._attn_implementation = "eager"
    assert not llama_step.supports(model)


def test_inference_loads_of_llamas_on_the_cpu_get_the_step(tiny_checkpoint):
    """Llamas and CodeGemma get it; `pack=False` and other families keep transformers' forward."""
    path = str(tiny_checkpoint("llama"))
    assert isinstance(load_checkpoint(path).model.codelm_step, llama_step.LlamaStep)
    assert getattr(load_checkpoint(path, pack=False).model, "codelm_step", None) is None
    assert getattr(load_checkpoint(str(tiny_checkpoint("codegen1"))).model, "codelm_step", None) is None
    gemma = load_checkpoint(str(tiny_checkpoint("codegemma"))).model
    assert isinstance(gemma.codelm_step, llama_step.LlamaStep)
