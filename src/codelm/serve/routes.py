"""HTTP routes: transport only. Parse (FastAPI + protocol schemas), call serving, send.

A non-streaming request whose client disconnects is cancelled like a streaming one: the handler
races the generation against the connection's `http.disconnect` message (vLLM does the same), so a
client that gives up frees its batch rows at once instead of after max_tokens.
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
from codelm.serve.protocol import ChatCompletionRequest, CompletionRequest, ModelList
from codelm.serve.serving import Serving

router = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _serving(request: Request) -> Serving:
    return request.app.state.serving


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    return _serving(request).models()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    return _respond(await _unless_disconnected(request, _serving(request).completions(body)))


@router.post("/v1/chat/completions")
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


def _respond(result: BaseModel | AsyncIterator[str]) -> Response:
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
