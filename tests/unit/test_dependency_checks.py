"""Blocking dependency calls under a deadline: answers, errors, timeouts, no pile-up."""

from __future__ import annotations

import threading
import time

import pytest

from recomind.entrypoints.api.checks import CheckTimeout, DependencyChecks


@pytest.fixture
def checks() -> DependencyChecks:
    return DependencyChecks()


def test_answers_are_results_or_the_exceptions_raised(checks: DependencyChecks) -> None:
    def fails() -> int:
        raise ConnectionError("refused")

    answers = checks.run({"a": lambda: 1, "b": fails}, timeout=5)
    assert answers["a"] == 1
    assert isinstance(answers["b"], ConnectionError) and str(answers["b"]) == "refused"


def test_a_hung_call_times_out_without_holding_the_others(checks: DependencyChecks) -> None:
    release = threading.Event()
    started = time.monotonic()
    answers = checks.run({"hung": lambda: release.wait(30), "fine": lambda: "ok"}, timeout=0.2)
    assert time.monotonic() - started < 2
    assert isinstance(answers["hung"], CheckTimeout)
    assert answers["fine"] == "ok"
    release.set()


def test_a_call_still_in_flight_is_joined_not_started_again(checks: DependencyChecks) -> None:
    release = threading.Event()
    calls = 0

    def slow() -> str:
        nonlocal calls
        calls += 1
        release.wait(30)
        return "late"

    for _ in range(3):
        assert isinstance(checks.run({"slow": slow}, timeout=0.05)["slow"], CheckTimeout)
    assert calls == 1
    release.set()
    assert checks.submit("slow", slow).result(5) == "late"
    finished = calls
    assert checks.run({"slow": slow}, timeout=5)["slow"] == "late"
    assert calls == finished + 1  # once the call in flight is over, the next run calls again


def test_closed_checks_refuse_new_calls(checks: DependencyChecks) -> None:
    assert checks.run({"a": lambda: 1}, timeout=5) == {"a": 1}
    checks.close()
    with pytest.raises(RuntimeError):
        checks.submit("a", lambda: 1)
