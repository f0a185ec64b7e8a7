"""Labelled counters of the fraud controls, kept in process for the metrics endpoint to export.

Every decision increments ``ocsd_fraud_decisions_total{rule, action}``; checks, store failures,
actions and webhook deliveries have their own counters (names below). The registry is a plain
dictionary: incrementing costs a tuple and a dict update, nothing on the call's path waits.
"""

from __future__ import annotations

from collections.abc import Iterator

DECISIONS = "ocsd_fraud_decisions_total"
"""Rules tripped, by ``rule`` and ``action`` (one increment per action of the rule)."""
CHECKS = "ocsd_fraud_checks_total"
"""Verdicts, by ``stage`` (attempt, usage) and ``outcome`` (allow, alert, refuse)."""
COUNTER_ERRORS = "ocsd_fraud_counter_errors_total"
"""Counter store calls that failed, by ``operation``."""
ACTIONS = "ocsd_fraud_actions_total"
"""Actions carried out, by ``action`` and ``result`` (done, failed, suppressed)."""
DROPPED = "ocsd_fraud_dropped_total"
"""Work dropped because a bounded queue was full, by ``queue`` (decisions, webhook)."""
WEBHOOK = "ocsd_fraud_webhook_total"
"""Webhook deliveries, by ``result`` (sent, retried, failed)."""
AUDIT_ERRORS = "ocsd_fraud_audit_errors_total"
"""Audit entries that could not be written."""

DESCRIPTIONS: dict[str, str] = {
    DECISIONS: "Fraud rules tripped, by rule and action.",
    CHECKS: "Fraud verdicts, by stage and outcome.",
    COUNTER_ERRORS: "Fraud counter store failures.",
    ACTIONS: "Fraud actions, by action and result.",
    DROPPED: "Fraud work dropped on a full queue.",
    WEBHOOK: "Fraud webhook deliveries, by result.",
    AUDIT_ERRORS: "Fraud audit entries not written.",
}

Labels = tuple[tuple[str, str], ...]


class MetricRegistry:
    """Counters by name and label values."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, Labels], int] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add ``amount`` to one labelled counter."""
        key = (name, tuple(sorted(labels.items())))
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> int:
        """One counter's value (0 if never incremented)."""
        return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name: str, **labels: str) -> int:
        """The sum over every counter of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, lbls), v in self._values.items() if n == name and wanted <= set(lbls))

    def samples(self) -> Iterator[tuple[str, dict[str, str], int]]:
        """Every counter: name, labels, value."""
        for (name, labels), value in sorted(self._values.items()):
            yield name, dict(labels), value


__all__ = [
    "ACTIONS",
    "AUDIT_ERRORS",
    "CHECKS",
    "COUNTER_ERRORS",
    "DECISIONS",
    "DESCRIPTIONS",
    "DROPPED",
    "WEBHOOK",
    "MetricRegistry",
]
