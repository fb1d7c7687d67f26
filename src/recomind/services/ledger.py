"""Keeps the `recomind-profile` group's ledger of counted event ids (`counted_events`, ADR 0008)
from growing for ever: once an hour, on the worker that runs the group, the ids counted longer
ago than the retention are forgotten.

The ledger is what makes a second copy of an event count nothing. Copies come from a replayed
batch (within seconds), the spool or a producer sending twice (within minutes), or a client
retrying with its own id. Only a copy that comes after the retention is counted again, so the
retention (30 days by default) should stay above the topic's (Kafka keeps 7 days by default):
a group whose offsets are reset to the earliest still finds every id it reads.
"""

from __future__ import annotations

import logging
import threading

from recomind.domain.ports import Store

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0


class LedgerPruner:
    """Forgets ledger ids older than `retention_seconds` every `interval_seconds` (the first
    time as it starts), on a thread of its own, `chunk` ids per transaction so the group's
    inserts never wait long; a retention of 0 keeps every id."""

    def __init__(
        self,
        store: Store,
        retention_seconds: float,
        interval_seconds: float = 3600.0,
        chunk: int = 10_000,
    ) -> None:
        self.store = store
        self.retention_seconds = retention_seconds
        self.interval_seconds = interval_seconds
        self.chunk = chunk
        self.forgotten = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prune_once(self) -> int:
        """Forget the ids older than the retention now, chunk by chunk until none is left or
        the pruner is stopped (one retention after migration 0005, every id counted before
        it goes in one round); returns how many."""
        if self.retention_seconds <= 0:
            return 0
        forgotten = 0
        while not self._stop.is_set():
            deleted = self.store.forget_counted(self.retention_seconds, self.chunk)
            forgotten += deleted
            self.forgotten += deleted
            if deleted < self.chunk:
                break
        if forgotten:
            log.info(
                "ledger: forgot %d event id(s) counted over %.1f day(s) ago",
                forgotten,
                self.retention_seconds / DAY_SECONDS,
            )
        return forgotten

    def start(self) -> None:
        if self.retention_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ledger-pruner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune_once()
            except Exception:  # the store is away: the ids wait for the next round
                log.warning("ledger: forgetting old ids failed; trying again later", exc_info=True)
            self._stop.wait(self.interval_seconds)
