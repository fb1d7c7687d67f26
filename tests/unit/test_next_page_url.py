"""The feed's Link header: `next_page_url` spells every URL as Starlette's
`URL(scope=scope).include_query_params(cursor=...)` does, on its fast path and off it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import URL

from recomind.entrypoints.api.feed_fast_path import next_page_url


def _scope(
    path: str, query: bytes, host: bytes | None, server: Any = ("127.0.0.1", 8000)
) -> dict[str, Any]:
    headers = [(b"accept", b"*/*")] + ([(b"host", host)] if host is not None else [])
    return {
        "type": "http",
        "scheme": "http",
        "path": path,
        "query_string": query,
        "headers": headers,
        "server": server,
    }


def _starlette(scope: dict[str, Any], cursor: str) -> str:
    return str(URL(scope=scope).include_query_params(cursor=cursor))


CASES = [
    ("/recommendations/u1", b"", b"api.example:8443", "QUJD"),
    ("/recommendations/u1", b"limit=7", b"api.example", "QUJD-_x"),
    ("/recommendations/u1", b"cursor=old&limit=7", b"localhost", "bmV3"),
    ("/recommendations/u1", b"limit=7&cursor=old&explain=true", None, "bmV3"),
    ("/trending", b"limit=5&cursor=MTA", b"[::1]:8000", "MjA"),
    ("/trending", b"limit=5&limit=6", b"h", "MjA"),
    ("/recommendations/a b", b"limit=5", b"h", "x"),  # a space: Starlette's way
    ("/recommendations/u1", b"explain", b"h", "x"),  # a bare name: Starlette's way
    ("/recommendations/u1", b"a=%20&&b=c+d", b"h", "x"),
    ("/recommendations/u1", b"limit=5", b"bad host", "x"),  # an invalid Host: the server's
    ("/recommendations/u1", b"", None, "x"),
    ("//recommendations/u1", b"", None, "x"),
    ("/recommendations/u1", b"", None, "x"),
]


def test_known_urls_match_starlette() -> None:
    for path, query, host, cursor in CASES:
        scope = _scope(path, query, host)
        assert next_page_url(scope, cursor) == _starlette(scope, cursor), (path, query, host)
    no_server = _scope("/trending", b"limit=2", None, server=None)
    expected = "/trending?limit=2&cursor=x"
    assert next_page_url(no_server, "x") == _starlette(no_server, "x") == expected


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(
    path=st.builds(lambda s: "/" + s, _text),
    query=st.lists(st.tuples(_text, _text), max_size=4),
    host=st.none() | st.sampled_from([b"h", b"h:80", b"h:x", b"[::1]", b"a.b:65535", b"x y"]),
    cursor=st.sampled_from(["QUJD", "a-_b", "", "a b", "%"]),
)
def test_any_url_matches_starlette(
    path: str, query: list[tuple[str, str]], host: bytes | None, cursor: str
) -> None:
    raw = "&".join(f"{k}={v}" if v else k for k, v in query).encode()
    scope = _scope(path, raw, host)
    assert next_page_url(scope, cursor) == _starlette(scope, cursor)
