"""The lake on any S3 API (`s3://bucket/prefix`): the Parquet lake of `parquet_files` on S3.

Where and as whom come from the environment, as the AWS tools read them:
`RECOMIND_S3_ENDPOINT_URL` (an S3-compatible server such as MinIO or S3Proxy;
unset = AWS itself), `AWS_DEFAULT_REGION` (default us-east-1), and the
credentials through the AWS SDK's default chain, which takes
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) first,
then a profile or an instance role. Requests use path-style addressing.

Objects are opened lazily (`allow_delayed_open`): a lake object is small and written whole, so
it goes as one PUT when its stream closes, instead of a round trip to open it first. A failure
then shows at the close, which the lake waits for before it counts the object as written.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from recomind.adapters.lake.parquet_files import ParquetLake
from recomind.domain.errors import InvalidInput

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_SECONDS = 5.0


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("RECOMIND_S3_ENDPOINT_URL")
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    if not endpoint:
        return pafs.S3FileSystem(
            region=region, connect_timeout=CONNECT_TIMEOUT_SECONDS, allow_delayed_open=True
        )
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if not parts.netloc:
        raise InvalidInput(f"RECOMIND_S3_ENDPOINT_URL {endpoint!r} names no host")
    return pafs.S3FileSystem(
        region=region,
        endpoint_override=parts.netloc,
        scheme=parts.scheme,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        allow_delayed_open=True,
    )


def open_s3_lake(url: str) -> ParquetLake:
    parts = urlsplit(url)
    if not parts.netloc:
        raise InvalidInput(f"lake URL {url!r} names no bucket; expected s3://bucket/prefix")
    return ParquetLake(s3_filesystem(), f"{parts.netloc}{parts.path}".rstrip("/"))
