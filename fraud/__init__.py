"""Fraud controls in the authorization path: lists, velocity and spend rules, actions.

- ``rule``, ``listing``, ``country``, ``model``: what the rules are, the lists they read, the
  country of a number, attempts, usage reports, hits and verdicts (pure values);
- ``engine``: the immutable evaluator, rebuilt and swapped on reload;
- ``counters`` and its stores (``counter_store`` for Redis, ``embedded_counter_store``): the
  sliding windows, live calls and countries, one atomic step per check;
- ``guard``: the checks as the charging service runs them; ``response``: actions, audit and
  metrics off the call's path; ``webhook_sink``, ``decision_sink``, ``rule_store``: IO.

Nothing here imports ``ocsd``: the daemon composes it (``ocsd/fraud_setup.py``).
"""
