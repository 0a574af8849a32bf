"""The chaos suite: a campaign over every lab behaviour, run while faults are injected, judged
from the carrier's own count (`dialler lab calls`) and the campaign's report.

Needs root and the lab (`dialler lab up`); hold the lab lock for the run:

    flock /tmp/dialler-lab.lock .venv/bin/python bench/chaos.py daemon-kill=10
    flock /tmp/dialler-lab.lock .venv/bin/python bench/chaos.py pg-stop=3 asterisk-kill=2 --json

A plan is FAULT=COUNT words, run in the order given, one fault every `--every` seconds:

- `daemon-kill`: SIGKILL the daemon and start it again at once;
- `pg-stop`: stop PostgreSQL at once (immediate shutdown), keep it down `--down` s, start it;
- `pg-restart`: restart PostgreSQL (fast shutdown, then start);
- `asterisk-kill`: SIGKILL Asterisk; `dialler lab up` starts it again;
- `ami-blackhole`: the daemon's AMI link (through a relay) silently drops every packet for
  `--blackhole` s;
- `worker-kill`: SIGKILL the lab's bot worker; `dialler lab up` starts it again;
- `two-daemons`: a second daemon on the same database and Asterisk; each fault SIGKILLs one of
  them in turn (restarted at once).

Printed (and with `--json` as one JSON object): double dials (numbers the carrier received more
calls for than the report has attempts), attempts over max (contacts with more counted attempts
than `max_attempts`), contacts not final once the campaign should have ended, results unknown
(attempts with disposition `timeout`), and the time from each fault to the next dial.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml

FAULTS = (
    "daemon-kill",
    "pg-stop",
    "pg-restart",
    "asterisk-kill",
    "ami-blackhole",
    "worker-kill",
    "two-daemons",
)
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
REJECT_CODES = (403, 404, 408, 410, 429, 480, 484, 486, 488, 500, 502, 503, 504, 600, 603, 604)
MAX_ATTEMPTS = 3
RETRY_ON = ["no_answer", "rejected", "error", "timeout"]
FINAL_CONTACT_STATES = {"done", "exhausted", "cancelled"}
LAB_STATE = Path("/var/lib/dialler-lab")


def numbers(count: int) -> list[str]:
    """`count` numbers over every lab behaviour (answer and hold, every rejection, ring and
    never answer, never respond), the rest answering and holding 2 s."""
    plan = [f"+4477009000{n:02d}" for n in range(1, 6)]
    plan += [f"+447700900{code}" for code in REJECT_CODES]
    plan += [f"+4477009002{n:02d}" for n in range(8)]
    plan += [f"+4477009003{n:02d}" for n in range(8)]
    plan += [f"+447700912{n:03d}" for n in range(max(0, count - len(plan)))]
    return plan[:count]


# --- the CLI and the lab ---------------------------------------------------------------------


def dialler(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dialler.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"dialler {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def lab_up() -> Path:
    return Path(dialler("lab", "up").stdout.strip().splitlines()[-1])


def lab_calls() -> dict[str, int]:
    data = json.loads(dialler("lab", "calls", "--json").stdout)
    by_number: dict[str, int] = data["by_number"]
    return by_number


def lab_pid(part: str) -> int | None:
    try:
        pid = json.loads((LAB_STATE / "state.json").read_text()).get(part)
    except (OSError, ValueError):
        return None
    return int(pid) if pid else None


def postmaster_pid() -> int | None:
    try:
        return int((LAB_STATE / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_taken(port: int) -> bool:
    """Does something listen on 127.0.0.1:`port`?"""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def kill(pid: int | None, sig: signal.Signals = signal.SIGKILL) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pid: int | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class Daemon:
    """`dialler run` as a subprocess, its log in the work directory."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.config, self.log, self.env = config, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dialler.cli", "--config", str(self.config), "run"],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Blackhole:
    """A relay to Asterisk's AMI that can silently drop everything (packets lost, the TCP
    connection still open) — what a dead network path looks like."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.dropping = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if not self.dropping:
                        dst.write(data)
                        await dst.drain()
            with contextlib.suppress(Exception):
                dst.transport.abort()

        try:
            await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
        finally:
            self._tasks.discard(task)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    lab_config: Path
    work: Path
    plan: list[str]
    contacts: int
    every: float
    down: float
    blackhole_for: float
    complete_within: float
    concurrency: int = 10
    faults: list[dict[str, Any]] = field(default_factory=list)
    dsn: str = ""
    campaign: str = ""
    daemons: list[Daemon] = field(default_factory=list)
    proxy: Blackhole | None = None

    def config_for(self, index: int, ami_port: int | None) -> Path:
        """The lab config, with its own listener ports for a second daemon and the AMI through
        the relay when one is used."""
        data = yaml.safe_load(self.lab_config.read_text())
        if ami_port is not None:
            data["asterisk"][0]["ami"]["port"] = ami_port
        if index:
            for name in ("http", "metrics"):
                data["listeners"][name]["port"] += 100 * index
            data["listeners"]["agi"]["port"] += 100 * index  # Asterisk attaches to daemon 0
        path = self.work / f"daemon{index}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def create_campaign(self, config: Path) -> str:
        name = f"chaos-{uuid.uuid4().hex[:8]}"
        bot = self.work / "bot.yaml"
        bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hello"}))
        dialler("--config", str(config), "bot", "create", str(bot))
        spec = {
            "name": name,
            "bot": name,
            "numbers": ["+441632960001", "+441632960002", "+441632960003"],
            "concurrency": self.concurrency,
            "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
            "ring_timeout": "4s",
            "retry": {
                "max_attempts": MAX_ATTEMPTS,
                "delay": "2s",
                "on_system": RETRY_ON,
                "on_custom": [],
            },
        }
        path = self.work / "campaign.yaml"
        path.write_text(yaml.safe_dump(spec))
        campaign = dialler("--config", str(config), "campaign", "create", str(path)).stdout
        rows = self.work / "contacts.csv"
        with rows.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["phone_number"])
            writer.writerows([n] for n in numbers(self.contacts))
        dialler("--config", str(config), "contacts", "import", campaign.strip(), str(rows))
        return campaign.strip()

    async def last_dial(self) -> datetime | None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=2)
        except Exception:
            return None
        try:
            value: datetime | None = await conn.fetchval(
                "SELECT max(dialled_at) FROM attempts WHERE campaign_id = $1",
                uuid.UUID(self.campaign),
            )
            return value
        except Exception:
            return None
        finally:
            await conn.close()

    async def campaign_state(self) -> str | None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=2)
        except Exception:
            return None
        try:
            state: str = await conn.fetchval(
                "SELECT state FROM campaigns WHERE id = $1", uuid.UUID(self.campaign)
            )
            return state
        finally:
            await conn.close()

    async def dialling_again(self, since: float, limit: float) -> float | None:
        """Seconds from `since` to the first dial after it (None: none within `limit`)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            last = await self.last_dial()
            if last is not None and last.timestamp() > since:
                return round(last.timestamp() - since, 2)
            await asyncio.sleep(0.1)
        return None

    # -- faults ---------------------------------------------------------------------------
    async def inject(self, fault: str, n: int) -> None:
        started = time.time()
        note: dict[str, Any] = {"fault": fault, "at": started}
        if fault in ("daemon-kill", "two-daemons"):
            daemon = self.daemons[n % len(self.daemons)]
            daemon.kill()
            daemon.start()
        elif fault == "pg-stop":
            pid = postmaster_pid()
            kill(pid, signal.SIGQUIT)  # immediate shutdown: sessions cut, no checkpoint
            await asyncio.to_thread(wait_gone, pid)
            await asyncio.sleep(self.down)
            await asyncio.to_thread(lab_up)
            note["down_s"] = round(time.time() - started, 2)
        elif fault == "pg-restart":
            pid = postmaster_pid()
            kill(pid, signal.SIGINT)  # fast shutdown
            await asyncio.to_thread(wait_gone, pid)
            await asyncio.to_thread(lab_up)
            note["down_s"] = round(time.time() - started, 2)
        elif fault == "asterisk-kill":
            pid = lab_pid("asterisk")
            kill(pid)
            await asyncio.to_thread(wait_gone, pid)
            await asyncio.to_thread(lab_up)
            note["down_s"] = round(time.time() - started, 2)
        elif fault == "ami-blackhole":
            assert self.proxy is not None
            self.proxy.dropping = True
            await asyncio.sleep(self.blackhole_for)
            self.proxy.dropping = False
        elif fault == "worker-kill":
            pid = lab_pid("worker")
            kill(pid)
            await asyncio.to_thread(wait_gone, pid)
            await asyncio.to_thread(lab_up)
        # From the end of the fault (the daemon restarted, the server back): the outage itself
        # is `down_s`.
        note["dialling_again_s"] = await self.dialling_again(time.time(), 30.0)
        self.faults.append(note)
        print(f"  {fault} #{n + 1}: dialling again after {note['dialling_again_s']} s", flush=True)

    async def run(self) -> dict[str, Any]:
        lab = yaml.safe_load(self.lab_config.read_text())
        self.dsn = lab["database"]["dsn"]
        ami = lab["asterisk"][0]["ami"]
        if "ami-blackhole" in self.plan:
            self.proxy = Blackhole(ami["host"], ami["port"])
            await self.proxy.start()
        for name in ("agi", "http"):
            port = lab["listeners"][name]["port"]
            if port_taken(port):
                raise SystemExit(
                    f"another daemon already runs against the lab (port {port} is taken): it "
                    "would dial this campaign too and the figures would mean nothing; stop it"
                )
        env = os.environ | {"DIALLER_STATE_DIR": str(self.work / "state")}
        count = 2 if "two-daemons" in self.plan else 1
        proxy_port = self.proxy.port if self.proxy else None
        for i in range(count):
            config = self.config_for(i, proxy_port)
            self.daemons.append(Daemon(config, self.work / f"daemon{i}.log", env))
        config0 = self.daemons[0].config
        self.campaign = self.create_campaign(config0)
        before = lab_calls()
        for daemon in self.daemons:
            daemon.start()
        dialler("--config", str(config0), "campaign", "start", self.campaign)
        print(f"campaign {self.campaign}: {self.contacts} contacts; plan {self.plan}", flush=True)
        try:
            for n, fault in enumerate(self.plan):
                await asyncio.sleep(self.every)
                if await self.campaign_state() == "completed":
                    print(f"  campaign completed before fault #{n + 1}", flush=True)
                    break
                await self.inject(fault, n)
            deadline = time.monotonic() + self.complete_within
            while time.monotonic() < deadline:
                if await self.campaign_state() == "completed":
                    break
                await asyncio.sleep(1)
        finally:
            statuses = [d.stop() for d in self.daemons]
            if self.proxy is not None:
                await self.proxy.stop()
        dialled = await self.attempts_by_number()
        verdict = self.judge(before, lab_calls(), statuses, dialled)
        if verdict["campaign_state"] != "completed":
            # Never leave a running campaign behind: the next daemon on the lab would dial it.
            dialler("--config", str(config0), "campaign", "cancel", self.campaign, check=False)
        return verdict

    async def attempts_by_number(self) -> dict[str, int]:
        """Every attempt of the campaign (open ones too), per number: what the carrier may
        have seen."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT c.phone_number, count(*) AS n FROM attempts a "
                "JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = $1 "
                "GROUP BY c.phone_number",
                uuid.UUID(self.campaign),
            )
        finally:
            await conn.close()
        return {r["phone_number"]: r["n"] for r in rows}

    # -- the verdict ----------------------------------------------------------------------
    def judge(
        self,
        before: dict[str, int],
        after: dict[str, int],
        statuses: list[int],
        dialled: dict[str, int],
    ) -> dict[str, Any]:
        config = str(self.daemons[0].config)
        text = dialler("--config", config, "report", "attempts", self.campaign).stdout
        rows = list(csv.DictReader(io.StringIO(text)))
        shown = json.loads(
            dialler("--config", config, "campaign", "show", self.campaign, "--json").stdout
        )
        attempts: dict[str, int] = {}
        counted: dict[str, int] = {}
        for row in rows:
            number = row["phone_number"]
            attempts[number] = attempts.get(number, 0) + 1
            if row.get("next_action") != "requeue":
                counted[number] = counted.get(number, 0) + 1
        carrier = {n: after.get(n, 0) - before.get(n, 0) for n in set(after) | set(before)}
        # Against every attempt, open or final: an attempt still open is not a double dial.
        double = {n: c for n, c in carrier.items() if c > dialled.get(n, 0)}
        over = {n: c for n, c in counted.items() if c > MAX_ATTEMPTS}
        stats = shown["stats"]
        not_final = sum(
            stats.get(s, 0)
            for s in (
                "pending",
                "dialing",
                "connected",
                "wrapping",
                "retry_scheduled",
                "callback_scheduled",
            )
        )
        unknown = sum(1 for row in rows if row.get("disposition") == "timeout")
        again = [f["dialling_again_s"] for f in self.faults if f["dialling_again_s"] is not None]
        logs = "".join(d.log.read_text(errors="replace") for d in self.daemons)
        return {
            "campaign": self.campaign,
            "plan": self.plan,
            "contacts": self.contacts,
            "attempts": len(rows),
            "requeued": sum(1 for row in rows if row.get("next_action") == "requeue"),
            "carrier_calls": sum(max(0, c) for c in carrier.values()),
            "double_dials": len(double),
            "double_dialled_numbers": double,
            "attempts_over_max": len(over),
            "contacts_not_final": not_final,
            "campaign_state": shown["state"],
            "results_unknown": unknown,
            "results_unknown_pct": round(100.0 * unknown / max(1, len(rows)), 2),
            "dialling_again_s": {
                "faults": len(self.faults),
                "never": len(self.faults) - len(again),
                "median": statistics.median(again) if again else None,
                "max": max(again) if again else None,
            },
            "each_fault": [{k: v for k, v in f.items() if k != "at"} for f in self.faults],
            "task_errors": logs.count("Task exception was never retrieved")
            + logs.count("Task was destroyed but it is pending"),
            "daemon_exit_statuses": statuses,
            "work_dir": str(self.work),
        }


def parse_plan(words: list[str]) -> list[str]:
    plan: list[str] = []
    for word in words:
        fault, _, count = word.partition("=")
        if fault not in FAULTS:
            raise SystemExit(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        plan += [fault] * int(count or "1")
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", nargs="+", help="FAULT=COUNT ... (" + ", ".join(FAULTS) + ")")
    parser.add_argument("--contacts", type=int, default=107)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between faults")
    parser.add_argument("--down", type=float, default=3.0, help="pg-stop: seconds down")
    parser.add_argument("--blackhole", type=float, default=30.0, help="ami-blackhole: seconds")
    parser.add_argument("--complete-within", type=float, default=180.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--work", type=Path, help="where the daemons' logs go (default: a new temporary directory)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    work = args.work or Path(tempfile.mkdtemp(prefix="dialler-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    run = Run(
        lab_up(),
        work,
        parse_plan(args.plan),
        args.contacts,
        args.every,
        args.down,
        args.blackhole,
        args.complete_within,
        args.concurrency,
    )
    verdict = asyncio.run(run.run())
    if args.json:
        print(json.dumps(verdict, indent=2, default=str))
    else:
        for key, value in verdict.items():
            print(f"{key}: {value}")
    ok = (
        verdict["double_dials"] == 0
        and verdict["attempts_over_max"] == 0
        and verdict["contacts_not_final"] == 0
        and verdict["task_errors"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
