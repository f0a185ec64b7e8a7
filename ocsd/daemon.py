"""The daemon: composition root, lifecycle, signals.

``serve`` builds every component from the configuration, starts them, and runs until SIGTERM
or SIGINT (a second signal exits at once). SIGHUP reads the configuration file again (see
``ocsd.reload``: what can change while running does, the rest is named in the log) and reloads
master data (tariffs, accounts, identities, routes, fraud rules) at once; master data changes
made with the CLI are also picked up by polling.

Start order: records database and master data, balance store, charging service, listeners,
background tasks (reaper, master-data poll, record writer). Shutdown order: stop accepting,
drain requests in flight with a deadline, stop background tasks, flush records, close stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from balances.model import AccountLimits, AccountStatus
from balances.store import BackendUnavailable, BalanceStore
from fraud.decision_sink import SqlDecisionLog
from fraud.engine import FraudEngine
from fraud.guard import FraudGuard
from fraud.metrics import MetricRegistry
from fraud.response import Responder
from fraud.webhook_sink import WebhookSender
from lcr.delivery import encode_diameter_routes, parse_route_query, radius_avpairs
from lcr.portability import PortabilityIndex
from lcr.quality_store import MemoryRoutingState, RedisRoutingState
from lcr.router import Router
from lcr.state import HotStoreUnavailable, refresh
from ocsd import cdr_service
from ocsd.charging import ChargingService, SessionView
from ocsd.config import Config
from ocsd.control_sink import ControlBus, ControlMessage
from ocsd.diameter_server import DiameterServer, raw_avps
from ocsd.directory import Directory
from ocsd.fraud_setup import (
    RecordsFraudActions,
    fraud_folds,
    load_fraud_engine,
    open_counter_store,
    refresh_fraud_engine,
)
from ocsd.http_server import HttpServer
from ocsd.lcr_store import LcrStore
from ocsd.logs import configure_logging, get_logger
from ocsd.master_store import MasterStore
from ocsd.metrics import Metrics, enable_multiprocess_metrics
from ocsd.radius_server import RadiusServer
from ocsd.reload import ReloadPlan, plan_reload, read_config
from ocsd.routing import Routing
from ocsd.schema import require_current, upgrade
from ocsd.sql_store import Database, redact
from ocsd.stores import open_balance_store
from ocsd.systemd_sink import Notifier
from ocsd.typed_yaml import ConfigError
from ocsd.workers import Supervisor, tell_supervisor
from rating.dialplan import DialPlan

log = get_logger("daemon")

DRAIN_DEADLINE_S = 10.0
METRICS_INTERVAL_S = 5.0


def open_records(config: Config) -> Database:
    """Open the records database; the embedded SQLite default migrates itself."""
    db = Database(config.records_url)
    if db.dialect == "sqlite":
        upgrade(db)
    else:
        require_current(db)
    return db


class MasterLoader:
    """Loads master data (and the routing catalog) in a thread, reusing what did not change."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._directory: Directory | None = None
        self._portability: PortabilityIndex | None = None
        self._portability_marker = -1
        self._router: Router | None = None

    def load_fraud(self, guard: FraudGuard | None, *, force: bool = False) -> FraudEngine:
        """The fraud engine (blocking); reuses the guard's if the rules did not change
        (``force``: the configured rules did)."""
        with open_records(self.config) as db:
            if guard is not None:
                refresh_fraud_engine(guard, self.config, db, force=force)
                return guard.engine
            return load_fraud_engine(self.config, db)

    def load(self) -> tuple[Directory, Router | None]:
        """A new directory and router (blocking: run it in a thread)."""
        config = self.config
        previous = self._directory.decks if self._directory is not None else None
        with open_records(config) as db:
            snapshot = MasterStore(db).snapshot(reuse=previous)
            directory = Directory(snapshot, DialPlan(config.rating.dial_plan))
            router = None
            if config.lcr.enabled:
                store = LcrStore(db)
                marker = store.portability_marker()
                if marker != self._portability_marker or self._portability is None:
                    self._portability = store.load_portability()
                    self._portability_marker = marker
                catalog = store.load_catalog(snapshot.decks, portability_index=self._portability)
                root = next((t for t in snapshot.tenants.values() if t.parent_id is None), None)
                router = Router(
                    catalog,
                    config.lcr,
                    fx=directory.rater.fx,
                    home_currency=root.currency if root else "USD",
                    # Decks that did not change keep their prefix index (seconds to build).
                    reuse=self._router,
                )
        self._directory = directory
        self._router = router
        return directory, router


def _blocked_since(before: Directory, after: Directory) -> list[str]:
    """Accounts active in ``before`` that are suspended or closed in ``after`` (directly or
    through their tenant)."""
    blocked: list[str] = []
    for account_id, account in after.accounts.items():
        old = before.accounts.get(account_id)
        if (
            old is not None
            and before.account_status(old) is AccountStatus.ACTIVE
            and after.account_status(account) is not AccountStatus.ACTIVE
        ):
            blocked.append(account_id)
    return blocked


def load_directory(config: Config) -> Directory:
    """Load master data into a new directory (blocking: run it in a thread)."""
    return MasterLoader(config).load()[0]


def master_marker(config: Config) -> int:
    """The master data change marker (blocking)."""
    with Database(config.records_url) as db:
        return MasterStore(db).change_marker()


class Server:
    """One daemon process."""

    def __init__(self, config: Config, config_path: Path | None, *, worker: int = 0) -> None:
        self.config = config
        self.config_path = config_path
        self.worker = worker
        self.metrics = Metrics()
        self.should_exit = asyncio.Event()
        self.started = asyncio.Event()
        self.directory: Directory | None = None
        self.loader = MasterLoader(config)
        self.routing: Routing | None = None
        self.fraud: FraudGuard | None = None
        self._fraud_parts: list[Any] = []
        self.store: BalanceStore | None = None
        self.control: ControlBus | None = None
        self.service: ChargingService | None = None
        self.radius: RadiusServer | None = None
        self.diameter: DiameterServer | None = None
        self.http: HttpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._synced_limits: dict[str, AccountLimits] = {}
        self._last_store_error = 0.0
        self.ready_fd: int | None = None
        """Set in worker processes: readiness and liveness go to the supervisor."""
        self.notifier = Notifier() if worker == 0 else Notifier("")
        self.terminators: list[Any] = []
        """Protocol servers that can end a live session: ``async terminate(view, reason)``."""
        self.extensions: list[Any] = []
        """Components added by other modules (record writer, Diameter server, ...): objects with
        ``async start(server)`` and ``async stop(server)``."""

    # -- master data ---------------------------------------------------------------------

    def current_directory(self) -> Directory:
        """The directory in force (swapped atomically on reload)."""
        assert self.directory is not None
        return self.directory

    async def _sync_limits(self, directory: Directory) -> None:
        """Push changed account limits and statuses to the balance store."""
        assert self.store is not None
        for account in directory.accounts.values():
            limits = account.limits(directory.tenant_suspended(account.tenant_id))
            if self._synced_limits.get(account.account_id) != limits:
                await self.store.put_account(limits)
                self._synced_limits[account.account_id] = limits

    async def reload(self, reason: str, *, fraud_changed: bool = False) -> bool:
        """Load master data again and swap it in; False if loading failed."""
        try:
            directory, router = await asyncio.to_thread(self.loader.load)
            await self._sync_limits(directory)
        except Exception:
            log.exception("reload failed; keeping the previous data", reason=reason)
            return False
        previous, self.directory = self.directory, directory
        if previous is not None and reason != "fraud action":
            # A fraud action that blocks an account ends its calls itself (when configured to).
            for account_id in _blocked_since(previous, directory):
                self._spawn(self._end_calls_of_blocked(account_id), "terminate")
        if self.routing is not None:
            # Calls in progress keep the routes they were offered; new calls get the new ones.
            self.routing.router = router
        if self.fraud is not None:
            try:
                await asyncio.to_thread(self.loader.load_fraud, self.fraud, force=fraud_changed)
            except Exception:
                log.exception("fraud rules not reloaded; keeping those in force")
        log.info(
            "master data loaded",
            reason=reason,
            marker=directory.marker,
            accounts=len(directory.accounts),
            decks=len(directory.decks),
        )
        return True

    async def _poll_master(self) -> None:
        while True:
            await asyncio.sleep(self.config.master_poll_s)
            try:
                marker = await asyncio.to_thread(master_marker, self.config)
            except Exception as exc:
                log.warning("master data poll failed", error=str(exc))
                continue
            if self.directory is not None and marker != self.directory.marker:
                await self.reload("changed")
            elif (
                self.routing is not None
                and self.routing.router is not None
                and time.time() >= self.routing.router.rates_change_at
            ):
                # A carrier rate started or ended: the route index is built on the rates in
                # force (calls meanwhile are routed right, deck by deck, only slower).
                await self.reload("carrier rates changed")

    async def _export_metrics(self) -> None:
        """Every few seconds: queue depth, CDR writer and fraud counters into /metrics."""
        while True:
            await asyncio.sleep(METRICS_INTERVAL_S)
            try:
                writers = [e.writer for e in self.extensions if getattr(e, "writer", None)]
                if writers:
                    self.metrics.sync_writer(writers[0].describe())
                elif self.store is not None:
                    self.metrics.queue_depth.set(await self.store.queue_depth())
                if self.fraud is not None:
                    self.metrics.sync_fraud(self.fraud.metrics.samples())
                if self.service is not None:
                    self.metrics.open_sessions.set(self.service.open_sessions)
                if self.store is not None and self.worker <= 1:
                    self.metrics.reservations.set(await self.store.count_open_sessions())
            except Exception as exc:
                log.debug("metrics export failed", error=str(exc))

    async def _keepalive(self) -> None:
        """Tell systemd (or the supervisor) that the event loop still turns."""
        interval = self.notifier.watchdog_interval_s or 2.0
        index = max(self.worker - 1, 0)
        while True:
            self.notifier.watchdog()
            tell_supervisor(self.ready_fd, f"alive:{index}")
            await asyncio.sleep(interval)

    async def _start_fraud(self) -> FraudGuard:
        """The fraud guard with its counters, responder, decision log and webhook."""
        config = self.config
        engine = await asyncio.to_thread(self.loader.load_fraud, None)
        metrics = MetricRegistry()
        webhook = WebhookSender.from_settings(config.fraud.webhook, metrics)
        if config.fraud.webhook.url:
            webhook.start()
        actions = RecordsFraudActions(
            config.records_url,
            terminate=self.terminate_sessions,
            alert=webhook.submit if config.fraud.webhook.url else None,
            on_change=self._after_fraud_change,
        )
        decisions = SqlDecisionLog(lambda: Database(config.records_url), config.node)
        responder = Responder(
            actions,
            decisions,
            metrics,
            cooldown_s=config.fraud.actions.cooldown_s,
            queue_size=config.fraud.actions.queue_size,
            node=config.node,
        )
        responder.start()
        counters = open_counter_store(config)
        guard = FraudGuard(
            engine,
            counters,
            responder,
            metrics,
            counter_failure=config.fraud.actions.counter_failure,
        )
        self._fraud_parts = [responder, webhook, decisions, actions]
        self._spawn(self._maintain_fraud(guard), "fraud-maintain")
        return guard

    async def _maintain_fraud(self, guard: FraudGuard) -> None:
        interval = self.config.fraud.counters.embedded_flush_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await guard.maintain()
            except Exception:
                log.exception("fraud counter maintenance failed")

    async def _after_fraud_change(self) -> None:
        """A fraud action changed master data (a suspension, a block): apply it now."""
        await self.reload("fraud action")

    async def _end_calls_of_blocked(self, account_id: str) -> None:
        try:
            await self.terminate_sessions(
                account_id, "account blocked", radius=self.worker <= 1, announce=False
            )
        except Exception:
            log.exception("ending the calls of a blocked account failed", account=account_id)

    async def terminate_sessions(
        self, account_id: str, reason: str, *, radius: bool = True, announce: bool = True
    ) -> int:
        """End an account's live calls: Diameter ASR or RADIUS Disconnect-Request each.

        Each worker reaches the Diameter peers connected to it: ``announce`` asks the other
        workers and nodes to do their part (over the control channel). ``radius`` false
        leaves the Disconnect-Requests to another worker, so that a NAS gets one.
        """
        if self.store is None:
            return 0
        if announce and self.control is not None:
            await self.control.publish(ControlMessage("terminate", account_id, reason))
        if self.fraud is not None:
            now_ms = int(time.time() * 1000)
            sessions = await self.fraud.store.live_sessions(account_id, now_ms)
        elif self.service is not None:
            sessions = [v.session_id for v in self.service.views_of_account(account_id)]
        else:
            return 0
        ended = 0
        for session_id in sessions:
            session = await self.store.get_session(account_id, session_id)
            if session is None:
                continue
            view = SessionView.decode(session.state)
            for terminator in self.terminators:
                if not radius and terminator is self.radius:
                    continue
                if await terminator.terminate(view, reason):
                    ended += 1
                    break
        if ended or radius:
            log.info("sessions terminated", account=account_id, reason=reason, count=ended)
        return ended

    async def _on_control(self, message: ControlMessage) -> None:
        """Another worker or node asks this one to act on the peers connected to it."""
        if message.kind == "terminate":
            await self.terminate_sessions(
                message.account_id, message.reason, radius=False, announce=False
            )
        elif message.kind == "reauthorize" and self.diameter is not None:
            await self.diameter.reauthorize_account(message.account_id)

    async def _http_route(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET /v1/route``: ranked routes for a call, nothing held."""
        if self.routing is None:
            return 503, {"error": "routing is not enabled (lcr.enabled)"}
        try:
            query = parse_route_query(params)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        status, body = self.routing.query(self.current_directory(), query, time.time())
        return status, dict(body)

    async def _http_reauthorize(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Ask the switches to re-authorize an account's sessions (after a top-up)."""
        account_id = params["account_id"]
        sent = 0
        if self.diameter is not None:
            sent = await self.diameter.reauthorize_account(account_id)
        if self.control is not None:
            await self.control.publish(ControlMessage("reauthorize", account_id))
        return 200, {"account": account_id, "reauthorized": sent}

    async def _refresh_quality(self) -> None:
        assert self.routing is not None
        routing = self.routing
        interval = self.config.lcr.quality.refresh_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await refresh(routing.state, routing.board, self.config.lcr, time.time())
            except HotStoreUnavailable as exc:
                log.warning("quality refresh: routing state unavailable", error=str(exc))
            except Exception:
                log.exception("quality refresh failed")

    async def _reap(self) -> None:
        assert self.service is not None
        interval = self.config.charging.reap_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                ended = await self.service.reap()
            except BackendUnavailable as exc:
                log.warning("reaper: store unavailable", error=str(exc))
                continue
            except Exception:
                log.exception("reaper failed")
                continue
            if ended:
                self.metrics.reaped.inc(ended)

    # -- readiness -----------------------------------------------------------------------

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether this worker can serve: listeners up, store and records reachable."""
        details: dict[str, str] = {}
        ok = self.started.is_set()
        details["started"] = "yes" if ok else "no"
        if self.store is not None:
            try:
                await asyncio.wait_for(self.store.queue_depth(), 2.0)
                details["hot_store"] = "ok"
            except Exception as exc:
                ok = False
                details["hot_store"] = f"error: {exc}"
        try:
            await asyncio.wait_for(asyncio.to_thread(master_marker, self.config), 5.0)
            details["records"] = "ok"
        except Exception as exc:
            ok = False
            details["records"] = f"error: {exc}"
        return ok, details

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        """Open stores, load master data, start listeners and background tasks."""
        config = self.config
        config.data_path.mkdir(parents=True, exist_ok=True)
        directory, router = await asyncio.to_thread(self.loader.load)
        self.directory = directory
        self.store = open_balance_store(config)
        await self._sync_limits(directory)
        if config.stores.hot_url != "embedded":
            self.control = ControlBus(config.stores.hot_url, config.stores.redis_key_prefix)
            self.control.start(self._on_control)
        if config.lcr.enabled:
            state = (
                MemoryRoutingState(config.lcr)
                if config.stores.hot_url == "embedded"
                else RedisRoutingState.from_url(
                    config.stores.hot_url,
                    config.lcr,
                    key_prefix=config.stores.redis_key_prefix,
                    timeout_s=config.stores.redis_timeout_ms / 1000,
                )
            )
            self.routing = Routing(config.lcr, state)
            self.routing.router = router
        if config.fraud.enabled:
            self.fraud = await self._start_fraud()
        self.service = ChargingService(
            config.charging,
            self.store,
            self.current_directory,
            node=config.node,
            routing=self.routing,
            fraud=self.fraud,
            fold_fraud=fraud_folds(self.store, self.fraud),
        )
        self.service.observe_store = self.metrics.observe_store
        reuse = self.worker > 0
        if config.radius.enabled:
            self.radius = RadiusServer(config.radius, self.service, self.metrics)
            if config.lcr.enabled and config.lcr.delivery.radius_routes:
                radius_format = config.lcr.delivery.radius_format
                self.radius.route_avpairs = lambda decision, granted: radius_avpairs(
                    decision, radius_format, granted
                )
            await self.radius.start(reuse_port=reuse)
            self.terminators.append(self.radius)
        if config.diameter.enabled:
            self.diameter = DiameterServer(config.diameter, self.service, self.metrics)
            if config.lcr.enabled and config.lcr.delivery.diameter_routes:
                vendor = config.lcr.delivery.diameter_vendor_id
                self.diameter.answerer.route_avps = lambda grant: raw_avps(
                    encode_diameter_routes(grant.routes, vendor) if grant.routes else b""
                )
                self.diameter.route_vendor = vendor
            await self.diameter.start(reuse_port=reuse)
            self.terminators.append(self.diameter)
        for extension in self.extensions:
            await extension.start(self)
        if config.http.enabled:
            self.http = HttpServer(config.http, self.metrics, self.service, self.readiness)
            self.http.add_json_route("GET", "/v1/route", self._http_route)
            self.http.add_json_route(
                "POST", "/v1/accounts/{account_id}/reauthorize", self._http_reauthorize
            )
            await self.http.start(reuse_port=reuse)
        self._spawn(self._reap(), "reaper")
        if self.routing is not None:
            self._spawn(self._refresh_quality(), "quality-refresh")
        self._spawn(self._poll_master(), "master-poll")
        self._spawn(self._keepalive(), "keepalive")
        self._spawn(self._export_metrics(), "metrics")
        self.started.set()
        gc.collect()
        gc.freeze()
        self.notifier.ready(f"serving {len(directory.accounts)} accounts")
        tell_supervisor(self.ready_fd, f"ready:{max(self.worker - 1, 0)}")
        log.info(
            "started",
            node=config.node,
            worker=self.worker,
            config=str(self.config_path) if self.config_path else "<defaults>",
            records=redact(config.records_url),
            hot=redact(config.stores.hot_url),
            accounts=len(directory.accounts),
            decks=len(directory.decks),
        )

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.append(task)

    async def shutdown(self) -> None:
        """Stop accepting, drain, stop tasks, flush, close."""
        started = time.monotonic()
        self.notifier.stopping()
        if self.radius is not None:
            self.radius.stop_listening()
        if self.diameter is not None:
            self.diameter.stop_listening()
        for extension in reversed(self.extensions):
            with contextlib.suppress(Exception):
                await extension.stop_accepting(self)
        if self.radius is not None:
            await self.radius.drain(DRAIN_DEADLINE_S)
        if self.diameter is not None:
            # Answers what is in flight, then DPR to every peer and waits for DPA.
            await self.diameter.drain(DRAIN_DEADLINE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for extension in reversed(self.extensions):
            try:
                await extension.stop(self)
            except Exception:
                log.exception("stopping a component failed", component=type(extension).__name__)
        if self.http is not None:
            await self.http.close()
        if self.radius is not None:
            await self.radius.close()
        if self.diameter is not None:
            await self.diameter.close()
        if self.routing is not None:
            await self.routing.drain()
            await self.routing.state.close()
        if self.fraud is not None:
            await self.fraud.close()
            for part in self._fraud_parts:
                with contextlib.suppress(Exception):
                    await part.close()
        if self.control is not None:
            await self.control.close()
        if self.store is not None:
            await self.store.close()
        self.metrics.flush()
        log.info("stopped", seconds=round(time.monotonic() - started, 3))

    def handle_exit(self, signum: int) -> None:
        """First signal: graceful shutdown; second: exit at once."""
        if self.should_exit.is_set():
            log.warning("forced exit", signal=signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("shutting down", signal=signal.Signals(signum).name)
        self.should_exit.set()

    def handle_reload(self) -> None:
        """SIGHUP: reload master data now."""
        self._spawn(self._reload_once(), "reload")

    async def _reload_once(self) -> None:
        self.notifier.reloading()
        plan = await self.reload_configuration()
        await self.reload("SIGHUP", fraud_changed=plan is not None and plan.touches("fraud"))
        self.notifier.ready()

    async def reload_configuration(self) -> ReloadPlan | None:
        """Read the configuration file again and put in force what can change while
        running; name in the log what waits for a restart. None if nothing changed."""
        if self.config_path is None:
            return None
        try:
            new = await asyncio.to_thread(read_config, self.config_path)
            plan = plan_reload(self.config, new)
        except (ConfigError, OSError, ValueError) as exc:
            log.error("configuration not reloaded; keeping the one in force", error=str(exc))
            return None
        if plan.restart:
            log.warning("settings changed that take effect on restart", settings=plan.restart)
        if not plan.applied:
            return None
        config = self.config = self.loader.config = plan.config
        if self.service is not None:
            self.service.settings = config.charging
        if self.radius is not None:
            self.radius.reconfigure(config.radius)
        if self.diameter is not None:
            self.diameter.reconfigure(config.diameter)
        if self.routing is not None:
            self.routing.settings = config.lcr
        log.info("configuration reloaded", settings=plan.applied)
        return plan

    async def serve(self) -> None:
        """Run until told to stop."""
        loop = asyncio.get_running_loop()
        if self.worker:
            # Ctrl-C on a terminal reaches the whole process group; the supervisor passes
            # it on as SIGTERM, so a worker's own copy would count as a second signal.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for signum in (signal.SIGTERM,) if self.worker else (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.handle_exit, signum)
        loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
        try:
            await self.startup()
            await self.should_exit.wait()
        finally:
            await self.shutdown()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else the standard loop."""
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


ServerHook = Callable[[Server], None]
SERVER_HOOKS: list[ServerHook] = [cdr_service.install]
"""Called with each new ``Server`` before it starts (components register extensions here):
the CDR writer runs in the first worker unless ``cdr_writer.in_daemon`` is false."""


def tune_gc() -> None:
    """Fewer, cheaper garbage collections on the call path.

    Requests make many short-lived objects but few reference cycles (reference counting
    frees them), so the youngest generation is collected less often; the master data and
    code loaded at start are moved out of the collector's sight once ready (gc.freeze).
    """
    gc.set_threshold(20_000, 20, 20)


def run_server(config: Config, config_path: Path | None, worker: int, ready_fd: int | None) -> int:
    """Run one Server in this process until it stops."""
    tune_gc()
    server = Server(config, config_path, worker=worker)
    server.ready_fd = ready_fd
    for hook in SERVER_HOOKS:
        hook(server)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(server.serve())
    return 0


def worker_count(config: Config) -> int:
    """``workers`` from the configuration; 0 means one per core with Redis, one on the
    embedded hot store (whose fraud counters and carrier load live in each process)."""
    if config.workers:
        return config.workers
    if config.stores.hot_url == "embedded":
        return 1
    return os.cpu_count() or 1


def serve(config: Config, config_path: Path | None) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit status."""
    configure_logging(config.logging.level, config.logging.format)
    count = worker_count(config)
    if count == 1:
        return run_server(config, config_path, 0, None)
    if config.stores.hot_url == "embedded":
        log.warning(
            "several workers on the embedded hot store: balances are shared, but fraud "
            "velocity counters and carrier capacity are counted per worker; use Redis",
            workers=count,
        )
    metrics_dir = str(config.data_path / "metrics")
    enable_multiprocess_metrics(metrics_dir)
    current = [config]

    def reread() -> None:
        # Workers started after a reload run with what the others reloaded.
        if config_path is None:
            return
        with contextlib.suppress(ConfigError, OSError, ValueError):  # the workers log it
            current[0] = plan_reload(current[0], read_config(config_path)).config

    supervisor = Supervisor(
        count,
        lambda index, fd: run_server(current[0], config_path, index + 1, fd),
        metrics_dir=metrics_dir,
        on_reload=reread,
    )
    supervisor.stall_after_s = config.worker_stall_s
    log.info("starting workers", workers=count)
    return supervisor.run()
