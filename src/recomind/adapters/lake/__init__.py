"""Lake adapters. `open_lake(url)` picks one by URL scheme."""

from __future__ import annotations

from recomind.adapters.registry import SchemeRegistry
from recomind.domain.ports import Lake

LAKES: SchemeRegistry[Lake] = SchemeRegistry("lake")


@LAKES.register("file")
def _open_file(url: str) -> Lake:
    from recomind.adapters.lake.parquet_files import ParquetLake

    return ParquetLake.from_url(url)


@LAKES.register("s3")
def _open_s3(url: str) -> Lake:
    from recomind.adapters.lake.s3 import open_s3_lake

    return open_s3_lake(url)


def open_lake(url: str) -> Lake:
    return LAKES.open(url)
