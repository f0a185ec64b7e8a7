"""Where the writer puts rows: the interface of the PostgreSQL and SQLite sinks.

A sink writes one ``Batch`` in ONE transaction: CDR rows (a CDR already stored is skipped,
never stored twice), the daily rollups of the rows it really inserted, ledger rows and
rejected records. When ``write`` returns, the transaction has committed; when it raises,
nothing of the batch is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cdr_writer.row import Batch


class SinkUnavailable(Exception):
    """The records database cannot be reached or did not commit; retry the same batch later."""


class SinkDataError(Exception):
    """The records database refused the data of the batch; retrying it as is will not help."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch stored."""

    cdrs: int = 0
    """CDR rows inserted (the rest of the batch's CDRs were stored before)."""
    ledger: int = 0
    rejects: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.cdrs + other.cdrs, self.ledger + other.ledger, self.rejects + other.rejects
        )


class CdrSink(Protocol):
    """A records database the writer stores batches in."""

    async def prepare(self, now: datetime) -> None:
        """Connect and check the schema; create what must exist before writing (partitions).

        Raises ``SinkUnavailable`` when the database cannot be used yet.
        """

    async def maintain(self, now: datetime) -> list[str]:
        """Periodic upkeep (partitions ahead); return what was created."""

    async def write(self, batch: Batch) -> WriteResult:
        """Store a batch in one transaction; raise ``SinkUnavailable`` or ``SinkDataError``."""

    async def close(self) -> None:
        """Release the connection."""
