"""`recomind serve --server/--workers`: each server really serves, with keys, and bad
combinations are clear errors before anything listens."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recomind.entrypoints.cli import app
from tests.support.servers import RecoMindProcess


def test_several_processes_with_embedded_consumers_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOMIND_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "--workers", "2", "--port", "1"])
    assert result.exit_code == 2
    assert "RECOMIND_EMBEDDED_WORKER=false" in result.output.replace("\n", " ")
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2


SERVERS = [
    "uvicorn",
    pytest.param(
        "granian",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("granian") is None, reason="granian extra not installed"
        ),
    ),
]


@pytest.mark.parametrize("server", SERVERS)
def test_each_server_serves_the_api_with_keys_and_stops_on_sigterm(
    tmp_path: Path, server: str
) -> None:
    proc = RecoMindProcess(
        tmp_path,
        env={
            "RECOMIND_SERVER": server,
            "RECOMIND_API_KEYS": "k-1",
            "RECOMIND_EMBEDDED_WORKER": "false",
            "RECOMIND_WORKERS": "2",
        },
    ).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            assert http.get("/trending").status_code == 401
            r = http.get("/trending", headers={"X-API-Key": "k-1"})
            assert r.status_code == 200 and isinstance(r.json(), list)
            assert r.headers["server"].lower().startswith(server)
    finally:
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) is not None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{proc.url}/health", timeout=2)
