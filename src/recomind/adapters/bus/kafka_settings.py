"""What a `kafka://host:port[,host2:port][?option=value&…]` URL says.

Options in the query: `replication` (replication factor of the topics the bus creates,
default 1), `publish_timeout` (seconds `publish` waits for every acknowledgement, default 5)
and `ping_timeout` (seconds `ping` and `lag` wait, default 2). An option with a dot in its
name (`security.protocol`, `sasl.mechanism`, …) goes to the librdkafka clients as it is.
The partition count of new topics comes from the `bus_partitions` setting, not the URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from recomind.domain.errors import InvalidInput


@dataclass(frozen=True)
class KafkaSettings:
    """What a `kafka://` URL says."""

    bootstrap_servers: str
    partitions: int = 6
    replication: int = 1
    publish_timeout: float = 5.0
    ping_timeout: float = 2.0
    client_config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, partitions: int = 6) -> KafkaSettings:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise InvalidInput(f"expected kafka://host:port[,host:port], got {url!r}")
        known: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if "." in name:
                extra[name] = value
            elif name == "replication":
                known[name] = _number(int, name, value, minimum=1)
            elif name in ("publish_timeout", "ping_timeout"):
                known[name] = _number(float, name, value, minimum=0.1)
            else:
                raise InvalidInput(
                    f"unknown option {name!r} in {url!r}; known: replication, "
                    "publish_timeout, ping_timeout, or a librdkafka setting with a dot"
                )
        if partitions < 1:
            raise InvalidInput(f"partitions must be at least 1, got {partitions}")
        return cls(parts.netloc, partitions, client_config=extra, **known)


def _number(kind: type[int] | type[float], name: str, value: str, minimum: float) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {value!r}", field=name) from None
    if number < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}, got {value!r}", field=name)
    return number
