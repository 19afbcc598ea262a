"""Watch the bot's files and push the page's data to every open page (server-sent events).

One task polls the files' sizes and mtimes (every 250 ms by default: a ``stat`` each, nothing
opened); only when one changed is the page's data built again (in a thread, off the event loop)
and sent to every subscriber as one ``data:`` event. Each open page holds a
:meth:`Watcher.stream`: the current data at once, then each new version, and a comment line
now and then so that a proxy or the browser keeps the connection open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

log = logging.getLogger("bothost.serve")

HEARTBEAT_S = 15.0


def encode(data: dict) -> str:
    """One JSON line, safe to put inside an HTML ``<script>`` too (no ``</script>`` in it)."""
    return json.dumps(data, separators=(",", ":"), default=str).replace("<", "\\u003c")


def sse_event(payload: str, event_id: int) -> bytes:
    return f"id: {event_id}\nevent: data\ndata: {payload}\n\n".encode()


class Watcher:
    def __init__(self, signature: Callable[[], tuple], build: Callable[[], dict], interval_s: float = 0.25):
        self.signature = signature
        self.build = build
        self.interval_s = interval_s
        self.version = 0
        self.payload: str | None = None
        self._seen: tuple | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    async def refresh(self) -> bool:
        """Build the data again if a file changed since the last build; True if it did."""
        async with self._lock:
            sig = await asyncio.to_thread(self.signature)
            if sig == self._seen and self.payload is not None:
                return False
            try:
                data = await asyncio.to_thread(self.build)
            except Exception:  # a file caught mid-write, say: the next poll tries again
                log.exception("building the page's data failed")
                return False
            self._seen = sig
            payload = encode(data)
            if payload == self.payload:
                return False
            self.payload = payload
            self.version += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            return True

    async def current(self) -> str:
        if self.payload is None:
            await self.refresh()
        return self.payload or "{}"

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("watching the bot's files failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def stream(self) -> AsyncIterator[bytes]:
        """The events one page receives: now, then every new version; a heartbeat in between."""
        yield b"retry: 1000\n\n"
        payload = await self.current()
        sent = self.version
        yield sse_event(payload, sent)
        while True:
            waiter = self._changed
            if self.version == sent:
                try:
                    await asyncio.wait_for(waiter.wait(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
            sent = self.version
            yield sse_event(self.payload or "{}", sent)
