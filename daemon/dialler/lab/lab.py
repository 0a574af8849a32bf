"""`dialler lab`: PostgreSQL 15, Asterisk 22 and a SIPp carrier on 127.0.0.1, in one directory.

Everything the lab starts is recorded in `state.json` under the state directory, so `up` is
idempotent (what runs is left alone) and `down` stops exactly what `up` started. `up` runs N
Asterisk servers (`lab`, `lab-2`, ...: `--asterisk-servers N`, default 1), each trunked to the
one carrier; another N starts or stops servers to match. A carrier whose scenario changed (a
new number plan) is restarted by `up`; anything else that runs is left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..errors import InvalidInput, LabError
from . import asterisk, sipp
from .numberplan import CALLER_IDS, CARRIER, DEFAULT_HOLD_SECONDS
from .postgres import PgCluster

DEFAULT_STATE_DIR = Path("/var/lib/dialler-lab")
HOST = "127.0.0.1"
AMI_USER = "dialler"
DB_NAME = "dialler"
DB_USER = "dialler"
WORKER = "lab-worker"
WORKER_CAPACITY = 50
MAX_ASTERISK_SERVERS = 8  # the port plan below leaves room for eight
# Server k (0-based) listens on the base SIP/AMI ports + k x 100 and RTP range + k x 1000.
SERVER_PORT_STEP = 100
SERVER_RTP_STEP = 1000


@dataclass(frozen=True, slots=True)
class LabPorts:
    postgres: int = 55432
    sip: int = 55060
    ami: int = 55038
    carrier: int = 55070
    carrier_rtp: int = 56000
    rtp_start: int = 41000
    rtp_end: int = 41999
    agi: int = 54573
    http: int = 58080
    metrics: int = 59464
    worker: int = 57000


def server_name(index: int) -> str:
    """`lab` for the first server (index 0), then `lab-2`, `lab-3`, ..."""
    return asterisk.FIRST if index == 0 else f"{asterisk.FIRST}-{index + 1}"


@dataclass(frozen=True, slots=True)
class LabServer:
    """One of the lab's Asterisk servers: its name, ports and files."""

    name: str
    index: int
    sip: int
    ami: int
    rtp_start: int
    rtp_end: int

    @property
    def state_key(self) -> str:
        # The first server keeps the key it always had, so a running lab is recognised.
        return "asterisk" if self.index == 0 else f"asterisk-{self.name}"

    @property
    def files(self) -> asterisk.Instance:
        return asterisk.instance(self.name)


def project_root() -> Path:
    """The source tree (agi/ and config/ live beside daemon/)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "agi" / "dialler.conf").exists():
            return parent
    raise LabError("cannot find the project's agi/ and config/ directories")


class Lab:
    def __init__(
        self,
        state_dir: Path | None = None,
        ports: LabPorts | None = None,
        cache_dir: Path = asterisk.DEFAULT_CACHE,
    ) -> None:
        self.dir = (state_dir or DEFAULT_STATE_DIR).resolve()
        self.ports = ports or LabPorts()
        self.cache_dir = cache_dir
        self.pg = PgCluster(self.dir / "postgres", self.ports.postgres, host=HOST)
        self.root = self.dir / "asterisk-root"
        self.sipp_dir = self.dir / "carrier"
        self.config_path = self.dir / "dialler-lab.yaml"
        self.secret_path = self.dir / "ami-secret"
        self.tokens_path = self.dir / "api-tokens"  # operator tokens (the console's sign-in)
        self.worker_tokens_path = self.dir / "worker-tokens"  # `<token> lab-worker`
        self.agi_secret_path = self.dir / "agi-secret"  # in the dialplan's AGI URL
        self.recordings = self.dir / "recordings"  # what the lab worker heard, per attempt

    # -- state -----------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def _state(self) -> dict[str, int]:
        try:
            data: dict[str, int] = json.loads(self._state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save(self, **pids: int) -> None:
        state = self._state() | pids
        self._state_file.write_text(json.dumps(state, indent=2))

    def _forget(self, key: str) -> None:
        state = self._state()
        if state.pop(key, None) is not None:
            self._state_file.write_text(json.dumps(state, indent=2))

    def _alive(self, key: str, binary: str) -> int | None:
        pid = self._state().get(key)
        return pid if pid and _pid_runs(pid, binary) else None

    # -- Asterisk servers ------------------------------------------------------------------
    def server(self, index: int) -> LabServer:
        """Server `index` (0-based) of the port plan."""
        p = self.ports
        return LabServer(
            name=server_name(index),
            index=index,
            sip=p.sip + index * SERVER_PORT_STEP,
            ami=p.ami + index * SERVER_PORT_STEP,
            rtp_start=p.rtp_start + index * SERVER_RTP_STEP,
            rtp_end=p.rtp_end + index * SERVER_RTP_STEP,
        )

    def servers(self) -> list[LabServer]:
        """The servers the lab runs now: the first always, the others while `up` keeps them
        (recorded in the state file, so a crashed one still shows, as down)."""
        state = self._state()
        return [
            self.server(i)
            for i in range(MAX_ASTERISK_SERVERS)
            if i == 0 or self.server(i).state_key in state
        ]

    def servers_by_sip_port(self) -> dict[int, str]:
        """Every possible server's name by its SIP port: the carrier tells servers apart by
        the port its INVITEs come from (their Contact), also for servers since stopped."""
        return {self.server(i).sip: self.server(i).name for i in range(MAX_ASTERISK_SERVERS)}

    # -- up --------------------------------------------------------------------------------
    def up(self, progress: bool = True, asterisk_servers: int = 1) -> Path:
        """Start whatever is not running, with `asterisk_servers` Asterisk servers (starting or
        stopping servers to match); return the lab config's path."""
        if not 1 <= asterisk_servers <= MAX_ASTERISK_SERVERS:
            raise InvalidInput(
                f"--asterisk-servers must be between 1 and {MAX_ASTERISK_SERVERS}, "
                f"not {asterisk_servers}"
            )
        if os.geteuid() != 0:
            raise LabError(
                "the lab needs root (debootstrap, chroot, an unprivileged PostgreSQL user)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self._ensure_secret()
        self._say(progress, "postgres")
        self.pg.init()
        self.pg.start()
        self.pg.ensure_database(DB_NAME, DB_USER)
        from ..store.migrate import migrate

        # Before Asterisk starts: its cel_pgsql reads the CEL table's columns when it loads.
        asyncio.run(migrate(self.pg.dsn(DB_NAME, DB_USER)))
        wanted = [self.server(i) for i in range(asterisk_servers)]
        for server in wanted:
            self._say(progress, f"asterisk {server.name}")
            self._asterisk_up(progress, server)
        for server in [s for s in self.servers() if s.index >= asterisk_servers]:
            self._say(progress, f"stopping asterisk {server.name}")
            self._asterisk_down(server)
        self._say(progress, "carrier")
        self._carrier_up()
        self._write_config(wanted)
        self._say(progress, "reference worker")
        self._worker_up()
        return self.config_path

    def _worker_up(self) -> None:
        """The reference bot worker (`dialler worker`), so lab campaigns have a fleet. It talks
        for up to a minute: the callee's hang-up (the number plan's hold time) ends lab calls."""
        if self._alive("worker", "dialler.cli") and _port_open(HOST, self.ports.worker):
            return
        cmd = [
            sys.executable,
            "-m",
            "dialler.cli",
            "--config",
            str(self.config_path),
            "worker",
            "--name",
            WORKER,
            "--listen",
            f"{HOST}:{self.ports.worker}",
            "--capacity",
            str(WORKER_CAPACITY),
            "--token-file",
            str(self.worker_tokens_path),
            "--talk",
            "60s",
            "--record-dir",
            str(self.recordings),
        ]
        with (self.dir / "worker.log").open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        self._save(worker=proc.pid)
        if not _wait(lambda: _port_open(HOST, self.ports.worker), 15):
            raise LabError(f"the reference worker did not start; see {self.dir / 'worker.log'}")

    def _say(self, progress: bool, what: str) -> None:
        if progress:
            print(f"lab: {what}…", file=sys.stderr, flush=True)

    def _ensure_secret(self) -> None:
        lines = {
            self.secret_path: "",
            self.tokens_path: "",
            self.agi_secret_path: "",
            self.worker_tokens_path: f" {WORKER}",  # the reference worker's own token
        }
        for path, after in lines.items():
            if not path.exists():
                # Created private: a token never sits in a file others may read.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(24) + after + "\n")
            os.chmod(path, 0o600)

    def _asterisk_up(self, progress: bool, server: LabServer) -> None:
        log = self.dir / ("asterisk.log" if server.index == 0 else f"asterisk-{server.name}.log")
        if self._alive(server.state_key, "asterisk") and _port_open(HOST, server.ami):
            return
        tarball = asterisk.cache_tarball(self.cache_dir)
        if not tarball.exists():
            self._say(progress, f"building the Asterisk root file system (cached as {tarball})")
            asterisk.build_rootfs_tarball(self.cache_dir, log=self.dir / "debootstrap.log")
        asterisk.extract_rootfs(tarball, self.root)
        secret = self.secret_path.read_text().strip()
        asterisk.render_configs(
            self.root,
            project_root(),
            asterisk.AsteriskPorts(
                server.sip,
                server.ami,
                server.rtp_start,
                server.rtp_end,
                self.ports.agi,  # every server's calls attach through the one daemon
            ),
            AMI_USER,
            secret,
            self.agi_secret_path.read_text().strip(),
            HOST,
            self.ports.carrier,
            server.files,
            asterisk.CelDatabase(HOST, self.pg.port, DB_NAME, DB_USER),
        )
        pid = asterisk.start(self.root, log, server.files)
        self._save(**{server.state_key: pid})
        messages = self.root / server.files.log.lstrip("/") / "messages.log"
        if not _wait(lambda: _ami_banner(HOST, server.ami), 30):
            raise LabError(
                f"Asterisk {server.name} did not open AMI on {HOST}:{server.ami}; "
                f"see {log} and {messages}"
            )
        # AMI answers before PJSIP is fully loaded: wait for the SIP transport too.
        if not _wait(lambda: _udp_bound(server.sip), 30):
            raise LabError(f"Asterisk {server.name} did not bind SIP on {HOST}:{server.sip}")

    def _asterisk_down(self, server: LabServer) -> None:
        pid = self._alive(server.state_key, "asterisk")
        if pid:
            _terminate(pid)
        self._forget(server.state_key)

    def _carrier_up(self) -> None:
        scenario = self.sipp_dir / "carrier.xml"
        text = sipp.render_scenario(DEFAULT_HOLD_SECONDS)
        running = self._alive("carrier", "sipp")
        if running and _udp_bound(self.ports.carrier):
            if scenario.exists() and scenario.read_text() == text:
                return
            # The number plan changed (a new version of the lab): the old scenario would
            # answer the new ranges wrongly, so the carrier starts again with the new one.
            _terminate(running)
        self.sipp_dir.mkdir(parents=True, exist_ok=True)
        scenario.write_text(text)
        self.calls_log.write_text("")  # `lab calls` counts from this start
        cmd = [
            "sipp",
            "-sf",
            str(scenario),
            "-i",
            HOST,
            "-p",
            str(self.ports.carrier),
            "-mi",
            HOST,
            "-mp",
            str(self.ports.carrier_rtp),
            "-rtp_echo",
            "-trace_logs",
            "-log_file",
            str(self.calls_log),
            "-trace_err",
            "-error_file",
            str(self.sipp_dir / "errors.log"),
            "-nostdin",
            "-max_socket",
            "4096",
            "-timer_resol",
            "1",
        ]
        with (self.sipp_dir / "sipp.out").open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=self.sipp_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        self._save(carrier=proc.pid)
        if not _wait(lambda: _udp_bound(self.ports.carrier), 10):
            raise LabError(f"SIPp did not start; see {self.sipp_dir / 'sipp.out'}")

    @property
    def calls_log(self) -> Path:
        return self.sipp_dir / "calls.log"

    def _write_config(self, servers: list[LabServer]) -> None:
        p = self.ports
        config = {
            "database": {"dsn": self.pg.dsn(DB_NAME, DB_USER)},
            "asterisk": [
                {
                    "name": server.name,
                    "ami": {
                        "host": HOST,
                        "port": server.ami,
                        "username": AMI_USER,
                        "secret_file": str(self.secret_path),
                        "ping_interval": "2s",
                        "ping_timeout": "2s",
                        "reconnect_delay": "1s",
                        "connect_timeout": "5s",
                    },
                    "originate_context": "dialler-outbound",
                }
                for server in servers
            ],
            "carriers": [
                {"name": CARRIER, "endpoint": CARRIER, "max_channels": 500, "calls_per_second": 100}
            ],
            "numbers": [{"number": n, "carrier": CARRIER, "enabled": True} for n in CALLER_IDS],
            "listeners": {
                "agi": {
                    "host": HOST,
                    "port": p.agi,
                    "secret_file": str(self.agi_secret_path),
                    "allow": [HOST],
                },
                "http": {"host": HOST, "port": p.http},
                "metrics": {"host": HOST, "port": p.metrics},
            },
            "contacts": {"default_region": "GB"},
            "api": {
                "tokens_file": str(self.tokens_path),
                "worker_tokens_file": str(self.worker_tokens_path),
            },
            "fleet": {
                "workers": [
                    {"name": WORKER, "host": HOST, "port": p.worker, "capacity": WORKER_CAPACITY}
                ]
            },
        }
        header = "# Written by `dialler lab up`: the config of the local lab.\n"
        text = header + yaml.safe_dump(config, sort_keys=False)
        if not self.config_path.exists() or self.config_path.read_text() != text:
            self.config_path.write_text(text)

    # -- status / calls / down -------------------------------------------------------------
    def status(self) -> dict[str, object]:
        p = self.ports
        version = asterisk.version(self.root) if self.root.exists() else None
        servers = [
            {
                "name": server.name,
                "up": bool(self._alive(server.state_key, "asterisk"))
                and _port_open(HOST, server.ami),
                "host": HOST,
                "sip_port": server.sip,
                "ami_port": server.ami,
                "version": version,
            }
            for server in self.servers()
        ]
        first = {k: v for k, v in servers[0].items() if k != "name"}
        return {
            "state_dir": str(self.dir),
            "config": str(self.config_path) if self.config_path.exists() else None,
            "postgres": {"up": self.pg.is_running(), "host": HOST, "port": p.postgres},
            "asterisk": first,
            "asterisk_servers": servers,
            "carrier": {
                "up": bool(self._alive("carrier", "sipp")),
                "host": HOST,
                "port": p.carrier,
                "rtp_port": p.carrier_rtp,
            },
            "worker": {
                "up": bool(self._alive("worker", "dialler.cli")),
                "host": HOST,
                "port": p.worker,
                "capacity": WORKER_CAPACITY,
            },
        }

    def calls(self) -> sipp.CallCount:
        """What the carrier received since it started, counted from its own log."""
        return sipp.count_calls(self.calls_log, self.servers_by_sip_port())

    def invites(self) -> list[sipp.Invite]:
        """Every call the carrier received since it started, with the carrier's receive time,
        the sending server's SIP port and, in the throttling range, its verdict: what a test
        measures rates and throttling from."""
        return sipp.read_invites(self.calls_log)

    def down(self) -> None:
        for key, binary in (("worker", "dialler.cli"), ("carrier", "sipp")):
            pid = self._alive(key, binary)
            if pid:
                _terminate(pid)
        for server in reversed(self.servers()):
            pid = self._alive(server.state_key, "asterisk")
            if pid:
                _terminate(pid)
        self.pg.stop()
        self._state_file.unlink(missing_ok=True)


def _pid_runs(pid: int, binary: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return binary.encode() in cmdline


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait(lambda: not Path(f"/proc/{pid}").exists() or not _pid_runs(pid, ""), timeout):
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _pid_runs(pid, ""), 5)


def _wait(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.1)
    return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _ami_banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            return sock.recv(64).startswith(b"Asterisk Call Manager")
    except OSError:
        return False


def _udp_bound(port: int) -> bool:
    """Is something bound to this UDP port on 127.0.0.1? (/proc/net/udp, hex ports)"""
    needle = f":{port:04X} "
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(needle.strip()) for line in lines if len(line.split()) > 1)


__all__ = ["DEFAULT_STATE_DIR", "MAX_ASTERISK_SERVERS", "Lab", "LabPorts", "LabServer", "asdict"]
