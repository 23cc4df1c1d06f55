"""Any OpenAI-compatible server as a backend: ``codelm serve``, vLLM, TGI, llama.cpp, OpenAI.

Completion and infill requests go to ``POST {url}/v1/completions`` (infill as ``prompt`` +
``suffix``, which codelm's server renders in the model family's FIM format); chat requests to
``POST {url}/v1/chat/completions``. Requests are sent ``concurrency`` at a time from threads
sharing one httpx client, with ``n`` samples each; transport errors, 429 and 5xx answers are
retried with exponential backoff. A 400 answer fails only its own request (e.g. a prompt too long
for the context), except a refusal of fill-in-the-middle (or of ``suffix``, as vLLM answers), which
ends the run. Texts are cut at the
request's stop strings again, since servers may honour only a few (OpenAI: four).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from codelm.errors import CodelmError, RequestError, UnsupportedFeatureError

from ..generation import LOGLIKELIHOOD, CannotScore, GenerationFailed, GenRequest
from ..prompts import cut_at_stops


def api_base(url: str) -> str:
    """``http://host:port`` or ``http://host:port/v1`` -> ``http://host:port/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIBackend(CannotScore):
    pregenerated = False
    tokenizer = None  # the server's tokenizer is not ours to read

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        retries: int = 3,
    ) -> None:
        import httpx

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base, self.concurrency, self.retries = api_base(url), concurrency, retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.model = model or self._first_model()
        self.name = f"endpoint:{self.base} ({self.model})"

    def _first_model(self) -> str:
        models = self._call("GET", "/models").get("data") or []
        if not models:
            raise CodelmError(f"{self.base}/models lists no model: pass --model NAME")
        return models[0]["id"]

    def supports(self, kind: str) -> str | None:
        if kind == LOGLIKELIHOOD:
            return "an endpoint cannot score texts (it needs the model's weights): use --model CHECKPOINT"
        return None  # only the server knows; a refusal of FIM ends the run with its message

    def body(self, request: GenRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {"model": self.model, "max_tokens": s.max_new_tokens, "n": request.n}
        body |= {"temperature": s.temperature, "top_p": s.top_p}
        if s.seed is not None:
            body["seed"] = s.seed
        # vLLM extensions, sent only when asked for (OpenAI itself rejects them); a server may apply
        # its own defaults otherwise (codelm serve: the family's), so --top-k 0 turns them off there
        if s.top_k is not None:
            body["top_k"] = s.top_k
        if s.repetition_penalty is not None:
            body["repetition_penalty"] = s.repetition_penalty
        if request.stop:
            body["stop"] = list(request.stop)
        if request.kind == "chat":
            body["messages"] = [dict(m) for m in request.messages]
        else:
            body["prompt"] = request.prompt
            if request.kind == "infill":
                body["suffix"] = request.suffix
        return body

    def _one(self, request: GenRequest) -> list[str]:
        path = "/chat/completions" if request.kind == "chat" else "/completions"
        choices = sorted(
            self._call("POST", path, self.body(request))["choices"], key=lambda c: c.get("index", 0)
        )
        texts = [(c["message"]["content"] or "") if request.kind == "chat" else c["text"] for c in choices]
        if len(texts) != request.n:
            raise CodelmError(f"{self.base}{path} returned {len(texts)} choices for n={request.n}")
        return [cut_at_stops(t, request.stop) for t in texts]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = self.client.request(method, self.base + path, json=body)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise CodelmError(f"cannot reach {self.base}{path}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response.json()
                message = _error_message(response)
                if response.status_code == 400:
                    if "fill-in-the-middle" in message or (body and "suffix" in body and "suffix" in message):
                        raise UnsupportedFeatureError(f"{self.base}: {message}")
                    raise RequestError(message)
                if response.status_code != 429 and response.status_code < 500 or attempt == self.retries:
                    raise CodelmError(f"{self.base}{path} answered {response.status_code}: {message}")
            time.sleep(min(30.0, 2.0**attempt))
        raise AssertionError("unreachable")

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        def attempt(request: GenRequest) -> list[str] | RequestError:
            try:
                return self._one(request)
            except RequestError as exc:  # this request only; handed back to the caller below
                return exc

        with ThreadPoolExecutor(min(self.concurrency, max(1, len(requests)))) as pool:
            answers = list(pool.map(attempt, requests))
        errors = {i: str(a) for i, a in enumerate(answers) if isinstance(a, RequestError)}
        texts = [[] if isinstance(a, RequestError) else a for a in answers]
        if errors:
            raise GenerationFailed(texts, errors)
        return texts

    def close(self) -> None:
        self.client.close()


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error")
        return error.get("message", str(error)) if isinstance(error, dict) else str(error or response.text)
    except ValueError:
        return response.text[:500]
