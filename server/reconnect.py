"""A stream that outlives its connection: the reference client's reconnect, as the C# core does it.

The rules are pure code (which ends reconnect, how long to wait, which frames went unanswered);
`ReconnectingClient` is a thin asyncio loop on top of `RecognitionClient`:

- a connection that ends with any close but 1002 (`unsupported_version`), or with no close frame (a
  lost network, a killed replica), is made again after a jittered exponential backoff (0.5 s ×2 up to
  10 s, ±20 %: the same numbers as the Unity client, docs/protocol.md 5.2), with a new hello and the
  same stream settings; a refused handshake (HTTP 503 while a replica drains, 4013 at hello) counts as
  one more failure; 401, 403 and 1002 stop it, since the same request would be refused again;
- a close that says this client was at fault (1007, 1009, 1008 `hello_required`) does not restart the
  backoff, so a client bug costs one attempt per 10 s, not a tight loop;
- nothing is lost silently: every frame id `send_frame` returned is answered by the server (a `Result`,
  whatever its status, or an `ErrorMessage` naming it) or reported as `NotAnswered`, once: frames in
  flight when the connection ended, and frames sent while there was none (they are not queued: a
  headset wants its newest frame answered, not a backlog);
- the caller reads one ordered event stream (`recv`): results and server messages as
  `RecognitionClient.recv` gives them, plus `NotAnswered`, `Disconnected` and `Reconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from vr_recognition.server.client import RecognitionClient, ServerRefused
from vr_recognition.server.protocol import (
    CloseCode,
    ErrorCode,
    ErrorMessage,
    ModelChanged,
    ProtocolError,
    Result,
    ServerHello,
    StreamSettings,
)

# --- the rules (no I/O) -------------------------------------------------------------------------


@dataclass
class Backoff:
    """Reconnect delays: exponential from `initial_s` up to `max_s`, each ± `jitter` at random, so that
    many headsets that lost the same replica do not all come back in the same millisecond."""

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        """Seconds to wait before attempt number `failures` + 1 (failures = 1 after the first)."""
        if failures < 1:
            return 0.0
        base = min(self.initial_s * self.factor ** min(failures - 1, 30), self.max_s)
        return max(0.0, base * (1 + self.rng.uniform(-self.jitter, self.jitter)))


# Refusals that the same request would get again: the client stops instead of retrying.
FINAL_REFUSALS = frozenset(
    {ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN_ORIGIN, ErrorCode.UNSUPPORTED_VERSION}
)


def reconnects(close_code: int | None) -> bool:
    """Whether a connection that ended with this close code is made again; None = no close frame."""
    return close_code != CloseCode.PROTOCOL_ERROR


def is_client_fault(close_code: int | None, reason: str | None) -> bool:
    """A close that says this client sent something wrong (docs/protocol.md 5.2, "fix the client")."""
    return close_code in (CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG) or (
        close_code == CloseCode.POLICY_VIOLATION and reason == ErrorCode.HELLO_REQUIRED
    )


def answered_frame(message: object) -> int | None:
    """The frame id a server message answers, if it answers one."""
    if isinstance(message, (Result, ErrorMessage)):
        return message.frame_id
    return None


# --- events the caller reads besides the server's messages -----------------------------------


@dataclass(frozen=True, slots=True)
class NotAnswered:
    """A frame the server will not answer: `connection_lost` (in flight when the connection ended) or
    `not_connected` (sent while there was no connection; never put on the wire)."""

    frame_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended, or an attempt to make one failed."""

    close_code: int | None  # None: no close frame (network lost, refused handshake, timeout)
    close_reason: str | None  # the server's error code, when it gave one
    error: str  # readable summary
    was_connected: bool  # False: this was a failed attempt
    will_reconnect: bool
    delay_s: float  # the wait before the next attempt (0 when not reconnecting)


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A new connection is up and its hello answered; `attempt` counts connections (2 = first reconnect)."""

    server_hello: ServerHello
    attempt: int


Event = Result | ErrorMessage | ModelChanged | NotAnswered | Disconnected | Reconnected


# --- the asyncio loop ---------------------------------------------------------------------------


class ReconnectingClient:
    """One logical stream to vr-serve that reconnects. Use `async with ReconnectingClient(url) as c:`;
    `await c.connected()` waits for a connection, `send_frame` sends, `recv` reads events in order."""

    def __init__(
        self,
        url: str,
        *,
        settings: StreamSettings | None = None,
        backoff: Backoff | None = None,
        retry_first: bool = True,
        connect: Callable[..., Any] = RecognitionClient.connect,
        **connect_options: Any,
    ) -> None:
        """`retry_first=False`: a first connection that fails stops the client with its error (for
        tools that should report a wrong URL rather than wait); later ones are always retried."""
        self.url = url
        self.settings = settings or StreamSettings()
        self.backoff = backoff or Backoff()
        self.retry_first = retry_first
        self._connect = connect
        self._connect_options = connect_options
        self._client: RecognitionClient | None = None
        self._frame_ids = itertools.count()
        self._in_flight: set[int] = set()
        self._events: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0  # connections made; reconnects = connections - 1
        self.last_answer_at: float | None = None
        self.longest_gap_s = 0.0  # longest time between two answers (ok or not)

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    @property
    def client(self) -> RecognitionClient | None:
        """The connection in use, or None between connections."""
        return self._client

    async def __aenter__(self) -> ReconnectingClient:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="vr-reconnecting-client")

    async def connected(self, timeout: float | None = None) -> RecognitionClient:
        """Wait until a connection is up (raises what stopped the client, if it stopped)."""
        waiter = asyncio.ensure_future(self._up.wait())
        assert self._task is not None, "start() first"
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self._client is not None:
            return self._client
        if self._task in done:
            self._task.result()  # raises the final refusal
            raise ConnectionError("the client has stopped")
        raise TimeoutError("no connection yet")

    async def send_frame(self, payload: bytes | memoryview, **frame: Any) -> int:
        """Send one frame (keywords as `RecognitionClient.send_frame`) and return its id. Without a
        connection the frame is not sent and a `NotAnswered(id, "not_connected")` event follows."""
        frame_id = frame.pop("frame_id", None)
        if frame_id is None:
            frame_id = next(self._frame_ids)
        client = self._client
        if client is None:
            self._events.put_nowait(NotAnswered(frame_id, "not_connected"))
            return frame_id
        self._in_flight.add(frame_id)
        # a send into a dying connection: the loop reports every in-flight frame when it sees the end
        with contextlib.suppress(ConnectionClosed, OSError):
            await client.send_frame(payload, frame_id=frame_id, **frame)
        return frame_id

    async def recv(self, timeout: float | None = None) -> Event:
        """The next event. Raises the final refusal (or ConnectionError) once the client has stopped."""
        item = await asyncio.wait_for(self._events.get(), timeout)
        if isinstance(item, BaseException):
            self._events.put_nowait(item)
            raise item
        return item

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # its end was reported by recv()
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- internals --

    def _answered(self, message: object) -> None:
        frame_id = answered_frame(message)
        if frame_id is None or frame_id not in self._in_flight:
            return
        self._in_flight.discard(frame_id)
        now = time.monotonic()
        if self.last_answer_at is not None:
            self.longest_gap_s = max(self.longest_gap_s, now - self.last_answer_at)
        self.last_answer_at = now

    def _lost_in_flight(self) -> None:
        for frame_id in sorted(self._in_flight):
            self._events.put_nowait(NotAnswered(frame_id, "connection_lost"))
        self._in_flight.clear()

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._closing:
                try:
                    client = await self._connect(self.url, settings=self.settings, **self._connect_options)
                except ServerRefused as refused:
                    final = refused.code in FINAL_REFUSALS or self._first_and_final()
                    failures += 1
                    await self._end(None, refused.code, str(refused), False, not final, failures)
                    if final:
                        raise
                    continue
                except (OSError, TimeoutError, ConnectionClosed, ProtocolError) as exc:
                    failures += 1
                    final = self._first_and_final()
                    await self._end(None, None, f"{type(exc).__name__}: {exc}", False, not final, failures)
                    if final:
                        raise
                    continue
                self.connections += 1
                self._client = client
                self._up.set()
                if self.connections > 1:
                    self._events.put_nowait(Reconnected(client.server_hello, self.connections))
                code, reason, summary = await self._pump(client)
                self._client = None
                self._up.clear()
                await client.close()
                self._lost_in_flight()
                # a clean session restarts the backoff; a client fault keeps it growing
                failures = failures + 1 if is_client_fault(code, reason) else 1
                will = reconnects(code) and not self._closing
                await self._end(code, reason, summary, True, will, failures)
                if not will:
                    raise ConnectionError(f"connection ended: {summary}")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._events.put_nowait(exc)
            raise

    def _first_and_final(self) -> bool:
        return self.connections == 0 and not self.retry_first

    async def _end(
        self, code: int | None, reason: str | None, summary: str, was: bool, will: bool, failures: int
    ) -> None:
        """Report the end, then wait out the backoff when another attempt follows."""
        delay = self.backoff.delay(failures) if will else 0.0
        self._events.put_nowait(Disconnected(code, reason, summary, was, will, delay))
        await asyncio.sleep(delay)

    async def _pump(self, client: RecognitionClient) -> tuple[int | None, str | None, str]:
        """Forward the connection's messages until it ends; returns its close code, reason, summary."""
        while True:
            try:
                message = await client.recv()
            except ConnectionClosed as closed:
                frame = closed.rcvd
                code = None if frame is None else frame.code
                reason = None if frame is None else (frame.reason or None)
                return (
                    code,
                    reason,
                    f"closed {code if code is not None else '(no close frame)'} {reason or ''}".strip(),
                )
            except (OSError, ProtocolError) as exc:  # the network, or a server this client cannot read
                return None, None, f"{type(exc).__name__}: {exc}"
            self._answered(message)
            self._events.put_nowait(message)
