"""Optional API-key auth: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

With no keys configured (`RECOMIND_API_KEYS` empty, the embedded default) every request
passes. With keys, a request for anything but the public paths below needs one of them;
otherwise it gets a 401 problem+json with `WWW-Authenticate: Bearer`, and the route never
runs, so a bad key changes nothing.

Public: `/health` and `/ready` (probes of load balancers and orchestrators; they say only
whether the process and its dependencies answer), the API contract (`/docs`, `/redoc`,
`/openapi.json`), the web page's static files under `/ui` and the `/` redirect to it. The
page's own calls to the API need a key like any client's (the page asks for one on a 401).
`/metrics` needs a key (Prometheus sends one with `authorization: {credentials: <key>}` in its
scrape config).

Pure ASGI, one pass over the request headers, and constant-time comparisons against every
configured key (a timing difference must not say how much of a key was right).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset(
    {"/", "/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
PUBLIC_PREFIXES = ("/ui/",)
_AUTHORIZATION = b"authorization"
_API_KEY = b"x-api-key"
_BEARER = b"bearer "


def parse_keys(raw: str) -> tuple[bytes, ...]:
    """Comma-separated keys; blanks around them are ignored, empty entries dropped."""
    return tuple(k.strip().encode() for k in raw.split(",") if k.strip())


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path == "/ui" or path.startswith(PUBLIC_PREFIXES)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: a Bearer token, else X-API-Key; None if neither."""
    for name, value in headers:
        if name == _AUTHORIZATION:
            if value[:7].lower() == _BEARER:
                return value[7:].strip()
        elif name == _API_KEY:
            return value.strip()
    return None


def _problem(detail: str) -> bytes:
    return orjson.dumps(
        {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail}
    )


_MISSING = _problem("this API needs a key: send Authorization: Bearer <key> or X-API-Key")
_WRONG = _problem("the API key is not valid")
_HEADERS = [
    (b"content-type", b"application/problem+json"),
    (b"www-authenticate", b'Bearer realm="recomind"'),
]


class KeyCheck:
    """Constant-time comparisons of a request's key against every configured key."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self.keys = keys

    def _valid(self, key: bytes) -> bool:
        ok = False
        for known in self.keys:  # no early exit: every key is compared
            ok |= hmac.compare_digest(key, known)
        return ok

    def refusal(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[list[Any], bytes] | None:
        """None when the request carries a valid key; else the 401's headers and body."""
        key = presented_key(headers)
        if key is not None and self._valid(key):
            return None
        body = _MISSING if key is None else _WRONG
        return [*_HEADERS, (b"content-length", str(len(body)).encode())], body


class RequireApiKey:
    """Refuses requests without a configured key (see the module docstring)."""

    def __init__(self, app: ASGIApp, keys: tuple[bytes, ...]) -> None:
        self.app = app
        self.check = KeyCheck(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        refused = self.check.refusal(scope["headers"])
        if refused is None:
            await self.app(scope, receive, send)
            return
        headers, body = refused
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, raw_keys: str) -> None:
    """Require a key when any are configured, and describe both headers in the OpenAPI."""
    keys = parse_keys(raw_keys)
    if not keys:
        return
    app.add_middleware(RequireApiKey, keys=keys)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema.get("paths", {}).items():
            if is_public(path):
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                operation.setdefault("responses", {})["401"] = {
                    "description": "No API key, or one that is not valid (problem+json)"
                }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
