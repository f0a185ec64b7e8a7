"""The CDR writer: from the durable queue to the records database, exactly once.

Rules:

- A batch is read from the queue, turned into rows, and written in ONE transaction; its
  records are acknowledged only after that transaction has committed. A writer killed at any
  point leaves its records unacknowledged in the queue, which hands them back (to the same
  consumer first) when it returns.
- A record written twice (killed between commit and acknowledgement, a batch replayed) is
  stored once: the sink skips rows whose key is already there and counts only the rows it
  really inserted in the rollups.
- While the records database is unavailable the same batch is retried with a growing wait;
  nothing is dropped and nothing further is read, so the queue grows (in the store, which
  bounds it) and an alarm is logged once it is deeper than ``queue_alarm_depth``.
- The next batch is read and its rows built while earlier ones are being written and
  acknowledged (up to ``batches_in_flight`` written at once, each in its own transaction and
  acknowledged after its own commit): the database, the queue and the writer's own work
  overlap. A read made while records are in hand asks only for records no
  consumer was given yet (``new_only``), as the queue would hand the ones in hand back; once
  every ``depth_check_interval_s`` the writer lets the batches in hand finish and makes a
  full read, which also takes over what a dead consumer left.
- Bad data never blocks the queue: records that do not decode or validate are stored flagged
  (``cdr_writer.row``); a batch the database still refuses is split until the refused record
  is alone, and that record is kept in ``cdr_rejects`` with the database's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from cdr_writer.row import Batch, QueuedRecordLike, reject_row
from cdr_writer.settings import CdrWriterSettings
from cdr_writer.sink import CdrSink, SinkDataError, SinkUnavailable, WriteResult

R = TypeVar("R", bound=QueuedRecordLike)

log = structlog.get_logger(component="cdr_writer")


class RecordQueue(Protocol[R]):
    """The durable queue the balance store fills (``balances.store.BalanceStore``)."""

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[R]:
        """Return queued records not yet acknowledged (first those this consumer left).

        ``new_only``: only records no consumer was given yet, neither this consumer's pending
        ones nor any claimed from others: what a reader asks for while it still holds records
        it read before and has not acknowledged (a plain read would hand those back).
        """

    async def ack_records(self, records: Sequence[R]) -> None:
        """Remove records from the queue once they are stored for good."""

    async def queue_depth(self) -> int:
        """Return how many records wait in the queue."""


@dataclass(slots=True)
class WriterStats:
    """Counters since the writer started (for logs and metrics)."""

    records: int = 0
    """Records read and acknowledged."""
    cdrs: int = 0
    """CDR rows inserted."""
    duplicates: int = 0
    """CDRs and ledger entries that were already stored (replays)."""
    ledger: int = 0
    problems: int = 0
    """Records stored with a problem flagged, or kept only in ``cdr_rejects``."""
    batches: int = 0
    write_failures: int = 0
    """Writes that failed because the records database was unavailable (then retried)."""
    splits: int = 0
    """Batches split because the database refused their data."""
    queue_failures: int = 0


class CdrWriter(Generic[R]):
    """Moves records from the queue to the records database; see the module rules."""

    def __init__(
        self,
        queue: RecordQueue[R],
        sink: CdrSink,
        settings: CdrWriterSettings,
        consumer: str,
        *,
        queue_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.settings = settings
        self.consumer = consumer
        self.queue_errors = queue_errors
        self.clock = clock
        self.stats = WriterStats()
        self.queue_depth: int | None = None
        """The queue depth last observed (None before the first check)."""
        self.alarming = False
        """Whether the queue is deeper than ``queue_alarm_depth``."""
        self.ready = False
        """Whether the sink is prepared (schema checked, partitions made)."""
        self._next_depth_check = 0.0
        self._next_maintenance = 0.0

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until ``stop`` is set; the batches in hand are finished or left queued."""
        log.info("cdr writer starting", consumer=self.consumer)
        try:
            if not await self._prepare(stop):
                return
            await self._pipeline(stop)
        finally:
            log.info(
                "cdr writer stopped",
                consumer=self.consumer,
                records=self.stats.records,
                cdrs=self.stats.cdrs,
                duplicates=self.stats.duplicates,
                problems=self.stats.problems,
            )

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """Read one batch and store it; return how many records were acknowledged."""
        stop = stop or asyncio.Event()
        await self._housekeeping()
        records = await self._read(stop, new_only=False)
        if not records:
            return 0
        if not await self._store(records, stop):
            return 0
        return await self._ack(records, stop)

    async def _pipeline(self, stop: asyncio.Event) -> None:
        """``step`` over and over, the next batch read and built while others are written."""
        storing: list[asyncio.Task[bool]] = []
        """Batches being written; their acknowledgements are tasks of ``acking``."""
        acking: set[asyncio.Task[int]] = set()
        next_full_read = 0.0
        try:
            while not stop.is_set():
                await self._housekeeping()
                if not _collect_stored(storing):
                    break
                # Before a full read the batches in hand finish: it would hand them back.
                due = time.monotonic() >= next_full_read and bool(storing or acking)
                if due and not await _settle(storing, acking):
                    break
                new_only = bool(storing or acking)
                if not new_only:
                    next_full_read = time.monotonic() + self.settings.depth_check_interval_s
                records = await self._read(stop, new_only=new_only)
                if not records:
                    # Nothing new: finish what is in hand, then read in full (and wait).
                    if not await _settle(storing, acking):
                        break
                    continue
                batch = Batch(records, self._now())
                if len(storing) >= self.settings.batches_in_flight:
                    await _build_beside(batch, storing)
                    await asyncio.wait(storing, return_when=asyncio.FIRST_COMPLETED)
                    if not _collect_stored(storing):
                        break  # told to stop while the database is away: the batch stays queued
                storing.append(
                    asyncio.create_task(self._store_then_ack(records, batch, stop, acking))
                )
        except BaseException:
            for task in (*storing, *acking):
                task.cancel()
            raise
        finally:
            await asyncio.gather(*storing, *acking, return_exceptions=True)

    async def _store_then_ack(
        self,
        records: Sequence[R],
        batch: Batch,
        stop: asyncio.Event,
        acking: set[asyncio.Task[int]],
    ) -> bool:
        """Store a batch; once committed, acknowledge it in a task of ``acking``."""
        if not await self._store(records, stop, batch):
            return False
        task = asyncio.create_task(self._ack(records, stop))
        acking.add(task)
        task.add_done_callback(_forget_unless_failed(acking))
        return True

    async def _read(self, stop: asyncio.Event, *, new_only: bool) -> list[R]:
        try:
            return await self.queue.read_records(
                self.consumer,
                self.settings.batch_size,
                self.settings.read_block_ms,
                new_only=new_only,
            )
        except self.queue_errors as exc:
            self.stats.queue_failures += 1
            log.warning("cdr queue read failed", error=str(exc) or type(exc).__name__)
            await _wait(stop, self.settings.retry_max_ms / 1000)
            return []

    async def _prepare(self, stop: asyncio.Event) -> bool:
        delay = self.settings.retry_initial_ms / 1000
        while not stop.is_set():
            try:
                await self.sink.prepare(self._now())
            except SinkUnavailable as exc:
                log.warning("records database unavailable", error=str(exc), retry_s=delay)
                await _wait(stop, delay)
                delay = min(delay * 2, self.settings.retry_max_ms / 1000)
                continue
            self.ready = True
            self._next_maintenance = time.monotonic() + self.settings.partition_check_interval_s
            return True
        return False

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_depth_check:
            self._next_depth_check = now + self.settings.depth_check_interval_s
            await self.check_depth()
        if self.ready and now >= self._next_maintenance:
            self._next_maintenance = now + self.settings.partition_check_interval_s
            try:
                created = await self.sink.maintain(self._now())
            except (SinkUnavailable, SinkDataError) as exc:
                log.warning("partition upkeep failed; retrying later", error=str(exc))
            else:
                if created:
                    log.info("partitions created", partitions=created)

    async def check_depth(self) -> int | None:
        """Look at the queue depth and raise or clear the alarm; return the depth."""
        try:
            depth = await self.queue.queue_depth()
        except self.queue_errors as exc:
            self.stats.queue_failures += 1
            log.warning("cdr queue depth unknown", error=str(exc) or type(exc).__name__)
            return None
        self.queue_depth = depth
        threshold = self.settings.queue_alarm_depth
        if depth > threshold:
            # Logged at every check while it lasts: an operator must not miss it.
            log.error("cdr queue alarm", reason="queue_depth", depth=depth, threshold=threshold)
            self.alarming = True
        elif self.alarming:
            log.warning("cdr queue alarm cleared", depth=depth, threshold=threshold)
            self.alarming = False
        return depth

    # -- storing ---------------------------------------------------------------------------

    async def _store(
        self, records: Sequence[R], stop: asyncio.Event, batch: Batch | None = None
    ) -> bool:
        """Write the records until they are committed; False if told to stop first.

        ``batch``: the records' rows, maybe partly built already (the first attempt only).
        """
        delay = self.settings.retry_initial_ms / 1000
        while True:
            try:
                result = await self._write_group(records, batch)
            except SinkUnavailable as exc:
                batch = None
                self.stats.write_failures += 1
                log.warning(
                    "records database unavailable; batch kept in the queue",
                    reason="sink_unavailable",
                    error=str(exc),
                    records=len(records),
                    retry_s=delay,
                )
                if stop.is_set():
                    return False
                await _wait(stop, delay)
                if stop.is_set():
                    return False
                delay = min(delay * 2, self.settings.retry_max_ms / 1000)
                await self.check_depth()
                continue
            self.stats.batches += 1
            self.stats.cdrs += result.cdrs
            self.stats.ledger += result.ledger
            return True

    async def _write_group(self, records: Sequence[R], batch: Batch | None = None) -> WriteResult:
        if batch is None:
            batch = Batch(records, self._now())
        try:
            result = await self.sink.write(batch)
        except SinkDataError as exc:
            return await self._write_apart(records, exc)
        self._count(batch, result)
        return result

    async def _write_apart(self, records: Sequence[R], error: SinkDataError) -> WriteResult:
        """The database refused a batch: write halves, and keep a lone refused record aside."""
        if len(records) == 1:
            record = records[0]
            problem = f"refused by the records database: {error}"
            log.error(
                "record refused by the records database; kept in cdr_rejects",
                reason="refused",
                record_id=record.record_id,
                error=str(error),
            )
            batch = Batch(reject_rows=[reject_row(record, "", [problem], "", self._now())])
            try:
                result = await self.sink.write(batch)
            except SinkDataError as exc:
                # Even its raw form is refused: the database is broken, not the record.
                raise SinkUnavailable(f"cannot store a rejected record: {exc}") from exc
            self._count(batch, result)
            return result
        self.stats.splits += 1
        middle = len(records) // 2
        first = await self._write_group(records[:middle])
        return first + await self._write_group(records[middle:])

    def _count(self, batch: Batch, result: WriteResult) -> None:
        self.stats.duplicates += len(batch.all_cdr_rows) - result.cdrs
        self.stats.duplicates += len(batch.ledger_rows) - result.ledger
        if batch.problems:
            self.stats.problems += batch.problems
            log.warning(
                "records stored with problems",
                reason="bad_record",
                count=batch.problems,
                problems=[row[8] for row in batch.reject_rows[:5]],
            )

    async def _ack(self, records: Sequence[R], stop: asyncio.Event) -> int:
        """Acknowledge stored records and return how many; on failure (0) they come back and
        are skipped as stored."""
        delay = self.settings.retry_initial_ms / 1000
        while True:
            try:
                await self.queue.ack_records(records)
            except self.queue_errors as exc:
                self.stats.queue_failures += 1
                log.warning("cdr queue ack failed", error=str(exc) or type(exc).__name__)
                if stop.is_set():
                    return 0
                await _wait(stop, delay)
                delay = min(delay * 2, self.settings.retry_max_ms / 1000)
                continue
            self.stats.records += len(records)
            return len(records)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def describe(self) -> dict[str, Any]:
        """The writer's state for logs and the metrics endpoint."""
        return {
            "consumer": self.consumer,
            "ready": self.ready,
            "queue_depth": self.queue_depth,
            "alarming": self.alarming,
            **asdict(self.stats),
        }


async def _build_beside(batch: Batch, tasks: Sequence[asyncio.Task[bool]]) -> None:
    """Build a batch's rows until one of ``tasks`` (batches being written) is done, a slice at
    a time so that the loop keeps feeding their COPY."""
    # A turn of the loop between slices, not a poll for the tasks:
    while not any(t.done() for t in tasks) and not batch.build(100):  # noqa: ASYNC110
        await asyncio.sleep(0)


def _forget_unless_failed(
    tasks: set[asyncio.Task[int]],
) -> Callable[[asyncio.Task[int]], None]:
    """A done callback: drop a finished task from ``tasks``, keep one that raised (the
    writer's next wait for its tasks raises it, as a failed step would have)."""

    def forget(task: asyncio.Task[int]) -> None:
        if task.cancelled() or task.exception() is None:
            tasks.discard(task)

    return forget


def _collect_stored(storing: list[asyncio.Task[bool]]) -> bool:
    """Drop the finished tasks of ``storing``; False if one stopped before its commit."""
    committed = True
    for task in [t for t in storing if t.done()]:
        storing.remove(task)
        committed = task.result() and committed
    return committed


async def _settle(storing: list[asyncio.Task[bool]], acking: set[asyncio.Task[int]]) -> bool:
    """Wait for every batch in hand; False if one stopped before its commit."""
    results = await asyncio.gather(*storing)
    storing.clear()
    await asyncio.gather(*acking)
    return all(results)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
