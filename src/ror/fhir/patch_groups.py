"""Group commit of concurrent capacity PATCHes (ADR 0011).

A feeder's software sends its units' PATCHes over several connections at once. Written one transaction each, a
PATCH costs its own round trips (lock, rights, write pipeline, subscription probe, commit) and its own share of the
driver's per-statement work: ~7 ms of server CPU against ~2 ms for the same change as one entry of a Bundle. Here
the PATCHes of one caller that arrive while an earlier one of theirs is being written wait for it, then go to the
database together (`CapacityService.patch_many`: one transaction, one statement per table), each still answered
on its own — its status, ETag, warnings, rendered version or error, its audit row with its own address. A PATCH
that finds nothing running for its caller starts at once, alone, through `CapacityService.patch`: an unloaded
server answers exactly as before, and a group never waits for a timer. One bad PATCH of a group writes nothing
and never blocks the others (`patch_many`); two of the same Location apply in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from ror.access.tokens import Caller
from ror.capacity.service import PatchRequest, PatchResult
from ror.errors import RorError

Outcome = PatchResult | RorError
RunOne = Callable[[Caller, PatchRequest], PatchResult]
RunMany = Callable[[Caller, Sequence[PatchRequest]], list[Outcome]]

MAX_GROUP = 64  # PATCHes written in one transaction at most (a Bundle's 50 entries cost ~2 ms each)


@dataclass
class _Queue:
    caller: Caller  # held while queued: its id() keys the queue
    running: bool = False
    waiting: list[tuple[PatchRequest, asyncio.Future[Outcome]]] = field(default_factory=list)


class PatchGroups:
    """Per caller: at most one write running; what arrives meanwhile is written next, as one group. Lives in one
    event loop (one per server worker); the writes themselves run in the thread pool. A caller is told by
    identity: the token service hands the same `Caller` to every request of one token (hashing a feeder's
    Caller, whose establishments can number thousands, cost more than the rest of the scheduling)."""

    def __init__(self, run_one: RunOne, run_many: RunMany, max_group: int = MAX_GROUP) -> None:
        self.run_one = run_one
        self.run_many = run_many
        self.max_group = max_group
        self._queues: dict[int, _Queue] = {}
        self.groups_written = 0  # groups of two or more (tests, metrics)

    async def submit(self, caller: Caller, request: PatchRequest) -> PatchResult:
        """The outcome of `request`: its PatchResult, or its RorError raised."""
        queue = self._queues.get(id(caller))
        if queue is None:
            queue = self._queues[id(caller)] = _Queue(caller)
        if not queue.running:
            queue.running = True
            try:
                return await run_in_threadpool(self.run_one, caller, request)
            finally:
                self._next(queue)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        queue.waiting.append((request, future))
        outcome = await future
        if isinstance(outcome, RorError):
            raise outcome
        return outcome

    def _next(self, queue: _Queue) -> None:
        """The write of the queue's caller ended: start the next group, or let the queue go."""
        if not queue.waiting:
            queue.running = False
            del self._queues[id(queue.caller)]
            return
        waiting = [(r, f) for r, f in queue.waiting if not f.cancelled()]  # clients that gave up: not written
        group, queue.waiting = waiting[: self.max_group], waiting[self.max_group :]
        if not group:
            self._next(queue)
            return
        asyncio.get_running_loop().create_task(self._write(queue, group))

    async def _write(self, queue: _Queue, group: list[tuple[PatchRequest, asyncio.Future[Outcome]]]) -> None:
        caller, requests = queue.caller, [r for r, _ in group]
        try:
            if len(group) == 1:
                outcomes: list[Outcome] = [await _outcome_of(self.run_one, caller, requests[0])]
            else:
                outcomes = await run_in_threadpool(self.run_many, caller, requests)
                self.groups_written += 1
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if not future.done():  # its client may have gone (cancelled)
                    future.set_result(outcome)
        except BaseException as exc:  # an unexpected failure reaches every request of the group
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._next(queue)


async def _outcome_of(run_one: RunOne, caller: Caller, request: PatchRequest) -> Outcome:
    try:
        return await run_in_threadpool(run_one, caller, request)
    except RorError as exc:
        return exc
