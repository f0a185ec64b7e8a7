"""The daemon: composition root, lifecycle, signals.

``serve`` builds every component from the configuration, starts them, and runs until SIGTERM
or SIGINT (a second signal exits at once). SIGHUP reloads the configuration and master data.
Shutdown order: stop listening, drain requests in flight with a deadline, flush records,
close stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from ocsd.config import Config
from ocsd.directory import Directory
from ocsd.logs import configure_logging, get_logger
from ocsd.master_store import MasterStore
from ocsd.schema import require_current, upgrade
from ocsd.sql_store import Database, redact
from rating.dialplan import DialPlan

log = get_logger("daemon")


def open_records(config: Config) -> Database:
    """Open the records database; the embedded SQLite default migrates itself."""
    db = Database(config.records_url)
    if db.dialect == "sqlite":
        upgrade(db)
    else:
        require_current(db)
    return db


class Server:
    """One daemon process."""

    def __init__(self, config: Config, config_path: Path | None) -> None:
        self.config = config
        self.config_path = config_path
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.directory: Directory | None = None
        self._db: Database | None = None

    def load_directory(self) -> Directory:
        """Load master data into a new directory."""
        assert self._db is not None
        snapshot = MasterStore(self._db).snapshot()
        return Directory(snapshot, DialPlan(self.config.rating.dial_plan))

    async def startup(self) -> None:
        """Open stores and load master data."""
        self.config.data_path.mkdir(parents=True, exist_ok=True)
        self._db = open_records(self.config)
        self.directory = self.load_directory()
        log.info(
            "started",
            node=self.config.node,
            config=str(self.config_path) if self.config_path else "<defaults>",
            records=redact(self.config.records_url),
            hot=self.config.stores.hot_url,
            accounts=len(self.directory.accounts),
            decks=len(self.directory.decks),
        )

    async def shutdown(self) -> None:
        """Stop everything in order."""
        if self._db is not None:
            self._db.close()
        log.info("stopped")

    def handle_exit(self, signum: int) -> None:
        """First signal: graceful shutdown; second: exit at once."""
        if self.should_exit.is_set():
            self.force_exit = True
            log.warning("forced exit", signal=signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("shutting down", signal=signal.Signals(signum).name)
        self.should_exit.set()

    def handle_reload(self) -> None:
        """SIGHUP: reload master data."""
        try:
            self.directory = self.load_directory()
            log.info("reloaded", accounts=len(self.directory.accounts))
        except Exception:
            log.exception("reload failed; keeping the previous data")

    async def serve(self) -> None:
        """Run until told to stop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.handle_exit, signum)
        loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
        await self.startup()
        try:
            await self.should_exit.wait()
        finally:
            await self.shutdown()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)


def _new_loop() -> asyncio.AbstractEventLoop:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve(config: Config, config_path: Path | None) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit status."""
    configure_logging(config.logging.level, config.logging.format)
    server = Server(config, config_path)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(server.serve())
    return 0
