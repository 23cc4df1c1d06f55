"""What one client may cost the server: body size, and time to send the request head and body.

A server that reads whatever arrives, however slowly, can be held by a few hostile or broken
clients: a multi-megabyte body is parsed and tokenized at length, and a client that sends its
headers (or its body) a byte at a time keeps a connection and a task forever ("slowloris").

- `RequestGuard` (ASGI middleware) reads the body before the app sees it: a body larger than
  `max_body_bytes` is refused with 413 before it is parsed (at once when Content-Length says so),
  one that does not arrive within `client_timeout_s` gets 408. The app then gets the body in one
  piece and later messages (the disconnect that ends a stream) untouched. Starlette's own
  `RequestBodyLimitMiddleware` answers a bare "Content Too Large" and has no deadline.
- `head_timeout_protocol` wraps uvicorn's httptools protocol: a connection whose request line
  and headers are not complete within the timeout (counted from the connection or from the first
  byte of a request) gets 408 and is closed. uvicorn itself only times out idle keep-alive
  connections, never a client in the middle of sending a request head.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codelm.serve.errors import APIError

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # 1M tokens of code fit; tokenizing more takes ~10 s
DEFAULT_CLIENT_TIMEOUT_S = 30.0  # the nginx defaults for headers and body are 60 s each


class RequestGuard:
    """Refuse bodies over `max_body_bytes` (413) or slower than `client_timeout_s` (408)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, client_timeout_s: float) -> None:
        self.app, self.max_body_bytes, self.timeout_s = app, max_body_bytes, client_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except APIError as error:
            metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
            if metrics is not None:
                metrics.error(error.status, error.code)
            await error.response({"Connection": "close"})(scope, receive, send)
            return
        if body is None:  # the client left before sending its body: nobody to answer
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> APIError:
        return APIError(
            413,
            f"the request body is {size}; this server accepts at most {self.max_body_bytes} bytes "
            "(codelm serve --max-body-bytes)",
            "body_too_large",
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            raise self._too_large(f"{declared} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise APIError(
                    408,
                    f"the request body did not arrive within {self.timeout_s:g} s "
                    "(codelm serve --client-timeout)",
                    "request_timeout",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(f"over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn's parser refuses these before we see them
    return None


def head_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools HTTP protocol with a deadline for each request's line and headers."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    body = json.dumps(
        APIError(408, f"the request headers did not arrive within {timeout_s:g} s", "request_timeout").body()
    ).encode()
    response = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )

    class HeadTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()  # a client that connects and sends nothing is timed out too

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # no response is being sent
                self.transport.write(response)
            self.transport.close()

    return HeadTimeoutProtocol
