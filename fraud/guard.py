"""The fraud checks as the charging service calls them: engine + counter store + responder.

``check`` is on the authorization's path: the lists first (a refusal there costs no round
trip), then one counter-store step that reads every counter the rules need and counts the
attempt, then the verdict. The same in two halves, for a caller that folds the counter step
into its balance reservation (one script, one round trip): ``screen`` checks the lists and
gives the keys and arguments to fold (when the counter store can be folded), ``conclude``
turns the folded step's reply into the verdict; ``complete`` runs the counter step on its own
instead (when the reservation will not run after all).

``record_end`` (and ``record_interim``) count what a call used and may trip spend and
short-call rules, whose actions cut calls that turn bad mid-way; ``submit_end`` runs it as a
tracked background task so the answer need not wait for it. The engine is swapped whole on
reload (``swap``); a check in flight keeps the engine it began with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from fraud.counters import (
    CounterOp,
    CounterPlan,
    CounterStore,
    CounterStoreUnavailable,
    CounterValues,
    FoldingCounterStore,
    OpKind,
)
from fraud.engine import LIVE, FraudEngine
from fraud.metrics import CHECKS, COUNTER_ERRORS, DROPPED, MetricRegistry
from fraud.model import CallAttempt, CallUsage, Hit, Verdict
from fraud.response import Responder
from fraud.rule import Action, Refusal

log = structlog.get_logger(component="fraud")

COUNTER_STORE_RULE = "counter_store"
"""The pseudo-rule of a refusal because the counters could not be read (``refuse`` policy)."""


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """An attempt after the lists, before its counter step."""

    engine: FraudEngine
    """The engine the check began with (it ends with the same one)."""
    attempt: CallAttempt
    screened: Verdict
    plan: CounterPlan | None
    """The counter step (None: the lists refused, or no counter rule is enabled)."""
    folded: tuple[list[str], list[Any]] | None = None
    """The counter step's keys and script arguments, to fold into another script."""


class FraudGuard:
    """Runs the fraud checks of one worker."""

    def __init__(
        self,
        engine: FraudEngine,
        store: CounterStore,
        responder: Responder | None = None,
        metrics: MetricRegistry | None = None,
        *,
        counter_failure: Literal["static_only", "refuse"] = "static_only",
        max_background: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.store = store
        self.responder = responder
        self.metrics = metrics or (responder.metrics if responder else MetricRegistry())
        self.counter_failure = counter_failure
        self.max_background = max_background
        self.clock = clock
        self._tasks: set[asyncio.Task[object]] = set()
        # Worked out once: a runtime protocol check costs more than the rest of ``screen``.
        self._fold = store.fold if isinstance(store, FoldingCounterStore) else None

    @property
    def engine(self) -> FraudEngine:
        """The engine in force."""
        return self._engine

    def swap(self, engine: FraudEngine) -> FraudEngine:
        """Put a new engine in force; return the previous one."""
        previous, self._engine = self._engine, engine
        return previous

    # -- attempts ------------------------------------------------------------------------

    async def check(self, attempt: CallAttempt) -> Verdict:
        """The verdict for a new call; its actions are queued, not awaited."""
        return await self.complete(self.screen(attempt))

    @property
    def folds(self) -> bool:
        """Whether the counter store's step can be folded into another script."""
        return self._fold is not None

    def screen(self, attempt: CallAttempt, *, fold: bool = False) -> PendingCheck:
        """The lists' verdict and the counter step still to run; with ``fold``, also that
        step's keys and arguments when the store can be folded and there is a step to run."""
        engine = self._engine
        verdict = engine.screen(attempt)
        plan = None if verdict.refused else engine.attempt_plan(attempt, verdict.country)
        folded = None
        if fold and plan is not None and plan.ops and self._fold is not None:
            folded = self._fold(plan)
        return PendingCheck(engine, attempt, verdict, plan, folded)

    async def complete(self, pending: PendingCheck) -> Verdict:
        """Run the counter step in the counter store and give the verdict."""
        verdict = pending.screened
        plan = pending.plan
        if plan is not None:
            try:
                counters = await self.store.apply(plan)
            except CounterStoreUnavailable as exc:
                verdict = self._degraded(verdict, str(exc), "attempt")
            else:
                verdict = self._judge(pending, counters)
        self._done(verdict, pending.attempt.peer)
        return verdict

    def conclude(self, pending: PendingCheck, reply: Sequence[int]) -> Verdict:
        """The verdict from the reply of the counter step folded into another script."""
        assert pending.plan is not None
        verdict = self._judge(pending, CounterValues.from_reply(pending.plan, reply))
        self._done(verdict, pending.attempt.peer)
        return verdict

    def unavailable(self, pending: PendingCheck, error: str) -> Verdict:
        """The verdict when the script the counter step rode in failed (the store is down):
        the lists' alone, or a refusal under the ``refuse`` policy, as ``complete`` gives."""
        verdict = self._degraded(pending.screened, error, "attempt")
        self._done(verdict, pending.attempt.peer)
        return verdict

    def _judge(self, pending: PendingCheck, counters: CounterValues) -> Verdict:
        attempt = pending.attempt
        verdict = pending.engine.check(attempt, counters, pending.screened)
        if verdict.refused and counters.live_registered:
            # A refusal the store's gate did not see: the call is not live.
            self._background(self._release(attempt.account_id, attempt))
        return verdict

    def _degraded(self, verdict: Verdict, error: str, operation: str) -> Verdict:
        self.metrics.inc(COUNTER_ERRORS, operation=operation)
        log.error(
            "fraud counters unavailable",
            error=error,
            policy=self.counter_failure,
            account=verdict.account_id,
            session_id=verdict.session_id,
        )
        hits = verdict.hits
        if self.counter_failure == "refuse" and operation == "attempt":
            hits = (
                *hits,
                Hit(
                    COUNTER_STORE_RULE,
                    (Action.REFUSE,),
                    Refusal.FRAUD,
                    "the fraud counters cannot be read",
                    {"error": error[:200]},
                ),
            )
        return dataclasses.replace(verdict, hits=hits, degraded=True)

    async def _release(self, account_id: str, attempt: CallAttempt) -> None:
        engine = self._engine
        op = CounterOp(OpKind.LIVE_REMOVE, LIVE, engine.live_ttl_s, 0, attempt.session_id)
        plan = CounterPlan(account_id, int(self.clock() * 1000), (op,), engine.buckets)
        try:
            await self.store.apply(plan)
        except CounterStoreUnavailable as exc:
            self.metrics.inc(COUNTER_ERRORS, operation="release")
            log.warning(
                "fraud: refused call left in live calls",
                error=str(exc),
                account=account_id,
                session_id=attempt.session_id,
            )

    async def preview(self, attempt: CallAttempt) -> Verdict:
        """The verdict a call would get now, changing no counter and taking no action."""
        engine = self._engine
        plan = engine.attempt_plan(attempt)
        if plan is None:
            return engine.check(attempt, None)
        return engine.check(attempt, await self.store.peek(plan))

    # -- usage ---------------------------------------------------------------------------

    async def record_usage(self, usage: CallUsage) -> Verdict | None:
        """Count what a call used; return the verdict (None when nothing was counted)."""
        engine = self._engine
        plan = engine.usage_plan(usage)
        if plan is None:
            return None
        try:
            counters = await self.store.apply(plan)
        except CounterStoreUnavailable as exc:
            self.metrics.inc(COUNTER_ERRORS, operation="usage")
            log.error(
                "fraud usage not counted",
                error=str(exc),
                account=usage.account_id,
                session_id=usage.session_id,
                spend_micros=usage.spend_micros,
                seconds=usage.seconds,
            )
            return None
        verdict = engine.check_usage(usage, counters)
        self._done(verdict, "")
        return verdict

    async def record_end(self, usage: CallUsage) -> Verdict | None:
        """Count a finished call (``usage.final`` is forced)."""
        if not usage.final:
            usage = dataclasses.replace(usage, final=True)
        return await self.record_usage(usage)

    async def record_interim(self, usage: CallUsage) -> Verdict | None:
        """Count what a live call used since its previous report."""
        if usage.final:
            usage = dataclasses.replace(usage, final=False)
        return await self.record_usage(usage)

    def submit_end(self, usage: CallUsage) -> bool:
        """``record_end`` as a background task; False when too many are in flight."""
        return self._background(self.record_end(usage))

    # -- plumbing ------------------------------------------------------------------------

    def _done(self, verdict: Verdict, peer: str) -> None:
        self.metrics.inc(CHECKS, stage=verdict.stage.value, outcome=verdict.outcome)
        if verdict.hits and self.responder is not None:
            self.responder.submit(verdict, peer)

    def _background(self, coro: object) -> bool:
        assert asyncio.iscoroutine(coro)
        if len(self._tasks) >= self.max_background:
            coro.close()
            self.metrics.inc(DROPPED, queue="background")
            log.error("fraud background work dropped: too many in flight")
            return False
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def settle(self) -> None:
        """Wait for the background work in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def maintain(self) -> None:
        """Periodic housekeeping of the counter store."""
        try:
            await self.store.maintain(self.clock())
        except Exception:
            log.exception("fraud counter store maintenance failed")

    async def close(self) -> None:
        """Finish background work and queued decisions, then close the store."""
        with contextlib.suppress(Exception):
            await self.settle()
        if self.responder is not None:
            await self.responder.close()
        await self.store.close()


__all__ = ["COUNTER_STORE_RULE", "FraudGuard", "PendingCheck"]
