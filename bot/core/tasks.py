"""Background tasks that live as long as a block (an app's ``cleanup_ctx``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

STOP_TIMEOUT_S = 5.0  # how long a cancelled task may take to finish


@asynccontextmanager
async def running(work: Coroutine[Any, Any, Any], name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``work`` as a task while the block runs; cancel it and wait (a while) after."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        try:
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            pass
