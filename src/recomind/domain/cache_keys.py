"""The one place cache keys are spelt (the seed's key formats)."""

from __future__ import annotations

POPULAR_VIDEOS = "popular_videos"


def recommendations(user_id: str) -> str:
    return f"recommendations:{user_id}"


def user_profile(user_id: str) -> str:
    return f"user_profile:{user_id}"


def actions_since_refresh(user_id: str) -> str:
    """Counter of a viewer's actions since their list was last rebuilt (refresh policy)."""
    return f"actions_since_refresh:{user_id}"


def impressions(user_id: str) -> str:
    """What a viewer was served lately, and their open feed sessions (paging, demotion)."""
    return f"impressions:{user_id}"
