"""Keeps the registry's current model loaded for a model server, off the request path.

A background thread checks the registry's CURRENT every `poll_seconds` (and at
once when `reload_soon` is called, which the server does on SIGHUP) and loads
the version it names if that is not the one in use, so `recomind train`,
`recomind modelserver train` and `recomind rollback` reach a running server
without a restart. When a version cannot be loaded, the model in use stays.
"""

from __future__ import annotations

import logging
import threading

from recomind.services.model_registry import LoadedModel, ModelRegistry

log = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(self, registry: ModelRegistry, poll_seconds: float = 2.0) -> None:
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.problem: str | None = None  # why there is no (new) model, if there is a reason
        self._loaded: LoadedModel | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel | None:
        return self._loaded

    def check(self) -> LoadedModel | None:
        """Load the version CURRENT names now, unless it is already in use."""
        with self._lock:
            try:
                version = self.registry.current()
                if version is None:
                    self.problem = f"{self.registry.root} has no CURRENT model version"
                elif self._loaded is None or self._loaded.version != version:
                    self._loaded = self.registry.load(version)
                    self.problem = None
                    log.info("model server: serving model %s", version)
                else:
                    self.problem = None
            except Exception as exc:  # a half-copied or foreign folder: keep what we have
                self.problem = f"cannot load the current model: {exc}"
                log.exception("model server: loading the current model failed")
            return self._loaded

    def reload_soon(self) -> None:
        """Check CURRENT now instead of at the next tick (safe to call from a signal handler)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if not self._stop.is_set():
                self.check()
