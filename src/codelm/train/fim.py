"""Fill-in-the-middle applied on the fly, per document, with the family's own sentinels.

The transform of Bavarian et al. 2022 ("Efficient Training of Language Models to Fill in the Middle")
as StarCoder and Seed-Coder use it: two cut points drawn uniformly over the *characters* of a document
split it into prefix / middle / suffix, each piece is tokenized on its own, and the pieces are joined in
PSM order (`<pre>P<suf>S<mid>M`) or in SPM order. SPM here is the family's SPM as `render_fim` renders
it (Seed-Coder: `<suf>S<pre>P<mid>M`; codelm's Llama, "spm-joined": the FIM paper's `<pre><suf>S<mid>PM`),
so training and the engine's infill prompts agree token for token; a PSM family given an SPM share gets
the FIM paper's layout too (StarCoder's).

A FIM document always ends with EOS: that is how the model learns to stop after the middle. FIM never
crosses documents: the split is drawn inside one document (or one chunk of a long one, see below), and
the packer keeps documents apart in attention (train/packing.py).

Rates follow the recipes in shared/research/data-recipes.md: Seed-Coder 0.5 (SPM only), CodeGemma
0.8-0.9 with 50/50 PSM/SPM, StarCoder 0.5 PSM. Every decision comes from an RNG seeded by
(seed, epoch, document index), so a resumed run re-draws exactly the same splits.

Cost: the transform decodes each FIM document and re-tokenizes its pieces, on the prefetch thread,
beside torch's threads. Through the transformers wrappers that cost 5-7 ms of CPU per 2,048 tokens,
and `encode_batch`'s thread pool added its spinning on the same cores. `FastCodec` calls the Rust
tokenizer directly, the same calls the wrappers end in, once per document, without the thread pool
(docs/training.md "Loop overhead"); it is used only where a probe at construction gives the same
ids and text as the wrappers, so the output is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codelm.errors import CodelmError, UnsupportedFeatureError
from codelm.models.registry import Family
from codelm.models.vocab import token_id

_NEWLINE = re.compile("\n")


@dataclass
class Piece:
    """Tokens of one training document; `eos` says whether an EOS follows (a real document end)."""

    ids: list[int]
    eos: bool


def split_points(length: int, rng: np.random.Generator) -> tuple[int, int]:
    """Two sorted cut points in [0, length], uniform (StarCoder's `permute`)."""
    a, b = sorted(int(x) for x in rng.integers(0, length + 1, size=2))
    return a, b


def line_split_points(text: str, rng: np.random.Generator) -> tuple[int, int] | None:
    """Cut points at line starts, so the middle is whole lines: one non-blank line half of the time,
    else from that line to a line end drawn uniformly after it. None when `text` has no non-blank line.

    A line-level span (Bavarian et al. 2022 compare line-, token- and character-level spans), weighted
    towards the single line: the span an editor's line completion asks for and HumanEval single-line
    infilling scores.
    """
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text, 0, len(text) - 1))]
    ends = [*starts[1:], len(text)]
    lines = [i for i, (a, b) in enumerate(zip(starts, ends, strict=True)) if text[a:b].strip()]
    if not lines:
        return None
    first = lines[int(rng.integers(len(lines)))]
    last = first if rng.random() < 0.5 else int(rng.integers(first, len(starts)))
    return starts[first], ends[last]


PROBES = (  # texts the fast path must encode and decode as the wrappers do before it is used
    "def f(x):\n    return x  # \u00e9\u4e2d\U0001f600\n\n\t\tpass\r\n",
    "<fim_prefix><fim_suffix><fim_middle><|fim_begin|><|fim_hole|><|fim_end|><|endoftext|>",
    "<|fim_prefix|><|fim_suffix|><|fim_middle|><s></s><bos><eos><pad><unk><|file_separator|>",
    "   x  \n\n\n  y's 12345 \u00a0\u2028\u0300a",
    "",
)


class FastCodec:
    """`tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]` and
    `tokenizer.decode(ids)` through the Rust tokenizer directly, for a `transformers` tokenizer whose
    calls end in it unchanged.

    Those wrappers cost more than the tokenization here (argument checks, `to_py_obj` over every id,
    offsets and attention masks never read), and `encode_batch` runs on the tokenizers thread pool,
    whose workers spin on the cores torch's threads use. This calls `encode` (offsets are cheap
    next to the pool) on a private copy of the Rust tokenizer with `encode_special_tokens` set (what
    `split_special_tokens=True` sets on the shared one), so another thread encoding with control
    tokens is never affected. `of()` returns None where equality cannot be shown: a tokenizer class
    that overrides the calls, decoding with a clean-up, or a probe that differs.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @classmethod
    def of(cls, tokenizer: Any) -> FastCodec | None:
        try:
            from transformers.tokenization_utils_base import PreTrainedTokenizerBase
            from transformers.tokenization_utils_tokenizers import TokenizersBackend
        except ImportError:  # another transformers layout: keep the wrappers
            return None
        kind = type(tokenizer)
        if not isinstance(tokenizer, TokenizersBackend) or any(
            getattr(kind, name) is not getattr(base, name)
            for name, base in (
                ("__call__", PreTrainedTokenizerBase),
                ("decode", PreTrainedTokenizerBase),
                ("_encode_plus", TokenizersBackend),
                ("_decode", TokenizersBackend),
            )
        ):
            return None
        if tokenizer.clean_up_tokenization_spaces:
            return None
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.no_truncation()  # what the wrapper's call does (DO_NOT_TRUNCATE, DO_NOT_PAD)
        backend.no_padding()
        backend.encode_special_tokens = True
        codec = cls(backend)
        probes = [*PROBES, *(t for t in tokenizer.all_special_tokens)]
        want = tokenizer(probes, add_special_tokens=False, split_special_tokens=True, verbose=False)
        if codec.encode(probes) != want["input_ids"]:
            return None
        for ids in want["input_ids"]:
            if codec.decode(ids) != tokenizer.decode(ids):
                return None
        every = list(range(len(tokenizer)))  # control tokens as text, as the wrapper decodes them
        if codec.decode(every) != tokenizer.decode(every):
            return None
        return codec

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.backend.encode(t, add_special_tokens=False).ids for t in texts]

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=False)


class FimTransform:
    """Turn a document's token ids into training pieces, FIM-permuted at `rate`."""

    def __init__(
        self,
        family: Family,
        tokenizer: Any,
        rate: float,
        spm_rate: float | None = None,
        line_rate: float = 0.0,
        *,
        max_tokens: int = 2048,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise CodelmError(f"FIM rate must be in [0, 1], got {rate}")
        if rate > 0 and family.fim is None:
            raise UnsupportedFeatureError(
                f"model family {family.name} has no FIM sentinels (set fim_rate: 0)"
            )
        if spm_rate is None:  # the family's own order (Seed-Coder trains SPM only)
            spm_rate = 1.0 if family.fim is not None and family.fim.suffix_first else 0.0
        if not 0.0 <= spm_rate <= 1.0:
            raise CodelmError(f"FIM SPM share must be in [0, 1], got {spm_rate}")
        if not 0.0 <= line_rate <= 1.0:
            raise CodelmError(f"FIM line share must be in [0, 1], got {line_rate}")
        self.family, self.tokenizer = family, tokenizer
        self.rate, self.spm_rate, self.line_rate, self.max_tokens = rate, spm_rate, line_rate, max_tokens
        if family.fim is not None:
            # by spelling, not by "id == unk": a tokenizer without unk returns None for a missing
            # token, and GPT-NeoX's unk is <|endoftext|>, a real token
            self.pre, self.suf, self.mid = (token_id(tokenizer, t) for t in family.fim.sentinels)
            missing = [t for t in family.fim.sentinels if token_id(tokenizer, t) is None]
            if missing and rate > 0:
                raise CodelmError(
                    f"the tokenizer lacks {family.name}'s FIM sentinels {', '.join(missing)}; "
                    "use a tokenizer of that family (or set the FIM rate to 0)"
                )
        self.codec = FastCodec.of(tokenizer) if rate > 0 else None

    def _decode(self, ids: list[int]) -> str:
        if self.codec is not None:
            return self.codec.decode(ids)
        return self.tokenizer.decode(ids)

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        if self.codec is not None:
            return self.codec.encode(texts)
        # split_special_tokens: text that spells a sentinel is data, never a control token
        return self.tokenizer(
            list(texts), add_special_tokens=False, split_special_tokens=True, verbose=False
        )["input_ids"]

    def permute(self, text: str, rng: np.random.Generator, spm: bool) -> list[int]:
        """One FIM example from `text`: sentinels and pieces in PSM or SPM order, without EOS. The
        middle is whole lines for the `line_rate` share (when `text` has a non-blank line), else a
        character span."""
        cuts = line_split_points(text, rng) if self.line_rate and rng.random() < self.line_rate else None
        a, b = cuts or split_points(len(text), rng)
        prefix, middle, suffix = self._encode([text[:a], text[a:b], text[b:]])
        if spm and self.family.fim.order == "spm":  # the family's own SPM (Seed-Coder, render_fim)
            return [self.suf, *suffix, self.pre, *prefix, self.mid, *middle]
        if spm:  # the FIM paper's SPM (section 3), as StarCoder implements it: "spm-joined" and PSM families
            return [self.pre, self.suf, *suffix, self.mid, *prefix, *middle]
        return [self.pre, *prefix, self.suf, *suffix, self.mid, *middle]

    def _one(self, text: str, rng: np.random.Generator, last: bool) -> Piece:
        if rng.random() < self.rate:
            return Piece(self.permute(text, rng, spm=rng.random() < self.spm_rate), eos=True)
        return Piece(self._encode([text])[0], eos=last)

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> list[Piece]:
        """Pieces of one document. Without FIM the stored ids are used as they are."""
        if self.rate == 0.0 or len(ids) == 0:
            return [Piece(ids.tolist(), eos=True)]
        if len(ids) <= self.max_tokens:
            if rng.random() >= self.rate:
                return [Piece(ids.tolist(), eos=True)]
            text = self._decode(ids.tolist())
            return [Piece(self.permute(text, rng, spm=rng.random() < self.spm_rate), eos=True)]
        # A long document is cut into chunks of about max_tokens at line ends, and each chunk gets its
        # own FIM draw, so the prefix, middle and suffix of a FIM example stay within one sequence.
        text = self._decode(ids.tolist())
        chunks = chunk_text(text, max(1, int(len(text) * self.max_tokens * 0.9 / len(ids))))
        return [self._one(c, rng, last=i == len(chunks) - 1) for i, c in enumerate(chunks)]


def chunk_text(text: str, max_chars: int) -> list[str]:
    """`text` cut into pieces of at most `max_chars`, at the last newline before the limit if any."""
    out, start = [], 0
    while len(text) - start > max_chars:
        cut = text.rfind("\n", start, start + max_chars)
        cut = start + max_chars if cut <= start else cut + 1
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out
