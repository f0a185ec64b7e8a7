"""The writer as a component of the daemon: installed in the first worker, stopped cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from balances.embedded_store import EmbeddedBalanceStore
from balances.model import AccountKind, AccountLimits, QueuedRecord, Step, StepKind
from cdr_writer.settings import CdrWriterSettings
from ocsd.cdr_service import CdrWriterComponent, install
from ocsd.config import Config, StoreSettings
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from tests.cdr_writer.samples import make_cdr


class Acked:
    """The embedded store, telling when records were acknowledged."""

    def __init__(self, store: EmbeddedBalanceStore) -> None:
        self.store = store
        self.acked = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def ack_records(self, records: Sequence[QueuedRecord]) -> None:
        await self.store.ack_records(records)
        self.acked.set()


def config(tmp_path: Path, **writer: Any) -> Config:
    return Config(
        data_dir=str(tmp_path),
        stores=StoreSettings(records_url=f"sqlite:///{tmp_path}/records.sqlite3"),
        cdr_writer=CdrWriterSettings(read_block_ms=10, **writer),
    )


def test_install_adds_the_writer_to_the_first_worker_only(tmp_path: Path) -> None:
    servers = [SimpleNamespace(config=config(tmp_path), worker=w, extensions=[]) for w in (0, 1, 2)]
    for server in servers:
        install(server)
    assert [len(s.extensions) for s in servers] == [1, 1, 0]
    own_service = SimpleNamespace(config=config(tmp_path, in_daemon=False), worker=0, extensions=[])
    install(own_service)
    assert own_service.extensions == []


async def test_the_component_writes_the_queue_and_stops(tmp_path: Path) -> None:
    with Database(f"sqlite:///{tmp_path}/records.sqlite3") as db:
        upgrade(db)
    store = EmbeddedBalanceStore(tmp_path / "hot.sqlite3")
    await store.put_account(AccountLimits("alice", AccountKind.POSTPAID, credit_limit_micros=10**9))
    cdr = make_cdr(1)
    await store.step(
        Step(
            kind=StepKind.EVENT,
            account_id="alice",
            session_id="s1",
            request_number=0,
            now_ms=cdr.end_ms,
            day_key="2026-03-14",
            month_key="2026-03",
            debit_micros=cdr.charge_micros,
            record=cdr.encode(),
        )
    )
    acked = Acked(store)
    server = SimpleNamespace(config=config(tmp_path), worker=0, store=acked, extensions=[])
    component = CdrWriterComponent()
    await component.start(server)
    await asyncio.wait_for(acked.acked.wait(), 10)
    await component.stop(server)
    assert component.writer is not None and component.writer.stats.cdrs == 1
    with Database(f"sqlite:///{tmp_path}/records.sqlite3") as db:
        assert db.query("SELECT cdr_id FROM cdrs") == [(cdr.cdr_id,)]
    await store.close()
