"""The model-family registry: each family's formats and sizes, loaded from data files.

Families are facts taken from model cards and configs (see shared/research/models.md), so they live
in `families/*.yaml` and `configs/*.json`, not in code. This module only turns them into frozen
dataclasses and answers lookups with "did you mean" errors.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from codelm.errors import CodelmError

FAMILY_NAMES: tuple[str, ...] = ("codegen1", "codegemma", "stablecode", "seedcoder", "llama")


@dataclass(frozen=True)
class TokenizerSpec:
    bos: str
    eos: str
    pad: str
    special_tokens: tuple[str, ...]
    add_bos: bool = False
    unk: str | None = None
    tokenizer_class: str = "PreTrainedTokenizerFast"
    whitespace_runs: dict[str, list[int]] | None = None  # CodeGen1's added space/tab run tokens


FIM_ORDERS = ("psm", "spm", "spm-joined")


@dataclass(frozen=True)
class FimSpec:
    """A family's infilling format. `order`: "psm" `<pre>P<suf>S<mid>` (prefix, suffix, middle), "spm"
    Seed-Coder's suffix-first `<suf>S<pre>P<mid>`, or "spm-joined" the FIM paper's SPM
    `<pre><suf>S<mid>P` (Bavarian et al. 2022, section 3; StarCoder's SPM), where the middle
    continues the prefix's text with no sentinel between them."""

    order: str
    prefix: str
    suffix: str
    middle: str

    def __post_init__(self) -> None:
        if self.order not in FIM_ORDERS:
            raise ValueError(f"FIM order must be one of {', '.join(FIM_ORDERS)}, got {self.order!r}")

    @property
    def suffix_first(self) -> bool:
        """Whether the family's own prompts put the suffix before the prefix (an SPM layout)."""
        return self.order != "psm"

    @property
    def sentinels(self) -> tuple[str, str, str]:
        return (self.prefix, self.suffix, self.middle)


@dataclass(frozen=True)
class ChatSpec:
    template: str
    stop_tokens: tuple[str, ...]
    system_role: bool = True


@dataclass(frozen=True)
class ReasoningSpec:
    """How a reasoning model marks its thinking, and the chat template its reasoning variant uses.

    The markers default to `<think>`/`</think>`, the DeepSeek-R1 and Qwen convention most open
    reasoning models follow; `template` is None when the family has no separate reasoning template.
    """

    start: str = "<think>"
    end: str = "</think>"
    template: str | None = None

    def __post_init__(self) -> None:
        if not self.start or not self.end or self.start == self.end:
            raise ValueError("reasoning markers must be two different non-empty strings")


@dataclass(frozen=True)
class SizeSpec:
    name: str
    config_file: str
    published_params: float
    source: str

    def config_dict(self) -> dict[str, Any]:
        text = resources.files("codelm.models").joinpath("configs", self.config_file).read_text()
        return json.loads(text)


@dataclass(frozen=True)
class Family:
    name: str
    display_name: str
    model_type: str
    architecture: str
    tokenizer: TokenizerSpec
    stop_tokens: tuple[str, ...]
    fim: FimSpec | None = None
    file_separator: str | None = None
    chat: ChatSpec | None = None
    reasoning: ReasoningSpec | None = None  # None: the generic <think> markers, no own template
    truncate_before_pattern: tuple[str, ...] | None = None
    hub_example: str | None = None
    sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: dict[str, SizeSpec] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)

    @property
    def supports_fim(self) -> bool:
        return self.fim is not None

    @property
    def sentinel_strings(self) -> tuple[str, ...]:
        """Control strings a completion must never contain: FIM sentinels, file separator, EOS."""
        out = list(self.fim.sentinels) if self.fim else []
        if self.file_separator:
            out.append(self.file_separator)
        out.append(self.tokenizer.eos)
        return tuple(dict.fromkeys(out))

    def size(self, name: str) -> SizeSpec:
        if name not in self.sizes:
            raise CodelmError(_unknown(f"size of family {self.name}", name, list(self.sizes)))
        return self.sizes[name]


def _unknown(what: str, name: str, choices: list[str]) -> str:
    msg = f"unknown {what} {name!r}"
    folded = {c.lower(): c for c in choices}  # '2B' should suggest '2b'
    close = difflib.get_close_matches(name.strip().lower(), list(folded), n=1)
    if close:
        msg += f"; did you mean {folded[close[0]]!r}?"
    return msg + f" (choices: {', '.join(choices) or 'none'})"


def _parse(raw: dict[str, Any]) -> Family:
    tok = dict(raw["tokenizer"])
    tok["special_tokens"] = tuple(tok.get("special_tokens", ()))
    chat = raw.get("chat")
    sizes = {
        str(name): SizeSpec(str(name), s["config"], float(s["published_params"]), s["source"])
        for name, s in (raw.get("sizes") or {}).items()
    }
    tbp = raw.get("truncate_before_pattern")
    reasoning = raw.get("reasoning")
    return Family(
        name=raw["name"],
        display_name=raw["display_name"],
        model_type=raw["model_type"],
        architecture=raw["architecture"],
        tokenizer=TokenizerSpec(**tok),
        stop_tokens=tuple(raw["stop_tokens"]),
        fim=FimSpec(**raw["fim"]) if raw.get("fim") else None,
        file_separator=raw.get("file_separator"),
        chat=ChatSpec(chat["template"], tuple(chat["stop_tokens"]), chat.get("system_role", True))
        if chat
        else None,
        reasoning=ReasoningSpec(**reasoning) if reasoning else None,
        truncate_before_pattern=tuple(tbp) if tbp else None,
        hub_example=raw.get("hub_example"),
        sampling=raw.get("sampling") or {},
        sizes=sizes,
        tiny=raw.get("tiny") or {},
    )


@cache
def get_family(name: str) -> Family:
    """The family called `name`; a clear error with a suggestion when there is none."""
    if name not in FAMILY_NAMES:
        raise CodelmError(_unknown("model family", name, list(FAMILY_NAMES)))
    text = resources.files("codelm.models").joinpath("families", f"{name}.yaml").read_text()
    family = _parse(yaml.safe_load(text))
    if family.name != name:
        raise CodelmError(f"families/{name}.yaml declares name {family.name!r}")
    return family


def all_families() -> list[Family]:
    return [get_family(n) for n in FAMILY_NAMES]
