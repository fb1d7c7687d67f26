"""Every knob RecoMind has, with a default and a RECOMIND_* environment name."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recomind.domain.model import ActionWeights


class RefreshPolicy(StrEnum):
    """When a viewer's cached list is rebuilt after they act."""

    TTL = "ttl"  # only when the cached list expires
    AFTER_N = "after_n"  # after N new actions of the viewer
    IMMEDIATE = "immediate"  # after every action


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMIND_", extra="ignore")

    home: Path = Field(Path(".recomind"), description="Folder for embedded data and models")
    store_url: str | None = Field(None, description="sqlite:///…, postgresql+psycopg://…")
    cache_url: str = Field("memory://", description="memory:// or redis://…")
    bus_url: str | None = Field(None, description="local:///path/events.db or kafka://host:port")
    lake_url: str | None = Field(None, description="file:///path/lake or s3://bucket/prefix")
    model_dir: Path | None = Field(None, description="Versioned model artifacts")

    bus_partitions: int = Field(6, ge=1, le=256)
    spool_path: Path | None = Field(
        None, description="Local spool for events while Kafka is unreachable (HOME/spool.db)"
    )
    embedded_worker: bool = Field(True, description="Run the consumers inside `serve`")
    consumer_batch: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Most records per poll; a poll takes what is fetched, so a backlog drains in"
        " larger batches (fewer rows per event to upsert, fewer round trips)",
    )
    lake_flush_rows: int = Field(5000, ge=1, description="Lake sinks write after this many")
    lake_flush_seconds: float = Field(5.0, ge=0, description="…or once the oldest is this old")

    refresh_policy: RefreshPolicy = RefreshPolicy.AFTER_N
    refresh_after_actions: int = Field(3, ge=1)
    recommendations_ttl_seconds: float = Field(600, gt=0)
    popular_ttl_seconds: float = Field(900, gt=0)
    profile_ttl_seconds: float = Field(1800, gt=0)

    weight_view: float = 1.0
    weight_like: float = 3.0
    weight_skip: float = -1.0
    popularity_half_life_hours: float = Field(48.0, gt=0)
    affinity_half_life_hours: float = Field(24.0 * 14, gt=0)

    top_n: int = Field(100, ge=1, le=1000, description="List length precomputed per viewer")
    train_interval_seconds: float = Field(3600, ge=0, description="0 turns the hourly job off")
    retrain_after_events: int = Field(
        0, ge=0, description="Also retrain after this many new events (0: off)"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.home / 'recomind.db').resolve()}"

    @property
    def resolved_bus_url(self) -> str:
        return self.bus_url or f"local:///{(self.home / 'events.db').resolve()}"

    @property
    def resolved_spool_path(self) -> Path:
        return (self.spool_path or self.home / "spool.db").resolve()

    @property
    def resolved_lake_url(self) -> str:
        return self.lake_url or f"file://{(self.home / 'lake').resolve()}"

    @property
    def resolved_model_dir(self) -> Path:
        return (self.model_dir or self.home / "models").resolve()

    @property
    def action_weights(self) -> ActionWeights:
        return ActionWeights(view=self.weight_view, like=self.weight_like, skip=self.weight_skip)
