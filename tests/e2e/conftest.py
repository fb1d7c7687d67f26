"""End-to-end fixtures: `recomind demo` as a real subprocess on a free 127.0.0.1 port.

`demo_server` is a demo seeded in its own RECOMIND_HOME (500 videos v1..v500, 200
viewers u1..u200, trained), one per test module. A module that needs other
settings overrides the `demo_server_env` fixture, e.g.::

    @pytest.fixture(scope="module")
    def demo_server_env() -> dict[str, str]:
        return {"RECOMIND_REFRESH_POLICY": "immediate"}
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import RecoMindProcess


@pytest.fixture(scope="module")
def demo_server_env() -> dict[str, str]:
    """Extra environment for `demo_server`; override in a module to change settings."""
    return {}


@pytest.fixture(scope="module")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory, demo_server_env: dict[str, str]
) -> Iterator[RecoMindProcess]:
    home = tmp_path_factory.mktemp("recomind-demo")
    try:
        server = RecoMindProcess(home, command="demo", env=demo_server_env).start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        died = server.proc is not None and server.proc.poll() is not None
        server.stop()
        if died:  # it died under the tests: say why
            print(f"`recomind demo` exited early:\n{server.log_tail()}")
