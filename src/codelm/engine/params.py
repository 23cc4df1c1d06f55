"""Requests and results of the inference engine: the narrow interface every pillar talks to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from codelm.errors import RequestError
from codelm.models.registry import ReasoningSpec

# Stop strings per request and characters per stop string. OpenAI and TGI allow 4 strings; code
# clients send a handful. The bound keeps a hostile request from costing memory or time.
MAX_STOP_STRINGS = 64
MAX_STOP_LENGTH = 1024
# OpenAI's seeds are 64-bit signed; torch takes [-2**63, 2**64), which leaves room for seed + i
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 means greedy; seed makes sampling reproducible."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # HF/CTRL style: divide positive logits of seen tokens
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False  # benchmarking: only the caller's own stops end a sample (as in vLLM)
    logprobs: int | None = None  # report each token's log-probability and this many alternatives
    # drop special tokens that are not stops (Gemma's <bos>, Stable Code's <filename>) from the
    # text, as vLLM's option of the same name and the model cards' decode(skip_special_tokens=True)
    skip_special_tokens: bool = True
    # reasoning models: tokens a sample may think before the end marker is written for it
    # (codelm.engine.thinking); None = no limit but max_new_tokens
    max_thinking_tokens: int | None = None

    def __post_init__(self) -> None:
        def bad(msg: str) -> RequestError:
            return RequestError(f"invalid sampling parameter: {msg}")

        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise bad(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not _finite(self.temperature) or self.temperature < 0:
            raise bad(f"temperature must be >= 0, got {self.temperature!r}")
        if not _finite(self.top_p) or not 0 < self.top_p <= 1:
            raise bad(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if not _finite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise bad(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if not isinstance(self.n, int) or self.n < 1:
            raise bad(f"n must be a positive integer, got {self.n!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise bad(f"seed must be an integer, got {self.seed!r}")
        if self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX:
            raise bad(f"seed must be a 64-bit signed integer ({SEED_MIN} to {SEED_MAX}), got {self.seed}")
        if self.logprobs is not None and (not isinstance(self.logprobs, int) or not 0 <= self.logprobs <= 20):
            raise bad(f"logprobs must be an integer from 0 to 20, got {self.logprobs!r}")
        if self.max_thinking_tokens is not None and (
            not isinstance(self.max_thinking_tokens, int)
            or isinstance(self.max_thinking_tokens, bool)
            or self.max_thinking_tokens < 0
        ):
            raise bad(f"max_thinking_tokens must be an integer >= 0, got {self.max_thinking_tokens!r}")
        if not isinstance(self.skip_special_tokens, bool):
            raise bad(f"skip_special_tokens must be true or false, got {self.skip_special_tokens!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop must be a list of non-empty strings")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise bad(f"stop has {len(self.stop)} strings; at most {MAX_STOP_STRINGS} are allowed")
        if max(map(len, self.stop), default=0) > MAX_STOP_LENGTH:
            longest = max(map(len, self.stop))
            raise bad(f"a stop string has {longest} characters; at most {MAX_STOP_LENGTH} are allowed")
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def build(cls, defaults: dict[str, Any], **overrides: Any) -> SamplingParams:
        """Family defaults, then every override that is not None."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise RequestError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
        merged = {k: v for k, v in defaults.items() if k in known}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        for k in ("stop", "stop_token_ids"):
            if k in merged and merged[k] is not None and not isinstance(merged[k], str):
                merged[k] = tuple(merged[k])
        return cls(**merged)

    def with_(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Request:
    """A rendered prompt and how to sample it. `kind` picks stop rules and post-processing;
    `reasoning` (chat) says which think markers separate the reasoning from the answer."""

    prompt: str
    params: SamplingParams = field(default_factory=SamplingParams)
    kind: str = "completion"  # completion | infill | chat
    reasoning: ReasoningSpec | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("completion", "infill", "chat"):
            raise RequestError(f"unknown request kind {self.kind!r}")
        if not isinstance(self.prompt, str):
            raise RequestError("prompt must be a string")
        if self.params.max_thinking_tokens is not None and self.reasoning is None:
            off = " with reasoning turned off" if self.kind == "chat" else ""
            raise RequestError(
                "max_thinking_tokens applies to chat requests whose reasoning is separated "
                f"(this is a {self.kind} request{off})"
            )


@dataclass
class TokenLogprob:
    """A generated token's log-probability under the model (raw logits, before sampling
    transforms, as vLLM and OpenAI report them) and the most likely alternatives."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)
    in_text: bool = True  # False for a special token that skip_special_tokens kept out of the text


@dataclass
class Completion:
    text: str  # a reasoning model's answer: its thinking is in `reasoning`
    finish_reason: str  # "stop" (EOS, stop token or stop string) or "length"
    completion_tokens: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # one per token in token_ids, when asked for
    reasoning: str | None = None  # the thinking block's text; None when the sample opened none


@dataclass
class Result:
    request: Request
    prompt_tokens: int
    completions: list[Completion]

    @property
    def text(self) -> str:
        return self.completions[0].text


@dataclass
class StreamChunk:
    """A piece of streamed text; the last chunk carries finish_reason and the token count."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0
    reasoning: str = ""  # new thinking text (reasoning models); `text` is the answer's
