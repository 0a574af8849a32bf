"""A private PostgreSQL 15 cluster for the lab and the integration tests.

`PgCluster` wraps Debian's PostgreSQL binaries (`initdb`, `pg_ctl`, `psql`). PostgreSQL refuses
to run as root, so when we are root every command runs as an unprivileged system user (created
on demand); otherwise it runs as the current user. The cluster is reachable only from loopback
(trust authentication there) and through a Unix socket inside its own 0700 data directory, so
it needs nothing under /var/run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from dialler.errors import LabError

__all__ = ["PgCluster"]

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")

# Every command gets this long at most; `pg_ctl -w` has its own, shorter, wait below.
_COMMAND_TIMEOUT = 180.0
_PG_CTL_WAIT_SECONDS = "90"
# Lines of stderr (or of the server log) quoted in an error.
_TAIL_LINES = 15
# Our settings live in their own file, rewritten at every start, so a changed port or host
# takes effect without editing postgresql.conf by hand.
_SETTINGS_FILE = "dialler-cluster.conf"
_LOG_FILE = "server.log"


class PgCluster:
    """One PostgreSQL cluster: a data directory, a loopback address and a port.

    Running commands as another user: we use `subprocess.run(user=, group=, extra_groups=[])`,
    which switches identity in the forked child inside CPython's C code. Unlike a
    `preexec_fn` calling setuid it is safe in a process that has threads, and unlike `runuser`
    or `su` it needs no PAM session and no util-linux, while still dropping root's
    supplementary groups.
    """

    superuser = "postgres"

    def __init__(
        self,
        datadir: Path,
        port: int,
        host: str = "127.0.0.1",
        user: str = "dialler-lab",
        bindir: Path = DEFAULT_BINDIR,
        *,
        fast: bool = False,
    ) -> None:
        """Describe a cluster; nothing is touched until `init()` or `start()`.

        `fast` turns off fsync and friends: a crash can corrupt the cluster, so it is for
        throwaway test clusters only.
        """
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            # Trust authentication is only acceptable when nobody else can connect.
            raise LabError(f"PostgreSQL host must be a loopback IP address, not {host!r}")
        if not 0 < port < 65536:
            raise LabError(f"PostgreSQL port must be between 1 and 65535, not {port}")
        self.datadir = Path(datadir).absolute()
        self.port = port
        self.host = host
        self.user = user
        self.bindir = Path(bindir)
        self.fast = fast

    # --- lifecycle ---------------------------------------------------------------------------

    def init(self) -> None:
        """Create the cluster unless the data directory already holds one (idempotent)."""
        if os.geteuid() == 0:
            self._ensure_system_user()
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        self._chown(self.datadir)
        self._run(
            [
                self._bin("initdb"),
                "--pgdata",
                str(self.datadir),
                "--username",
                self.superuser,
                "--encoding",
                "UTF8",
                # The C locale makes sorting and error texts the same on every machine.
                "--locale",
                "C",
                "--auth",
                "trust",  # replaced by our pg_hba.conf just below
            ]
        )
        self._write_owned(self.datadir / "pg_hba.conf", self._hba())
        self._ensure_include()

    def start(self) -> None:
        """Start the server and wait until it accepts connections; no-op if it is running."""
        if self.is_running():
            return
        if not (self.datadir / "PG_VERSION").exists():
            raise LabError(f"no PostgreSQL cluster in {self.datadir}: run init() first")
        self._ensure_include()  # also repairs an init() interrupted after initdb
        self._write_owned(self.datadir / _SETTINGS_FILE, self._settings())
        log = self.datadir / _LOG_FILE
        offset = log.stat().st_size if log.exists() else 0
        try:
            self._run(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "--wait",
                    "--timeout",
                    _PG_CTL_WAIT_SECONDS,
                    "--pgdata",
                    str(self.datadir),
                    "--log",
                    str(log),
                ]
            )
        except LabError as exc:
            # pg_ctl only says "see the log"; the reason (port in use, bad setting) is there.
            raise LabError(f"{exc}\n--- {log} ---\n{_tail_of_file(log, offset)}") from None

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are cut); no-op if it is not running."""
        if not self.is_running():
            return
        self._run(
            [
                self._bin("pg_ctl"),
                "stop",
                "--wait",
                "--timeout",
                _PG_CTL_WAIT_SECONDS,
                "--pgdata",
                str(self.datadir),
                "--mode",
                "fast",
            ]
        )

    def is_running(self) -> bool:
        """Whether the cluster's postmaster is alive."""
        return self.pid() is not None

    def pid(self) -> int | None:
        """The postmaster's process id, or None when the cluster is not running."""
        try:
            first_line = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LabError(f"cannot read {self.datadir / 'postmaster.pid'}: {exc}") from None
        try:
            pid = int(first_line)
        except ValueError:
            return None  # being written during startup, or garbage: not running (yet)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # stale file left by a crash or a reboot
        except PermissionError:
            pass  # alive, but another user's: still ours if it is a postgres (below)
        # After a reboot the stale pid may belong to an unrelated process: check its name.
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return pid  # no /proc: trust the signal check, as pg_ctl does
        return pid if comm in ("postgres", "postmaster") else None

    # --- databases ---------------------------------------------------------------------------

    def ensure_database(self, name: str, owner: str) -> None:
        """Create the login role `owner` and the database `name` it owns, if missing."""
        # \gexec runs the generated statement only when the SELECT returns a row; psql quotes
        # the values (:'var'), format() quotes the identifiers (%I).
        script = (
            "SELECT format('CREATE ROLE %I LOGIN', :'owner')\n"
            " WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \\gexec\n"
            "SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')\n"
            " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
        )
        self._run(
            [
                self._bin("psql"),
                "--no-psqlrc",
                "--quiet",
                "--set",
                "ON_ERROR_STOP=1",
                # The socket directory is reachable only by the cluster's user, who runs psql.
                "--host",
                str(self.datadir),
                "--port",
                str(self.port),
                "--username",
                self.superuser,
                "--dbname",
                "postgres",
                "--set",
                f"owner={owner}",
                "--set",
                f"db={name}",
                "--file",
                "-",
            ],
            stdin=script,
        )

    def dsn(self, database: str, user: str) -> str:
        """A libpq/asyncpg URL for `database` as `user` over TCP (no password: trust)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{quote(user, safe='')}@{host}:{self.port}/{quote(database, safe='')}"

    # --- helpers -----------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        path = self.bindir / name
        if not path.is_file():
            raise LabError(
                f"{path} not found: install PostgreSQL 15 (Debian: apt-get install postgresql-15)"
            )
        return str(path)

    def _hba(self) -> str:
        prefix = 32 if ipaddress.ip_address(self.host).version == 4 else 128
        return (
            "# Written by dialler's PgCluster. Trust is safe only because nothing else can\n"
            "# connect: TCP on the loopback address alone, and a socket inside the 0700\n"
            "# data directory that only the cluster's user (and root) can reach.\n"
            "# TYPE  DATABASE  USER  ADDRESS  METHOD\n"
            "local   all       all            trust\n"
            f"host    all       all   {self.host}/{prefix}  trust\n"
        )

    def _settings(self) -> str:
        lines = [
            "# Written by dialler's PgCluster at every start: edits here are overwritten.",
            f"listen_addresses = {_conf_string(self.host)}",
            f"port = {self.port}",
            # The socket lives in the data directory: no dependency on /var/run/postgresql.
            f"unix_socket_directories = {_conf_string(str(self.datadir))}",
        ]
        if self.fast:
            lines += [
                "# fast=True (tests only): durability traded for speed.",
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
            ]
        return "\n".join(lines) + "\n"

    def _ensure_include(self) -> None:
        """Make postgresql.conf read our settings file (appended once)."""
        conf = self.datadir / "postgresql.conf"
        include = f"include_if_exists = '{_SETTINGS_FILE}'"
        if include not in conf.read_text(encoding="utf-8"):
            with conf.open("a", encoding="utf-8") as handle:
                handle.write(f"\n# dialler: settings managed by PgCluster\n{include}\n")

    def _identity(self) -> tuple[int, int] | None:
        """(uid, gid) to run commands as, or None to run them as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            raise LabError(f"system user {self.user!r} does not exist: run init() first") from None
        return entry.pw_uid, entry.pw_gid

    def _ensure_system_user(self) -> None:
        try:
            pwd.getpwnam(self.user)
            return
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        command = [
            useradd,
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            self.user,
        ]
        result = _execute(command, None, None, dict(os.environ))
        # Exit 9: created meanwhile by a concurrent `init()`; fine.
        if result.returncode not in (0, 9):
            raise _command_error(command, result)

    def _chown(self, path: Path) -> None:
        identity = self._identity()
        if identity is not None:
            os.chown(path, *identity)

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        self._chown(path)

    def _run(self, command: Sequence[str], stdin: str | None = None) -> str:
        """Run a PostgreSQL tool as the cluster's user; its stdout, or LabError."""
        # PG* variables (PGHOST, PGDATA, ...) would silently redirect the tools: drop them.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        result = _execute(command, self._identity(), stdin, env)
        if result.returncode != 0:
            raise _command_error(command, result)
        return result.stdout


@contextlib.contextmanager
def throwaway_cluster(prefix: str, *, fast: bool) -> Iterator[PgCluster]:
    """A private cluster in a new temporary directory, on a free loopback port, started; stopped
    and removed after (tests and benchmarks). `fast`: fsync off (see `PgCluster`)."""
    # Not a 0700 directory of root's: the cluster's user must reach its data directory.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    cluster = PgCluster(base / "data", port=port, fast=fast)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _execute(
    command: Sequence[str],
    identity: tuple[int, int] | None,
    stdin: str | None,
    env: Mapping[str, str],
) -> subprocess.CompletedProcess[str]:
    uid, gid = identity if identity is not None else (None, None)
    try:
        return subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(env),
            # "/" rather than our cwd, which the unprivileged user may not be allowed to enter.
            cwd="/",
            timeout=_COMMAND_TIMEOUT,
            check=False,
            user=uid,
            group=gid,
            extra_groups=None if identity is None else [],
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{_show(command)} did not finish within {_COMMAND_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise LabError(f"{_show(command)} could not be run: {exc}") from None


def _command_error(command: Sequence[str], result: subprocess.CompletedProcess[str]) -> LabError:
    output = result.stderr.strip() or result.stdout.strip() or "(no output)"
    return LabError(f"{_show(command)} failed with exit code {result.returncode}:\n{_tail(output)}")


def _show(command: Sequence[str]) -> str:
    return " ".join(command)


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_TAIL_LINES:])


def _tail_of_file(path: Path, offset: int) -> str:
    """The end of what was written to `path` after `offset` bytes."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return _tail(handle.read().decode("utf-8", errors="replace"))
    except OSError as exc:
        return f"(cannot read: {exc})"


def _conf_string(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
