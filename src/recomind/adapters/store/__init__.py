"""Store adapters (source of truth). `open_store(url)` picks one by URL scheme."""

from __future__ import annotations

from recomind.adapters.registry import SchemeRegistry
from recomind.domain.ports import Store

STORES: SchemeRegistry[Store] = SchemeRegistry("store")


@STORES.register("sqlite", "postgresql+psycopg", "postgresql", "mysql+pymysql", "mysql")
def _open_sql(url: str) -> Store:
    from recomind.adapters.store.sql import SqlStore

    return SqlStore(url)


def open_store(url: str) -> Store:
    return STORES.open(url)
