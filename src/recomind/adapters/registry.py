"""Open an adapter from a URL by its scheme (gorse's storage.Open by prefix)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from recomind.domain.errors import InvalidInput

T = TypeVar("T")


class SchemeRegistry(Generic[T]):
    """Maps URL schemes to the functions that open a backend of one port."""

    def __init__(self, port: str) -> None:
        self.port = port
        self._openers: dict[str, Callable[..., T]] = {}

    def register(self, *schemes: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(opener: Callable[..., T]) -> Callable[..., T]:
            for scheme in schemes:
                self._openers[scheme] = opener
            return opener

        return add

    def open(self, url: str, **options: Any) -> T:
        scheme = urlsplit(url).scheme
        opener = self._openers.get(scheme)
        if opener is None:
            known = ", ".join(sorted(f"{s}://" for s in self._openers))
            raise InvalidInput(f"no {self.port} backend for {url!r}; known: {known}")
        return opener(url, **options)
