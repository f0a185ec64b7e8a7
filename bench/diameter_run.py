"""Run the Diameter load against a fresh ``ocsd serve`` (or the no-op answerer) and clean up.

    python bench/diameter_run.py --target redis --sweep 64,256,1024 --repeat 3 --seconds 8 \\
        --half-rate --profile 10 [--json]

``--target``:

- ``redis`` / ``embedded``: in a temporary directory, the master data of
  ``tests/ocsd/world.py`` (``--accounts N`` adds N prepaid accounts with their own E.164
  numbers, which the calls are then spread over; else every call is alice's), a configuration
  with ``workers: 1``, Diameter on a free port, RADIUS off, fraud off, and for ``redis``
  ``stores.hot_url: redis://127.0.0.1:6379/0`` under a unique key prefix; ``ocsd serve`` is
  started, every account topped up through the balance store's ``ledger``, the load run, the
  daemon stopped with SIGTERM and, for ``redis``, every key under the prefix deleted (keys are
  deleted by prefix only: the Redis is shared).
- ``noop``: ``bench/diameter_noop.py`` (our codec and peer state machine, no charging).
- ``raw``: ``bench/diameter_noop.py --raw`` (a canned answer): the load generator's ceiling.

Each concurrency of ``--sweep`` is run ``--repeat`` times and the best CCR/s kept (other
processes share the machine; the load average is printed with each run). ``--half-rate``
then runs at a fixed rate of half the best CCR/s, for the latency there. ``--profile S`` runs
py-spy on the server for S seconds during one more run at the best concurrency and prints the
top frames by own and by inclusive time (percent of the samples in which the server was
not idle). The load options (``--peers``, ``--updates``, ...) are those of
``diameter_load.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Sibling modules, after the repository root (bench/fraud.py must not hide the fraud package).
sys.path.append(str(Path(__file__).resolve().parent))

import diameter_load

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = "redis://127.0.0.1:6379/0"
# Runs `ocsd` from this checkout only: an editable install of another checkout (a shared
# virtualenv) would otherwise supply the modules this one lacks, e.g. optional CLI commands.
DAEMON = (
    "import sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in repr(f)]; "
    "from ocsd.cli import main; sys.argv[0] = 'ocsd'; sys.exit(main())"
)
TOPUP_MICROS = 10**13
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


class Target:
    """A server to load: started in __enter__, stopped and cleaned in __exit__."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.prefix = f"ocsdbench{uuid.uuid4().hex[:10]}"
        self.subscribers: list[str] = ["441632960001"]
        self.log = workdir / "server.log"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Target:
        if self.args.target in ("noop", "raw"):
            self._start_noop()
        else:
            self._start_daemon()
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.args.target == "redis":
            left = delete_prefix(self.prefix)
            print(f"# deleted the Redis keys under {self.prefix} ({left} left)", file=sys.stderr)

    def _start_noop(self) -> None:
        command = [sys.executable, str(ROOT / "bench" / "diameter_noop.py"), "--port", "0"]
        if self.args.target == "raw":
            command.append("--raw")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening "):
            raise SystemExit(f"the no-op answerer did not start: {line}")
        self.port = int(line.split()[1])

    def _start_daemon(self) -> None:
        from tests.ocsd.world import build_master

        data = self.workdir / "data"
        data.mkdir()
        build_master(data / "ocsd.sqlite3")
        if self.args.accounts:
            self.subscribers = add_accounts(data / "ocsd.sqlite3", self.args.accounts)
        http = free_port()
        hot = REDIS_URL if self.args.target == "redis" else "embedded"
        config = self.workdir / "ocsd.yaml"
        config.write_text(
            f"data_dir: {data}\n"
            "workers: 1\n"
            "logging: {level: warning, format: json}\n"
            f"stores: {{hot_url: '{hot}', redis_key_prefix: {self.prefix}}}\n"
            "fraud: {enabled: false}\n"
            "radius: {enabled: false}\n"
            # As in production: the CDR writer is its own service, not in the worker whose
            # CPU per CCR is measured here (the queue simply grows during the run).
            "cdr_writer: {in_daemon: false}\n"
            f"http: {{port: {http}}}\n"
            f"diameter: {{port: {self.port}}}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OCSD_DATA_DIR": str(data)}
        env.pop("OCSD_CONFIG", None)
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-c", DAEMON, "serve", "--config", str(config)],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"ocsd exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"ocsd not ready: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        accounts = ["alice"] + [f"bench-{n}" for n in range(self.args.accounts)]
        asyncio.run(self._topup(data, accounts))

    async def _topup(self, data: Path, accounts: list[str]) -> None:
        from balances.model import LedgerKind
        from balances.store import BalanceStore

        store: BalanceStore
        if self.args.target == "redis":
            from balances.redis_store import RedisBalanceStore
            from balances.settings import RedisStoreSettings

            store = RedisBalanceStore(RedisStoreSettings(url=REDIS_URL, key_prefix=self.prefix))
        else:
            from balances.embedded_store import EmbeddedBalanceStore

            store = EmbeddedBalanceStore(str(data / "hot.sqlite3"))
        try:
            for account in accounts:
                result = await store.ledger(
                    account,
                    LedgerKind.TOPUP,
                    TOPUP_MICROS,
                    uuid.uuid4().hex,
                    b"bench top-up",
                    int(time.time() * 1000),
                )
                assert result.applied, result
        finally:
            await store.close()


def add_accounts(path: Path, count: int) -> list[str]:
    """Add ``count`` prepaid accounts bench-N with E.164 numbers; return the numbers."""
    from balances.model import AccountKind, AccountStatus
    from ocsd.master import Account, Identity, IdentityKind
    from ocsd.master_store import MasterStore
    from ocsd.sql_store import Database

    numbers = []
    with Database(f"sqlite:///{path}") as db:
        master = MasterStore(db, actor="bench")
        for n in range(count):
            account_id = f"bench-{n}"
            master.add_account(
                Account(
                    account_id=account_id,
                    tenant_id="op",
                    name=account_id,
                    kind=AccountKind.PREPAID,
                    currency="USD",
                    credit_limit_micros=0,
                    daily_cap_micros=None,
                    monthly_cap_micros=None,
                    max_sessions=None,
                    timezone="Europe/London",
                    plan_id="retail",
                    status=AccountStatus.ACTIVE,
                )
            )
            number = f"1555{n:07d}"
            master.add_identity(Identity(account_id, IdentityKind.E164, number))
            numbers.append(number)
    return numbers


def delete_prefix(prefix: str) -> int:
    """Delete every key under our prefix (never anything else); return how many are left."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        pattern = f"*{prefix}*"
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def one_run(args: argparse.Namespace, target: Target, **overrides: Any) -> dict[str, Any]:
    """One load run in this process; the load average at its end is added to the result."""
    load_args = argparse.Namespace(**vars(args))
    load_args.port = target.port
    load_args.subscribers = args.subscribers or target.subscribers
    for key, value in overrides.items():
        setattr(load_args, key, value)
    cpu_before = target.cpu_seconds()
    result = asyncio.run(diameter_load.run(load_args))
    cpu = target.cpu_seconds() - cpu_before
    # CPU time per answer is what contention on a shared machine distorts least.
    result["server_cpu_us_per_ccr"] = round(1e6 * cpu / max(1, result["requests_total"]), 1)
    result["load_average"] = load_average()
    if not args.json:
        latency = result["latency_ms"]
        print(
            f"# {result['conditions']['mode']:>18}: {result['requests_per_s']:>7} CCR/s  "
            f"p50 {latency['p50']:.2f}  p99 {latency['p99']:.2f}  p99.9 {latency['p99.9']:.2f} ms"
            f"  server {result['server_cpu_us_per_ccr']} us/CCR"
            f"  gen cpu {result['generator_cpu_percent']}%  load {result['load_average']}  "
            f"{result['results']}",
            file=sys.stderr,
            flush=True,
        )
    return result


def profile(args: argparse.Namespace, target: Target, concurrency: int) -> dict[str, Any]:
    """py-spy on the server during a run: the top frames by own time."""
    assert target.process is not None
    output = target.workdir / "py-spy.txt"
    spy = subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(target.process.pid),
            "--duration",
            str(int(args.profile)),
            "--rate",
            "200",
            "--format",
            "raw",
            *(["--native"] if args.profile_native else ["--nonblocking"]),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    run = one_run(args, target, concurrency=concurrency, seconds=args.profile, warmup=0.5)
    _, error = spy.communicate(timeout=60)
    if not output.exists():
        return {"error": error.decode()[-2000:]}
    if args.profile_output:
        shutil.copyfile(output, args.profile_output)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        # "function (file:line)" -> "function (file)": a frame is a function, not a line.
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples

    def top(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "percent": round(100 * samples / total, 1)}
            for frame, samples in counter.most_common(args.profile_top)
        ]

    return {
        "samples": total,
        "busy_percent": round(100 * total / (200 * args.profile)),
        "run": run,
        "own": top(own),
        "inclusive": top(inclusive),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[diameter_load.parser(add_help=False)],
        conflict_handler="resolve",
    )
    parser.add_argument("--target", choices=("redis", "embedded", "noop", "raw"), default="redis")
    parser.add_argument("--accounts", type=int, default=0, help="bench accounts to add")
    parser.add_argument(
        "--sweep",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[64, 256, 1024],
        help="concurrencies to try",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per concurrency (best kept)")
    parser.add_argument("--half-rate", action="store_true", help="a run at half the best CCR/s")
    parser.add_argument("--profile", type=float, default=0, help="py-spy for this many seconds")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--profile-output", help="keep py-spy's raw stacks in this file")
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="include C frames (the cycle collector, uvloop, hiredis); pauses the server",
    )
    parser.set_defaults(subscribers=None)  # by default, the accounts the target was given
    args = parser.parse_args()
    args.rate = 0
    diameter_load.install_uvloop()
    summary: dict[str, Any] = {"target": args.target, "load_average_start": load_average()}
    with (
        tempfile.TemporaryDirectory(prefix="ocsd-bench-") as tmp,
        Target(args, Path(tmp)) as target,
    ):
        best: dict[int, dict[str, Any]] = {}
        for concurrency in args.sweep:
            for _ in range(args.repeat):
                result = one_run(args, target, concurrency=concurrency)
                if result["requests_per_s"] > best.get(concurrency, {}).get("requests_per_s", -1):
                    best[concurrency] = result
        summary["sweep"] = {str(c): r for c, r in best.items()}
        top = max(best.values(), key=lambda r: r["requests_per_s"])
        top_concurrency = max(best, key=lambda c: best[c]["requests_per_s"])
        summary["best"] = {"concurrency": top_concurrency, **top}
        if args.half_rate:
            calls_per_s = top["requests_per_s"] / 2 / (args.updates + 2)
            runs = [one_run(args, target, rate=calls_per_s) for _ in range(args.repeat)]
            summary["half_rate"] = min(runs, key=lambda r: r["latency_ms"]["p99"])
        if args.profile:
            summary["profile"] = profile(args, target, top_concurrency)
    summary["load_average_end"] = load_average()
    if args.json:
        print(json.dumps(summary))
        return
    print(f"target {args.target}; load average at start {summary['load_average_start']}")
    for concurrency, result in summary["sweep"].items():
        latency = result["latency_ms"]
        print(
            f"  concurrency {concurrency:>5}: {result['requests_per_s']:>7} CCR/s"
            f"  p50 {latency['p50']:.2f} p99 {latency['p99']:.2f} p99.9 {latency['p99.9']:.2f} ms"
            f"  server {result['server_cpu_us_per_ccr']} us CPU/CCR"
            f"  (generator cpu {result['generator_cpu_percent']}%, load {result['load_average']})"
        )
    if "half_rate" in summary:
        result = summary["half_rate"]
        latency = result["latency_ms"]
        print(
            f"  {result['conditions']['mode']}: {result['requests_per_s']} CCR/s"
            f"  p50 {latency['p50']:.2f} p99 {latency['p99']:.2f} p99.9 {latency['p99.9']:.2f} ms"
            f"  results {result['results']}"
        )
    if "profile" in summary:
        profiled = summary["profile"]
        if "error" in profiled:
            print(profiled["error"])
        else:
            print(
                f"  py-spy: {profiled['samples']} samples, the server busy"
                f" {profiled['busy_percent']}% of the time; top frames by own time:"
            )
            for row in profiled["own"]:
                print(f"    {row['percent']:>5}%  {row['frame']}")
            print("  and by inclusive time:")
            for row in profiled["inclusive"]:
                print(f"    {row['percent']:>5}%  {row['frame']}")


if __name__ == "__main__":
    main()
