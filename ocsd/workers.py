"""Worker processes: N copies of the daemon sharing the listening ports (SO_REUSEPORT).

The main process forks the workers before any event loop exists, then only supervises:

- a worker that dies is logged with its exit status and started again (after a back-off that
  grows while workers keep dying, so a broken configuration does not spin the machine);
- SIGTERM/SIGINT are passed on to every worker, which shut down gracefully; a second signal
  kills them; the main process exits when they are gone;
- SIGHUP is passed on (each worker reloads its master data).

Metrics: with several workers, prometheus_client's multiprocess mode aggregates every
worker's series in ``<data_dir>/metrics`` so that any worker answering ``/metrics`` reports
the whole node. Under systemd the main process forwards READY/STOPPING/WATCHDOG: workers
report readiness and liveness to it through a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ocsd.logs import get_logger
from ocsd.systemd_sink import Notifier

log = get_logger("workers")

MAX_BACKOFF_S = 30.0


STALL_AFTER_S = 30.0
"""A worker whose event loop has not reported for this long is killed and started again."""


@dataclass(slots=True)
class _Worker:
    index: int
    pid: int
    started: float
    alive: float


class Supervisor:
    """Forks and keeps ``count`` workers alive."""

    def __init__(
        self,
        count: int,
        run_worker: Callable[[int, int], int],
        *,
        notifier: Notifier | None = None,
        metrics_dir: str | None = None,
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self.count = count
        self.on_reload = on_reload
        self.run_worker = run_worker
        self.notifier = notifier or Notifier()
        self.metrics_dir = metrics_dir
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.forced = False
        self._backoff = 0.5
        self._ready_read, self._ready_write = os.pipe()
        self._ready: set[int] = set()
        self.stall_after_s = STALL_AFTER_S

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(self._ready_read)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            _stop_with(parent)
            code = 1
            try:
                os.environ["OCSD_WORKER_READY_FD"] = str(self._ready_write)
                code = self.run_worker(index, self._ready_write)
            except SystemExit as exc:
                code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
            except BaseException:
                log.exception("worker crashed", worker=index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        now = time.monotonic()
        self.workers[pid] = _Worker(index, pid, now, now)
        log.info("worker started", worker=index, pid=pid)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _on_exit_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            self.forced = True
            self._signal_all(signal.SIGKILL)
            return
        self.stopping = True
        self.notifier.stopping()
        log.info("stopping workers", signal=signal.Signals(signum).name)
        self._signal_all(signal.SIGTERM)

    def _on_hup(self, _signum: int, _frame: object) -> None:
        log.info("reloading workers")
        if self.on_reload is not None:
            self.on_reload()
        self._signal_all(signal.SIGHUP)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if self.metrics_dir:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            code = os.waitstatus_to_exitcode(status)
            self._ready.discard(worker.index)
            if self.stopping:
                log.info("worker stopped", worker=worker.index, pid=pid, status=code)
                continue
            lived = time.monotonic() - worker.started
            log.error(
                "worker died", worker=worker.index, pid=pid, status=code, lived_s=round(lived, 1)
            )
            if lived > 60:
                self._backoff = 0.5
            time.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            self._spawn(worker.index)

    def _read_ready(self) -> None:
        import select

        readable, _, _ = select.select([self._ready_read], [], [], 0.5)
        if not readable:
            return
        data = os.read(self._ready_read, 4096)
        for message in data.decode(errors="replace").split("\n"):
            kind, _, index = message.partition(":")
            if kind == "ready" and index.isdigit():
                self._ready.add(int(index))
                if len(self._ready) == self.count:
                    self.notifier.ready(f"{self.count} workers")
            elif kind == "alive" and index.isdigit():
                for worker in self.workers.values():
                    if worker.index == int(index):
                        worker.alive = time.monotonic()

    def _check_stalls(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if not self.stopping and now - worker.alive > self.stall_after_s:
                log.error(
                    "worker stalled; killing it",
                    worker=worker.index,
                    pid=worker.pid,
                    silent_s=round(now - worker.alive, 1),
                )
                worker.alive = now
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)

    def run(self) -> int:
        """Start the workers and supervise them until they all stopped; return the status."""
        if self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            os.makedirs(self.metrics_dir, exist_ok=True)
        signal.signal(signal.SIGTERM, self._on_exit_signal)
        signal.signal(signal.SIGINT, self._on_exit_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        for index in range(self.count):
            self._spawn(index)
        while self.workers:
            with contextlib.suppress(InterruptedError):
                self._read_ready()
            self._reap()
            self._check_stalls()
            # The main process's own loop is what systemd's watchdog watches; stalled
            # workers are handled above.
            self.notifier.watchdog()
        log.info("all workers stopped")
        return 1 if self.forced else 0


def tell_supervisor(fd: int | None, message: str) -> None:
    """Send ``ready:<index>`` or ``alive:<index>`` to the main process (no-op without one)."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, (message + "\n").encode())


PR_SET_PDEATHSIG = 1


def _stop_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the main process dies (Linux): a main
    process killed outright (SIGKILL, the OOM killer) leaves no worker holding the ports and
    answering with a configuration nobody supervises. The worker then shuts down as on any
    SIGTERM (drains, says goodbye to its peers)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # gone already, before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
