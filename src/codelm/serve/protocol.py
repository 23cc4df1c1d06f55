"""The wire format: OpenAI-compatible request and response schemas, plus codelm's code extras.

Field names and shapes follow the OpenAI API (and vLLM's extensions `top_k`, `repetition_penalty`,
`ignore_eos`; and the `reasoning_content` field of vLLM's and DeepSeek's APIs, where a reasoning
model's thinking goes, apart from `content`), so the official `openai` client and tools written
for vLLM work unchanged. The extras for code completion are codelm's own: `mode` (line or block),
`timeout_ms` (a time budget), `context_files` (other files of the repository) and `path` (the file
being edited); `max_thinking_tokens` bounds a reasoning model's thinking.

Unknown fields are ignored, as OpenAI-compatible servers do, so that clients sending newer fields
keep working. Validation of sampling values is left to the engine (`SamplingParams`), so the HTTP
API and the Python API reject the same values with the same messages; the published JSON schema
still states those limits (`WithJsonSchema`), and what the server refuses (token-id prompts,
`echo`, penalties) is left out of it, so the schema says exactly what is accepted. Every string
must be valid Unicode: JSON can carry an unpaired surrogate (`"\\ud800"`), which tokenizers and
UTF-8 encoders cannot take, so it is refused with a 400 naming the field.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from codelm.engine.params import MAX_STOP_LENGTH, MAX_STOP_STRINGS, SEED_MAX, SEED_MIN
from codelm.errors import check_unicode


class _Schema(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- requests ------------------------------------------------------------------------------------
class _Request(_Schema):
    """A request schema: no type coercion (`"echo": 0` is not `false`, as the schema says), and
    every string must be encodable as UTF-8."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        check_unicode(value)
        return value


_STOP_STRING = {"type": "string", "minLength": 1, "maxLength": MAX_STOP_LENGTH}
_STOP_SCHEMA = {
    "anyOf": [
        _STOP_STRING,
        {"type": "array", "items": _STOP_STRING, "maxItems": MAX_STOP_STRINGS},
        {"type": "null"},
    ],
    "description": f"at most {MAX_STOP_STRINGS} strings of at most {MAX_STOP_LENGTH} characters",
}
# only what is served: a text prompt or a non-empty list of them (token ids are refused)
_PROMPT_SCHEMA = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
}


class StreamOptions(_Request):
    include_usage: bool = False


class ContextFile(_Request):
    """Another file of the repository, shown to the model before the prompt."""

    path: str
    content: str


class SamplingFields(_Request):
    """Sampling fields shared by completions and chat; None takes the family's recommendation."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # vLLM extra
    repetition_penalty: float | None = None  # vLLM extra
    n: int = 1
    seed: int | None = Field(default=None, json_schema_extra={"minimum": SEED_MIN, "maximum": SEED_MAX})
    stop: Annotated[str | list[str] | None, WithJsonSchema(_STOP_SCHEMA)] = None
    ignore_eos: bool = False  # vLLM extra: benchmarks that must do a fixed amount of work
    skip_special_tokens: bool = True  # vLLM extra: special tokens that are not stops leave the text
    stream: bool = False
    stream_options: StreamOptions | None = None
    # accepted for compatibility; only 0 is supported
    presence_penalty: Annotated[float, WithJsonSchema({"type": "number", "enum": [0]})] = 0.0
    frequency_penalty: Annotated[float, WithJsonSchema({"type": "number", "enum": [0]})] = 0.0
    timeout_ms: int | None = Field(default=None, gt=0, description="time budget; ends with 'length'")
    user: str | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(SamplingFields):
    prompt: Annotated[str | list[str] | list[int] | list[list[int]], WithJsonSchema(_PROMPT_SCHEMA)]
    suffix: str | None = None  # fill-in-the-middle, rendered in the family's own format
    logprobs: int | None = Field(default=None, ge=0, le=20, description="alternatives per token")
    echo: Annotated[bool, WithJsonSchema({"type": "boolean", "enum": [False]})] = False  # unsupported
    mode: Literal["line", "block"] = "block"  # line: stop at the first newline
    context_files: list[ContextFile] = Field(default_factory=list)
    path: str | None = None  # the file being completed, headed like the context files


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] | None = None
    # what an earlier reply thought; accepted so that replies can be sent back as they came, and
    # not rendered: reasoning templates show past answers only (DeepSeek-R1, Qwen3)
    reasoning_content: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(json_schema_extra={"minItems": 1})
    max_completion_tokens: int | None = None  # the newer OpenAI name for max_tokens
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_thinking_tokens: int | None = Field(
        default=None,
        ge=0,
        description="reasoning models: thinking tokens before the end marker is written for the model "
        "and it goes on to the answer (part of max_tokens)",
    )


# -- responses -----------------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _now() -> int:
    return int(time.time())


class Usage(_Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        total = prompt_tokens + completion_tokens
        return cls(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total)


class TopLogprob(_Schema):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatLogprobs(_Schema):
    content: list[ChatTokenLogprob]


class CompletionLogprobs(_Schema):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(_Schema):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(_Schema):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(_Schema):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = None  # the thinking of a reasoning model; null when it had none


class ChatChoice(_Schema):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionResponse(_Schema):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(_Schema):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChatChunkChoice(_Schema):
    index: int
    delta: Delta
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Schema):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(_Schema):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "codelm"
    family: str  # codelm extra: which prompt formats the server renders
    supports_fim: bool
    supports_chat: bool
    context_window: int | None = None


class ModelList(_Schema):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(_Schema):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(_Schema):
    error: ErrorInfo


ChatMessage.model_rebuild()
