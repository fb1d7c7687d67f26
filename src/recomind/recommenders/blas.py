"""How many threads BLAS may use inside a block of code.

`threadpoolctl.threadpool_limits` finds the loaded BLAS libraries anew on every call, by
walking every shared object the process has loaded: about 1 ms each time here, which a
viewer's list built on the fly paid once per call. The libraries are found once instead,
on first use (numpy and scipy are imported by then), and each block only sets the limit.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None
_lock = threading.Lock()


def blas_threads(limit: int | None) -> AbstractContextManager[Any]:
    """A block in which BLAS uses at most `limit` threads (None: its own default)."""
    global _controller
    if _controller is None:
        with _lock:
            if _controller is None:
                _controller = ThreadpoolController()
    return _controller.limit(limits=limit, user_api="blas")
