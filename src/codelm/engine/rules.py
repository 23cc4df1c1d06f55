"""Family rules that need no model: recommended sampling and the strings output must stop at.

The in-process engine and the server's gateway mode (which forwards rendered prompts to another
server and has no tokenizer) both apply exactly these.
"""

from __future__ import annotations

from typing import Any

from codelm.engine.params import SamplingParams
from codelm.models.registry import Family


def stop_tokens(family: Family, kind: str) -> list[str]:
    """Special tokens that end a sample of `kind` (chat adds the end-of-turn markers)."""
    tokens = list(family.stop_tokens)
    if kind == "chat" and family.chat:
        tokens += family.chat.stop_tokens
    return tokens


def sampling_params(family: Family, kind: str = "completion", **overrides: Any) -> SamplingParams:
    """The family's recommended sampling for `kind` (from its model card), with overrides."""
    table = family.sampling
    defaults = table.get("completion", {})
    if kind == "chat":
        defaults = table.get("chat", defaults)
    return SamplingParams.build(defaults, **overrides)


# OpenAI's default temperature: what n > 1 samples use when the family's default would be greedy
SAMPLING_TEMPERATURE = 1.0


def sample_temperature(family: Family, kind: str, n: int, temperature: float | None) -> float | None:
    """The temperature to use: the caller's; unset, the family's (None), except that a greedy family
    default with n > 1 becomes OpenAI's default of 1, since n greedy samples would be n identical
    copies. An explicit 0 is honoured: the caller asked for greedy decoding."""
    if temperature is not None or n <= 1:
        return temperature
    return SAMPLING_TEMPERATURE if sampling_params(family, kind).greedy else None


def stop_strings(family: Family, kind: str, params: SamplingParams) -> list[str]:
    """Text a completion is cut before: the caller's stops, sentinels, file separator, EOS, turn ends."""
    if params.ignore_eos:
        return list(params.stop)
    return list(dict.fromkeys([*params.stop, *family.sentinel_strings, *stop_tokens(family, kind)]))
