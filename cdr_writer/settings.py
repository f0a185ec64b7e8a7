"""Settings of the CDR writer (section ``cdr_writer:`` of the configuration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CdrWriterSettings:
    """How the writer reads the queue and writes the records database."""

    in_daemon: bool = True
    """Run the writer as a task of ``ocsd serve`` (in its first worker). false when
    ``ocsd cdr-writer`` runs as a service of its own."""
    consumer: str = ""
    """This writer's name in the queue's consumer group; records it read but did not
    acknowledge are given back to the same name first after a restart, so keep it stable
    per node. Empty: ``cdr-writer@<node_id>``."""
    batch_size: int = 5000
    """The most records written in one transaction."""
    batches_in_flight: int = 2
    """Batches written at the same time, each in its own transaction (PostgreSQL: on its own
    connection). Two let the records database work on one batch while the writer sends the
    next; the SQLite sink writes one at a time whatever this says."""
    read_block_ms: int = 1000
    """How long one read waits for records when the queue is empty. Records are written as
    soon as they are read (a busy queue fills batches by itself), so this bounds how often an
    idle writer wakes up, not how long a record waits."""
    queue_alarm_depth: int = 1_000_000
    """Log an alarm while more records than this wait in the queue (the records database is
    down or too slow); the queue's own bound is a setting of the balance store."""
    depth_check_interval_s: float = 10.0
    partitions_ahead_months: int = 3
    """PostgreSQL: monthly partitions of ``cdrs`` created ahead of the current month (the
    previous month's too). A CDR outside every partition lands in ``cdrs_default``."""
    partition_check_interval_s: float = 3600.0
    """How often the writer makes sure the partitions ahead exist."""
    retry_initial_ms: int = 100
    """First wait after a failed write; it doubles up to ``retry_max_ms`` while the records
    database stays unavailable. The batch is retried until it commits; nothing is dropped."""
    retry_max_ms: int = 5000
    connect_timeout_s: float = 5.0
    statement_timeout_ms: int = 60_000
    """PostgreSQL: a batch that takes longer is cancelled and retried."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 100_000:
            raise ValueError("batch_size must be between 1 and 100000")
        if not 1 <= self.batches_in_flight <= 8:
            raise ValueError("batches_in_flight must be between 1 and 8")
        if self.read_block_ms <= 0:
            raise ValueError("read_block_ms must be positive")
        if self.queue_alarm_depth <= 0 or self.depth_check_interval_s <= 0:
            raise ValueError("queue_alarm_depth and depth_check_interval_s must be positive")
        if not 0 <= self.partitions_ahead_months <= 120:
            raise ValueError("partitions_ahead_months must be between 0 and 120")
        if self.partition_check_interval_s <= 0:
            raise ValueError("partition_check_interval_s must be positive")
        if not 0 < self.retry_initial_ms <= self.retry_max_ms:
            raise ValueError("retry_initial_ms must be positive and at most retry_max_ms")
        if self.connect_timeout_s <= 0 or self.statement_timeout_ms <= 0:
            raise ValueError("connect_timeout_s and statement_timeout_ms must be positive")

    def consumer_name(self, node: str) -> str:
        """The consumer name in use on ``node``."""
        return self.consumer or f"cdr-writer@{node}"
