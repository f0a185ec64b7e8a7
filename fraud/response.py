"""What happens after a verdict: metrics, log lines, actions, audit entries, alerts.

``Responder.submit`` runs on the call's path and never waits: it counts each hit, logs it,
decides which actions are repeats of one taken moments ago (``cooldown_s``), and queues the
decisions. A worker task then carries out the actions through the daemon's ``FraudActions``
(block the destination, suspend the account, cut its live calls, alert) and writes one audit
entry per decision — rule, values, actions, and who can undo each action and how. The queue is
bounded; when it is full the decisions are dropped, counted and logged as errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from fraud.listing import display_prefix
from fraud.metrics import ACTIONS, AUDIT_ERRORS, DECISIONS, DROPPED, MetricRegistry
from fraud.model import Decision, Hit, Verdict
from fraud.rule import Action

log = structlog.get_logger(component="fraud")


class FraudActions(Protocol):
    """What the daemon does for the fraud controls (refusing is the verdict itself)."""

    async def block_destination(self, account_id: str, prefix: str, reason: str) -> None:
        """Persist ``prefix`` in the account's blocked list (``ocsd fraud unblock`` undoes)."""

    async def suspend_account(self, account_id: str, reason: str) -> None:
        """Set the account's status to suspended, in the records and the balance store."""

    async def terminate_sessions(self, account_id: str, reason: str) -> int:
        """Cut the account's live calls (Diameter ASR, RADIUS Disconnect-Request); return
        how many were asked to end."""

    async def alert(self, event: Mapping[str, Any]) -> None:
        """Send an alert (the webhook sender's ``submit``); must not wait for delivery."""


class DecisionLog(Protocol):
    """Where audit entries of decisions go (the records database's audit log)."""

    async def write(self, decisions: Sequence[Decision]) -> None:
        """Store the entries; raise on failure."""


def undo_steps(hit: Hit, account_id: str, peer: str = "") -> tuple[str, ...]:
    """Who can undo each action of a hit, and how."""
    steps: list[str] = []
    for action in hit.actions:
        if action is Action.REFUSE:
            steps.append(
                f"refuse: only this call; to let such calls through, operator: "
                f"{_allow_hint(hit, account_id, peer)}"
            )
        elif action is Action.BLOCK_DESTINATION:
            steps.append(
                f"block_destination: operator: ocsd fraud unblock --account {account_id} "
                f"{display_prefix(hit.target)}"
            )
        elif action is Action.SUSPEND_ACCOUNT:
            steps.append(
                f"suspend_account: operator: ocsd account set {account_id} --status active"
            )
        elif action is Action.TERMINATE_SESSIONS:
            steps.append("terminate_sessions: cannot be undone (the calls were cut)")
    return tuple(steps)


def _allow_hint(hit: Hit, account_id: str, peer: str) -> str:
    values = hit.values
    rule = hit.rule_id
    if rule == "deny_destination":
        prefix = str(values.get("prefix", display_prefix(hit.target)))
        if values.get("list") == "blocked":
            return f"ocsd fraud unblock --account {account_id} {prefix}"
        if values.get("scope") == "global":
            # At equal length the account's own entry beats the global one.
            return f"ocsd fraud allow --account {account_id} {prefix}"
        return f"ocsd fraud deny --account {account_id} --remove {prefix}"
    if rule == "dnc":
        where = "--global" if values.get("list") == "global" else f"--account {account_id}"
        return f"ocsd fraud dnc {where} --remove {values.get('number', '')}"
    if rule == "high_risk_destination":
        return f"ocsd fraud optin --account {account_id} {values.get('range', '')}"
    if rule == "account_ip":
        return f"ocsd fraud ip --account {account_id} <CIDR>"
    if rule == "peer_ip":
        return f"ocsd fraud ip --peer {values.get('peer', peer)} <CIDR>"
    if rule == "counter_store":
        return (
            "bring the counter store (stores.hot_url) back, or set "
            "fraud.actions.counter_failure: static_only"
        )
    return f"ocsd fraud rule set {rule} --account {account_id} KEY=VALUE"


def alert_event(decision: Decision, node: str = "") -> dict[str, Any]:
    """The JSON document an alert carries."""
    return {
        "event": "fraud.rule_tripped",
        "at": datetime.fromtimestamp(decision.at, UTC).isoformat(),
        "node": node,
        "account": decision.account_id,
        "rule": decision.rule_id,
        "stage": decision.stage.value,
        "actions": [a.value for a in decision.actions],
        "suppressed": [a.value for a in decision.suppressed],
        "message": decision.message,
        "values": dict(decision.values),
        "session_id": decision.session_id,
        "called": decision.called,
        "target": decision.target,
        "undo": list(decision.undo),
    }


class Responder:
    """Turns verdicts into counted, logged, audited and acted-upon decisions."""

    def __init__(
        self,
        actions: FraudActions,
        decisions: DecisionLog | None = None,
        metrics: MetricRegistry | None = None,
        *,
        cooldown_s: float = 300,
        queue_size: int = 10_000,
        node: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.actions = actions
        self.decisions = decisions
        self.metrics = metrics or MetricRegistry()
        self.cooldown_s = cooldown_s
        self.node = node
        self.clock = clock
        self._queue: asyncio.Queue[Decision] = asyncio.Queue(queue_size)
        self._recent: dict[tuple[str, ...], float] = {}
        self._worker: asyncio.Task[None] | None = None

    # -- on the call's path --------------------------------------------------------------

    def _cooled(self, key: tuple[str, ...], now: float) -> bool:
        """Whether ``key`` was acted upon within the cooldown; remembers it if not."""
        last = self._recent.get(key)
        if last is not None and now - last < self.cooldown_s:
            return True
        self._recent[key] = now
        if len(self._recent) > 100_000:
            horizon = now - self.cooldown_s
            self._recent = {k: t for k, t in self._recent.items() if t >= horizon}
        return False

    def _cooldown_key(self, action: Action, hit: Hit, account_id: str) -> tuple[str, ...]:
        if action is Action.BLOCK_DESTINATION:
            return (account_id, action.value, hit.target)
        if action is Action.ALERT:
            return (account_id, action.value, hit.rule_id)
        return (account_id, action.value)

    def submit(self, verdict: Verdict, peer: str = "") -> tuple[Decision, ...]:
        """Count, log and queue the decisions of a verdict; never waits."""
        if not verdict.hits:
            return ()
        now = self.clock()
        out: list[Decision] = []
        account = verdict.account_id
        for hit in verdict.hits:
            suppressed: list[Action] = []
            for action in hit.actions:
                self.metrics.inc(DECISIONS, rule=hit.rule_id, action=action.value)
                if action is Action.REFUSE:
                    continue
                if self._cooled(self._cooldown_key(action, hit, account), now):
                    suppressed.append(action)
                    self.metrics.inc(ACTIONS, action=action.value, result="suppressed")
            decision = Decision(
                at=verdict.at,
                account_id=account,
                rule_id=hit.rule_id,
                actions=hit.actions,
                message=hit.message,
                values=hit.values,
                stage=verdict.stage,
                session_id=verdict.session_id,
                called=verdict.called,
                target=hit.target,
                undo=undo_steps(hit, account, peer),
                suppressed=tuple(suppressed),
            )
            log.warning(
                "fraud rule tripped",
                rule=hit.rule_id,
                account=account,
                session_id=verdict.session_id,
                stage=verdict.stage.value,
                actions=[a.value for a in hit.actions],
                suppressed=[a.value for a in suppressed],
                reason=hit.message,
                values=dict(hit.values),
            )
            try:
                self._queue.put_nowait(decision)
            except asyncio.QueueFull:
                self.metrics.inc(DROPPED, queue="decisions")
                log.error(
                    "fraud decision dropped: queue full",
                    rule=hit.rule_id,
                    account=account,
                    actions=[a.value for a in hit.actions],
                )
            out.append(decision)
        return tuple(out)

    # -- off the call's path -------------------------------------------------------------

    async def _act(self, decision: Decision) -> Decision:
        failed: list[Action] = []
        reason = f"fraud rule {decision.rule_id}: {decision.message}"
        account = decision.account_id
        for action in decision.actions:
            if action is Action.REFUSE or action in decision.suppressed:
                continue
            try:
                if action is Action.BLOCK_DESTINATION:
                    await self.actions.block_destination(account, decision.target, reason)
                elif action is Action.SUSPEND_ACCOUNT:
                    await self.actions.suspend_account(account, reason)
                elif action is Action.TERMINATE_SESSIONS:
                    count = await self.actions.terminate_sessions(account, reason)
                    log.warning(
                        "fraud: live calls cut",
                        account=account,
                        sessions=count,
                        rule=decision.rule_id,
                    )
                elif action is Action.ALERT:
                    await self.actions.alert(alert_event(decision, self.node))
            except Exception:
                failed.append(action)
                self.metrics.inc(ACTIONS, action=action.value, result="failed")
                log.exception(
                    "fraud action failed",
                    action=action.value,
                    account=account,
                    rule=decision.rule_id,
                )
            else:
                self.metrics.inc(ACTIONS, action=action.value, result="done")
        if failed:
            undo = (*decision.undo, f"failed: {', '.join(a.value for a in failed)}")
            return dataclasses.replace(decision, undo=undo)
        return decision

    async def _audit(self, batch: Sequence[Decision]) -> None:
        if self.decisions is None or not batch:
            return
        try:
            await self.decisions.write(batch)
        except Exception:
            self.metrics.inc(AUDIT_ERRORS, len(batch))
            log.exception("fraud audit entries not written", count=len(batch))

    async def drain(self) -> int:
        """Carry out every queued decision now; return how many."""
        batch: list[Decision] = []
        while not self._queue.empty():
            batch.append(await self._act(self._queue.get_nowait()))
            self._queue.task_done()
        await self._audit(batch)
        return len(batch)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [await self._act(first)]
            self._queue.task_done()
            while not self._queue.empty() and len(batch) < 500:
                batch.append(await self._act(self._queue.get_nowait()))
                self._queue.task_done()
            await self._audit(batch)

    def start(self) -> None:
        """Start the worker task (in the running loop)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="fraud-responder"
            )

    async def close(self, deadline_s: float = 5.0) -> None:
        """Finish the queued decisions (within ``deadline_s``), then stop the worker."""
        worker, self._worker = self._worker, None
        if worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), deadline_s)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self.drain()

    @property
    def pending(self) -> int:
        """Decisions waiting for the worker."""
        return self._queue.qsize()


class NoActions:
    """Actions that only log: for tools and tests that must not change anything."""

    async def block_destination(self, account_id: str, prefix: str, reason: str) -> None:
        """Do nothing."""

    async def suspend_account(self, account_id: str, reason: str) -> None:
        """Do nothing."""

    async def terminate_sessions(self, account_id: str, reason: str) -> int:
        """Do nothing."""
        return 0

    async def alert(self, event: Mapping[str, Any]) -> None:
        """Do nothing."""


__all__ = [
    "DecisionLog",
    "FraudActions",
    "NoActions",
    "Responder",
    "alert_event",
    "undo_steps",
]
