"""Where `recomind modelserver` looks: RECOMIND_* settings first, then SageMaker's variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from recomind.config import Settings


@pytest.fixture(autouse=True)
def no_inherited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "RECOMIND_MODEL_DIR",
        "RECOMIND_LAKE_URL",
        "RECOMIND_MODELSERVER_PORT",
        "RECOMIND_MODELSERVER_MODEL_DIR",
        "RECOMIND_MODELSERVER_TRAINING_INPUT",
        "RECOMIND_MODELSERVER_CATALOG_INPUT",
        "SAGEMAKER_BIND_TO_PORT",
        "SM_MODEL_DIR",
        "SM_CHANNEL_TRAINING",
        "SM_CHANNEL_CATALOG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECOMIND_HOME", str(tmp_path / "home"))


def test_defaults_without_sagemaker(tmp_path: Path) -> None:
    if Path("/opt/ml").exists():
        pytest.skip("this machine has SageMaker's /opt/ml folders")
    s = Settings()
    assert s.modelserver_port == 8080
    assert s.resolved_modelserver_model_dir == (tmp_path / "home" / "models").resolve()
    assert s.resolved_modelserver_training_input == s.resolved_lake_url
    assert s.resolved_modelserver_catalog_input is None
    assert s.ranker_url is None


def test_sagemaker_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training")
    monkeypatch.setenv("SM_CHANNEL_CATALOG", "/opt/ml/input/data/catalog")
    s = Settings()
    assert s.modelserver_port == 9000
    assert s.resolved_modelserver_model_dir == Path("/opt/ml/model")
    assert s.resolved_modelserver_training_input == "/opt/ml/input/data/training"
    assert s.resolved_modelserver_catalog_input == Path("/opt/ml/input/data/catalog")


def test_recomind_settings_win_over_sagemaker_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    monkeypatch.setenv("RECOMIND_MODELSERVER_PORT", "9100")
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("RECOMIND_MODELSERVER_MODEL_DIR", "/srv/models")
    s = Settings()
    assert s.modelserver_port == 9100
    assert s.resolved_modelserver_model_dir == Path("/srv/models")


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "70000")
    with pytest.raises(ValueError, match="MODELSERVER_PORT"):
        Settings()
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT")
    monkeypatch.setenv("RECOMIND_RANKER_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValueError, match="ranker_timeout_seconds"):
        Settings()


def test_the_ranker_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOMIND_RANKER_URL", "modelserver:8080")
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings()
    monkeypatch.setenv("RECOMIND_RANKER_URL", "http://modelserver:8080")
    assert Settings().ranker_url == "http://modelserver:8080"
    monkeypatch.setenv("RECOMIND_RANKER_URL", "")
    assert Settings().ranker_url is None


def test_training_from_the_lake_keeps_the_first_copy_of_each_viewers_event() -> None:
    """A copy the lake holds twice counts once; one id sent for two viewers is an action of
    each, as in the store, whose key is (user_id, id) (ADR 0011)."""
    from datetime import UTC, datetime

    from recomind.domain.model import ActionType, VideoAction
    from recomind.entrypoints.modelserver.training import distinct_events

    at = datetime(2026, 12, 4, tzinfo=UTC)
    mine = VideoAction("00000000-0000-4000-8000-000000000001", "u1", "v1", ActionType.LIKE, at)
    theirs = VideoAction(mine.id, "u2", "v2", ActionType.VIEW, at)
    later_copy = VideoAction(mine.id, "u1", "v9", ActionType.SKIP, at)
    assert distinct_events([mine, theirs, later_copy, theirs]) == [mine, theirs]
