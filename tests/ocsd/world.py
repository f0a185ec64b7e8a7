"""A small operator for end-to-end tests: master data, a balance store, a charging service.

Rates (USD, retail deck), hand-computed values in the tests rely on them:

    44     United Kingdom   0.012/min  60/60
    4420   UK London        0.010/min  60/60
    447    UK Mobile        0.035/min  30/6, connection fee 0.01
    33     France           0.020/min  1/1
    1      USA              0.006/min  6/6

Accounts: ``alice`` prepaid (E.164 441632960001, user name alice), ``bob`` postpaid with a
credit limit of 1.00, ``carol`` prepaid on a plan with a 120 s bundle to 44, ``mallory``
suspended, ``gw`` identified by the source address 192.0.2.10 with tech prefix 7001.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from balances.model import AccountKind, AccountStatus, LedgerKind, QueuedRecord, RecordKind
from balances.settings import DEFAULT_MAX_RECORD_QUEUE
from balances.store import BalanceStore
from cdr_writer.record import Cdr
from ocsd.charging import ChargingService, ChargingSettings
from ocsd.directory import Directory
from ocsd.master import Account, Identity, IdentityKind, Tenant
from ocsd.master_store import MasterStore
from ocsd.schema import upgrade
from ocsd.sql_store import Database
from rating.deck_csv import DeckDefaults, parse_deck_csv
from rating.plan import Bundle, TariffPlan

REDIS_URL = "redis://127.0.0.1:6379/0"
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()

DECK = """prefix,destination,rate,connect_fee,billing
44,United Kingdom,0.012,0,60/60
4420,UK London,0.010,0,60/60
447,UK Mobile,0.035,0.01,30/6
33,France,0.020,0,1/1
1,USA,0.006,0,6/6
"""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_master(path: Path) -> None:
    """Create the records database with the operator's master data."""
    with Database(f"sqlite:///{path}") as db:
        upgrade(db)
        master = MasterStore(db, actor="test")
        rows = parse_deck_csv(DECK.encode(), defaults=DeckDefaults(effective_from=0))
        master.import_deck("retail", "USD", rows, effective_from=0)
        master.add_plan(TariffPlan("retail", deck_id="retail"))
        master.add_plan(
            TariffPlan("bundled", deck_id="retail", bundles=(Bundle("uk", 120, ("44",)),))
        )
        master.add_tenant(Tenant("op", None, "Operator", "USD", None))

        def account(account_id: str, **changes: Any) -> Account:
            values: dict[str, Any] = {
                "account_id": account_id,
                "tenant_id": "op",
                "name": account_id,
                "kind": AccountKind.PREPAID,
                "currency": "USD",
                "credit_limit_micros": 0,
                "daily_cap_micros": None,
                "monthly_cap_micros": None,
                "max_sessions": None,
                "timezone": "Europe/London",
                "plan_id": "retail",
                "status": AccountStatus.ACTIVE,
            }
            values.update(changes)
            return Account(**values)

        master.add_account(account("alice"))
        master.add_account(account("bob", kind=AccountKind.POSTPAID, credit_limit_micros=1_000_000))
        master.add_account(account("carol", plan_id="bundled"))
        master.add_account(account("mallory", status=AccountStatus.SUSPENDED))
        master.add_account(account("gw"))
        master.add_identity(Identity("alice", IdentityKind.E164, "441632960001"))
        master.add_identity(Identity("alice", IdentityKind.USERNAME, "alice"))
        master.add_identity(Identity("bob", IdentityKind.USERNAME, "bob"))
        master.add_identity(Identity("carol", IdentityKind.USERNAME, "carol"))
        master.add_identity(Identity("mallory", IdentityKind.USERNAME, "mallory"))
        master.add_identity(Identity("gw", IdentityKind.IP, "192.0.2.10", "7001"))


def load_directory(path: Path) -> Directory:
    """The directory of the records database at ``path``."""
    with Database(f"sqlite:///{path}") as db:
        return Directory(MasterStore(db).snapshot())


def open_store(
    backend: str, tmp_path: Path, max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE
) -> tuple[BalanceStore, str]:
    """A fresh store of the named backend, and its Redis key prefix (or "").

    ``max_record_queue`` 1 bounds both backends alike for the records of one account (on
    Redis each of the 16 shard streams gets a share of 1)."""
    if backend == "embedded":
        from balances.embedded_store import EmbeddedBalanceStore
        from balances.settings import EmbeddedStoreSettings

        path = str(tmp_path / f"hot-{uuid.uuid4().hex[:6]}.sqlite3")
        return EmbeddedBalanceStore(
            path, EmbeddedStoreSettings(max_record_queue=max_record_queue)
        ), ""
    from balances.redis_store import RedisBalanceStore
    from balances.settings import RedisStoreSettings

    prefix = f"t{uuid.uuid4().hex[:10]}"
    return RedisBalanceStore(
        # A generous timeout: a loaded test machine is not a broken Redis.
        RedisStoreSettings(
            url=REDIS_URL,
            key_prefix=prefix,
            shards=16,
            timeout_ms=5000,
            max_record_queue=max_record_queue,
        )
    ), prefix


async def delete_prefix(prefix: str) -> None:
    """Remove every Redis key a test made."""
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


@dataclass
class World:
    """Everything a charging test needs."""

    store: BalanceStore
    directory: Directory
    clock: Clock
    service: ChargingService
    prefix: str = ""
    records_seen: list[QueuedRecord] = field(default_factory=list)

    async def sync_accounts(self) -> None:
        for account in self.directory.accounts.values():
            await self.store.put_account(
                account.limits(self.directory.tenant_suspended(account.tenant_id))
            )

    async def topup(self, account_id: str, amount_micros: int) -> None:
        key = uuid.uuid4().hex
        result = await self.store.ledger(
            account_id, LedgerKind.TOPUP, amount_micros, key, b"topup", int(self.clock() * 1000)
        )
        assert result.applied

    async def balance(self, account_id: str) -> int:
        state = await self.store.get_account(account_id)
        assert state is not None
        return state.balance_micros

    async def cdrs(self) -> list[tuple[Cdr, QueuedRecord]]:
        """Every CDR queued so far (read and acknowledged)."""
        while True:
            batch = await self.store.read_records("test", 1000, 0)
            if not batch:
                break
            self.records_seen.extend(batch)
            await self.store.ack_records(batch)
        return [(Cdr.decode(r.payload), r) for r in self.records_seen if r.kind is RecordKind.CDR]

    async def other_call_ends(self) -> None:
        """Traffic goes on: another account's call ends (a worker forgets its own recent
        answers as later calls end, so a late repeat is then answered by the store)."""
        from ocsd.charging_types import ChargingRequest, RequestType, UnitRequest
        from ocsd.directory import Candidate
        from ocsd.master import IdentityKind

        await self.service.handle(
            ChargingRequest(
                session_id=f"other-{uuid.uuid4().hex[:8]}",
                request_number=1,
                request_type=RequestType.TERMINATE,
                protocol="test",
                peer="switch-2",
                identities=(Candidate(IdentityKind.USERNAME, "bob"),),
                called="442071234567",
                units=(UnitRequest(used_s=30),),
            )
        )

    async def cdrs_of(self, account_id: str) -> list[Cdr]:
        """The CDRs of one account queued so far."""
        return [cdr for cdr, _ in await self.cdrs() if cdr.account_id == account_id]

    def new_service(self) -> ChargingService:
        """Another worker on the same store."""
        return ChargingService(
            self.service.settings,
            self.store,
            lambda: self.directory,
            node="other",
            clock=self.clock,
        )


async def make_world(
    backend: str,
    tmp_path: Path,
    settings: ChargingSettings | None = None,
    max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE,
) -> World:
    """Build the world on a backend."""
    records = tmp_path / "records.sqlite3"
    if not records.exists():
        build_master(records)
    directory = load_directory(records)
    store, prefix = open_store(backend, tmp_path, max_record_queue)
    clock = Clock()
    service = ChargingService(
        settings or ChargingSettings(), store, lambda: directory, node="test", clock=clock
    )
    world = World(store, directory, clock, service, prefix)
    await world.sync_accounts()
    return world


async def world_fixture(
    backend: str, tmp_path: Path, max_record_queue: int = DEFAULT_MAX_RECORD_QUEUE
) -> AsyncIterator[World]:
    """Yield a world and clean up after it."""
    world = await make_world(backend, tmp_path, max_record_queue=max_record_queue)
    try:
        yield world
    finally:
        await world.store.close()
        if world.prefix:
            await delete_prefix(world.prefix)


def iter_backends() -> Iterator[str]:
    """Backend names."""
    yield "embedded"
    yield "redis"
