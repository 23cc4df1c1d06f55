"""CodeGen1's `truncate_before_pattern`, reimplemented faithfully.

transformers 5.x picks `GPT2Tokenizer` for CodeGen checkpoints that lack `tokenizer_class`, and that
class silently ignores the argument, so codelm owns it. Semantics follow `CodeGenTokenizer.truncate`
(shared/research/models.md section 5), including its two hard-coded heuristics. Apply it to the
completion only: on prompt + completion the heuristics can cut inside the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def codegen_truncate(text: str, patterns: Sequence[str] | None) -> str:
    """Cut `text` before the earliest match of any pattern (re.MULTILINE), as CodeGen1 does."""
    if not patterns:  # None or []: untouched, heuristics included
        return text
    terminals = [re.compile(p, re.MULTILINE) for p in patterns]
    # Heuristic A: a second top-level print starts a new program; cut there.
    prints = list(re.finditer(r"^print", text, re.MULTILINE))
    if len(prints) > 1:
        text = text[: prints[1].start()]
    # Heuristic B: likewise a second top-level def, on the already-cut text.
    defs = list(re.finditer(r"^def", text, re.MULTILINE))
    if len(defs) > 1:
        text = text[: defs[1].start()]
    starts = [m.start() for m in (t.search(text) for t in terminals) if m]
    return text[: min(starts)] if starts else text
