"""Dial rate of the daemon against a raw AMI originate loop, on the lab, in the same run.

    flock /tmp/dialler-lab.lock .venv/bin/python bench/dial_rate.py [--runs 3] [--copies 30]
        [--profile DIR]

Both place the same calls: `--copies` (default 30) times each of the lab's reject numbers
(CONTRACT, "The lab": `+447700900403` … `…606`, 17 numbers: 510 calls), answered by the SIPp
carrier with that final code at once.

- **raw AMI loop** (the baseline, fixed by issue 12): one panoramisk connection with the
  daemon's AMI user (so its event filter), an async `Originate` of `PJSIP/<n>@<trunk>` to
  `Application: Wait` per call, at most 200 unacknowledged at once, each call complete at its
  `Hangup` event. Time: first Originate sent → last Hangup received.
- **daemon**: `dialler run` (a process of its own, on a database of its own on the lab's
  PostgreSQL) with the same calls as contacts of `--copies` campaigns (one per copy, each
  number once, `concurrency` = its contacts, `max_attempts` 1), the carrier's channels and
  calls per second and the fleet opened wide (a config written from the lab's). The campaigns
  run before the daemon starts; time: the daemon's `READY=1` (sd_notify, on a socket of this
  script) → the last call's end (`attempts.ended_at`: when the daemon received its Hangup).

After one warm-up run of each (not counted: the first on a new database is slower), runs
alternate (raw, daemon, raw, daemon, …); the script prints each run, the median calls/s of
each, their ratio, and each process's CPU per 1,000 calls (user + system from /proc/PID/stat
before and after: the daemon, this script — the raw loop —, Asterisk, SIPp, PostgreSQL with
its exited backends). Every daemon run is checked: one attempt per contact, every attempt
final, and the carrier saw exactly the calls placed (`lab calls`: no double dial).

`--profile DIR`: one more daemon run under `py-spy record` (non-blocking sampling, attached at
READY), writing `DIR/daemon.txt` (collapsed stacks: `flamegraph.pl` or speedscope draw them)
and printing the top frames by own and total samples; the same run has the lab's PostgreSQL log
every statement of the bench database and prints the daemon's statements per call by named
query (store/sql), with their server time.

Needs root and the lab lock; each run is bounded (120 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from panoramisk import Manager

from dialler.campaigns.repo import create_bot, create_campaign, read_campaign_spec, start_campaign
from dialler.campaigns.spec import parse_bot, parse_text
from dialler.config import Config, load_config
from dialler.contacts.single import add_contact
from dialler.lab.numberplan import CALLER_IDS, PREFIX, REJECT_CODES
from dialler.store.migrate import migrate
from dialler.store.pool import connect
from dialler.store.queries import load

REJECT_NUMBERS = tuple(f"{PREFIX}{code}" for code in REJECT_CODES)
MAX_UNACKED = 200  # the baseline's bound on Originates sent and not yet answered
RUN_TIMEOUT = 120.0  # seconds: a run that takes longer is a failure, not a figure
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WIDE = 100_000  # carrier channels and calls/s, fleet capacity: "opened wide"
BENCH_DATABASE = "dialler_bench_dial_rate"


# --- the lab -------------------------------------------------------------------------------


def cli(config: Path | None, *args: str) -> str:
    """Run the dialler CLI; its standard output."""
    head = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "dialler.cli", *head, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def carrier_calls(lab_config: Path) -> Counter[str]:
    """Distinct calls the lab carrier has seen so far, per dialled number (`lab calls`)."""
    return Counter(yaml.safe_load(cli(lab_config, "lab", "calls", "--json"))["by_number"])


async def carrier_seen(
    lab_config: Path, before: Counter[str], numbers: Sequence[str], expected: int
) -> tuple[int, int, str]:
    """Calls to `numbers` the carrier saw since `before`, waited for (its log is written with
    a delay) until `expected` or 10 s; how many calls to other numbers it saw meanwhile; and,
    when that is not `expected`, the numbers whose count is off the even share."""
    deadline = time.monotonic() + 10.0
    wanted = sorted(set(numbers))
    while True:
        now = await asyncio.to_thread(carrier_calls, lab_config)
        seen = sum(now[n] - before[n] for n in wanted)
        if seen >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    # Late ones (retransmitted or retried INVITEs) still count, and not for the next run.
    await asyncio.sleep(2.0)
    now = await asyncio.to_thread(carrier_calls, lab_config)
    seen = sum(now[n] - before[n] for n in wanted)
    share = expected // len(wanted)
    off = ", ".join(f"{n}: {now[n] - before[n]}" for n in wanted if now[n] - before[n] != share)
    return seen, now.total() - before.total() - seen, off


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fresh_database(lab_dsn: str, name: str) -> str:
    """A new database on the lab's PostgreSQL, migrated; its DSN (the lab's own is untouched:
    the bench's campaigns never show in the lab's console or tests)."""
    base, _db = lab_dsn.rsplit("/", 1)
    user = base.split("//", 1)[1].split("@", 1)[0]
    admin = await asyncpg.connect(base.replace(f"//{user}@", "//postgres@") + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
    finally:
        await admin.close()
    dsn = f"{base}/{name}"
    await migrate(dsn)
    return dsn


def bench_config(lab_config: Path, dsn: str, tmp: Path, **scheduler: Any) -> Path:
    """The lab's config on database `dsn`, with listener ports of its own, every carrier's
    channels and calls per second and every worker's capacity opened wide."""
    data = yaml.safe_load(lab_config.read_text())
    data["database"]["dsn"] = dsn
    for carrier in data["carriers"]:
        carrier["max_channels"] = WIDE
        carrier["calls_per_second"] = WIDE
        # Its AIMD throttling kept (its bookkeeping on each 429/503 is part of the cost) but
        # never tripped: a rate cut would requeue refusals and change the calls placed.
        carrier["throttle"] = {"threshold": 1.0, "min_refusals": 1_000_000}
    for worker in data.get("fleet", {}).get("workers", []):
        worker["capacity"] = WIDE
    for name in ("agi", "http", "metrics"):
        data["listeners"][name]["port"] = free_port()
    if scheduler:
        data.setdefault("scheduler", {}).update(scheduler)
    path = tmp / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def make_campaigns(
    config: Config, numbers_per_campaign: Sequence[Sequence[str]], tag: str, ring_timeout: str
) -> list[uuid.UUID]:
    """One running campaign per list of numbers (through the services, as the CLI does)."""
    conn = await connect(config.database.dsn)
    ids: list[uuid.UUID] = []
    try:
        bot = f"bench-{tag}"
        await create_bot(conn, parse_bot(parse_text(f"name: {bot}\nprompt: Hello\n", "bot")))
        for i, numbers in enumerate(numbers_per_campaign):
            spec = {
                "name": f"bench-{tag}-{i:04d}",
                "bot": bot,
                "numbers": list(CALLER_IDS),
                "concurrency": max(1, len(numbers)),
                "ring_timeout": ring_timeout,
                "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
                "retry": {"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
            }
            document = parse_text(yaml.safe_dump(spec), "campaign")
            campaign = await create_campaign(conn, await read_campaign_spec(conn, config, document))
            for number in numbers:
                await add_contact(conn, campaign, number, {}, config.contacts.default_region)
            ids.append(campaign)
        for campaign in ids:
            await start_campaign(conn, config, campaign)
    finally:
        await conn.close()
    return ids


# --- CPU from /proc ------------------------------------------------------------------------


def _stat(pid: int | str) -> tuple[str, int, list[int]] | None:
    """(comm, ppid, [utime, stime, cutime, cstime]) in clock ticks; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    return comm, int(rest[1]), [int(v) for v in rest[11:15]]


@dataclass
class CpuMeter:
    """CPU seconds used so far by the processes of each role (the daemon by pid)."""

    postmaster: int  # the lab's PostgreSQL (not the integration tests' own clusters)
    daemon_pid: int | None = None
    tick: float = field(default_factory=lambda: float(os.sysconf("SC_CLK_TCK")))

    @classmethod
    def of_lab(cls, lab_config: Path) -> CpuMeter:
        pid_file = lab_config.parent / "postgres" / "postmaster.pid"
        return cls(int(pid_file.read_text().split()[0]))

    def sample(self) -> dict[str, float]:
        used: Counter[str] = Counter()
        procs = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _stat(entry)
                if stat is not None:
                    procs[int(entry)] = stat
        for pid, (comm, ppid, (utime, stime, cutime, cstime)) in procs.items():
            own = utime + stime
            if pid == self.daemon_pid:
                used["daemon"] += own
            elif pid == os.getpid():
                used["bench (raw AMI loop)"] += own
            elif comm == "asterisk":
                used["asterisk"] += own
            elif comm == "sipp":
                used["sipp"] += own
            elif pid == self.postmaster:
                # Its exited backends' CPU is in its cutime/cstime.
                used["postgresql"] += own + cutime + cstime
            elif ppid == self.postmaster:
                used["postgresql"] += own
        return {role: ticks / self.tick for role, ticks in used.items()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after.get(role, 0.0) - before.get(role, 0.0) for role in after}


# --- the raw AMI loop ----------------------------------------------------------------------


@dataclass
class RunResult:
    kind: str
    calls: int
    seconds: float
    cpu: dict[str, float]
    note: str = ""
    sampled: float = 0.0  # seconds between the two CPU samples

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def raw_run(lab_config: Path, settings: Config, numbers: Sequence[str]) -> RunResult:
    """The baseline: async Originates on one AMI connection, completion by Hangup events.
    Returns once the carrier's log shows them all (the next run counts from there)."""
    seen_before = await asyncio.to_thread(carrier_calls, lab_config)
    server = settings.asterisk[0]
    ami = server.ami
    endpoint = settings.carriers[0].endpoint
    manager = Manager(
        host=ami.host,
        port=ami.port,
        username=ami.username,
        secret=ami.secret,
        events="on",
        ping_delay=10**7,
        ping_interval=10**7,
    )
    ours: set[str] = set()
    ended: set[str] = set()
    done = asyncio.Event()
    last = 0.0

    def hangup(_manager: Any, event: Any) -> None:
        nonlocal last
        uid = event.get("Uniqueid", "")
        if uid in ours and uid not in ended:
            ended.add(uid)
            last = time.time()
            if len(ended) == len(numbers):
                done.set()

    manager.register_event("Hangup", hangup)
    await manager.connect()
    window = asyncio.Semaphore(MAX_UNACKED)
    refused = 0

    async def originate(number: str, caller_id: str) -> None:
        nonlocal refused
        uid = str(uuid.uuid4())
        ours.add(uid)
        async with window:
            response = await manager.send_action(
                {
                    "Action": "Originate",
                    "Channel": f"PJSIP/{number}@{endpoint}",
                    "Application": "Wait",
                    "Data": "1",
                    "CallerID": f'"{caller_id}" <{caller_id}>',
                    "Timeout": "30000",
                    "ChannelId": uid,
                    "Async": "true",
                },
                as_list=False,
            )
        if str(response.get("Response", "")).lower() != "success":
            refused += 1
            ended.add(uid)

    meter = CpuMeter.of_lab(lab_config)
    before = meter.sample()
    started = time.time()
    sampled = time.monotonic()
    try:
        await asyncio.gather(
            *(originate(n, CALLER_IDS[i % len(CALLER_IDS)]) for i, n in enumerate(numbers))
        )
        if len(ended) == len(numbers):
            done.set()
        await asyncio.wait_for(done.wait(), RUN_TIMEOUT)
    finally:
        after = meter.sample()
        sampled = time.monotonic() - sampled
        manager.close()
    seen, _other, off = await carrier_seen(lab_config, seen_before, numbers, len(numbers))
    notes = [f"{refused} refused by Asterisk"] if refused else []
    if seen != len(numbers):
        notes.append(f"CHECK: the carrier saw {seen} calls ({off})")
    note = "; ".join(notes)
    cpu = cpu_delta(before, after)
    return RunResult("raw AMI", len(numbers), last - started, cpu, note, sampled)


# --- the daemon ----------------------------------------------------------------------------


class Notifications:
    """A stand-in systemd: NOTIFY_SOCKET for the daemon; the time READY=1 arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    async def ready(self, proc: asyncio.subprocess.Process, timeout: float) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"daemon exited {proc.returncode} before READY")
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 0.5)
                if b"READY=1" in data.split(b"\n"):
                    return time.time()
        raise SystemExit(f"daemon not READY in {timeout:g} s")

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    ready_at: float
    log: Path
    notify: Notifications
    profiler: subprocess.Popen[bytes] | None = None

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.profiler is not None:
            await asyncio.to_thread(self.profiler.wait, 60)
        self.notify.close()


async def start_daemon(config: Path, tmp: Path, profile: Path | None = None) -> Daemon:
    """`dialler run` on `config`; returns once it said READY=1 (with the time it did)."""
    notify = Notifications(tmp / f"notify-{uuid.uuid4().hex[:6]}")
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = str(notify.path)
    log = tmp / "daemon.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dialler.cli",
            "--config",
            str(config),
            "run",
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    ready_at = await notify.ready(proc, 60)
    profiler = None
    if profile is not None:  # attached once ready: the profile is of the dialling only
        pyspy = Path(sys.executable).with_name("py-spy")
        out = str(profile / "daemon.txt")
        command = [str(pyspy), "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", out]
        profiler = subprocess.Popen(  # noqa: ASYNC220 - a child that outlives this call
            [*command, "-p", str(proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return Daemon(proc, ready_at, log, notify, profiler)


async def daemon_run(
    lab_config: Path,
    config_path: Path,
    settings: Config,
    numbers: Sequence[str],
    copies: int,
    tag: str,
    tmp: Path,
    profile: Path | None = None,
    statements: str | None = None,
) -> RunResult:
    """The same calls as contacts of `copies` campaigns, dialled by a daemon of its own.
    `statements`: the lab's DSN — log the daemon's statements and put their mix in the note."""
    campaigns = await make_campaigns(settings, [list(numbers)] * copies, tag, ring_timeout="30s")
    server_log = lab_config.parent / "postgres" / "server.log"
    offset = server_log.stat().st_size
    if statements is not None:
        await log_statements(statements, BENCH_DATABASE, True)
    calls = len(numbers) * copies
    seen_before = await asyncio.to_thread(carrier_calls, lab_config)
    meter = CpuMeter.of_lab(lab_config)
    daemon = await start_daemon(config_path, tmp, profile)
    meter.daemon_pid = daemon.proc.pid
    before = meter.sample()
    sampled = time.monotonic()
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            final = await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE campaign_id = ANY($1) AND state = 'final'",
                campaigns,
            )
            if final >= calls:
                break
            if daemon.proc.returncode is not None:
                raise SystemExit(f"daemon exited {daemon.proc.returncode}; log {daemon.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{final} of {calls} attempts final after {RUN_TIMEOUT:g} s")
            await asyncio.sleep(0.05)
        after = meter.sample()
        sampled = time.monotonic() - sampled
        row = await conn.fetchrow(
            "SELECT count(*) AS attempts, count(DISTINCT contact_id) AS contacts,"
            " extract(epoch FROM max(ended_at))::float8 AS last_end,"
            " extract(epoch FROM max(finalised_at))::float8 AS last_final"
            " FROM attempts WHERE campaign_id = ANY($1)",
            campaigns,
        )
    finally:
        await conn.close()
        await daemon.stop()
        if statements is not None:
            await log_statements(statements, BENCH_DATABASE, False)
    seen, other, off = await carrier_seen(lab_config, seen_before, numbers, calls)
    problems = []
    if row["attempts"] != calls or row["contacts"] != calls:
        problems.append(f"{row['attempts']} attempts for {row['contacts']} of {calls} contacts")
    if problems:
        raise SystemExit("daemon run wrong: " + "; ".join(problems))
    note = f"all final at +{row['last_final'] - daemon.ready_at:.2f} s"
    if seen != calls:  # one attempt per contact (above), yet not one call each at the carrier
        note += f"; CHECK: the carrier saw {seen} calls for {calls} attempts ({off})"
    if other:  # someone dialled other numbers through the lab meanwhile: not ours
        note += f"; {other} other calls reached the carrier meanwhile"
    if statements is not None:
        note += "\n" + statement_mix(server_log, offset, calls)
    return RunResult(
        "daemon", calls, row["last_end"] - daemon.ready_at, cpu_delta(before, after), note, sampled
    )


# --- the profile ---------------------------------------------------------------------------


def top_frames(collapsed: Path, count: int = 25) -> str:
    """The frames with most samples, own (leaf) and total (anywhere on the stack), from
    py-spy's collapsed stacks; idle samples (the event loop's select) are counted apart."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        # No Python frame: the thread was in native code without the GIL (waiting for I/O).
        frames = stack.split(";") if stack else ["(no Python frame: idle or native)"]
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    lines = [f"{samples} samples"]
    lines.append("own:")
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in own.most_common(count)]
    lines.append("total:")
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in total.most_common(count)]
    return "\n".join(lines)


# --- the statements ------------------------------------------------------------------------

_LOGGED = re.compile(
    r"^\S+ \S+ \S+ \[\d+\] LOG:  duration: (?P<ms>[0-9.]+) ms  "
    r"(?:(?P<phase>parse|bind|execute) [^:]*|statement): (?P<sql>.*)$"
)


async def log_statements(lab_dsn: str, database: str, on: bool) -> None:
    """Have the lab's PostgreSQL log every statement of `database` with its duration (new
    sessions: the daemon started after this), or stop."""
    base = lab_dsn.rsplit("/", 1)[0]
    user = base.split("//", 1)[1].split("@", 1)[0]
    admin = await asyncpg.connect(base.replace(f"//{user}@", "//postgres@") + "/postgres")
    try:
        setting = "SET log_min_duration_statement = 0" if on else "RESET log_min_duration_statement"
        await admin.execute(f'ALTER DATABASE "{database}" {setting}')
    finally:
        await admin.close()


def statement_mix(server_log: Path, offset: int, calls: int, count: int = 20) -> str:
    """Statements the daemon ran (from the server log, after `offset`), by named query
    (store/sql/*.sql): how many per call and their server time (parse, bind and execute)."""
    names: dict[str, str] = {}
    for sql_file in resources.files("dialler.store").joinpath("sql").iterdir():
        if sql_file.name.endswith(".sql"):
            for name, text in load(sql_file.name).items():
                names[text.strip()] = f"{sql_file.name[:-4]}.{name}"
    runs: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    entries: list[tuple[str | None, float, list[str]]] = []
    with server_log.open(encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        for line in fh:
            match = _LOGGED.match(line.rstrip("\n"))
            if match:
                entries.append((match["phase"], float(match["ms"]), [match["sql"]]))
            elif line.startswith("\t") and entries:
                entries[-1][2].append(line[1:].rstrip("\n"))
    for phase, ms, lines in entries:
        text = "\n".join(lines).strip().rstrip(";")
        name = names.get(text, " ".join(text.split())[:60])
        spent[name] += ms
        if phase in (None, "execute"):
            runs[name] += 1
    total = sum(runs.values())
    out = [
        f"{total} statements for {calls} calls: {total / calls:.2f} per call, "
        f"{sum(spent.values()) / calls:.3f} ms of server time per call"
    ]
    for name, n in runs.most_common(count):
        out.append(f"  {n / calls:6.3f} per call  {spent[name] / calls:7.4f} ms/call  {name}")
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------


def report(results: Sequence[RunResult], label: str = "") -> None:
    for r in results:
        print(
            f"  {label + ' ' if label else ''}{r.kind:8} {r.calls} calls in {r.seconds:6.3f} s "
            f"= {r.rate:7.1f} calls/s" + (f"  ({r.note})" if r.note else ""),
            flush=True,
        )


def cpu_table(results: Sequence[RunResult]) -> None:
    roles = sorted({role for r in results for role in r.cpu})
    kinds = sorted({r.kind for r in results}, reverse=True)
    print(
        "CPU seconds per 1,000 calls (median of the runs), and share of one core while "
        "measured (raw: first Originate to last Hangup; daemon: READY to all final):"
    )
    print(f"  {'process':24}" + "".join(f"{k:>22}" for k in kinds))
    for role in roles:
        cells = []
        for kind in kinds:
            runs = [r for r in results if r.kind == kind]
            per_k = statistics.median(r.cpu.get(role, 0.0) / r.calls * 1000 for r in runs)
            share = statistics.median(r.cpu.get(role, 0.0) / r.sampled for r in runs)
            cells.append(f"{per_k:10.3f} s {share:7.0%}  ")
        print(f"  {role:24}" + "".join(cells))


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=30, help="campaigns (copies of the 17)")
    parser.add_argument("--profile", type=Path, help="one more daemon run under py-spy")
    parser.add_argument("--only", choices=["raw", "daemon"], help="skip the other kind")
    args = parser.parse_args()
    if not 1 <= args.runs <= 5 or not 1 <= args.copies <= 200:
        raise SystemExit("--runs 1..5, --copies 1..200: bounded, so the lab lock is held briefly")

    lab_config = Path(cli(None, "lab", "up").split()[-1])
    lab = load_config(str(lab_config))
    tmp = Path(tempfile.mkdtemp(prefix="dial-rate-"))
    dsn = await fresh_database(lab.database.dsn, BENCH_DATABASE)
    config_path = bench_config(lab_config, dsn, tmp)
    settings = load_config(str(config_path))
    numbers = [n for _ in range(args.copies) for n in REJECT_NUMBERS]
    print(
        f"{len(numbers)} calls ({args.copies} × {len(REJECT_NUMBERS)} reject numbers), "
        f"{args.runs} runs each; daemon log and config in {tmp}",
        flush=True,
    )
    # One run of each first, not counted: the first after the database was made is slower
    # (cold caches), whichever kind it is.
    if args.only != "daemon":
        report([await raw_run(lab_config, settings, numbers)], "warm-up")
    if args.only != "raw":
        tag = f"warm-{uuid.uuid4().hex[:6]}"
        warm = await daemon_run(
            lab_config, config_path, settings, REJECT_NUMBERS, args.copies, tag, tmp
        )
        report([warm], "warm-up")
    results: list[RunResult] = []
    for run in range(args.runs):
        if args.only != "daemon":
            results.append(await raw_run(lab_config, settings, numbers))
            report(results[-1:])
        if args.only != "raw":
            tag = f"{run}-{uuid.uuid4().hex[:6]}"
            results.append(
                await daemon_run(
                    lab_config, config_path, settings, REJECT_NUMBERS, args.copies, tag, tmp
                )
            )
            report(results[-1:])
    raw = [r.rate for r in results if r.kind == "raw AMI"]
    daemon = [r.rate for r in results if r.kind == "daemon"]
    if raw:
        print(f"raw AMI loop: median {statistics.median(raw):.1f} calls/s")
    if daemon:
        print(f"daemon:       median {statistics.median(daemon):.1f} calls/s")
    if raw and daemon:
        ratio = statistics.median(daemon) / statistics.median(raw)
        print(f"ratio daemon / raw AMI: {ratio:.2f}")
    cpu_table(results)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        tag = f"profile-{uuid.uuid4().hex[:6]}"
        profiled = await daemon_run(
            lab_config,
            config_path,
            settings,
            REJECT_NUMBERS,
            args.copies,
            tag,
            tmp,
            args.profile,
            statements=lab.database.dsn,
        )
        print("profiled run (py-spy attached, statements logged: not part of the figures above):")
        report([profiled])
        collapsed = args.profile / "daemon.txt"
        if collapsed.exists():
            print(top_frames(collapsed))


if __name__ == "__main__":
    asyncio.run(main())
