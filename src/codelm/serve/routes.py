"""HTTP routes: transport only. Parse (FastAPI + protocol schemas), call serving, send.

A non-streaming request whose client disconnects is cancelled like a streaming one: the handler
races the generation against the connection's `http.disconnect` message (vLLM does the same), so a
client that gives up frees its batch rows at once instead of after max_tokens.

The routes declare what they answer, so the published OpenAPI schema (/openapi.json) is the
truth: JSON or an event stream on success, and the JSON error body for every refusal (400 for
invalid input, where FastAPI's default schema would promise 422).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from codelm.serve.errors import APIError
from codelm.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    ModelList,
)
from codelm.serve.serving import Serving


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# every route can be refused by the API key and the request guard (serve/limits.py)
router = APIRouter(
    responses={
        401: _error("missing or wrong API key (when the server has one)"),
        408: _error("the request was not sent within the client timeout"),
        413: _error("the request body is larger than the server accepts"),
        "4XX": _error("any other client error"),
    }
)
GENERATION_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("invalid request: the message names the field and the problem"),
    404: _error("unknown model"),
    500: _error("generation failed (a server bug)"),
    502: _error("gateway mode: the upstream is unreachable or failed"),
    503: _error("the queue is full: retry later"),
}
# with "stream": true: one event per chunk, `data` a JSON chunk (the last one `[DONE]`)
SSE = {
    "text/event-stream": {
        "itemSchema": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        }
    }
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _serving(request: Request) -> Serving:
    return request.app.state.serving


@router.get("/health")
@router.head("/health", operation_id="health_head")  # load balancers probe with HEAD too
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    return _serving(request).models()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@router.post(
    "/v1/completions",
    response_class=JSONResponse,
    responses={200: {"model": CompletionResponse, "content": SSE}, **GENERATION_ERRORS},
)
async def completions(body: CompletionRequest, request: Request) -> Response:
    return _respond(await _unless_disconnected(request, _serving(request).completions(body)))


@router.post(
    "/v1/chat/completions",
    response_class=JSONResponse,
    responses={200: {"model": ChatCompletionResponse, "content": SSE}, **GENERATION_ERRORS},
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return _respond(await _unless_disconnected(request, _serving(request).chat(body)))


@router.get("/", response_class=HTMLResponse)
async def playground() -> HTMLResponse:
    return HTMLResponse(_playground_html())


def _playground_html() -> str:
    page = resources.files("codelm.serve").joinpath("playground.html")
    if not page.is_file():
        raise APIError(
            404, "the playground page is not installed (serve/playground.html is missing)", "not_found"
        )
    return page.read_text(encoding="utf-8")


def _respond(result: BaseModel | Response | AsyncIterator[str]) -> Response:
    if isinstance(result, Response):  # the client left (499): nothing to stream
        return result
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump())
    return StreamingResponse(result, media_type="text/event-stream", headers=SSE_HEADERS)


async def _unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """`work`'s result; if the client disconnects first, cancel `work` (and so its generation)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # let it unwind (its generation is cancelled on the way out)
    if task.cancelled():
        # nobody is listening; this response is never read, it only ends the handler
        return Response(status_code=499)
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
