"""One dedicated thread per process for the store database, awaited from asyncio code.

A PosStore connection is not thread-safe, and a COMMIT with ``synchronous=FULL`` waits for fsync. Running every
store call on the same single worker thread keeps the event loop free during that wait and serializes the
process's database access without locks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseThread:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function(*args, **kwargs)`` on the database thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    def close(self) -> None:
        """Wait for the queued calls to finish and stop the thread."""
        self._executor.shutdown(wait=True)
