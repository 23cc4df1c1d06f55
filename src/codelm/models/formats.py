"""Prompt formats per family: fill-in-the-middle, chat, repository context, and output cleaning.

Everything here is pure string work so that the engine, the server's gateway mode and the data
pipeline's FIM transform all render byte-identical prompts from the same family facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from codelm.errors import RequestError, UnsupportedFeatureError
from codelm.models.reasoning import reasoning_spec, strip_reasoning
from codelm.models.registry import Family, ReasoningSpec

CHAT_FORMATS = ("chat", "reasoning")  # the family's chat template, or its reasoning variant's


def render_fim(family: Family, prefix: str, suffix: str) -> str:
    """The family's own infilling prompt; no whitespace is added around sentinels (CodeGemma docs)."""
    if family.fim is None:
        raise UnsupportedFeatureError(f"model family {family.name} does not support fill-in-the-middle")
    f = family.fim
    if f.order == "psm":
        return f"{f.prefix}{prefix}{f.suffix}{suffix}{f.middle}"
    if f.order == "spm-joined":  # the FIM paper's SPM: the model continues the prefix's own text
        return f"{f.prefix}{f.suffix}{suffix}{f.middle}{prefix}"
    # SPM as Seed-Coder documents it: suffix first, then prefix, then the middle sentinel.
    return f"{f.suffix}{suffix}{f.prefix}{prefix}{f.middle}"


def renders_chat(record: dict[str, Any]) -> bool:
    """Whether a preference record (DPO data, the `preference` task) renders through the chat format:
    its `chat` key, true by default; false for plain texts such as a base model's infills."""
    chat = record.get("chat", True)
    if not isinstance(chat, bool):
        raise RequestError(f"a preference record's 'chat' must be true or false, not {chat!r}")
    return chat


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


_JINJA = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
)
_JINJA.globals["raise_exception"] = _raise_exception


def render_chat_template(
    template: str,
    messages: Sequence[dict[str, Any]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    reasoning: ReasoningSpec | None = None,
) -> str:
    """Render a HF-style Jinja chat template the way `apply_chat_template` does.

    With `reasoning`, earlier assistant turns lose their thinking block: a prompt carries past
    answers only, as DeepSeek-R1's and Qwen3's templates render them (training data, rendered
    without it, keeps the thinking it is to learn)."""
    _check_messages(messages)
    if reasoning is not None:
        messages = [
            {**m, "content": strip_reasoning(m["content"], reasoning)} if m["role"] == "assistant" else m
            for m in messages
        ]
    try:
        return _JINJA.from_string(template).render(
            messages=list(messages),
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except TemplateError as exc:
        raise RequestError(f"chat template rejected the conversation: {exc}") from exc


def chat_template(family: Family, chat_format: str = "chat") -> str:
    """The family's template for `chat_format`: "chat" (instruct) or "reasoning" (its reasoning
    model's own template, e.g. Seed-Coder-8B-Reasoning's)."""
    if chat_format not in CHAT_FORMATS:
        raise RequestError(f"unknown chat format {chat_format!r} (choices: {', '.join(CHAT_FORMATS)})")
    if chat_format == "reasoning":
        if family.reasoning is None or family.reasoning.template is None:
            raise RequestError(
                f"model family {family.name} has no reasoning chat template; use the chat format "
                "(reasoning in the output is still separated)"
            )
        return family.reasoning.template
    if family.chat is None:
        raise UnsupportedFeatureError(f"model family {family.name} has no chat format (it is a base model)")
    return family.chat.template


def render_chat(
    family: Family,
    messages: Sequence[dict[str, Any]],
    chat_format: str = "chat",
    add_generation_prompt: bool = True,
) -> str:
    """The family's chat prompt for `messages` (list of {"role", "content"}) in `chat_format`."""
    return render_chat_template(
        chat_template(family, chat_format),
        messages,
        bos_token=family.tokenizer.bos,
        eos_token=family.tokenizer.eos,
        add_generation_prompt=add_generation_prompt,
        reasoning=reasoning_spec(family),
    )


def _check_messages(messages: Sequence[dict[str, Any]]) -> None:
    if not messages:
        raise RequestError("a chat needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise RequestError(f"message {i} must be an object with 'role' and 'content'")
        if m["role"] not in ("system", "user", "assistant"):
            raise RequestError(f"message {i} has unknown role {m['role']!r} (system, user or assistant)")
        if not isinstance(m["content"], str):
            raise RequestError(f"message {i} content must be a string")


def render_repo_context(family: Family, files: Iterable[tuple[str, str]]) -> str:
    """Other files of the repository, placed before the prompt.

    With a file separator (CodeGemma, StarCoder-style) each file is `SEP path\\n content`; without
    one, each file gets a commented path header, which every code model has seen in training.
    """
    parts = []
    for path, content in files:
        if family.file_separator:
            parts.append(f"{family.file_separator}{path}\n{content}")
        else:
            parts.append(f"# {path}\n{content}")
        if not content.endswith("\n"):
            parts.append("\n")
    return "".join(parts)


def cut_at_first(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """`text` up to the earliest occurrence of any stop string, and whether one was found."""
    best = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if 0 <= i < best:
                best = i
    return text[:best], best < len(text)
