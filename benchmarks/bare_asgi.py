"""The baseline of `serving_load.py`: a bare ASGI app (no framework, no middleware, no auth).

`GET /feed/{user_id}` does one Redis GET of `recommendations:{user_id}` (the key RecoMind's
cached feed reads) and returns the stored bytes as they are. Redis is `BARE_REDIS_URL`;
`BARE_REDIS_CLIENT=async` (default) uses redis.asyncio, `sync` the blocking client on the
event loop. Serve it with the same server RecoMind runs on, e.g.
`uvicorn benchmarks.bare_asgi:app` or `granian --interface asgi benchmarks.bare_asgi:app`.
"""

from __future__ import annotations

import os
from typing import Any

import redis
import redis.asyncio as aioredis

URL = os.environ.get("BARE_REDIS_URL", "redis://127.0.0.1:6379/0")
ASYNC = os.environ.get("BARE_REDIS_CLIENT", "async") != "sync"
_async_client: Any = None
_sync_client: Any = None
JSON = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _async_client, _sync_client
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/health":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    if not path.startswith("/feed/"):
        await _respond(send, 404, b"{}")
        return
    key = "recommendations:" + path[6:]
    if ASYNC:
        if _async_client is None:
            _async_client = aioredis.Redis.from_url(URL)
        body = await _async_client.get(key)
    else:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(URL)
        body = _sync_client.get(key)
    if body is None:
        await _respond(send, 404, b"{}")
    else:
        await _respond(send, 200, body)


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})
