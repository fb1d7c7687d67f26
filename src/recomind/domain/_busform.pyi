# The native decoder of the bus form (_busform.c, ADR 0012).

def decode(blob: bytes, n: int, /) -> tuple[bytes | int, ...] | None:
    """The n events of blob as Arrow column buffers (see _busform.c), or None."""
