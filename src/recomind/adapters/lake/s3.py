"""The lake on any S3 API (`s3://bucket/prefix`): the Parquet lake of `parquet_files` on S3.

Where and as whom come from the environment, as the AWS tools read them:
`RECOMIND_S3_ENDPOINT_URL` (an S3-compatible server such as MinIO or S3Proxy;
unset = AWS itself), `AWS_DEFAULT_REGION` (default us-east-1), and the
credentials through the AWS SDKs' default chain, which takes
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) first,
then a profile or an instance role. Requests to an S3-compatible server use path-style
addressing. The certificates to trust for HTTPS in place of the system's (a server with a
private CA) are set through `AWS_CA_BUNDLE`: botocore reads it, and `s3_filesystem` hands it to
pyarrow. botocore's other ways to set them (`REQUESTS_CA_BUNDLE`, a profile's `ca_bundle`)
reach only botocore.

Two clients share those settings. pyarrow's `S3FileSystem` lists and reads. Objects are written
by `S3Put`, one `PutObject` of bytes already encoded, through botocore: pyarrow's output stream
stages any object under its 10 MB part size in a buffer of that size, which it zero-fills at
the close. The lake's objects are a few hundred kB, and the allocator hands that memory back
between flushes, so each object cost about 2,300 page faults. For an object of 13,000 events,
that was 28-35 ms of system CPU in most drains timed, more than encoding it (ADR 0010).
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from recomind.adapters.lake.parquet_files import ParquetLake
from recomind.domain.errors import InvalidInput

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
MAX_ATTEMPTS = 3  # per request, as pyarrow's default retry strategy


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _endpoint() -> tuple[str, str] | None:
    """(scheme, host[:port]) of RECOMIND_S3_ENDPOINT_URL (https when it names none); None for
    AWS itself."""
    endpoint = os.environ.get("RECOMIND_S3_ENDPOINT_URL")
    if not endpoint:
        return None
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if not parts.netloc:
        raise InvalidInput(f"RECOMIND_S3_ENDPOINT_URL {endpoint!r} names no host")
    return parts.scheme, parts.netloc


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's client of the lake. botocore reads `AWS_CA_BUNDLE` itself; pyarrow is given
    it, so both clients trust the same certificates (else pyarrow would refuse a server that
    botocore writes to)."""
    options: dict[str, Any] = {
        "region": _region(),
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "allow_delayed_open": True,
    }
    ca_bundle = os.environ.get("AWS_CA_BUNDLE")
    if ca_bundle is not None:
        if not ca_bundle.strip():  # older botocore would turn certificate checks off for it
            raise InvalidInput("AWS_CA_BUNDLE is set but empty; name a PEM file or unset it")
        options["tls_ca_file_path"] = ca_bundle
    endpoint = _endpoint()
    if endpoint is not None:
        options["scheme"], options["endpoint_override"] = endpoint
    return pafs.S3FileSystem(**options)


class S3Put:
    """Writes a whole object (`bucket/key`) with one PutObject request.

    The botocore client is made at the first `connect` or write (loading it takes 0.2-0.3 s,
    which a process that never writes should not pay). botocore's own defaults choose the
    checksum sent with the body (CRC32 in recent versions; `AWS_REQUEST_CHECKSUM_CALCULATION=
    when_required` turns it off for a server that refuses it). A failed request is retried
    `MAX_ATTEMPTS` times in all, then raises, and the lake counts nothing of it as written."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            import botocore.session
            from botocore.config import Config

            endpoint = _endpoint()
            self._client = botocore.session.get_session().create_client(
                "s3",
                region_name=_region(),
                endpoint_url=None if endpoint is None else f"{endpoint[0]}://{endpoint[1]}",
                config=Config(
                    s3={"addressing_style": "path"} if endpoint is not None else None,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    read_timeout=READ_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                ),
            )

    def __call__(self, path: str, data: bytes) -> None:
        self.connect()
        bucket, key = path.split("/", 1)
        self._client.put_object(Bucket=bucket, Key=key, Body=data)


def open_s3_lake(url: str) -> ParquetLake:
    parts = urlsplit(url)
    if not parts.netloc:
        raise InvalidInput(f"lake URL {url!r} names no bucket; expected s3://bucket/prefix")
    return ParquetLake(s3_filesystem(), f"{parts.netloc}{parts.path}".rstrip("/"), put=S3Put())
