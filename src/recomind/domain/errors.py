"""Errors the domain raises; entrypoints turn them into 4xx answers or CLI messages."""

from __future__ import annotations

from collections.abc import Sequence


class RecoMindError(Exception):
    """Base of every error RecoMind raises on purpose."""


class InvalidInput(RecoMindError):
    """Input that breaks a rule; `field` names what was wrong, `row` where (imports)."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None) -> None:
        self.message = message
        self.field = field
        self.row = row
        where = []
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class NotFound(RecoMindError):
    """A user, video or model that does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class UnknownVideo(InvalidInput):
    """An action names a video the catalog does not have."""

    def __init__(self, video_id: str, row: int | None = None) -> None:
        super().__init__(f"unknown video {video_id!r}", field="video_id", row=row)
        self.video_id = video_id


class Conflict(RecoMindError):
    """A write that clashes with what is stored (for example a duplicate id)."""


class BusUnavailable(RecoMindError):
    """The event bus did not acknowledge a publish in time (broker down, timeout, …).

    `undelivered` holds the positions, in publish order, of the messages that were not
    acknowledged; every other message of that publish is recorded. None means "any of them".
    Retrying those messages later can succeed, which is what the spool does.
    """

    def __init__(self, message: str, undelivered: Sequence[int] | None = None) -> None:
        super().__init__(message)
        self.undelivered = None if undelivered is None else sorted(undelivered)
