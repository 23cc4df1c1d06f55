"""One sample's thinking: split its text into reasoning and answer, and hold it to a token budget.

The budget is "budget forcing" (Muennighoff et al. 2025, s1, section 3.1): once a sample has
written `max_thinking_tokens` tokens inside its thinking block, the engine writes the end marker
for it (the next few tokens are forced instead of sampled) and the model goes on to the answer.
Tokens count from the one after the opening marker, and the budget's tokens are part of
`max_new_tokens`, as every generated token is.

Two parsers per sample, because they watch different streams: the budget follows each token's text
as decoded (what the model has written), the split follows the text the stop-string matcher has
released (what the caller is shown), which may lag a few characters behind.
"""

from __future__ import annotations

from codelm.models.reasoning import ReasoningParser
from codelm.models.registry import ReasoningSpec


class Thinking:
    """Reasoning state of one decode row."""

    def __init__(self, spec: ReasoningSpec, inside: bool, budget: int | None, end_ids: list[int]) -> None:
        self.spec, self.budget, self.end_ids = spec, budget, end_ids
        self._watch = ReasoningParser(spec, inside)
        self._split = ReasoningParser(spec, inside)
        self.tokens = 0  # generated inside the thinking block so far
        self.forced: list[int] = []  # end-marker ids still to be written instead of sampled
        self.cut = False  # the budget closed the block
        self._check()

    def observe(self, token_text: str) -> None:
        """A token was generated and decodes to `token_text` ('' while a character is incomplete)."""
        if self._watch.thinking:
            self.tokens += 1
        self._watch.feed(token_text)
        self._check()

    def _check(self) -> None:
        if self.budget is not None and not self.cut and self._watch.thinking and self.tokens >= self.budget:
            self.forced, self.cut = list(self.end_ids), True

    def next_forced(self) -> int | None:
        """The token to write now instead of sampling, if the budget is closing the block."""
        return self.forced.pop(0) if self.forced else None

    def split(self, piece: str) -> tuple[str, str]:
        """(reasoning, answer) of newly released text."""
        return self._split.feed(piece)

    def flush(self) -> tuple[str, str]:
        return self._split.flush()


def forced_end_text(spec: ReasoningSpec) -> str:
    """What the budget writes: the end marker on a line of its own, then the blank line that
    templates put before the answer."""
    return f"\n{spec.end}\n\n"
