"""POST /video_action and /video_actions: record what viewers did (202 once durable)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from recomind.domain.errors import InvalidInput
from recomind.entrypoints.api.deps import App
from recomind.entrypoints.api.schemas import ActionAccepted, ActionIn, ActionsAccepted
from recomind.services.ingest import ActionRequest

router = APIRouter(tags=["actions"])
MAX_BATCH = 1000


def _request(a: ActionIn) -> ActionRequest:
    return ActionRequest(a.user_id, a.video_id, a.action_type, a.timestamp, a.watch_ms, a.id)


@router.post("/video_action", status_code=202, response_model=ActionAccepted)
def post_video_action(action: ActionIn, app: App) -> ActionAccepted:
    """Record one action. 202 means it is durably on the event log and will be applied once."""
    (event_id,) = app.ingest.record([_request(action)])
    return ActionAccepted(id=event_id)


@router.post("/video_actions", status_code=202, response_model=ActionsAccepted)
def post_video_actions(actions: Annotated[list[ActionIn], Body()], app: App) -> ActionsAccepted:
    """Record up to 1,000 actions at once; one bad action rejects the whole batch."""
    if not actions:
        raise InvalidInput("the batch is empty")
    if len(actions) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} actions per batch (got {len(actions)})")
    return ActionsAccepted(ids=app.ingest.record([_request(a) for a in actions]))
