"""Gateway mode: codelm renders the family's prompts, an OpenAI-compatible upstream generates.

    vllm serve ORG/NAME --tensor-parallel-size 4 --port 8001
    codelm serve --model ORG/NAME --family seedcoder --upstream http://127.0.0.1:8001

Upstream servers (vLLM, TGI, llama.cpp) only see raw prompts on /v1/completions: FIM and chat
templates, repository context, line mode and the family's stop rules are applied here, so a client
gets the same answers as from a local codelm server. Every upstream call streams, so tokens are
relayed as they come and a client that leaves closes the upstream connection (vLLM then aborts the
request). Stop strings are sent upstream *and* enforced here with the engine's own `StopMatcher`,
because upstreams that skip special tokens in their output cannot match sentinel stop strings.
A chat reply's thinking is separated here too (the upstream's /v1/completions returns raw text), so
`reasoning_content` comes out as from a local server; a thinking budget (`max_thinking_tokens`)
needs the engine's forced tokens and is refused in this mode.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from codelm.engine import Completion, Request
from codelm.engine.rules import sampling_params, stop_strings
from codelm.engine.scheduler import Event
from codelm.engine.text import StopMatcher
from codelm.errors import CodelmError
from codelm.models.formats import CHAT_FORMATS, cut_at_first, render_chat, render_fim
from codelm.models.reasoning import ReasoningParser, opens_thinking, reasoning_spec, split_reasoning
from codelm.models.registry import Family
from codelm.serve.errors import APIError


class GatewayGeneration:
    """One streamed upstream completion, cut at the family's stops as it arrives."""

    def __init__(
        self,
        response: httpx.Response,
        rows: int,
        stops: list[str],
        deadline: float | None,
        chat: Request | None = None,
    ):
        self._response, self._deadline = response, deadline
        self._stops = stops
        self._matchers = [StopMatcher(stops) for _ in range(rows)]
        # a chat request whose thinking is separated: its spec, and whether its prompt opened it
        self._think = None
        if chat is not None and chat.reasoning is not None:
            self._think = (chat.reasoning, opens_thinking(chat.reasoning, chat.prompt))
        self._parsers = [ReasoningParser(*self._think) for _ in range(rows)] if self._think else None
        self._text = [""] * rows
        self._tokens = [0] * rows  # text chunks seen; replaced by the upstream's usage when it has one
        self._finish: list[str | None] = [None] * rows  # set when the sample's last event is sent
        self._upstream_finish: list[str | None] = [None] * rows
        self.prompt_tokens = 0
        self.error: str | None = None

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            try:
                async for data in self._events():
                    if "error" in data:
                        self.error = f"upstream: {_upstream_message(json.dumps(data))}"
                        break
                    self._usage(data.get("usage"))
                    for choice in data.get("choices") or []:
                        for ev in self._choice(choice):
                            yield ev
                    if all(self._finish):
                        return  # we cut every sample here: the upstream need not go on
            except (httpx.HTTPError, ValueError) as exc:  # connection lost, or not JSON
                self.error = f"upstream stream failed: {type(exc).__name__}: {exc}"
            # samples end once the stream has (the usage chunk comes after the finish reasons)
            for i, reason in enumerate(self._finish):
                if reason is None:
                    fallback = "error" if self.error else "length"  # "length": the time budget ran out
                    yield self._end(i, self._upstream_finish[i] or fallback, flush=not self.error)
        finally:
            await self._response.aclose()  # leaving early tells the upstream to stop generating

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        async for line in self._response.aiter_lines():
            if self._deadline and time.monotonic() > self._deadline:
                return
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return
            yield json.loads(payload)

    def _usage(self, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        if len(self._tokens) == 1 and usage.get("completion_tokens") is not None:
            self._tokens[0] = int(usage["completion_tokens"])  # exact, where chunks may merge tokens

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        i = int(choice.get("index", 0))
        if not 0 <= i < len(self._finish) or self._finish[i]:
            return []
        piece, hit = self._matchers[i].feed(choice.get("text") or "")
        self._tokens[i] += 1 if choice.get("text") else 0
        events = [self._emit(i, piece)] if piece else []
        if hit:
            events.append(self._end(i, "stop", flush=False))
        elif choice.get("finish_reason"):
            self._upstream_finish[i] = str(choice["finish_reason"])
        return events

    def _emit(self, i: int, piece: str) -> Event:
        self._text[i] += piece
        reasoning, answer = self._parsers[i].feed(piece) if self._parsers else ("", piece)
        return Event(i, answer, reasoning=reasoning)

    def _end(self, i: int, reason: str, flush: bool) -> Event:
        tail = self._matchers[i].flush() if flush else ""
        self._text[i] += tail
        self._finish[i] = reason
        reasoning, answer = ("", tail)
        if self._parsers:
            r1, a1 = self._parsers[i].feed(tail)
            r2, a2 = self._parsers[i].flush()
            reasoning, answer = r1 + r2, a1 + a2
        return Event(i, answer, reason, self._tokens[i], reasoning=reasoning)

    def completions(self) -> list[Completion]:
        out = []
        for text, reason, tokens in zip(self._text, self._finish, self._tokens, strict=True):
            text, cut = cut_at_first(text, self._stops)
            reasoning = None
            if self._think:
                reasoning, text = split_reasoning(text, *self._think)
            out.append(Completion(text, "stop" if cut else reason or "length", tokens, reasoning=reasoning))
        return out

    def cancel(self) -> None:
        """Nothing to do: closing the response (when iteration ends) ends the upstream request."""


class GatewayClient:
    """Forwards rendered prompts to an OpenAI-compatible /v1/completions."""

    def __init__(
        self,
        upstream: str,
        model: str,
        family: Family,
        api_key: str | None = None,
        chat_format: str = "chat",
        reasoning: bool = True,
    ) -> None:
        if chat_format not in CHAT_FORMATS:
            raise CodelmError(f"unknown chat format {chat_format!r} (choices: {', '.join(CHAT_FORMATS)})")
        self.chat_format = chat_format
        self.reasoning = reasoning_spec(family) if reasoning else None
        base = upstream.rstrip("/")
        self.url = base if base.endswith("/v1") else base + "/v1"
        self.model, self.family = model, family
        self.context_window: int | None = None  # the upstream checks prompt lengths
        key = api_key or os.environ.get("CODELM_UPSTREAM_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0, read=None))
        self._open = 0

    def completion_request(self, prompt: str, **sampling: Any) -> Request:
        return Request(prompt, sampling_params(self.family, "completion", **sampling), "completion")

    def infill_request(self, prefix: str, suffix: str, **sampling: Any) -> Request:
        prompt = render_fim(self.family, prefix, suffix)
        return Request(prompt, sampling_params(self.family, "infill", **sampling), "infill")

    def chat_request(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> Request:
        if sampling.get("max_thinking_tokens") is not None:
            raise APIError(
                400,
                "max_thinking_tokens is not supported in gateway mode (the budget writes the end marker "
                "into the model's output, which only a local engine can do)",
                "unsupported_feature",
                "max_thinking_tokens",
            )
        prompt = render_chat(self.family, messages, self.chat_format)
        params = sampling_params(self.family, "chat", **sampling)
        return Request(prompt, params, "chat", reasoning=self.reasoning)

    def payload(self, requests: Sequence[Request]) -> dict[str, Any]:
        first = requests[0]
        p = first.params
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [r.prompt for r in requests] if len(requests) > 1 else first.prompt,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "n": p.n,
            "stop": stop_strings(self.family, first.kind, p),
            "stream": True,
            "stream_options": {"include_usage": True},
            "skip_special_tokens": False,  # vLLM: keep sentinels in the text so stop strings match
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.top_k:
            body["top_k"] = p.top_k
        if p.repetition_penalty != 1.0:
            body["repetition_penalty"] = p.repetition_penalty
        if p.ignore_eos:
            body["ignore_eos"] = True
        return body

    async def start(
        self, requests: Sequence[Request], timeout_s: float | None = None, check_budget: bool = False
    ) -> GatewayGeneration:
        """Open the upstream stream; its refusals become our errors before we answer."""
        stops = stop_strings(self.family, requests[0].kind, requests[0].params)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            response = await self.http.send(
                self.http.build_request("POST", f"{self.url}/completions", json=self.payload(requests)),
                stream=True,
            )
        except httpx.HTTPError as exc:
            raise APIError(502, f"upstream {self.url} is unreachable: {exc}", "upstream_unreachable") from exc
        if response.status_code != 200:
            body = (await response.aread()).decode(errors="replace")
            await response.aclose()
            raise APIError(
                response.status_code if 400 <= response.status_code < 500 else 502,
                f"upstream refused the request: {_upstream_message(body)}",
                "upstream_error",
            )
        rows = len(requests) * requests[0].params.n
        chat = requests[0] if requests[0].kind == "chat" else None
        return GatewayGeneration(response, rows, stops, deadline, chat)

    def load(self) -> dict[str, float]:
        return {}

    async def aclose(self) -> None:
        await self.http.aclose()


def _upstream_message(body: str) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        return str(err.get("message", err) if isinstance(err, dict) else err)
    except ValueError:
        return body[:500]
