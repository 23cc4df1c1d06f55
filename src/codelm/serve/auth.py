"""Optional API key, enforced on every route but /health (which load balancers probe without one).

API clients send `Authorization: Bearer KEY` (what the `openai` client does with `api_key=`).
Browsers cannot add a header when they navigate to the playground, so HTTP Basic credentials whose
password is the key are accepted too: the page answers 401 with `WWW-Authenticate: Basic`, the
browser asks for a user name (any) and password (the key) once, and then sends them with the
page's own API calls. Keys are compared in constant time.

It is a pure ASGI middleware rather than a FastAPI dependency so that it also guards unknown paths
and can never be forgotten on a new route; it does not wrap responses, so streaming and client
disconnects pass through untouched.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from codelm.serve.errors import APIError

OPEN_PATHS = frozenset({"/health"})


def presented_key(authorization: str) -> str | None:
    """The key in a Bearer or Basic (password) Authorization header, if any."""
    scheme, _, value = authorization.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None  # malformed credentials are simply not a key: the caller answers 401
        return decoded.partition(":")[2]
    return None


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        if not api_key:
            raise ValueError("APIKeyMiddleware needs a non-empty key")
        self.app, self._key = app, api_key.encode()

    def authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                key = presented_key(value.decode("latin-1"))
                return key is not None and hmac.compare_digest(key.encode(), self._key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        error = APIError(
            401, "missing or invalid API key: send 'Authorization: Bearer KEY'", "invalid_api_key"
        )
        metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
        if metrics is not None:
            metrics.error(401, error.code)
        challenge = 'Basic realm="codelm"' if scope["path"] == "/" else 'Bearer realm="codelm"'
        await error.response({"WWW-Authenticate": challenge})(scope, receive, send)
