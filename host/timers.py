"""Strategy timers on the host clock (``ctx.set_timer``), and the event a due one becomes."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import HostContext


@dataclass(frozen=True, slots=True)
class TimerDue:
    ctx: HostContext
    name: str
    time_ns: int



class Timers:
    """Strategy timers on the host clock. Setting a name again replaces the earlier one."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, HostContext, str]] = []
        self.current: dict[tuple[int, str], int] = {}  # (id(ctx), name) -> seq of the live one
        self.seq = 0

    def set(self, ctx: HostContext, name: str, time_ns: int) -> None:
        self.seq += 1
        self.current[(id(ctx), name)] = self.seq
        heapq.heappush(self.heap, (time_ns, self.seq, ctx, name))

    def next_time(self) -> int | None:
        while self.heap and self.current.get((id(self.heap[0][2]), self.heap[0][3])) != self.heap[0][1]:
            heapq.heappop(self.heap)  # replaced by a later set()
        return self.heap[0][0] if self.heap else None

    def pop_due(self, now_ns: int) -> list[TimerDue]:
        due = []
        while (t := self.next_time()) is not None and t <= now_ns:
            _, _, ctx, name = heapq.heappop(self.heap)
            del self.current[(id(ctx), name)]
            due.append(TimerDue(ctx, name, t))
        return due
