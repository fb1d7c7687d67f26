"""The model server's HTTP contract (SageMaker hosting): `GET /ping`, `POST /invocations`.

`/ping` is 200 while a model is loaded, 503 before. `/invocations` takes a viewer's
history and optional candidates as `application/json` and answers the ranked list
(score and reason per video) with the model version that ranked it. Bad input is a
4xx problem+json naming what is wrong: 400 (not JSON), 415 (not JSON content),
422 (a field breaks a rule). The ranking is `adapters.ranker.local.rank_with`, the
same the API runs in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from recomind import __version__
from recomind.adapters.ranker.http import MAX_LIST
from recomind.bootstrap import ModelServing
from recomind.domain.errors import InvalidInput
from recomind.domain.ports import RankRequest
from recomind.domain.validation import validate_id
from recomind.entrypoints.api import problems
from recomind.entrypoints.api.problems import problem
from recomind.services.ingest import ActionRequest, to_action

ANONYMOUS = "anonymous"  # the user id of a history sent without one


class HistoryEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str
    action_type: str = Field(description="view, like or skip")
    timestamp: str | float | None = Field(
        None, description="ISO 8601 or epoch seconds; default: now"
    )
    watch_ms: int | None = Field(None, ge=0)


class InvocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, description="Echoed back; the ranking uses the history")
    history: list[HistoryEventIn] = Field(default_factory=list, max_length=MAX_LIST)
    candidates: list[str] | None = Field(
        None, max_length=MAX_LIST, description="Rank only these (default: the whole catalog)"
    )
    exclude: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    k: int = Field(10, ge=1, le=1000)


class RankedOut(BaseModel):
    video_id: str
    score: float
    reason: str | None = None


class InvocationOut(BaseModel):
    model_version: str
    user_id: str | None
    items: list[RankedOut]


def to_rank_request(body: InvocationIn) -> RankRequest:
    """Validate ids, action types and timestamps as the API does; InvalidInput names the
    offending entry (`history[3].action_type`)."""
    user_id = validate_id(body.user_id, "user_id") if body.user_id is not None else None
    history = []
    for i, event in enumerate(body.history):
        try:
            history.append(
                to_action(
                    ActionRequest(
                        user_id=user_id or ANONYMOUS,
                        video_id=event.video_id,
                        action_type=event.action_type,
                        timestamp=event.timestamp,
                        watch_ms=event.watch_ms,
                    )
                )
            )
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"history[{i}].{exc.field}") from None
    candidates = (
        None
        if body.candidates is None
        else tuple(validate_id(v, f"candidates[{i}]") for i, v in enumerate(body.candidates))
    )
    exclude = frozenset(validate_id(v, f"exclude[{i}]") for i, v in enumerate(body.exclude))
    return RankRequest(tuple(history), body.k, user_id, candidates, exclude)


def create_model_server(serving: ModelServing) -> FastAPI:
    watcher = serving.watcher

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher.start()
        # SIGHUP: look at the registry's CURRENT now (after `recomind rollback`, say).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, watcher.reload_soon)
        try:
            yield
        finally:
            watcher.stop()
            serving.ranker.close()

    app = FastAPI(
        title="RecoMind model server",
        version=__version__,
        description="SageMaker-compatible hosting of the RecoMind ranker.",
        lifespan=lifespan,
    )
    problems.install(app)

    @app.get("/ping", response_model=None)
    def ping() -> Any:
        """200 while a model is loaded (SageMaker's health check)."""
        loaded = watcher.get()
        if loaded is None:
            return problem(503, f"no model loaded: {watcher.problem or 'not checked yet'}")
        return {"status": "ok", "model_version": loaded.version}

    @app.post("/invocations", response_model=InvocationOut)
    async def invocations(request: Request) -> Any:
        """Rank videos for one viewer's history (see docs/api.md)."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return problem(415, f"Content-Type must be application/json (got {media or 'none'!r})")
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return problem(400, f"the body is not valid JSON: {exc}")
        try:
            body = InvocationIn.model_validate(payload)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            return problem(422, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
        ranking = await run_in_threadpool(serving.ranker.rank, to_rank_request(body))
        if ranking is None:
            return problem(503, f"no model loaded: {watcher.problem or 'not checked yet'}")
        return JSONResponse(
            {
                "model_version": ranking.model_version,
                "user_id": body.user_id,
                "items": [
                    {"video_id": i.video_id, "score": i.score, "reason": i.reason}
                    for i in ranking.items
                ],
            }
        )

    return app
