"""POST /video_action and /video_actions: record what viewers did (202 once durable).

`POST /video_action` is the hottest write path, so it skips FastAPI's per-request machinery
(routing through every route, dependency solving, body parsing, response-model validation,
thread hops): `ActionFastPath` answers it for `hot_paths.HotRoutes`, before FastAPI's
middleware and router run. The body is validated in one pass by
`ActionIn`'s compiled pydantic validator; errors become the same `RequestValidationError`
FastAPI would raise and go through the app's own exception handlers, so every 4xx is the
same problem+json. The event is handed to the ingest's publisher with the others of the same
turn of the event loop (`TurnBatches`), and the loop awaits its future: no worker thread is
held while Kafka acknowledges or the local log fsyncs. Only an
action on a video id not seen yet (the catalog must be asked) runs in a worker thread.

The FastAPI route below stays: it is what the OpenAPI document describes (the body, the
202 and the 422 from `ActionIn`), and it serves the request when the fast path is not
installed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope

from recomind.domain.errors import InvalidInput
from recomind.entrypoints.api.deps import Answer, App
from recomind.entrypoints.api.problems import MEDIA_TYPE
from recomind.entrypoints.api.schemas import ActionAccepted, ActionIn, ActionsAccepted, Problem
from recomind.services.ingest import ActionIngest, ActionRequest

router = APIRouter(tags=["actions"])
MAX_BATCH = 1000
PATH = "/video_action"

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActionIn"}}},
    }
}
_PROBLEM_DOC: dict[int | str, dict[str, Any]] = {
    422: {
        "model": Problem,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "description": "Bad input (nothing is recorded)",
    }
}


def _request(a: ActionIn) -> ActionRequest:
    return ActionRequest(a.user_id, a.video_id, a.action_type, a.timestamp, a.watch_ms, a.id)


def _json_body(content_type: str | None) -> bool:
    if content_type is None:
        return True  # FastAPI reads a body without a content type as JSON too
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def parse_action(body: bytes, content_type: str | None) -> ActionIn:
    """The body as an `ActionIn`, or the `RequestValidationError` FastAPI would raise."""
    if not _json_body(content_type):
        raise RequestValidationError(
            [{"type": "content_type", "loc": ("body",), "msg": "expected application/json"}]
        )
    try:
        return ActionIn.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def _accept(api: FastAPI, body: bytes, content_type: str | None) -> bytes:
    """Validate and record one action; the 202 body, or an exception for the handlers."""
    action = parse_action(body, content_type)
    ingest: ActionIngest = api.state.recomind.ingest
    submitted = ingest.on_loop(asyncio.get_running_loop()).submit([_request(action)])
    if submitted is None:  # the catalog has to be asked about this video: a blocking read
        (event_id,) = await run_in_threadpool(ingest.record, [_request(action)])
    else:
        (event_id,), durable = submitted
        await durable
    return orjson.dumps({"id": event_id, "status": "accepted"})


_ACCEPTED_HEADERS = [(b"content-type", b"application/json")]


async def _request_body(receive: Receive) -> bytes:
    """The whole body, as Starlette's `Request.body()` reads it (without the object)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class ActionFastPath:
    """Answers `POST /video_action` without FastAPI's router (see the module docstring);
    `hot_paths.HotRoutes` routes the requests here and sends the answers."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self._route: BaseRoute | None = None

    @staticmethod
    def match(method: str, path: str) -> str | None:
        return PATH if method == "POST" and path == PATH else None

    def route(self, template: str) -> BaseRoute:
        if self._route is None:  # this module's own route object (no prefix on this router)
            self._route = next(r for r in router.routes if getattr(r, "path", None) == template)
        return self._route

    async def answer(self, scope: Scope, receive: Receive, template: str) -> Answer:
        """The 202, or the exception the FastAPI route would raise (for the app's handlers)."""
        content_type = None
        for name, value in scope["headers"]:  # as Starlette's Headers.get: the first one
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break
        body = await _accept(self.api, await _request_body(receive), content_type)
        return 202, [*_ACCEPTED_HEADERS, (b"content-length", str(len(body)).encode())], body


@router.post(
    PATH,
    status_code=202,
    response_model=ActionAccepted,
    responses=_PROBLEM_DOC,
    openapi_extra=_BODY_DOC,
)
async def post_video_action(request: Request) -> Response:
    """Record one action. 202 means it is durably on the event log and will be applied once."""
    body = await _accept(request.app, await request.body(), request.headers.get("content-type"))
    return Response(body, status_code=202, media_type="application/json")


@router.post("/video_actions", status_code=202, response_model=ActionsAccepted)
def post_video_actions(actions: Annotated[list[ActionIn], Body()], app: App) -> ActionsAccepted:
    """Record up to 1,000 actions at once; one bad action rejects the whole batch."""
    if not actions:
        raise InvalidInput("the batch is empty")
    if len(actions) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} actions per batch (got {len(actions)})")
    return ActionsAccepted(ids=app.ingest.record([_request(a) for a in actions]))
