"""The Redis balance store: every step is one Lua script on one hash slot, pipelined.

Key layout. An account lives in shard ``crc32(account id) % shards``; every key of the account
carries the shard's hash tag ``{<prefix>:<shard>}`` (account ids are escaped inside keys:
``%`` -> ``%25``, ``:`` -> ``%3A``)::

    {p:N}:a:<account>             hash    balance, held, limits, period counters, bundle counters
    {p:N}:s:<account>:<session>   hash    an open session, or a tombstone (with a TTL)
    {p:N}:l:<account>             hash    ledger idempotency key -> balance after (kept for good)
    {p:N}:deadlines               zset    session key -> deadline ms, open sessions only
    {p:N}:records                 stream  the shard's record queue (consumer group ``records``)
    {p:N}:c:<hour>:<slice>        hash    closed markers: digest -> (request number, debited,
                                          context), with a TTL
    p:sidx:<session>              string  session -> account index; outside the slot, with a TTL

Every script declares all its keys in KEYS and they share one slot, so the same code runs on
Redis Cluster. The scripts (``balances/lua``, with ``common.lua`` in front of each) carry a
``#!lua`` shebang so that Redis refuses a whole script under ``maxmemory`` instead of failing
half-way, and they check everything before their first write. Amounts stay within ±2**50
(``engine.MAX_MICROS``) so that Lua's doubles compute them exactly.

One step is one ``EVALSHA`` (plus, for an opening ``HOLD``, the ``SET`` of the session index in
the same write): one round trip. Concurrent callers are batched: ``step`` puts its commands
in a queue and a flush on the next loop turn (or as soon as ``max_batch`` steps wait) writes a
whole batch on one of ``pool_size`` connections and hands each caller its reply. A batch not
answered within ``timeout_ms`` fails all its callers with ``BackendUnavailable`` (their steps
may or may not have run: a retry with the same request number is answered as a duplicate);
so does a step that finds ``max_waiting`` steps already queued (the queue is bounded).

Closed markers. A CLOSE (or an orphan stop's EVENT) with ``closed_ttl_ms`` also writes the
session's marker in the same script: field = ``engine.marker_digest`` (8 bytes), value =
msgpack ``[request number, debited, context]`` (about 15 bytes), in the hash of the shard, the
hour of the step (``now_ms // 3_600_000``) and the session's slice (``closed_slices`` per shard
and hour). Each hash expires ``closed_ttl_ms`` (+ ``tombstone_grace_ms``) after its hour ends,
so a marker answers for at least ``closed_ttl_ms`` and at most an hour more, and nothing needs
cleaning. Slices keep each hash small enough for Redis's compact listpack encoding (below
``hash-max-listpack-entries``, 128 by default): about 25 bytes per marker (``MEMORY USAGE``)
instead of about 80 in a hashtable. An orphan stop and an opening HOLD read markers (when
they carry ``closed_ttl_ms``): one ``HGET`` per hour of the horizon, newest first, in the same
script as the step (the hashes are keys of the account's slot), so no round trip is added;
an opening HOLD that finds none pays all of them, ``closed_ttl_ms / 1 h + 1`` lookups in small
hashes, which is why the charging service sets ``closed_ttl_ms`` only on the opening holds of
requests marked as repeats.

A HOLD may carry a gate (``StepGate``): a check another package keeps in Redis (the fraud
counters) that runs in the same script, in front of the hold, on keys of the same slot. The
store is built with the gate's Lua function (``LuaGate``); the gated script is ``common.lua``,
that function, and ``hold.lua`` wrapped in a function of its own, so a gated HOLD is still one
EVALSHA and one round trip, and a tripped gate leaves the account and the session untouched.

The record queue is bounded as a whole: an opening HOLD, or an EVENT debit that requires
funds, is DENIED ``RECORD_QUEUE_FULL`` once all the shard streams together hold
``max_record_queue`` records. The store sums their lengths (one pipelined ``XLEN`` per shard)
at most every ``queue_look_s``, in the background of the steps, and tells the step's script
the queue is full (bound -1); the script also reads its own shard's length (``XLEN``, O(1), a
key of the same slot) and refuses once that one stream holds the whole bound, so the bound
holds between two looks and costs no round trip. One busy account may use the whole queue.
Every other step still appends: the streams may pass the bound by the records of the calls
that were up, never lose one.

The record queue is read with XREADGROUP across all shards' streams in one command (on Redis
Cluster the reader would have to issue it per node); records are acknowledged and deleted
together (``ack.lua``), so the stream length is the queue depth.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import time
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import msgpack
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from balances.engine import (
    AmountOutOfRange,
    check_ledger,
    check_limits,
    check_step,
    marker_digest,
    needs_queue_room,
    reads_marker,
)
from balances.model import (
    AccountKind,
    AccountLimits,
    AccountState,
    AccountStatus,
    DenyReason,
    LedgerKind,
    LedgerResult,
    OpenSession,
    QueuedRecord,
    RecordKind,
    Step,
    StepGate,
    StepKind,
    StepResult,
    StepStatus,
)
from balances.settings import RedisStoreSettings
from balances.store import BackendUnavailable

Command = tuple[Any, ...]

_UNAVAILABLE_ERRORS = (
    "BUSY",
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "OOM",
    "TRYAGAIN",
)
_STATUS = {s.value.encode(): s for s in StepStatus}
_REASON: dict[str, DenyReason | None] = {r.value: r for r in DenyReason}
_REASON[""] = None
_KINDS = {k.value.encode(): k for k in AccountKind}
_STATUSES = {s.value.encode(): s for s in AccountStatus}
_RECORD_KINDS = {k.value.encode(): k for k in RecordKind}
_RECORD_FIELDS = [b"k", b"a", b"m", b"b", b"t", b"p"]
"""The fields of a record stream entry, in the order ``append_record`` (common.lua) writes."""
_ACCOUNT_FIELDS = (
    "bal",
    "held",
    "kind",
    "status",
    "credit",
    "dcap",
    "mcap",
    "dkey",
    "dspent",
    "mkey",
    "mspent",
    "sess",
    "maxs",
)
_SESSION_FIELDS = ("acct", "sid", "open", "ver", "dl", "state", "holds")
_ACK_CHUNK = 1000
MARKER_HOUR_MS = 3_600_000
"""Closed markers are filed in one hash per shard, slice and hour."""


@dataclass(frozen=True, slots=True)
class _Script:
    name: str
    body: bytes
    sha: str


def _load_script(name: str, common: str) -> _Script:
    text = importlib.resources.files("balances").joinpath("lua", f"{name}.lua").read_text("utf-8")
    body = f"#!lua\n{common}\n{text}".encode()
    return _Script(name, body, hashlib.sha1(body).hexdigest())


@dataclass(frozen=True, slots=True)
class LuaGate:
    """The Lua function a gated HOLD runs first.

    ``source`` defines ``function(keys, kbase, argv, abase)``, named ``function``, which reads
    its keys from ``keys[kbase + 1]`` and its arguments from ``argv[abase + 1]`` and returns a
    table whose first element is how many checks tripped (the hold runs only when it is 0).
    """

    source: str
    function: str


_GATED_HOLD = """
local function hold_step()
{hold}
end

-- KEYS: the hold's four, then the gate's, then the hold's marker hashes; ARGV: the hold's,
-- the gate's, then the number of the hold's (where the gate's begin).
local gate = {function}(KEYS, 4, ARGV, tonumber(ARGV[#ARGV]))
if gate.err then
  return gate
end
if gate[1] > 0 then
  return {{'gated', '', '', '', gate}}
end
local reply = hold_step()
if reply.err then
  return reply
end
reply[5] = gate
return reply
"""


def _scripts(gate: LuaGate | None = None) -> dict[str, _Script]:
    files = importlib.resources.files("balances")
    text = files.joinpath("lua", "common.lua").read_text("utf-8")
    names = ("hold", "close", "event", "ledger", "put_account", "ack")
    scripts = {name: _load_script(name, text) for name in names}
    if gate is not None:
        hold = files.joinpath("lua", "hold.lua").read_text("utf-8")
        wrapped = _GATED_HOLD.format(hold=hold, function=gate.function)
        body = f"#!lua\n{text}\n{gate.source}\n{wrapped}".encode()
        scripts["hold_gated"] = _Script("hold_gated", body, hashlib.sha1(body).hexdigest())
    return scripts


def _pack_command(command: Command) -> bytes:
    """RESP encoding of one command, in C (redis-py's own packer costs ~10x more)."""
    packed: bytes = hiredis.pack_command(command)
    return packed


def _escape(account_id: str) -> str:
    return account_id.replace("%", "%25").replace(":", "%3A")


@dataclass(slots=True)
class _Waiting:
    """Commands waiting for a connection: encoded, how many, and who waits for the reply."""

    packed: bytes
    commands: int
    future: asyncio.Future[Any] | None


class _Pipeliner:
    """Sends the commands of concurrent callers in one write per loop turn and connection.

    A caller queues a group of commands (sent back to back, never split across writes) and
    awaits the reply of the first; ``send`` queues commands whose replies nobody waits for.
    """

    def __init__(
        self,
        connections: list[AbstractConnection],
        max_batch: int,
        max_waiting: int,
        timeout_s: float,
    ) -> None:
        self._connections = connections
        self._max_waiting = max_waiting
        self._idle = list(connections)
        self._queue: deque[_Waiting] = deque()
        self._scheduled = False
        self._max_batch = max_batch
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.round_trips = 0
        """Writes sent (each answered in one round trip), for benches and tests."""
        self.commands = 0
        self.closed = False

    def call(self, *commands: Command) -> asyncio.Future[Any]:
        """Queue commands; the future gets the first one's reply (or its error).

        The commands are encoded here, so an argument Redis cannot take fails its own
        caller (``TypeError``), never the batch it would have joined.
        """
        if self.closed:
            raise BackendUnavailable("the balance store is closed")
        if len(self._queue) >= self._max_waiting:
            raise BackendUnavailable(f"more than {self._max_waiting} steps wait for Redis")
        packed = b"".join(map(_pack_command, commands))
        # One loop lookup per pipeliner: in CPython 3.11 every get_running_loop() is a getpid()
        # system call (fork detection), which showed in profiles of the call path.
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Waiting(packed, len(commands), future))
        if len(self._queue) >= self._max_batch:
            self._dispatch()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def send(self, *commands: Command) -> None:
        """Queue commands nobody waits for (errors ignored); they go with the next batch.

        Nothing is flushed for them alone, so they cost no round trip of their own;
        ``close`` sends what is left.
        """
        if self.closed or len(self._queue) >= self._max_waiting:
            return
        packed = b"".join(map(_pack_command, commands))
        self._queue.append(_Waiting(packed, len(commands), None))

    def _flush(self) -> None:
        self._scheduled = False
        self._dispatch()

    def _dispatch(self) -> None:
        queue = self._queue
        while queue and self._idle:
            connection = self._idle.pop()
            batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
            loop = self._loop or asyncio.get_running_loop()
            task = loop.create_task(self._run(connection, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, connection: AbstractConnection, batch: list[_Waiting]) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.send_packed_command(
                    b"".join([waiting.packed for waiting in batch]), check_health=False
                )
                self.round_trips += 1
                for waiting in batch:
                    self.commands += waiting.commands
                    first: Any = None
                    for index in range(waiting.commands):
                        try:
                            reply = await connection.read_response()
                        except ResponseError as error:
                            reply = error
                        if index == 0:
                            first = reply
                    future = waiting.future
                    if future is not None and not future.done():
                        if isinstance(first, ResponseError):
                            future.set_exception(first)
                        else:
                            future.set_result(first)
        except BaseException as exc:
            # The connection's state is unknown: drop it (it reconnects on its next use).
            await connection.disconnect(nowait=True)
            failure = BackendUnavailable(f"Redis: {exc!r}")
            failure.__cause__ = exc
            for waiting in batch:
                if waiting.future is not None and not waiting.future.done():
                    waiting.future.set_exception(failure)
            if not isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
                raise
        finally:
            self._idle.append(connection)
            if self._queue and not self.closed:
                self._dispatch()

    async def close(self) -> None:
        """Send what is queued, let the batches in flight finish, close the connections."""
        if self._queue:
            self._dispatch()
        self.closed = True
        while self._queue:
            future = self._queue.popleft().future
            if future is not None and not future.done():
                future.set_exception(BackendUnavailable("the balance store is closed"))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout_s)
        for connection in self._connections:
            await connection.disconnect()


class _Keys:
    """Key names of one prefix and shard count."""

    def __init__(self, prefix: str, shards: int) -> None:
        self.shards = shards
        self.prefix = prefix
        self.tags = [f"{{{prefix}:{n}}}" for n in range(shards)]
        self.deadlines = [f"{tag}:deadlines" for tag in self.tags]
        self.records = [f"{tag}:records" for tag in self.tags]
        self.shard_of_stream = {name.encode(): n for n, name in enumerate(self.records)}

    def shard(self, account_id: str) -> int:
        return zlib.crc32(account_id.encode()) % self.shards

    def account(self, account_id: str) -> tuple[int, str, str]:
        """Shard, tag and escaped id of an account."""
        shard = zlib.crc32(account_id.encode()) % self.shards
        return shard, self.tags[shard], _escape(account_id)

    def index(self, session_id: str) -> str:
        return f"{self.prefix}:sidx:{session_id}"

    def markers(
        self, tag: str, digest: bytes, slices: int, first_ms: int, last_ms: int
    ) -> list[str]:
        """The marker hashes of a session's slice for the hours from ``first_ms`` to ``last_ms``."""
        piece = int.from_bytes(digest[:4], "big") % slices
        first, last = first_ms // MARKER_HOUR_MS, last_ms // MARKER_HOUR_MS
        return [f"{tag}:c:{hour}:{piece}" for hour in range(first, last + 1)]


def _unavailable(error: ResponseError) -> bool:
    return str(error).startswith(_UNAVAILABLE_ERRORS)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


class RedisBalanceStore:
    """The ``BalanceStore`` on a Redis server (the key layout is ready for Redis Cluster)."""

    def __init__(self, settings: RedisStoreSettings, *, gate: LuaGate | None = None) -> None:
        self.settings = settings
        self.gate = gate
        """The function a HOLD's ``StepGate`` runs (None: steps take no gate)."""
        self._keys = _Keys(settings.key_prefix, settings.shards)
        self._scripts = _scripts(gate)
        self._queue_bound = settings.max_record_queue
        self._queue_full = False
        self._queue_looked = -settings.queue_look_s
        self._queue_look: asyncio.Task[int] | None = None
        self._timeout_s = settings.timeout_ms / 1000
        pool = ConnectionPool.from_url(settings.url)
        kwargs = {
            **pool.connection_kwargs,
            "socket_timeout": None,
            "socket_connect_timeout": self._timeout_s,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
            "protocol": 2,
        }
        self._connection_class = pool.connection_class
        self._connection_kwargs = kwargs
        self._pipe = _Pipeliner(
            [pool.connection_class(**kwargs) for _ in range(settings.pool_size)],
            settings.max_batch,
            settings.max_waiting,
            self._timeout_s,
        )
        self._reader: AbstractConnection | None = None
        self._reader_lock = asyncio.Lock()
        self._groups_ready = False
        self._load_lock = asyncio.Lock()

    @property
    def round_trips(self) -> int:
        """Pipelined writes sent so far (each one round trip)."""
        return self._pipe.round_trips

    # -- calls -------------------------------------------------------------------------

    async def _call(self, *commands: Command) -> Any:
        try:
            return await self._pipe.call(*commands)
        except ResponseError as error:
            if _unavailable(error):
                raise BackendUnavailable(f"Redis: {error}") from error
            raise

    async def _eval(self, script: _Script, keys: Sequence[str], args: Iterable[Any]) -> Any:
        return await self._eval_with(script, (len(keys), *keys, *args))

    async def _eval_with(self, script: _Script, tail: Command, *extra: Command) -> Any:
        try:
            try:
                return await self._pipe.call(("EVALSHA", script.sha, *tail), *extra)
            except NoScriptError:
                await self._load_scripts()
                return await self._pipe.call(("EVALSHA", script.sha, *tail), *extra)
        except ResponseError as error:
            if str(error).startswith("OCSD_RANGE"):
                raise AmountOutOfRange(str(error)) from error
            if _unavailable(error):
                raise BackendUnavailable(f"Redis: {error}") from error
            raise

    async def _load_scripts(self) -> None:
        async with self._load_lock:
            for script in self._scripts.values():
                sha = await self._call(("SCRIPT", "LOAD", script.body))
                if sha.decode() != script.sha:
                    raise RuntimeError(f"Redis gave script {script.name} another sha1: {sha!r}")

    # -- accounts ----------------------------------------------------------------------

    async def put_account(self, limits: AccountLimits) -> None:
        """Create an account with a zero balance, or update the limits of an existing one."""
        check_limits(limits)
        _, tag, escaped = self._keys.account(limits.account_id)
        await self._eval(
            self._scripts["put_account"],
            (f"{tag}:a:{escaped}",),
            (
                limits.kind.value,
                limits.status.value,
                limits.credit_limit_micros,
                limits.daily_cap_micros,
                limits.monthly_cap_micros,
                limits.max_sessions,
            ),
        )

    async def get_account(self, account_id: str) -> AccountState | None:
        """Return an account's state, or None if the store does not know it."""
        _, tag, escaped = self._keys.account(account_id)
        v = await self._call(("HMGET", f"{tag}:a:{escaped}", *_ACCOUNT_FIELDS))
        if v[0] is None:
            return None
        return AccountState(
            account_id=account_id,
            kind=_KINDS[v[2]],
            status=_STATUSES[v[3]],
            balance_micros=int(v[0]),
            held_micros=int(v[1]),
            credit_limit_micros=_int(v[4]),
            daily_cap_micros=_int(v[5]),
            monthly_cap_micros=_int(v[6]),
            day_key=(v[7] or b"").decode(),
            day_spent_micros=_int(v[8]),
            month_key=(v[9] or b"").decode(),
            month_spent_micros=_int(v[10]),
            sessions=_int(v[11]),
            max_sessions=_int(v[12]),
        )

    # -- steps -------------------------------------------------------------------------

    def _room_bound(self, step: Step) -> int:
        """The record bound a step's script applies: the whole queue's, or -1 while the last
        look found the queue full (a new look starts when the last is ``queue_look_s`` old)."""
        bound = self._queue_bound
        if not bound or not needs_queue_room(step):
            return bound
        now = time.monotonic()
        if now - self._queue_looked >= self.settings.queue_look_s and self._queue_look is None:
            self._queue_looked = now
            self._queue_look = asyncio.ensure_future(self.queue_depth())
            self._queue_look.add_done_callback(self._looked)
        return -1 if self._queue_full else bound

    def _looked(self, task: asyncio.Task[int]) -> None:
        self._queue_look = None
        if not task.cancelled():
            task.exception()  # an unreachable store keeps the last look; steps fail anyway

    async def step(self, step: Step) -> StepResult:
        """Run one atomic step (hold, close or event): one script call, one round trip."""
        check_step(step)
        shard, tag, escaped = self._keys.account(step.account_id)
        account_key = f"{tag}:a:{escaped}"
        session_key = f"{tag}:s:{escaped}:{step.session_id}"
        kind = step.kind
        extra: tuple[Command, ...] = ()
        digest = b""
        marker_keys: list[str] = []
        if kind is StepKind.HOLD:
            if reads_marker(step):
                digest = marker_digest(step.account_id, step.session_id)
                marker_keys = self._keys.markers(
                    tag,
                    digest,
                    self.settings.closed_slices,
                    step.now_ms - step.closed_ttl_ms,
                    step.now_ms,
                )
            args: list[Any] = [
                step.account_id,
                step.session_id,
                step.request_number,
                step.now_ms,
                step.day_key,
                step.month_key,
                b"1" if step.new_session else b"0",
                b"" if step.expected_version is None else step.expected_version,
                step.deadline_ms,
                step.state,
                step.context,
                self._room_bound(step),
                digest,
                len(marker_keys),
                len(step.holds),
            ]
            for hold in step.holds:
                args += (hold.key, hold.desired_micros, hold.min_micros, hold.keep_micros)
            args.append(len(step.bundle_holds))
            for bundle in step.bundle_holds:
                args += (
                    bundle.bundle_id,
                    bundle.period_key,
                    bundle.allowance_s,
                    bundle.desired_s,
                    bundle.keep_s,
                )
            hold_keys = (
                account_key,
                session_key,
                self._keys.deadlines[shard],
                self._keys.records[shard],
            )
            script = self._scripts["hold"]
            if step.gate is None:
                args = [4 + len(marker_keys), *hold_keys, *marker_keys, *args]
            else:
                script = self._scripts.get("hold_gated", script)
                if script.name != "hold_gated":
                    raise ValueError("this store was built without a gate")
                args = self._gated(hold_keys, marker_keys, args, step.gate, tag)
            if step.new_session:
                extra = (
                    (
                        "SET",
                        self._keys.index(step.session_id),
                        step.account_id,
                        "PX",
                        self.settings.session_index_ttl_ms,
                    ),
                )
        else:
            marker_ttl_ms = 0
            if step.closed_ttl_ms:
                digest = marker_digest(step.account_id, step.session_id)
                oldest = step.now_ms - step.closed_ttl_ms if step.orphan_stop else step.now_ms
                marker_keys = self._keys.markers(
                    tag, digest, self.settings.closed_slices, oldest, step.now_ms
                )
                hour_end = (step.now_ms // MARKER_HOUR_MS + 1) * MARKER_HOUR_MS
                marker_ttl_ms = (
                    hour_end - step.now_ms + step.closed_ttl_ms + self.settings.tombstone_grace_ms
                )
            if kind is StepKind.CLOSE:
                args = [
                    4 + len(marker_keys),
                    account_key,
                    session_key,
                    self._keys.deadlines[shard],
                    self._keys.records[shard],
                    *marker_keys,
                    step.account_id,
                    step.request_number,
                    step.now_ms,
                    step.day_key,
                    step.month_key,
                    b"" if step.expected_version is None else step.expected_version,
                ]
                script = self._scripts["close"]
            else:
                args = [
                    3 + len(marker_keys),
                    account_key,
                    session_key,
                    self._keys.records[shard],
                    *marker_keys,
                    step.account_id,
                    step.request_number,
                    step.now_ms,
                    step.day_key,
                    step.month_key,
                ]
                script = self._scripts["event"]
            args += (step.debit_micros,)
            if kind is StepKind.EVENT:
                args.append(b"1" if step.require_funds else b"0")
            args += (
                step.record,
                step.context,
                step.tombstone_ttl_ms,
                self.settings.tombstone_grace_ms,
                digest,
                marker_ttl_ms,
            )
            if kind is StepKind.EVENT:
                args += (b"1" if step.orphan_stop else b"0", self._room_bound(step))
            args.append(len(step.bundle_used_s))
            for used in step.bundle_used_s:
                args += used
        reply = await self._eval_with(script, tuple(args), *extra)
        result = self._result(reply, step)
        if kind is StepKind.CLOSE:
            if result.status is StepStatus.OK:
                self._pipe.send(("DEL", self._keys.index(step.session_id)))
        elif step.new_session and kind is StepKind.HOLD:
            status = result.status
            if status in (
                StepStatus.UNKNOWN_SESSION,
                StepStatus.ALREADY_CLOSED,
                StepStatus.GATED,
            ) or (status is StepStatus.DENIED and result.reason is not DenyReason.SESSION_EXISTS):
                self._pipe.send(("DEL", self._keys.index(step.session_id)))
        return result

    @staticmethod
    def _gated(
        hold_keys: Sequence[str],
        marker_keys: Sequence[str],
        hold_args: list[Any],
        gate: StepGate,
        tag: str,
    ) -> list[Any]:
        """The HOLD's script arguments with the gate's keys and arguments folded in (the
        marker hashes stay last in KEYS, where the hold looks for them)."""
        prefix = tag + ":"
        for key in gate.keys:
            if not key.startswith(prefix):
                raise ValueError(f"gate key {key!r} is outside the account's slot {tag}")
        return [
            len(hold_keys) + len(gate.keys) + len(marker_keys),
            *hold_keys,
            *gate.keys,
            *marker_keys,
            *hold_args,
            *gate.args,
            len(hold_args),
        ]

    @staticmethod
    def _result(reply: list[Any], step: Step) -> StepResult:
        if len(reply) > 4:
            gate: tuple[int, ...] = tuple([int(v) for v in reply[4]])
            if reply[0] == b"gated":
                return StepResult(StepStatus.GATED, gate=gate)
            reply = reply[:4]
        else:
            gate = ()
        status_name, packed, state, context = reply
        status = _STATUS[status_name]
        (_, reason, holds, hold_reasons, bundle_holds, debited, balance, available, version) = (
            msgpack.unpackb(packed)
        )
        if status is StepStatus.OK:
            context = step.context
        return StepResult(
            status=status,
            reason=_REASON[reason],
            holds=tuple(holds),
            hold_reasons=tuple([_REASON[r] for r in hold_reasons]),
            bundle_holds=tuple(bundle_holds),
            debited_micros=debited,
            balance_micros=balance,
            available_micros=available,
            context=context,
            session_state=state,
            version=version,
            gate=gate,
        )

    async def ledger(
        self,
        account_id: str,
        kind: LedgerKind,
        amount_micros: int,
        idempotency_key: str,
        record: bytes,
        now_ms: int,
    ) -> LedgerResult:
        """Credit (or, negative, debit) an account outside calls and queue its ledger record."""
        check_ledger(account_id, amount_micros, idempotency_key, now_ms)
        shard, tag, escaped = self._keys.account(account_id)
        applied, duplicate, balance, reason = await self._eval(
            self._scripts["ledger"],
            (f"{tag}:a:{escaped}", f"{tag}:l:{escaped}", self._keys.records[shard]),
            (account_id, amount_micros, idempotency_key, record, now_ms),
        )
        return LedgerResult(bool(applied), bool(duplicate), int(balance), _REASON[reason.decode()])

    # -- sessions ----------------------------------------------------------------------

    async def get_session(self, account_id: str, session_id: str) -> OpenSession | None:
        """Return an open session of an account."""
        _, tag, escaped = self._keys.account(account_id)
        v = await self._call(("HMGET", f"{tag}:s:{escaped}:{session_id}", *_SESSION_FIELDS))
        return self._open_session(v, account_id, session_id)

    @staticmethod
    def _open_session(v: list[Any], account_id: str, session_id: str) -> OpenSession | None:
        if v[2] != b"1":
            return None
        holds = msgpack.unpackb(v[6]) if v[6] else {}
        return OpenSession(
            account_id=account_id,
            session_id=session_id,
            version=int(v[3]),
            deadline_ms=int(v[4]),
            state=v[5] or b"",
            holds=dict(holds) if holds else {},
        )

    async def find_session_account(self, session_id: str) -> str | None:
        """Return the account of an open session known only by its id (two round trips)."""
        found = await self._call(("GET", self._keys.index(session_id)))
        if found is None:
            return None
        account_id: str = found.decode()
        _, tag, escaped = self._keys.account(account_id)
        is_open = await self._call(("HGET", f"{tag}:s:{escaped}:{session_id}", "open"))
        return account_id if is_open == b"1" else None

    async def expired_sessions(self, now_ms: int, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions whose deadline has passed."""
        if limit <= 0:
            return []
        keys = self._keys
        found = await self._calls(
            ("ZRANGEBYSCORE", name, "-inf", now_ms, "WITHSCORES", "LIMIT", 0, limit)
            for name in keys.deadlines
        )
        return [s for s in await self._sessions(found, limit) if s.deadline_ms <= now_ms]

    async def count_open_sessions(self) -> int:
        """How many sessions are open, over every shard."""
        counts = await self._calls(("ZCARD", name) for name in self._keys.deadlines)
        return sum(int(c) for c in counts)

    async def open_sessions(self, limit: int) -> list[OpenSession]:
        """Return up to ``limit`` open sessions of every shard, soonest deadline first."""
        if limit <= 0:
            return []
        found = await self._calls(
            ("ZRANGE", name, 0, limit - 1, "WITHSCORES") for name in self._keys.deadlines
        )
        return await self._sessions(found, limit)

    async def _sessions(self, found: list[Any], limit: int) -> list[OpenSession]:
        """The sessions named in per-shard (key, deadline) replies, soonest first."""
        candidates: list[tuple[float, bytes]] = []
        for pairs in found:
            candidates.extend((float(pairs[i + 1]), pairs[i]) for i in range(0, len(pairs), 2))
        candidates.sort()
        del candidates[limit:]
        rows = await self._calls(("HMGET", key, *_SESSION_FIELDS) for _, key in candidates)
        sessions: list[OpenSession] = []
        for row in rows:
            if row[0] is None or row[1] is None:
                continue
            session = self._open_session(row, row[0].decode(), row[1].decode())
            if session is not None:
                sessions.append(session)
        return sessions

    async def _calls(self, commands: Iterable[Command]) -> list[Any]:
        """Several independent commands, sent together (one round trip when they fit a batch)."""
        futures = [self._pipe.call(command) for command in commands]
        try:
            return list(await asyncio.gather(*futures))
        except ResponseError as error:
            if _unavailable(error):
                raise BackendUnavailable(f"Redis: {error}") from error
            raise

    # -- record queue ------------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        group = self.settings.consumer_group
        results = await asyncio.gather(
            *(
                self._pipe.call(("XGROUP", "CREATE", name, group, "0", "MKSTREAM"))
                for name in self._keys.records
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, ResponseError) and "BUSYGROUP" in str(result):
                continue
            if isinstance(result, BaseException):
                raise result
        self._groups_ready = True

    async def read_records(
        self, consumer: str, count: int, block_ms: int, *, new_only: bool = False
    ) -> list[QueuedRecord]:
        """Return queued records not yet acknowledged (first those this consumer left).

        ``new_only``: only records no consumer was given yet, neither this consumer's pending
        ones nor any claimed from others: what a reader asks for while it still holds records
        it read before and has not acknowledged (a plain read would hand those back).
        """
        if count <= 0:
            return []
        try:
            return await self._read_records(consumer, count, block_ms, new_only)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._groups_ready = False
            return await self._read_records(consumer, count, block_ms, new_only)

    async def _read_records(
        self, consumer: str, count: int, block_ms: int, new_only: bool
    ) -> list[QueuedRecord]:
        await self._ensure_groups()
        streams = self._keys.records
        group = self.settings.consumer_group
        found: dict[str, QueuedRecord] = {}
        if not new_only:
            await self._read_group(consumer, group, streams, "0", count, found, 0)
        if len(found) < count and not new_only:
            claims = await self._calls(
                (
                    "XAUTOCLAIM",
                    name,
                    group,
                    consumer,
                    self.settings.claim_idle_ms,
                    "0-0",
                    "COUNT",
                    count - len(found),
                )
                for name in streams
            )
            for name, claim in zip(streams, claims, strict=True):
                self._collect([[name.encode(), claim[1]]], found, count)
        if len(found) < count:
            await self._read_group(consumer, group, streams, ">", count, found, block_ms)
        return list(found.values())

    async def _read_group(
        self,
        consumer: str,
        group: str,
        streams: Sequence[str],
        start: str,
        count: int,
        found: dict[str, QueuedRecord],
        block_ms: int,
    ) -> None:
        """XREADGROUP over the shard streams, each asked for its share of ``count``.

        COUNT applies to each stream of a multi-stream read: asking every shard for ``count``
        would move up to shards x count entries into this consumer's pending list, to be
        read again on every later call. Streams that gave their whole share are asked again
        for what is still missing (records concentrated on a few shards).
        """
        active = list(streams)
        positions = dict.fromkeys(streams, start)
        for _ in range(8):
            missing = count - len(found)
            if missing <= 0 or not active:
                return
            share = -(-missing // len(active))
            block = block_ms > 0 and not found and start == ">"
            command: Command = (
                "XREADGROUP",
                "GROUP",
                group,
                consumer,
                "COUNT",
                share,
                *(("BLOCK", block_ms) if block else ()),
                "STREAMS",
                *active,
                *(positions[name] for name in active),
            )
            reply = await (self._blocking(command, block_ms) if block else self._call(command))
            self._collect(reply, found, count)
            saturated: list[str] = []
            for stream, entries in reply or ():
                name = stream.decode() if isinstance(stream, bytes) else str(stream)
                if len(entries) >= share:
                    saturated.append(name)
                    if start != ">":
                        last = entries[-1][0]
                        positions[name] = last.decode() if isinstance(last, bytes) else last
            active = saturated

    async def _blocking(self, command: Command, block_ms: int) -> Any:
        """A blocking read, on a connection of its own so that it holds up no step."""
        async with self._reader_lock:
            if self._reader is None:
                self._reader = self._connection_class(**self._connection_kwargs)
            reader = self._reader
            try:
                async with asyncio.timeout(block_ms / 1000 + self._timeout_s):
                    await reader.send_command(*command, check_health=False)
                    return await reader.read_response()
            except ResponseError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                await reader.disconnect(nowait=True)
                raise BackendUnavailable(f"Redis: {exc!r}") from exc

    def _collect(self, reply: Any, found: dict[str, QueuedRecord], count: int) -> None:
        if not reply:
            return
        for stream, entries in reply:
            prefix = f"{self._keys.shard_of_stream[stream]}/"
            for entry_id, fields in entries:
                if fields is None or len(found) >= count:
                    # deleted meanwhile, or beyond what was asked (it stays pending for us)
                    continue
                record_id = prefix + entry_id.decode()
                if record_id in found:
                    continue
                # The fields in the order the scripts append them, else looked up by name.
                if fields[::2] == _RECORD_FIELDS:
                    kind, account, amount, balance, at, payload = fields[1::2]
                else:
                    values = dict(zip(fields[::2], fields[1::2], strict=True))
                    kind, account, amount, balance, at, payload = (
                        values[name] for name in _RECORD_FIELDS
                    )
                found[record_id] = QueuedRecord(
                    record_id,
                    _RECORD_KINDS[kind],
                    payload,
                    account.decode(),
                    int(amount),
                    int(balance),
                    int(at),
                )

    async def ack_records(self, records: Sequence[QueuedRecord]) -> None:
        """Remove records from the queue once they are stored for good."""
        by_shard: dict[int, list[str]] = {}
        for record in records:
            shard, _, entry_id = record.record_id.partition("/")
            by_shard.setdefault(int(shard), []).append(entry_id)
        script = self._scripts["ack"]
        group = self.settings.consumer_group
        await asyncio.gather(
            *(
                self._eval(script, (self._keys.records[shard],), (group, *ids[i : i + _ACK_CHUNK]))
                for shard, ids in by_shard.items()
                for i in range(0, len(ids), _ACK_CHUNK)
            )
        )

    async def queue_depth(self) -> int:
        """Return how many records wait in the queue (and note whether it is full)."""
        lengths = await self._calls(("XLEN", name) for name in self._keys.records)
        depth = int(sum(lengths))
        self._queue_full = bool(self._queue_bound) and depth >= self._queue_bound
        return depth

    async def close(self) -> None:
        """Finish the batches in flight and close the connections."""
        if self._queue_look is not None:
            self._queue_look.cancel()
        await self._pipe.close()
        if self._reader is not None:
            await self._reader.disconnect()
