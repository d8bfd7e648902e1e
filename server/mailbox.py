"""A one-slot "latest frame" mailbox per stream: freshness over completeness.

VR wants the newest frame answered, not every frame. When a frame arrives while an older one of the
same stream is still waiting, the older one is handed back to be answered `dropped_stale`, so a
stream never holds more than one waiting frame and a slow server never builds a backlog.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, item: T) -> T | None:
        """Store `item`; return the unprocessed item it replaced (now stale), if any."""
        if self._closed:
            raise RuntimeError("mailbox is closed")
        replaced, self._item = self._item, item
        self._ready.set()
        return replaced

    async def take(self) -> T | None:
        """Wait for an item and remove it; None once the mailbox is closed and empty."""
        return self.take_nowait() if await self.ready() else None

    async def ready(self) -> bool:
        """Wait until an item waits (True) or the mailbox is closed and empty (False); takes nothing,
        so the taker can choose the moment it takes, and newer items keep replacing older ones."""
        while self._item is None:
            if self._closed:
                return False
            self._ready.clear()
            await self._ready.wait()
        return True

    def peek(self) -> T | None:
        """The waiting item, left in place; None when there is none."""
        return self._item

    def take_nowait(self) -> T | None:
        """The waiting item, removed; None when there is none."""
        item, self._item = self._item, None
        return item

    def close(self) -> None:
        """No more puts. The taker still gets a waiting item (it is answered, not lost), then None."""
        self._closed = True
        self._ready.set()

    @property
    def pending(self) -> bool:
        return self._item is not None
