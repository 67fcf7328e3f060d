"""Deadlines on reading request bodies: a body that has not fully arrived in time is given up.

One periodic check per event loop cancels the reads that passed their deadline, the way
asyncio.timeout() cancels, but without a timer per request: arming and disarming
asyncio.timeout costs about 6 us a request, registering here a dictionary entry.
"""

from __future__ import annotations

import asyncio
from typing import Any

Task = asyncio.Task[Any]


class BodyDeadlines:
    """Cancels the tasks still reading a body `timeout` seconds after they started; the
    reader asks `timed_out(task)` when it catches the CancelledError."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # Checked this often, so a read ends at most this long after its deadline.
        self.interval = min(1.0, timeout / 4)
        self.reads: dict[asyncio.AbstractEventLoop, dict[Task, float]] = {}
        self.cancelled: set[Task] = set()

    def watch(self, task: Task) -> None:
        """Start the clock on `task`'s body read."""
        loop = task.get_loop()
        reads = self.reads.get(loop)
        if reads is None:  # no check is scheduled on this loop: schedule one
            reads = self.reads[loop] = {}
            loop.call_later(self.interval, self.check, loop)
        reads[task] = loop.time() + self.timeout

    def unwatch(self, task: Task) -> None:
        """The read ended (complete, refused or failed)."""
        reads = self.reads.get(task.get_loop())
        if reads is not None:
            reads.pop(task, None)

    def check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the reads past their deadline; run again while any read is watched."""
        reads = self.reads[loop]
        now = loop.time()
        for task, deadline in list(reads.items()):
            if deadline <= now:
                del reads[task]
                if task.cancel():
                    self.cancelled.add(task)
        if reads:
            loop.call_later(self.interval, self.check, loop)
        else:
            del self.reads[loop]

    def timed_out(self, task: Task) -> bool:
        """True when `task` was cancelled for its deadline and by nothing else (the
        cancellation is then withdrawn); False means: let the CancelledError go on."""
        if task not in self.cancelled:
            return False
        self.cancelled.discard(task)
        return task.uncancel() == 0
