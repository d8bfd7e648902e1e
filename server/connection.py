"""The asyncio pieces of one connection: its single sender and the stream that ties them together."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from vr_recognition.server import protocol as p
from vr_recognition.server.config import CLOSE_TIMEOUT_S
from vr_recognition.server.mailbox import LatestSlot
from vr_recognition.server.metrics import ServerMetrics
from vr_recognition.server.session import Close, PendingFrame, Session

log = logging.getLogger("vr_serve")

# Messages queued for one connection's sender beyond the one it is sending. Replies are small (a
# result is ~300 bytes); what bounds a stream's memory is that a full queue makes the reader wait,
# and a waiting reader leaves the client's next frames in TCP buffers (docs/security.md).
OUTBOX_SIZE = 2


class CodedConnection(ServerConnection):
    """websockets' server connection, except that the closes the library makes by itself carry an
    error code as their reason, like every other close of ours (docs/protocol.md 5.2): 1009
    `message_too_large`, 1007 `bad_json`, 1011 `internal_error`; and a missed keepalive pong, which
    the library closes with 1011, is what it means here, a client not reading: 1008 `slow_consumer`."""

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        fail = protocol.fail

        def fail_with_code(code: int, reason: str = "") -> None:
            if code == p.CloseCode.INTERNAL_ERROR and "keepalive" in reason:
                code, reason = p.CloseCode.POLICY_VIOLATION, p.ErrorCode.SLOW_CONSUMER.value
            elif code == p.CloseCode.INTERNAL_ERROR:
                reason = p.ErrorCode.INTERNAL_ERROR.value
            else:
                reason = p.LIBRARY_CLOSE_REASONS.get(code, reason)
            fail(code, reason)

        protocol.fail = fail_with_code


class Sender:
    """The one writer of a connection: sends queued texts in order, then closes when asked."""

    def __init__(self, ws: ServerConnection, timeout_s: float, metrics: ServerMetrics) -> None:
        self.ws, self.timeout_s, self.metrics = ws, timeout_s, metrics
        self._queue: asyncio.Queue[str | Close | None] = asyncio.Queue(OUTBOX_SIZE)
        self._task = asyncio.create_task(self._run(), name="stream-sender")
        self.gave_up = False  # the client stopped taking replies: the stream is over

    @property
    def done(self) -> bool:
        return self.gave_up or self._task.done()

    async def send(self, text: str) -> None:
        """Queue a message; waits while the queue is full. Dropped once the connection is gone."""
        if not self._task.done():
            await self._queue.put(text)

    async def finish(self, close: Close | None = None) -> None:
        """Send what is queued, then close with `close` (or just stop), and wait until that is done."""
        if not self._task.done():
            await self._queue.put(close)
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, Close):
                    await self._close(item)
                    return
                try:
                    # asyncio.timeout, not wait_for: no extra task per reply on this hot path
                    async with asyncio.timeout(self.timeout_s):
                        await self.ws.send(item)
                except TimeoutError:
                    self.gave_up = True
                    log.warning("closing %s: it read no results for %.1f s", peer(self.ws), self.timeout_s)
                    self.metrics.failure.labels(p.ErrorCode.SLOW_CONSUMER.value).inc()
                    await self._close(Close(p.CloseCode.POLICY_VIOLATION, p.ErrorCode.SLOW_CONSUMER.value))
                    return
        except ConnectionClosed:
            return
        finally:
            while not self._queue.empty():  # wakes anyone waiting to queue; their messages go nowhere
                self._queue.get_nowait()

    async def _close(self, close: Close) -> None:
        """Close with a code; a client that reads nothing cannot even take the close frame (close()
        would wait for buffer space until the keepalive gives up), so after CLOSE_TIMEOUT_S the
        connection is dropped."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(close.code, close.reason)
        except TimeoutError:
            self.ws.transport.abort()


class Stream:
    """One connection's session and the asyncio pieces around it."""

    def __init__(self, ws: ServerConnection, session: Session, sender: Sender) -> None:
        self.ws, self.session, self.sender = ws, session, sender
        self.slot: LatestSlot[PendingFrame] = LatestSlot()
        self.worker: asyncio.Task | None = None
        self.busy = False  # the worker is decoding/inferring a frame
        self.shown = time.perf_counter()  # when the frame behind the newest ok answer arrived (or opening)

    def gain(self) -> float:
        """How much newer (s) the frame answered next would be than what the stream's user sees: who
        gains most goes first when streams wait for the model (DeadlineBatcher.turn)."""
        newest = self.slot.peek()
        return -math.inf if newest is None else newest.arrived - self.shown

    @property
    def idle(self) -> bool:
        return not self.busy and not self.slot.pending


def peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"
