"""Settings of the balance store backends (``ocsd`` composes them from its configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_MAX_RECORD_QUEUE = 5_000_000
"""The default bound of the record queue: well above the CDR writer's default alarm depth
(1,000,000), so the alarm sounds long before a call is refused."""


@dataclass(frozen=True, slots=True)
class RedisStoreSettings:
    """Where the Redis store lives and how it talks to it."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "ocsd"
    """Every key starts with it (inside the hash tag ``{<prefix>:<shard>}``)."""
    shards: int = 256
    """Accounts are spread over this many hash tags; changing it moves every account."""
    timeout_ms: int = 500
    """A call (a pipelined batch) not answered within this raises ``BackendUnavailable``."""
    pool_size: int = 16
    """Connections carrying pipelined steps; one batch is in flight on each at a time."""
    max_batch: int = 256
    """Most steps sent in one pipelined write."""
    max_waiting: int = 20_000
    """Most steps waiting for a connection; beyond, a step fails with BackendUnavailable."""
    session_index_ttl_ms: int = 86_400_000
    """How long the session -> account index outlives a session's opening step."""
    tombstone_grace_ms: int = 60_000
    """Redis keeps a tombstone this long after it expired (clocks of nodes differ)."""
    closed_slices: int = 16
    """Closed markers of a shard and hour are spread over this many hashes. Size it so that
    calls per hour / (shards x closed_slices) stays below Redis's hash-max-listpack-entries
    (128 by default): 16 with 256 shards keeps ~12 million calls a day compact. Changing it
    forgets the markers written before."""
    consumer_group: str = "records"
    """The consumer group of the record streams."""
    claim_idle_ms: int = 60_000
    """A record read by another consumer and not acknowledged for this long is read again."""
    max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE
    """Records the queue may hold, all shards together (0: no bound). Once it holds that many,
    a new session (an opening HOLD) or a one-off EVENT debit is DENIED ``RECORD_QUEUE_FULL``;
    closes, updates, refunds and ledger entries go on. The whole queue's length is looked at
    every ``queue_look_s`` (and each shard's stream, in the step's own script, may not pass
    the bound by itself): one busy account may fill the queue, never more."""
    queue_look_s: float = 1.0
    """How often the store sums the shard streams' lengths (one pipelined XLEN per shard)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("url must be a redis://, rediss:// or unix:// URL")
        if not self.key_prefix or any(c in self.key_prefix for c in "{}"):
            raise ValueError("key_prefix must be non-empty and without braces")
        if not 1 <= self.shards <= 16384:
            raise ValueError("shards must be between 1 and 16384")
        if min(self.timeout_ms, self.pool_size, self.max_batch, self.max_waiting) <= 0:
            raise ValueError("timeout_ms, pool_size, max_batch and max_waiting must be positive")
        if self.session_index_ttl_ms <= 0 or self.tombstone_grace_ms < 0:
            raise ValueError("session_index_ttl_ms must be positive, tombstone_grace_ms >= 0")
        if not 1 <= self.closed_slices <= 4096:
            raise ValueError("closed_slices must be between 1 and 4096")
        if not self.consumer_group or self.claim_idle_ms < 0:
            raise ValueError("consumer_group must be set and claim_idle_ms not negative")
        if self.max_record_queue < 0:
            raise ValueError("max_record_queue must be 0 (no bound) or positive")
        if self.queue_look_s <= 0:
            raise ValueError("queue_look_s must be positive")


@dataclass(frozen=True, slots=True)
class EmbeddedStoreSettings:
    """How the embedded store uses its SQLite file."""

    busy_timeout_ms: int = 5_000
    """How long a step waits for another process's transaction before ``BackendUnavailable``."""
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL: a power loss may lose the last committed steps (whole, with their records);
    FULL: every commit is on disk before the step returns (slower)."""
    claim_idle_ms: int = 60_000
    """A record read by another consumer and not acknowledged for this long is read again."""
    poll_interval_ms: int = 20
    """How often a blocking ``read_records`` looks for new records."""
    max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE
    """Records the queue may hold (0: no bound); once it holds that many, a new session or a
    one-off EVENT debit is DENIED ``RECORD_QUEUE_FULL``; closes and the rest go on."""

    def __post_init__(self) -> None:
        if self.busy_timeout_ms < 0 or self.claim_idle_ms < 0 or self.poll_interval_ms <= 0:
            raise ValueError("busy_timeout_ms, claim_idle_ms >= 0 and poll_interval_ms > 0")
        if self.max_record_queue < 0:
            raise ValueError("max_record_queue must be 0 (no bound) or positive")
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
