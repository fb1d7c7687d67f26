"""`recomind modelserver` for tests: real subprocesses on free 127.0.0.1 ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from recomind.domain.model import VideoAction
from recomind.services.model_registry import ModelRegistry
from tests.support.servers import free_port


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without RECOMIND_* (the real-server suites set some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECOMIND_", "SM_"))}
    return {
        **env,
        "RECOMIND_HOME": str(home),
        "RECOMIND_TRAIN_INTERVAL_SECONDS": "0",
        "RECOMIND_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def recomind(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`recomind ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "recomind.entrypoints.cli", *args],
        env=clean_env(home, **env),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home,
    )


def train(home: Path, model_dir: Path) -> str:
    done = recomind(home, "modelserver", "train", "--model-dir", str(model_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return ModelRegistry(model_dir).current() or ""


class ModelServer:
    """`recomind modelserver serve` as a child process on a free 127.0.0.1 port."""

    def __init__(self, home: Path, model_dir: Path, poll_seconds: float = 0.3) -> None:
        self.home = home
        self.model_dir = model_dir
        self.poll_seconds = poll_seconds
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"modelserver-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, via_script: bool = False) -> ModelServer:
        for attempt in range(3):  # another process may take the free port before we bind it
            if attempt:
                self.port = free_port()
            if self._start(via_script):
                return self
        raise RuntimeError(f"model server did not start:\n{self.log.read_text()}")

    def _start(self, via_script: bool) -> bool:
        # `recomind-modelserver serve` is what a SageMaker container runs (`<image> serve`).
        command = (
            [str(Path(sys.executable).parent / "recomind-modelserver")]
            if via_script
            else [sys.executable, "-m", "recomind.entrypoints.cli", "modelserver"]
        )
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = clean_env(self.home, RECOMIND_MODELSERVER_POLL_SECONDS=str(self.poll_seconds))
        self.log = self.home / f"modelserver-{self.port}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, *args, "--model-dir", str(self.model_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log.read_text():
                    return False
                raise RuntimeError(f"model server exited:\n{self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/ping", timeout=1.0)
                return True
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"model server did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/invocations", json=body, timeout=10)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def wait_version(self, version: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = httpx.get(f"{self.url}/ping", timeout=2).json().get("model_version")
            if seen == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"model server still on {seen}, expected {version}")


def history_body(actions: list[VideoAction]) -> list[dict[str, Any]]:
    return [
        {
            "video_id": a.video_id,
            "action_type": a.action_type.value,
            "timestamp": a.timestamp.isoformat(),
            "watch_ms": a.watch_ms,
        }
        for a in actions
    ]
