"""Next-token choice: repetition penalty, temperature, top-k, top-p, seeded per sample.

Each sample row owns a torch.Generator, so a seeded request gives the same tokens whatever else
shares its batch. The all-greedy batch takes one argmax and no per-row work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codelm.engine.params import SamplingParams


@dataclass
class RowSampler:
    params: SamplingParams
    generator: torch.Generator | None
    seen: torch.Tensor | None  # bool (vocab,), only kept when repetition_penalty != 1

    @classmethod
    def create(
        cls, params: SamplingParams, sample_index: int, prompt_ids: list[int], vocab: int, device
    ) -> RowSampler:
        gen = None
        if not params.greedy:
            gen = torch.Generator(device=device)
            if params.seed is not None:
                gen.manual_seed(params.seed + sample_index)
            else:
                gen.seed()
        seen = None
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(vocab, dtype=torch.bool, device=device)
            seen[torch.tensor(prompt_ids, dtype=torch.long, device=device)] = True
        return cls(params, gen, seen)

    @property
    def trivial(self) -> bool:
        return self.params.greedy and self.seen is None

    def observe(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = True

    def choose(self, logits: torch.Tensor) -> int:
        """Pick the next token from one row of logits (vocab,)."""
        p = self.params
        x = logits.float()
        if self.seen is not None:
            penalized = torch.where(x > 0, x / p.repetition_penalty, x * p.repetition_penalty)
            x = torch.where(self.seen, penalized, x)
        if p.greedy:
            return int(x.argmax())
        x = x / p.temperature
        if p.top_k and p.top_k < x.numel():
            kth = torch.topk(x, p.top_k).values[-1]
            x = x.masked_fill(x < kth, float("-inf"))
        if p.top_p < 1.0:
            sorted_x, order = torch.sort(x, descending=True)
            probs = torch.softmax(sorted_x, dim=-1)
            # drop a token when the mass before it already reaches top_p; the first always stays
            drop = (probs.cumsum(-1) - probs) >= p.top_p
            sorted_x = sorted_x.masked_fill(drop, float("-inf"))
            x = torch.full_like(x, float("-inf")).scatter(0, order, sorted_x)
        probs = torch.softmax(x, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def choose_tokens(logits: torch.Tensor, samplers: list[RowSampler]) -> tuple[list[int], torch.Tensor]:
    """Next token for each row of `logits` (rows, vocab), as a list and as a (rows,) tensor."""
    if all(s.trivial for s in samplers):
        chosen = logits.argmax(-1)
        return chosen.tolist(), chosen
    tokens = [s.choose(logits[i]) for i, s in enumerate(samplers)]
    return tokens, torch.tensor(tokens, dtype=torch.long, device=logits.device)
