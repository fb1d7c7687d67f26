"""Run RecoMind for tests: in a thread (uvicorn.Server) or as a `recomind` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from recomind.bootstrap import RecoMind
from recomind.entrypoints.api.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(
    url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer /health within {timeout}s")


@contextmanager
def serve_in_thread(recomind: RecoMind, run_workers: bool = True) -> Iterator[str]:
    """The real ASGI server on 127.0.0.1 in this process; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(recomind, run_workers=run_workers),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, 30)
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


class RecoMindProcess:
    """`recomind <command>` as a child process with its own RECOMIND_HOME and port."""

    START_ATTEMPTS = 3  # another process may take the free port between our probe and the bind

    def __init__(
        self,
        home: Path,
        command: str = "serve",
        env: dict[str, str] | None = None,
        inherit_settings: bool = False,
    ) -> None:
        self.home = home
        self.command = command
        self.port = free_port()
        # Inherited RECOMIND_* (say a store URL set for the real-server suites) must not point
        # a server at shared services unless the test asks for it.
        base = {
            k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("RECOMIND_")
        }
        self.env = {
            **base,
            "RECOMIND_HOME": str(home),
            "RECOMIND_TRAIN_INTERVAL_SECONDS": "0",
            "RECOMIND_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / f"{self.command}-{self.port}.log"

    def start(self, timeout: float = 90.0) -> RecoMindProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.START_ATTEMPTS):
            if attempt:
                self.port = free_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "recomind.entrypoints.cli",
                        self.command,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                )
            try:
                wait_until_up(self.url, timeout, self.proc)
                return self
            except (RuntimeError, TimeoutError):
                self.stop()
                if "address already in use" not in self.log_tail().lower():
                    break
        raise RuntimeError(f"`recomind {self.command}` did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what survives is what was durable."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down cleanly), then SIGKILL if still there after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log written)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
