"""BLAS thread limits: set inside the block, restored after, libraries found once."""

from __future__ import annotations

import numpy as np  # noqa: F401  (loads the BLAS library the limits act on)
from threadpoolctl import threadpool_info

from recomind.recommenders import blas


def blas_thread_counts() -> list[int]:
    return [int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]


def test_the_limit_holds_inside_the_block_and_is_undone_after() -> None:
    before = blas_thread_counts()
    assert before, "numpy loads a BLAS library"
    with blas.blas_threads(1):
        assert blas_thread_counts() == [1] * len(before)
    assert blas_thread_counts() == before
    first = blas._controller
    with blas.blas_threads(None):
        assert blas_thread_counts() == before
    assert blas._controller is first is not None  # found once, not per block
